"""How decomposition and composition grow with the number of classes and of devices.

Three parts (``--parts``, default all):

* ``classes`` — synthetic many-to-one task (CLINC-like: 15 tokens, vocabulary 5000, random
  ``init_params`` weights, 100 training examples per class, so every class has its
  ``--n_pos=100`` positives), ``C = 10, 50, 150`` (``--classes``) on one device:
  decomposition time, composition time (``module_scores`` on ``--n_test`` examples), peak
  memory, and the composed scan's :func:`modjax.compose.score_bytes` estimate.
* ``devices`` — the largest ``C`` on 1, 2, 4, 8 simulated CPU devices (``--devices``,
  ``XLA_FLAGS=--xla_force_host_platform_device_count=n``), default meshes.
* ``clinc150`` — real CLINC150 at intent level (150 in-scope intents): train (or load from
  ``--model_dir``) an LSTM, decompose into 150 modules, compose them in one pass, and report
  the monolithic and composed test accuracy and their difference δ.

Every measurement runs in a fresh process (the device count is read when JAX starts):
this program spawns ``python -m benchmarks.scaling --worker ...`` once per setting. Times
are medians of ``--reps`` repetitions after a warm-up call (compile time reported apart);
memory is the worker's peak resident set (``ru_maxrss``, on CPU device memory is host
memory). Growth is printed as ratios to the smallest setting.

    python -m benchmarks.scaling                          # everything, about 15 min on 2 cores
    python -m benchmarks.scaling --parts classes --classes 10,50 --reps 1
    python -m benchmarks.scaling --smoke                  # seconds: tiny sizes, all parts
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

from benchmarks import decompose as decompose_benchmark
from benchmarks.decompose import peak_rss_mib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, reps: int):
    """``(compile_s, median_s)``: the warm-up call minus the median of ``reps`` more."""
    first, med, _ = decompose_benchmark.timed(fn, reps)
    return max(first - med, 0.0), med


def synthetic_task(classes: int, per_class: int, n_test: int, vocab: int, steps: int, seed: int):
    """Random token ids; ``per_class`` training examples of every class (shuffled)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(classes, dtype=np.int32), per_class))
    x = rng.integers(1, vocab, (len(y), steps)).astype(np.int32)
    x_test = rng.integers(1, vocab, (n_test, steps)).astype(np.int32)
    return x, y, x_test


def worker_synthetic(args) -> dict:
    """One (classes, devices) measurement on random weights."""
    import jax
    import numpy as np

    from modjax.buckets import batch_plan
    from modjax.sharding import compose_mesh
    from modjax.compose import module_chunk, module_scores, score_bytes
    from modjax.decompose import decompose
    from modjax.models import ModelConfig, init_params

    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=args.classes,
                      vocab_size=args.vocab, in_len=args.steps, layers=1, units=args.units,
                      embed_dim=50)
    params = jax.tree_util.tree_map(np.asarray, init_params(cfg, args.seed))
    x, y, x_test = synthetic_task(args.classes, args.n_pos, args.n_test, args.vocab,
                                  args.steps, args.seed)
    base = peak_rss_mib()
    held = {}

    def dec():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            held["d"] = decompose(params, (x, y), model=cfg, n_pos=args.n_pos)
        jax.block_until_ready(held["d"].keep)

    d_compile, d_s = timed(dec, args.reps)
    rows = batch_plan(args.n_test, args.batch_size)[0]  # rows of one module_scores call
    mesh = compose_mesh(None, args.classes)
    m, e = (1, 1) if mesh is None else (mesh.shape["modules"], mesh.shape["examples"])
    d_peak = peak_rss_mib()

    def comp():
        jax.block_until_ready(module_scores(held["d"], params, x_test, kind="contrast",
                                            batch_size=args.batch_size,
                                            memory_budget=args.memory_budget << 20))

    c_compile, c_s = timed(comp, args.reps)
    return {"classes": args.classes, "devices": jax.device_count(), "decompose_s": d_s,
            "decompose_compile_s": d_compile, "compose_s": c_s, "compose_compile_s": c_compile,
            "rss_start_mib": base, "rss_after_decompose_mib": d_peak,
            "rss_peak_mib": peak_rss_mib(), "n_train": int(len(y)), "n_test": args.n_test,
            "score_bytes_all_modules": score_bytes(cfg, args.classes, rows),
            "module_chunk": module_chunk(cfg, args.classes, rows, args.memory_budget << 20, m, e),
            "mesh": [m, e]}


def worker_clinc(args) -> dict:
    """CLINC150 intents: train or load, decompose into 150 modules, compose, accuracy δ."""
    import jax
    import numpy as np

    from experiments.runner import train_or_load
    from modjax.compose import module_scores, vote
    from modjax.data.clinc import load_clinc
    from modjax.decompose import decompose
    from modjax.models import config_for
    from modjax.train import predict

    data = load_clinc(num_classes=150)
    if args.smoke:  # 10 per intent for training, 600 test utterances
        keep = np.concatenate([np.nonzero(data.y_train == c)[0][:10] for c in range(150)])
        import dataclasses

        data = dataclasses.replace(data, x_train=data.x_train[np.sort(keep)],
                                   y_train=data.y_train[np.sort(keep)],
                                   x_test=data.x_test[:600], y_test=data.y_test[:600])
    cfg = config_for(data, cell="lstm", layers=1, units=args.units, embed_dim=64)
    name = f"clinc150_lstm-1_h{args.units}_e{args.epochs}_b64_s{args.seed}"
    if args.smoke:
        name += "_smoke"
    t0 = time.perf_counter()
    params, meta, cached = train_or_load(cfg, data, os.path.join(args.model_dir, name),
                                         epochs=args.epochs, batch_size=64, seed=args.seed)
    train_s = time.perf_counter() - t0
    mono = np.asarray(predict(cfg, params, data.x_test))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        decomp = decompose(params, data, model=cfg, n_pos=args.n_pos)
    jax.block_until_ready(decomp.keep)
    dec_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    contrast = module_scores(decomp, params, data.x_test, kind="contrast",
                             batch_size=args.batch_size, memory_budget=args.memory_budget << 20)
    pred = np.asarray(vote(contrast, decomp.head_class))
    comp_s = time.perf_counter() - t0
    acc_mono = float(np.mean(mono == data.y_test))
    acc_comp = float(np.mean(pred == data.y_test))
    removed = float((~np.asarray(decomp.keep)).sum(-1).mean())
    return {"classes": int(decomp.num_modules), "devices": jax.device_count(),
            "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test)),
            "units": args.units, "epochs": args.epochs, "trained_s": None if cached else train_s,
            "cached_model": bool(cached), "decompose_s": dec_s, "compose_s": comp_s,
            "acc_monolithic": acc_mono, "acc_composed": acc_comp,
            "delta": acc_comp - acc_mono, "agreement": float(np.mean(pred == mono)),
            "removed_units_per_layer": removed, "rss_peak_mib": peak_rss_mib()}


def spawn(args, part: str, classes: int, devices: int) -> dict:
    """Run one worker in a fresh process with ``devices`` simulated CPU devices."""
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--worker", part,
           "--classes", str(classes), "--n_pos", str(args.n_pos), "--n_test", str(args.n_test),
           "--units", str(args.units), "--steps", str(args.steps), "--vocab", str(args.vocab),
           "--reps", str(args.reps), "--seed", str(args.seed), "--epochs", str(args.epochs),
           "--batch_size", str(args.batch_size), "--model_dir", args.model_dir,
           "--memory_budget", str(args.memory_budget)]
    if args.smoke:
        cmd.append("--smoke")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker {part} C={classes} devices={devices} failed:\n"
                           f"{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratio_table(rows, key: str, label: str) -> str:
    """A markdown table of times and memory with ratios to the first row."""
    first = rows[0]
    lines = [f"| {label} | decompose (s) | ratio | compose (s) | ratio | compile d / c (s) "
             "| peak RSS (MiB) | ratio | est. scan bytes, all modules (MiB) | modules per call (mesh m x e) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r[key]} | {r['decompose_s']:.2f} | {r['decompose_s'] / first['decompose_s']:.2f} "
            f"| {r['compose_s']:.2f} | {r['compose_s'] / first['compose_s']:.2f} "
            f"| {r['decompose_compile_s']:.1f} / {r['compose_compile_s']:.1f} "
            f"| {r['rss_peak_mib']:.0f} | {r['rss_peak_mib'] / first['rss_peak_mib']:.2f} "
            f"| {r['score_bytes_all_modules'] / 2 ** 20:.0f} | {r['module_chunk']} ({r['mesh'][0]} x {r['mesh'][1]}) |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="classes,devices,clinc150")
    ap.add_argument("--classes", default="10,50,150", help="C values of the classes sweep")
    ap.add_argument("--devices", default="1,2,4,8", help="simulated device counts")
    ap.add_argument("--device_classes", type=int, default=None,
                    help="C of the devices sweep (default: the largest --classes)")
    ap.add_argument("--n_pos", type=int, default=100, help="positives (training examples) per class")
    ap.add_argument("--n_test", type=int, default=1000, help="test examples (synthetic parts)")
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--batch_size", type=int, default=1024, help="module_scores batch size")
    ap.add_argument("--memory_budget", type=int, default=1024,
                    help="module_scores memory budget per device, MiB (module chunks beyond)")
    ap.add_argument("--epochs", type=int, default=20, help="CLINC150 training epochs")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model_dir", default=os.path.join("runs", "scaling", "models"),
                    help="CLINC150 model cache")
    ap.add_argument("--out", default=None, help="write <out>.md and <out>.json")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        fn = {"synthetic": worker_synthetic, "clinc150": worker_clinc}[args.worker]
        args.classes = int(args.classes)
        print(json.dumps(fn(args)))
        return
    args.model_dir = os.path.abspath(args.model_dir)  # workers run from the repository root
    if args.smoke:
        args.classes, args.devices, args.n_pos, args.n_test = "4,8", "1,2", 8, 64
        args.units, args.reps, args.epochs, args.vocab = 8, 1, 1, 200
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in ("classes", "devices", "clinc150")]
    if bad:
        raise SystemExit(f"--parts must name classes, devices, clinc150; got {bad}")
    classes = [int(c) for c in args.classes.split(",")]
    devices = [int(n) for n in args.devices.split(",")]
    from experiments.runner import hardware

    t_all = time.perf_counter()
    out = {"command": "python -m benchmarks.scaling " + " ".join(argv or sys.argv[1:]),
           "hardware": hardware()}
    text = [f"# modjax scaling benchmark — {out['hardware']}",
            f"# {out['command']}",
            f"# synthetic: LSTM-1, H={args.units}, T={args.steps}, V={args.vocab}, random "
            f"weights, {args.n_pos} train examples per class (n_pos={args.n_pos}), "
            f"{args.n_test} test, module_scores batch {args.batch_size}, memory budget "
            f"{args.memory_budget} MiB per device; medians of {args.reps} after a warm-up"]
    if "classes" in parts:
        rows = [spawn(args, "synthetic", c, 1) for c in classes]
        out["classes"] = rows
        text += ["", "## Classes (1 device)", "", ratio_table(rows, "classes", "C")]
    if "devices" in parts:
        c = args.device_classes or max(classes)
        rows = [spawn(args, "synthetic", c, n) for n in devices]
        out["devices"] = rows
        text += ["", f"## Simulated devices (C = {c})", "",
                 ratio_table(rows, "devices", "devices")]
    if "clinc150" in parts:
        r = spawn(args, "clinc150", 150, 1)
        out["clinc150"] = r
        text += ["", "## CLINC150, 150 intents (1 device)", "",
                 "| modules | train / test | decompose (s) | compose (s) | monolithic acc "
                 "| composed acc | δ | agreement | removed units / layer |",
                 "|---|---|---|---|---|---|---|---|---|",
                 f"| {r['classes']} | {r['n_train']} / {r['n_test']} | {r['decompose_s']:.2f} "
                 f"| {r['compose_s']:.2f} | {r['acc_monolithic']:.4f} | {r['acc_composed']:.4f} "
                 f"| {r['delta']:+.4f} | {r['agreement']:.4f} "
                 f"| {r['removed_units_per_layer']:.1f} |",
                 "", f"LSTM-1, H={r['units']}, embedding 64, {r['epochs']} epochs, batch 64, "
                 f"seed {args.seed}" + (" (model loaded from the cache)" if r["cached_model"]
                                        else f" (trained in {r['trained_s']:.0f} s)")]
    out["wall_s"] = time.perf_counter() - t_all
    text += ["", f"wall time {out['wall_s']:.0f} s"]
    report = "\n".join(text)
    print(report)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".md", "w") as f:
            f.write(report + "\n")
        with open(args.out + ".json", "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
