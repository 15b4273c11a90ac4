"""The command line end to end on the real CLINC data: what a user waits for.

``python -m modjax decompose`` on a CLINC LSTM-1 (the paper's size: embedding 50, 100 units,
15 steps, 10 classes, 15,000 training and 4,500 test utterances), with the artifact preset,
rolled and unrolled, each timed as one whole process from start to exit:

* **empty caches** — fresh, empty folders for JAX's persistent compilation cache
  (``MODJAX_JAX_CACHE``) and for the processed-data cache (``MODJAX_DATA_CACHE``): the process
  imports, reads and tokenises CLINC, compiles every program, decomposes, evaluates and plots;
* **warm caches** — the same command again, with both caches filled by the first run.

Each time is printed beside one monolithic forward pass over the test set (jit-compiled, warm,
timed in this process) and beside the authors' scripts measured on this machine type for the
same model: decomposition plus composed evaluation took 76.1 s rolled and 221.5 s unrolled.
Targets: warm caches at least 20x (rolled) and 50x (unrolled) faster than the scripts, empty
caches at least 8x.

Run::

    python -m benchmarks.cli                       # trains the model once (about a minute)
    python -m benchmarks.cli --model=PATH --reps=3 # a saved CLINC model (modjax checkpoint)
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

#: The authors' scripts on this machine type, CLINC LSTM-1: decomposition + composed evaluation.
ARTIFACT_S = {"rolled": 76.1, "unrolled": 221.5}
TARGET_WARM = {"rolled": 20.0, "unrolled": 50.0}
TARGET_EMPTY = 8.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(jax_cache: str, data_cache: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               MODJAX_JAX_CACHE=jax_cache, MODJAX_DATA_CACHE=data_cache)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, env, with_stderr: bool = False):
    """Wall seconds of ``python -m modjax ARGS`` (raises with its stderr if it fails); with
    ``with_stderr``, ``(seconds, stderr)``."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "modjax", *args], env=env, cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"python -m modjax {' '.join(args)} failed ({p.returncode}):\n"
                           f"{p.stderr[-3000:]}")
    return (wall, p.stderr) if with_stderr else wall


#: Progress lines that start each phase of a run, in order (``modjax.cli``'s messages).
PHASES = (("load model and data", "loading model"), ("decompose", "decomposing"),
          ("module metrics", "computing module metrics"),
          ("monolithic evaluation", "evaluating the monolithic"),
          ("composed evaluation (figures drawn meanwhile)", "evaluating the composed"),
          ("write outputs", "writing"), (None, "done"))
_STAMP = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")


def phase_seconds(wall: float, stderr: str) -> dict:
    """Seconds per phase of one run from its progress lines: startup and exit (interpreter,
    imports, flags: the wall time not covered by the progress clock) and each of
    :data:`PHASES` (from its first line to the next phase's)."""
    stamps = {}
    for line in stderr.splitlines():
        m = _STAMP.match(line.strip())
        if m:
            for _, prefix in PHASES:
                if m.group(2).startswith(prefix) and prefix not in stamps:
                    stamps[prefix] = float(m.group(1))
    covered = stamps["done"] - stamps.get(PHASES[0][1], 0.0) if "done" in stamps else 0.0
    out = {"startup and exit (imports, flags)": wall - covered}
    for (name, prefix), (_, nxt) in zip(PHASES, PHASES[1:]):
        if prefix in stamps and nxt in stamps:
            out[name] = stamps[nxt] - stamps[prefix]
    return out


def _train(out: str, env: dict, epochs: int) -> None:
    print(f"# training a CLINC LSTM-1 into {out} ({epochs} epochs) ...", flush=True)
    _run(["train", "--data=clinc", "--cell=lstm", "--layers=1", "--units=100",
          "--embed_dim=50", f"--epochs={epochs}", "--batch_size=128", f"--out={out}",
          "--noprogress"], env)


def _forward_seconds(model: str, reps: int) -> float:
    """Median warm time of one jit-compiled monolithic forward pass over CLINC's test set."""
    import jax

    from modjax.checkpoint import load_model
    from modjax.data import load_dataset
    from modjax.models import apply_model

    config, params = load_model(model)
    x = jax.numpy.asarray(load_dataset("clinc").x_test)
    fwd = jax.jit(lambda p, xb: apply_model(config, p, xb))
    fwd(params, x).block_until_ready()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fwd(params, x).block_until_ready()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="a modjax checkpoint of a CLINC model "
                    "(default: train one into --work once)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "modjax-bench-cli"),
                    help="folder for the trained model and the outputs")
    ap.add_argument("--epochs", type=int, default=15, help="training epochs (no --model)")
    ap.add_argument("--modes", default="rolled,unrolled")
    ap.add_argument("--reps", type=int, default=1, help="runs of each (empty, warm) pair")
    args = ap.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    model = args.model or os.path.join(args.work, "clinc_lstm1")
    if args.model is None and not os.path.isdir(model):
        scratch = tempfile.mkdtemp(prefix="cache-", dir=args.work)
        _train(model, _env(os.path.join(scratch, "jax"), os.path.join(scratch, "data")),
               args.epochs)
        shutil.rmtree(scratch, ignore_errors=True)
    fwd = _forward_seconds(model, 5)
    print(f"# modjax CLI benchmark — {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"python {platform.python_version()}")
    print(f"# model: {model} (CLINC LSTM-1); data: --data=clinc (15,000 train / 4,500 test); "
          f"--preset=artifact; reps={args.reps} (median)")
    print(f"# one monolithic forward pass over the 4,500 test utterances (warm): {fwd:.3f} s")
    rows, breakdown = [], {}
    for mode in [m for m in args.modes.split(",") if m]:
        empty, warm = [], []
        for r in range(args.reps):
            caches = tempfile.mkdtemp(prefix="cache-", dir=args.work)
            env = _env(os.path.join(caches, "jax"), os.path.join(caches, "data"))
            cmd = ["decompose", f"--model={model}", "--data=clinc", f"--mode={mode}",
                   "--preset=artifact", f"--out={os.path.join(args.work, 'out_' + mode)}",
                   "--noprogress"]
            empty.append(_run(cmd, env))
            warm.append(_run(cmd, env))
            if r == 0:  # where a warm run's time goes: once more, with progress lines
                w_p, err = _run(cmd[:-1], env, with_stderr=True)
                breakdown[mode] = (w_p, phase_seconds(w_p, err))
            shutil.rmtree(caches, ignore_errors=True)
        e, w = statistics.median(empty), statistics.median(warm)
        a = ARTIFACT_S[mode]
        rows.append((mode, e, w, a))
        print(f"#   {mode}: empty caches {[round(t, 2) for t in empty]} s, warm "
              f"{[round(t, 2) for t in warm]} s", flush=True)
    print()
    print("| mode | CLI, empty caches (s) | CLI, warm caches (s) | in forward passes "
          "(empty / warm) | the authors' scripts (s) | speedup, empty caches (target ≥ 8) "
          "| speedup, warm caches (target) |")
    print("|---|---|---|---|---|---|---|")
    for mode, e, w, a in rows:
        print(f"| {mode} | {e:.2f} | {w:.2f} | {e / fwd:.0f} / {w / fwd:.0f} | {a} | "
              f"{a / e:.1f}x | {a / w:.1f}x (≥ {TARGET_WARM[mode]:.0f}) |")
    if breakdown:
        names = list(next(iter(breakdown.values()))[1])
        print()
        print("Where a warm run's time goes (one more warm run with progress lines; seconds):")
        print()
        print("| phase | " + " | ".join(breakdown) + " |")
        print("|---|" + "---|" * len(breakdown))
        for n in names:
            print(f"| {n} | " + " | ".join(f"{b[1].get(n, float('nan')):.2f}"
                                           for b in breakdown.values()) + " |")
        print("| total (wall) | " + " | ".join(f"{b[0]:.2f}" for b in breakdown.values())
              + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
