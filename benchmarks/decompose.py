"""Decomposition and composed-evaluation cost on a paper-sized model.

A Brown-like tagger: LSTM-4 (4 layers of 100 units), 15 steps, 13 classes, many-to-many,
500 positives per class and step. Random (``init_params``) weights and random, skewed labels:
the cost of decompose / compose does not depend on what the weights learned.

Measured, after a warm-up call (compile time reported on its own), as the median of ``--reps``
repetitions with ``block_until_ready``:

* ``decompose``            — :func:`modjax.decompose` on the training set (sampling + trace +
  concern identification), vs one plain jit-compiled forward pass
  (``apply_model(..., return_hidden=True)``) over the same sampled examples (the union);
* ``module_scores``        — every module on the test set in one batched scan, vs ``C`` plain
  forward passes over the test set (one jit-compiled forward timed, times ``C``): with
  ``share_projection=False`` (every module projects its own inputs) and
  ``share_projection=True`` (the default: the first layer's input projection computed once
  per step for all modules).

Targets (from the issue): decomposition <= 3x one forward pass; composed evaluation <= 1.5x
``C`` forward passes.

Run::

    python -m benchmarks.decompose                # rolled and unrolled, code semantics
    python -m benchmarks.decompose --modes unrolled --u_mask paper --reps 5
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from modjax.compose import module_scores
from modjax.decompose import decompose, sample_union
from modjax.models import ModelConfig, apply_model, init_params


def skewed_labels(rng, n, steps, classes, alpha=0.5):
    """Labels ``[n, steps]`` with ``P(c) ∝ (c + 1) ** -alpha`` (a Zipf-like tag skew)."""
    p = (np.arange(classes) + 1.0) ** -alpha
    p /= p.sum()
    return rng.choice(classes, size=(n, steps), p=p).astype(np.int32), p


def random_task(args):
    """The benchmarks' model and data from their flags (``io, cell, classes, vocab, steps,
    layers, units, embed, n_train, n_test, seed``): ``(config, random params, x_train
    [n_train, steps], y_train [n_train] or [n_train, steps] with skewed labels, x_test, P(c))``."""
    cfg = ModelConfig(io=args.io, cell=args.cell, num_classes=args.classes,
                      vocab_size=args.vocab, in_len=args.steps, layers=args.layers,
                      units=args.units, embed_dim=args.embed)
    params = init_params(cfg, args.seed)
    rng = np.random.default_rng(args.seed)
    x_train = rng.integers(1, args.vocab, (args.n_train, args.steps)).astype(np.int32)
    y_train, p = skewed_labels(rng, args.n_train, args.steps, args.classes)
    if args.io == "many_to_one":
        y_train = y_train[:, -1]
    x_test = rng.integers(1, args.vocab, (args.n_test, args.steps)).astype(np.int32)
    return cfg, params, x_train, y_train, x_test, p


def timed(fn, reps):
    """``(first_call_seconds, median_seconds, all_times)``; ``fn`` must block on its result."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), times


def block(tree):
    return jax.tree_util.tree_map(lambda a: a.block_until_ready() if hasattr(
        a, "block_until_ready") else a, tree)


def peak_rss_mib():
    # Linux: ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sec(t: float) -> str:
    """Seconds to three significant figures (GPU runs take milliseconds)."""
    return f"{t:.3g}"


def secs(ts) -> str:
    return "[" + ", ".join(sec(t) for t in ts) + "]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--classes", type=int, default=13)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--embed", type=int, default=50)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--io", default="many_to_many", choices=("many_to_many", "many_to_one"),
                    help="many_to_one: one label per sequence (a CLINC-like intent model)")
    ap.add_argument("--n_train", type=int, default=20000)
    ap.add_argument("--n_test", type=int, default=15000)
    ap.add_argument("--n_pos", type=int, default=500)
    ap.add_argument("--max_remove", type=float, default=0.05)
    ap.add_argument("--u_mask", default="code", choices=("code", "paper"))
    ap.add_argument("--modes", default="rolled,unrolled")
    ap.add_argument("--batch_size", type=int, default=4096, help="module_scores batch size")
    ap.add_argument("--row_chunk", type=int, default=None,
                    help="module_scores row_chunk (default: the library's, 384 rows on CPU; "
                         "0: whole batches)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    cfg, params, x_train, y_train, x_test, p = random_task(args)
    slots = y_train.reshape(args.n_train, -1)  # [N, T] (tagging) or [N, 1]
    counts = (slots[:, :, None] == np.arange(args.classes)).sum(0)  # [T or 1, C]
    n_neg = int(np.ceil(args.n_pos / (args.classes - 1)))
    union = sample_union(slots, args.classes, args.n_pos, n_neg, False)
    U = int(union.sum())
    x_union = x_train[union]

    print(f"# modjax decompose benchmark — {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"jax {jax.__version__} ({jax.default_backend()})")
    print(f"# model: {cfg.cell.upper()}-{cfg.layers}, H={cfg.units}, T={cfg.steps}, "
          f"C={cfg.num_classes}, E={cfg.embed_dim}, V={cfg.vocab_size}, {cfg.io}, "
          f"u_mask={args.u_mask}, max_remove={args.max_remove}, "
          f"module_scores batch {args.batch_size}, row_chunk "
          f"{'default' if args.row_chunk is None else args.row_chunk}")
    print(f"# data: {args.n_train} train sequences (label skew P(c) from {p.max():.3f} to "
          f"{p.min():.3f}; positives per (class, step) min {counts.min()}, "
          f"(class, step) pairs with >= {args.n_pos}: {(counts >= args.n_pos).mean():.0%}), "
          f"{args.n_test} test sequences")
    print(f"# sampled union: {U} sequences ({args.n_pos} positives and {n_neg} negatives per "
          f"class and step); reps={args.reps} (median)")

    fwd = jax.jit(lambda prm, x: apply_model(cfg, prm, x, return_hidden=True))
    xu = jnp.asarray(x_union)
    xt = jnp.asarray(x_test)
    f_union = timed(lambda: block(fwd(params, xu)), args.reps)
    f_test = timed(lambda: block(fwd(params, xt)), args.reps)
    C = cfg.num_classes

    rows = []
    for mode in [m for m in args.modes.split(",") if m]:
        holder = {}

        def run_decompose():
            d = decompose(params, (x_train, y_train), model=cfg, mode=mode,
                          max_remove=args.max_remove, u_mask=args.u_mask, n_pos=args.n_pos)
            holder["d"] = block(d)

        d_t = timed(run_decompose, args.reps)
        decomp = holder["d"]
        removed = float((~np.asarray(decomp.keep)).sum(-1).mean())
        s_t = timed(lambda: block(module_scores(decomp, params, x_test, share_projection=False,
                                                batch_size=args.batch_size,
                                                row_chunk=args.row_chunk)), args.reps)
        p_t = timed(lambda: block(module_scores(decomp, params, x_test, share_projection=True,
                                                batch_size=args.batch_size,
                                                row_chunk=args.row_chunk)), args.reps)
        rows.append((mode, d_t, s_t, removed, p_t))

    print()
    print("| mode | decompose (s) | 1 forward on union (s) | ratio (target <= 3) "
          "| module_scores, projection per module (s) | C forwards on test (s) "
          "| ratio (target <= 1.5) | module_scores, shared projection (default) (s) | ratio "
          "| compile: decompose / module_scores (s) | removed units / layer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, d_t, s_t, removed, p_t in rows:
        cf = C * f_test[1]
        print(f"| {mode} | {sec(d_t[1])} | {sec(f_union[1])} | {d_t[1] / f_union[1]:.2f} "
              f"| {sec(s_t[1])} | {sec(cf)} ({C} x {sec(f_test[1])}) | {s_t[1] / cf:.2f} "
              f"| {sec(p_t[1])} | {p_t[1] / cf:.2f} "
              f"| {d_t[0] - d_t[1]:.1f} / {s_t[0] - s_t[1]:.1f} | {removed:.1f} |")
    print()
    print(f"forward compile (union / test): {f_union[0] - f_union[1]:.1f} / "
          f"{f_test[0] - f_test[1]:.1f} s; all times: decompose "
          + "; ".join(f"{m}: {secs(d[2])}" for m, d, _, _, _ in rows)
          + "; module_scores "
          + "; ".join(f"{m}: {secs(s[2])}" for m, _, s, _, _ in rows)
          + "; shared projection "
          + "; ".join(f"{m}: {secs(p[2])}" for m, _, _, _, p in rows)
          + f"; forward union {secs(f_union[2])}, test {secs(f_test[2])}")
    print(f"peak memory (ru_maxrss): {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
