"""Composed evaluation in inner row chunks against whole batches, interleaved with the forward.

``module_scores(row_chunk=...)`` runs each compiled call's examples a chunk at a time
(``lax.map``) so that a step's gates for every module stay in the CPU's cache. This benchmark
decomposes a random-weight model (default: CLINC-sized M:1 LSTM-1, 10 classes, 15,000
training and 4,500 test sequences) and times, in each of ``--rounds`` rounds, one plain
jit-compiled forward pass over the test set (``apply_model(..., return_hidden=True)``) and
then ``module_scores`` with each ``--row_chunks`` value (``0``: whole batches), so that a slow
or fast moment of a shared machine hits all of them. It prints the median time of each and its
ratio to ``C`` forward passes (the target for one-layer M:1 models: <= 0.8).

Run::

    python -m benchmarks.row_chunk
    python -m benchmarks.row_chunk --layers 4 --io many_to_many --classes 13 --row_chunks 0,384
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax

from benchmarks.decompose import block, random_task, sec
from modjax.compose import module_scores
from modjax.decompose import decompose
from modjax.models import apply_model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--io", default="many_to_one", choices=("many_to_one", "many_to_many"))
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--cell", default="lstm", choices=("lstm", "gru", "simple"))
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--embed", type=int, default=50)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--n_train", type=int, default=15000)
    ap.add_argument("--n_test", type=int, default=4500)
    ap.add_argument("--u_masks", default="code,paper")
    ap.add_argument("--modes", default="rolled,unrolled")
    ap.add_argument("--row_chunks", default="0,192,384,768",
                    help="comma-separated row_chunk values (0: whole batches)")
    ap.add_argument("--share_projection", default="default",
                    help="comma-separated module_scores share_projection values, each timed: "
                         "default (the library's: shared), true, false")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    chunks = [int(c) for c in args.row_chunks.split(",")]
    values = {"default": None, "true": True, "false": False}
    shares = args.share_projection.split(",")
    if any(v not in values for v in shares):
        ap.error(f"--share_projection takes default, true or false, got {args.share_projection}")
    cols = [(c, sh) for sh in shares for c in chunks]

    def label(c, sh):
        return f"row_chunk={c}" + ("" if sh == "default" else f", shared={sh}")

    cfg, params, x_train, y_train, x_test, _ = random_task(args)
    fwd = jax.jit(lambda prm, x: apply_model(cfg, prm, x, return_hidden=True))
    xt = jax.numpy.asarray(x_test)
    C = cfg.num_classes

    print(f"# modjax row-chunk benchmark — {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"jax {jax.__version__} ({jax.default_backend()})")
    print(f"# model: {cfg.cell.upper()}-{cfg.layers}, H={cfg.units}, T={cfg.steps}, C={C}, "
          f"{cfg.io}; {args.n_test} test sequences; share_projection {args.share_projection}; "
          f"{args.rounds} interleaved rounds (median)")
    print()
    print("| mode | u_mask | forward (s) | " + " | ".join(
        f"{label(c, sh)} (s) | × C" for c, sh in cols) + " |")
    print("|---|---|---|" + "---|---|" * len(cols))
    for u_mask in args.u_masks.split(","):
        for mode in args.modes.split(","):
            d = decompose(params, (x_train, y_train), model=cfg, mode=mode, u_mask=u_mask)
            runs = {"forward": lambda: block(fwd(params, xt))}
            for c, sh in cols:
                runs[(c, sh)] = (lambda c=c, sh=sh: block(module_scores(
                    d, params, x_test, row_chunk=c, share_projection=values[sh])))
            for fn in runs.values():  # compile
                fn()
            times = {k: [] for k in runs}
            for _ in range(args.rounds):
                for k, fn in runs.items():
                    t0 = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t0)
            f = statistics.median(times["forward"])
            cells = []
            for col in cols:
                m = statistics.median(times[col])
                cells.append(f"{sec(m)} | {m / (C * f):.2f}")
            print(f"| {mode} | {u_mask} | {sec(f)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
