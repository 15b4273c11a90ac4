"""Greedy decoding throughput: the batched scan against prefix re-running, modules against the model.

An encoder-decoder of the translation ``cpu`` preset's size (embedding 64, hidden 128, source
and target vocabularies of 8,000, 20 source tokens, 20 decoder steps) with random
(``init_params``, scaled ×3 so decoding does not stop at once) weights, or a trained checkpoint
(``--model_dir``). ``--n`` random source sentences, each with a random target language, are
decoded four ways, each timed after a warm-up call (median of ``--reps`` interleaved rounds,
sentences/s):

* **scan**: :func:`modjax.greedy_decode`, one compiled ``lax.scan`` over output steps with an
  incremental decoder state, for the whole batch;
* **prefix**: :func:`modjax.translation.prefix_decode`, the authors' way: the whole model is
  run again on the partial target at every step (``out_len`` full passes);
* **scan, module** / **prefix, module**: the same with module 0 of an ``artifact``-preset
  decomposition (rolled), masks applied to the matmul inputs and outputs.

Run::

    python -m benchmarks.decode
    python -m benchmarks.decode --cell gru --layers 2 --n 256 --json docs/results/decode_benchmark.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import numpy as np

from modjax.checkpoint import load_model
from modjax.decompose import decompose
from modjax.models import ModelConfig, greedy_decode, init_params
from modjax.translation import prefix_decode


def timed(fns: dict, reps: int) -> dict:
    """Median seconds of every ``fns[k]()`` over ``reps`` rounds, after one warm-up call each.

    The calls are interleaved (one of each per round), so a machine shared with other jobs
    slows every variant alike.
    """
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "simple"])
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--n", type=int, default=512, help="sentences per batch")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model_dir", default=None, help="a trained encoder-decoder checkpoint")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args(argv)
    if args.model_dir:
        config, params = load_model(args.model_dir)
        what = f"trained {os.path.basename(args.model_dir)}"
    else:
        config = ModelConfig(io="encoder_decoder", cell=args.cell, num_classes=args.vocab,
                             vocab_size=args.vocab, in_len=20, out_len=20, layers=args.layers,
                             units=args.units, embed_dim=64, mask_zero=True, forward="artifact")
        params = jax.tree_util.tree_map(lambda a: np.asarray(a) * 3.0, init_params(config, 0))
        what = f"random {args.cell}-{args.layers}, H={args.units}, V={args.vocab}"
    rng = np.random.default_rng(0)
    n, T = args.n, config.out_len
    lengths = rng.integers(4, config.in_len + 1, n)
    src = np.where(np.arange(config.in_len)[None] < lengths[:, None],
                   rng.integers(2, config.vocab_size, (n, config.in_len)), 0).astype(np.int32)
    lang = rng.integers(0, 3, n)
    start = (2 + lang).astype(np.int32)          # three ids stand for the [startℓ] tags
    end = (5 + lang).astype(np.int32)
    # a decomposition with one module per language, from random pairs of this model
    dec_in = np.concatenate([start[:, None], rng.integers(8, config.num_classes, (n, T - 1))],
                            1).astype(np.int32)
    decomp = decompose(params, ((src, dec_in), lang.astype(np.int32)), model=config,
                       class_names=("l0", "l1", "l2"), preset="artifact", mode="rolled",
                       n_pos=100, n_neg=50)
    runs = {
        "scan": lambda: greedy_decode(config, params, src, start, end_ids=end),
        "prefix": lambda: prefix_decode(config, params, src, start, end),
        "scan_module": lambda: greedy_decode(config, params, src, start, end_ids=end,
                                             decomp=decomp, module=0),
        "prefix_module": lambda: prefix_decode(config, params, src, start, end, decomp=decomp,
                                               module=0),
    }
    same = np.array_equal(np.asarray(runs["scan"]()), runs["prefix"]())
    secs = timed(runs, args.reps)
    sps = {k: n / s for k, s in secs.items()}
    summary = {"what": f"benchmarks/decode.py, {what}, {n} sentences, {T} steps",
               "scan_sps": sps["scan"], "prefix_sps": sps["prefix"],
               "speedup": sps["scan"] / sps["prefix"], "module_sps": sps["scan_module"],
               "module_prefix_sps": sps["prefix_module"],
               "module_speedup": sps["scan_module"] / sps["prefix_module"],
               "scan_equals_prefix": bool(same)}
    from experiments.runner import hardware

    print(f"# decode benchmark — {hardware()}")
    print(f"# {summary['what']}; median of {args.reps} after a warm-up")
    for k in runs:
        print(f"{k:14s} {secs[k] * 1e3:9.1f} ms  {sps[k]:9.1f} sentences/s")
    print(f"scan / prefix: {summary['speedup']:.1f}x (monolithic), "
          f"{summary['module_speedup']:.1f}x (module); module / monolithic scan: "
          f"{sps['scan_module'] / sps['scan']:.2f}; same tokens: {same}")
    if args.json:
        from experiments.runner import write_atomic

        write_atomic(args.json, json.dumps({"hardware": hardware(), "argv": argv,
                                            "seconds": secs, "summary": summary}, indent=1))
    return summary


if __name__ == "__main__":
    main()
