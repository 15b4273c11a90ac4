"""Size and forward time of compacted modules against the full model.

A paper-sized tagger with random (``init_params``) weights: LSTM-2 (2 layers of 100 units),
15 steps, 13 classes, many-to-many, embedding 100, vocabulary 5000; random labels. For each
removal cap the model is decomposed (``u_mask="paper"``, rolled; with random labels about half
the units score ``d < 0``, so caps up to ~0.4 are reached), every module is compacted with
:func:`modjax.compact`, and the benchmark prints, in the same run:

* parameters of a compacted module against the full model's (all, and without embeddings:
  the recurrent layers and the head, the part a forward pass multiplies);
* forward time of the compacted module over the test set against one forward of the full model
  timed right before it (jit-compiled, batches of ``--batch_size``, median of ``--reps`` after
  a warm-up; paired because the machine may be shared), the ratio averaged over modules; and
  one module run on the full-size weights with masks (``module_scores`` of a one-module
  decomposition) for comparison.

Run::

    python -m benchmarks.compact
    python -m benchmarks.compact --cell gru --caps 0.05,0.4 --reps 5
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from modjax.compact import compact
from modjax.compose import module_scores, select
from modjax.decompose import decompose
from modjax.models import ModelConfig, apply_model, init_params


def param_count(params, skip_embeddings: bool = False) -> int:
    """Number of scalars in ``params`` (without ``*embedding*`` entries if asked)."""
    return int(sum(np.size(v) for k, leaves in params.items() for v in leaves.values()
                   if not (skip_embeddings and "embedding" in k)))


_fwd = jax.jit(apply_model, static_argnums=(0,))


def forward(config: ModelConfig, params, x: np.ndarray, batch_size: int):
    """Logits of ``x [N, in_len]`` in equal batches (the last padded), blocked on."""
    n = x.shape[0]
    nb = -(-n // batch_size)
    bs = -(-n // nb)
    outs = []
    for s in range(0, n, bs):
        xb = np.zeros((bs,) + x.shape[1:], np.int32)
        xb[: min(bs, n - s)] = x[s:s + bs]
        outs.append(_fwd(config, params, jnp.asarray(xb)))
    return jax.block_until_ready(outs)


def time_forward(config: ModelConfig, params, x: np.ndarray, batch_size: int = 4096,
                 reps: int = 3) -> float:
    """Median seconds of :func:`forward` over ``reps`` runs after a warm-up (compile) run."""
    params = jax.tree_util.tree_map(jnp.asarray, params)
    forward(config, params, x, batch_size)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        forward(config, params, x, batch_size)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_masked_module(decomp, params, x, batch_size, reps) -> float:
    """Median seconds of one module (module 0) run on the full weights with masks."""
    one = select(decomp, [0])
    jax.block_until_ready(module_scores(one, params, x, batch_size=batch_size))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(module_scores(one, params, x, batch_size=batch_size))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--classes", type=int, default=13)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--embed", type=int, default=100)
    ap.add_argument("--n_train", type=int, default=8000)
    ap.add_argument("--n_test", type=int, default=8192)
    ap.add_argument("--caps", default="0.05,0.2,0.4", help="removal caps (comma separated)")
    ap.add_argument("--modules", type=int, default=4, help="modules timed per cap")
    ap.add_argument("--batch_size", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    cfg = ModelConfig(io="many_to_many", cell=args.cell, num_classes=args.classes,
                      vocab_size=args.vocab, in_len=args.steps, layers=args.layers,
                      units=args.units, embed_dim=args.embed)
    params = jax.tree_util.tree_map(np.asarray, init_params(cfg, args.seed))
    rng = np.random.default_rng(args.seed)
    x_train = rng.integers(1, args.vocab, (args.n_train, args.steps)).astype(np.int32)
    y_train = rng.integers(0, args.classes, (args.n_train, args.steps)).astype(np.int32)
    x_test = rng.integers(1, args.vocab, (args.n_test, args.steps)).astype(np.int32)

    print(f"# modjax compact benchmark — {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"jax {jax.__version__} ({jax.default_backend()})")
    print(f"# model: {cfg.cell.upper()}-{cfg.layers}, H={cfg.units}, T={cfg.steps}, "
          f"C={cfg.num_classes}, E={cfg.embed_dim}, V={cfg.vocab_size}, many_to_many, random "
          f"weights; {args.n_test} test sequences, batch {args.batch_size}, reps={args.reps} "
          f"(median), {args.modules} modules per cap")
    full_p = param_count(params)
    full_r = param_count(params, skip_embeddings=True)
    t_full = time_forward(cfg, params, x_test, args.batch_size, args.reps)
    rows = []
    for cap in [float(c) for c in args.caps.split(",") if c]:
        decomp = decompose(params, (x_train, y_train), model=cfg, max_remove=cap,
                           u_mask="paper", n_pos=200)
        n = min(args.modules, decomp.num_modules)
        widths, sizes, rsizes, times, ratios, errs = [], [], [], [], [], []
        ref = np.asarray(module_scores(decomp, params, x_test[:256]))
        for c in range(n):
            ccfg, cp = compact(params, decomp, c)
            widths.append(ccfg.units)
            sizes.append(param_count(cp))
            rsizes.append(param_count(cp, skip_embeddings=True))
            # paired: the full model timed right before each module (a shared, noisy machine)
            t_f = time_forward(cfg, params, x_test, args.batch_size, args.reps)
            times.append(time_forward(ccfg, cp, x_test, args.batch_size, args.reps))
            ratios.append(t_f / times[-1])
            got = np.asarray(jax.nn.softmax(forward(ccfg, cp, x_test[:256], 256)[0], -1)[..., 1])
            errs.append(float(np.abs(got - ref[c]).max()))
        t_masked = time_masked_module(decomp, params, x_test, args.batch_size, args.reps)
        t_f = time_forward(cfg, params, x_test, args.batch_size, args.reps)
        rows.append((cap, np.mean(widths), np.mean(sizes), np.mean(rsizes), np.mean(times),
                     np.mean(ratios), t_masked, t_f / t_masked, max(errs)))

    print(f"\nfull model: {full_p} parameters ({full_r} without embeddings), forward on test "
          f"{t_full:.3f} s (first measurement)\n")
    print("| cap | kept units (H') | params: module / full | params w/o embeddings: module / "
          "full | forward: module (s) | speedup vs full forward | masked module forward (s) "
          "| max |score diff| |")
    print("|---|---|---|---|---|---|---|---|")
    for cap, w, s, r, t, ratio, tm, ratio_m, e in rows:
        print(f"| {cap:.2f} | {w:.1f} / {cfg.units} | {s / full_p:.3f} | {r / full_r:.3f} "
              f"| {t:.3f} | {ratio:.2f}x | {tm:.3f} ({ratio_m:.2f}x) | {e:.1e} |")


if __name__ == "__main__":
    main()
