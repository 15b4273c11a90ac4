"""Minimal modules on CLINC LSTM-1 and Brown LSTM-2, beside the default decomposition.

    python -m experiments.minimal_modules --models_dir=runs/minimal/models \\
        --out=docs/results/minimal_modules

For each model (the paper's architecture and training, built, trained or loaded from the cache
by :mod:`experiments.reproduce`'s functions):

1. the monolithic test accuracy;
2. the **default** decomposition (rolled, the authors' cap for the model): in the paper's mask
   semantics (``u_mask="paper"``, compactable) and in the authors' scripts' (``"code"``, the
   published tables; not compactable);
3. :func:`modjax.minimal_modules` (rolled, ``u_mask="paper"``) at ``--max_cost`` on a
   ``--val_fraction`` validation split of the *training* data, with the method's candidates
   (``d < 0``), with every unit a candidate in ascending ``d``, with every unit a candidate
   in ascending first-order removal effect, and with that effect re-measured cap by cap
   (``--candidates``);
4. for every compactable row: units kept per module, composed test δ, and every module
   compacted (:func:`modjax.compact`), its size and forward time over the test set against the
   full model's forward (same batches, median of ``--reps``), and the largest difference between
   the compacted model's score and the module's (``module_scores``) on the first test examples.

Writes ``<out>.md`` and ``<out>.json`` (command, hardware, wall time).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS



def define_flags():
    """Define this binary's flags (only when run as a program)."""
    flags.DEFINE_list("models", ["clinc:lstm:1", "brown:lstm:2"],
                      "dataset:cell:layers of the models to report.")
    flags.DEFINE_string("models_dir", "runs/minimal/models",
                        "Model cache (experiments.reproduce's names; e.g. "
                        "/work/runs/table2/models).")
    flags.DEFINE_string("out", "docs/results/minimal_modules",
                        "Output path without extension (.md and .json are written).")
    flags.DEFINE_float("max_cost", 0.01, "Allowed validation cost (fraction; 0.01 = 1 point); "
                       "its rows are compacted and timed.")
    flags.DEFINE_list("extra_costs", ["0.0025", "0.005"],
                      "Further costs reported from the same ladder (kept units and δ only).")
    flags.DEFINE_integer("n_time", 2048, "Test examples in each timed forward pass.")
    flags.DEFINE_integer("limit_test", None, "Use only the first N test examples (quick runs).")
    flags.DEFINE_list("candidates", ["negative", "all", "first_order", "iterative"],
                      "minimal_modules candidate sets.")
    flags.DEFINE_float("val_fraction", 0.1, "Validation fraction of the training data.")
    flags.DEFINE_integer("val_seed", 0, "Seed of the validation split.")
    flags.DEFINE_bool("holdout", False,
                      "Train the model without the validation split (cached under its own "
                      "name), so that the validation cost is measured on examples the model "
                      "did not learn; otherwise the paper's model, trained on all the "
                      "training data, is used and its validation split is in-sample.")
    flags.DEFINE_integer("max_val", 3000, "At most this many validation examples.")
    flags.DEFINE_integer("seed", 0, "Training seed (the cache name).")
    flags.DEFINE_integer("reps", 3, "Timing repetitions (median).")
    flags.DEFINE_integer("batch_size", 4096, "Forward batch size for the timings.")
    flags.DEFINE_bool("progress", False, "Print per-epoch training progress.")
    flags.DEFINE_bool("resume", False, "Keep the models already in <out>.json (same settings) "
                      "and compute only the missing ones.")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def module_key(decomp, c):
    """What determines module ``c``'s scores: semantics, class and keep vector."""
    import numpy as np

    return (decomp.options.u_mask, int(decomp.head_class[c]),
            np.asarray(decomp.keep[c]).tobytes())


def cached_scores(decomp, params, x, cache):
    """``module_scores(decomp, params, x)`` ``[C, N(, T)]``; modules already in ``cache`` (by
    :func:`module_key`) are not scored again, the others in one batched call."""
    import numpy as np

    from modjax.compose import module_scores

    keys = [module_key(decomp, c) for c in range(decomp.num_modules)]
    todo = sorted({i for i, k in enumerate(keys) if k not in cache})
    if todo:
        sub = decomp.replace(keep=decomp.keep[np.array(todo)],
                             head_class=decomp.head_class[np.array(todo)],
                             has_positives=decomp.has_positives[np.array(todo)])
        out = np.asarray(module_scores(sub, params, x, batch_size=FLAGS.batch_size))
        for j, i in enumerate(todo):
            cache[keys[i]] = out[j]
    return np.stack([cache[k] for k in keys])


def compacted_stats(config, params, decomp, x_test, scores, reps, batch_size, cache):
    """Per module: compacted width, params, forward seconds of the compacted and (timed right
    before it, to pair the measurements on a shared machine) of the full model, and the largest
    score difference against the module's ``module_scores`` (``scores [C, N(, T)]``). Modules
    already measured (``cache``) are not timed again."""
    import jax
    import numpy as np

    from benchmarks.compact import forward, param_count, time_forward
    from modjax.compact import compact

    n_check = min(256, len(x_test))
    x_time = x_test[:FLAGS.n_time]
    out = []
    for c in range(decomp.num_modules):
        key = module_key(decomp, c)
        if key in cache:
            out.append(cache[key])
            continue
        ccfg, cp = compact(params, decomp, c)
        t_full = time_forward(config, params, x_time, batch_size, reps)
        t = time_forward(ccfg, cp, x_time, batch_size, reps)
        got = np.asarray(jax.nn.softmax(forward(ccfg, cp, x_test[:n_check], n_check)[0],
                                        -1)[..., 1])
        cache[key] = {"units": ccfg.units, "params": param_count(cp),
                      "params_no_embed": param_count(cp, skip_embeddings=True),
                      "forward_s": t, "full_forward_s": t_full,
                      "max_score_diff": float(np.abs(got - scores[c, :n_check]).max())}
        out.append(cache[key])
    return out


def evaluate(config, params, data, decomp, mono, *, compactable, caches):
    """Test δ, units kept and (when compactable) the compacted sizes and times of ``decomp``."""
    import numpy as np

    from benchmarks.compact import param_count
    from modjax import metrics
    from modjax.compose import vote

    scores = cached_scores(decomp, params, data.x_test, caches["scores"])
    pred = np.asarray(vote(scores, decomp.head_class))
    y = np.asarray(data.y_test)
    comp = metrics.accuracy(pred, y)
    row = {"comp_acc": comp, "delta": 100 * (comp - mono["acc"]),
           "units_kept": metrics.units_kept(decomp).tolist()}  # [C, L]
    kept = np.asarray(row["units_kept"], float)
    row["kept_fraction_mean"] = float(kept.mean() / config.units)
    if config.many_output:
        comp_np = metrics.accuracy(pred, y, ignore_padding=True)
        row.update(comp_acc_nopad=comp_np, delta_nopad=100 * (comp_np - mono["acc_nopad"]))
    if compactable:
        stats = compacted_stats(config, params, decomp, data.x_test, scores, FLAGS.reps,
                                FLAGS.batch_size, caches["compact"])
        row["compacted"] = stats
        row["speedup_mean"] = float(np.mean([s["full_forward_s"] / s["forward_s"]
                                             for s in stats]))
        row["params_ratio_mean"] = float(np.mean([s["params"] for s in stats])
                                         / param_count(params))
        row["params_no_embed_ratio_mean"] = float(
            np.mean([s["params_no_embed"] for s in stats])
            / param_count(params, skip_embeddings=True))
        row["max_score_diff"] = float(max(s["max_score_diff"] for s in stats))
    return row


def run_model(dataset, cell, layers):
    import jax
    import numpy as np

    from benchmarks.compact import param_count, time_forward
    from experiments import runner
    from modjax import metrics
    from modjax.decompose import decompose
    from modjax.presets import artifact_max_remove
    from modjax.minimal import minimal_modules, split_validation
    from modjax.train import predict

    spec = runner.parse_dataset(dataset, "local")
    data = runner.load_data(spec, FLAGS.seed, limit_test=FLAGS.limit_test)
    epochs, bs = runner.PAPER_TRAINING[spec.io]
    config = runner.paper_config(data, spec, cell, layers)
    name = runner.model_name(spec, cell, layers, epochs, bs, FLAGS.seed, None, 100)
    train_data = data
    if FLAGS.holdout:  # the split minimal_modules will hold out, kept out of training too
        fit_idx, _ = split_validation(len(data.x_train), FLAGS.val_fraction, FLAGS.val_seed)
        train_data = runner.select_train(data, fit_idx)
        name += f"_holdout{FLAGS.val_fraction:g}v{FLAGS.val_seed}"
    model_dir = os.path.join(FLAGS.models_dir, name)
    params, meta, cached = runner.train_or_load(config, train_data, model_dir, epochs=epochs,
                                                batch_size=bs, seed=FLAGS.seed, retrain=False,
                                                progress=FLAGS.progress)
    params = jax.tree_util.tree_map(np.asarray, params)
    y = np.asarray(data.y_test)
    mono_pred = predict(config, params, data.x_test)
    mono = {"acc": metrics.accuracy(mono_pred, y)}
    if config.many_output:
        mono["acc_nopad"] = metrics.accuracy(mono_pred, y, ignore_padding=True)
    t_full = time_forward(config, params, data.x_test[:FLAGS.n_time], FLAGS.batch_size,
                          FLAGS.reps)
    logging.info("%s: monolithic %.4f, full forward on %d test examples %.3fs", name,
                 mono["acc"], FLAGS.n_time, t_full)
    cap = artifact_max_remove(cell, spec.io, "rolled", layers)
    result = {"dataset": dataset, "cell": cell, "layers": layers, "io": spec.io,
              "model": f"{cell.upper()}-{layers}", "model_dir": model_dir,
              "model_cached": cached, "train_s": meta.get("train_s"),
              "n_train": int(len(train_data.x_train)), "n_test": int(len(y)),
              "holdout": bool(FLAGS.holdout),
              "num_classes": config.num_classes, "units": config.units,
              "params": param_count(params),
              "params_no_embed": param_count(params, skip_embeddings=True),
              "mono": mono, "full_forward_s": t_full, "max_val": FLAGS.max_val,
              "n_time": FLAGS.n_time, "rows": []}
    caches = {"scores": {}, "compact": {}}
    for u_mask in ("paper", "code"):
        t0 = time.perf_counter()
        decomp = decompose(params, data, model=config, max_remove=cap, u_mask=u_mask)
        jax.block_until_ready(decomp.keep)
        took = time.perf_counter() - t0
        row = {"kind": "default", "u_mask": u_mask, "max_remove": cap, "seconds": took}
        row.update(evaluate(config, params, data, decomp, mono, compactable=u_mask == "paper",
                            caches=caches))
        logging.info("default (%s, cap %.2f): δ %+.2f, kept %.1f%%", u_mask, cap, row["delta"],
                     100 * row["kept_fraction_mean"])
        result["rows"].append(row)
    costs = [FLAGS.max_cost] + [float(v) for v in FLAGS.extra_costs]
    for cand in FLAGS.candidates:
        t0 = time.perf_counter()
        found = minimal_modules(params, data, model=config, max_cost=costs, candidates=cand,
                                val_fraction=FLAGS.val_fraction, seed=FLAGS.val_seed,
                                max_val=FLAGS.max_val)
        took = time.perf_counter() - t0
        for i, (cost, mm) in enumerate(zip(costs, found)):
            row = {"kind": "minimal", "candidates": cand, "u_mask": "paper", "max_cost": cost,
                   "seconds": took, "caps": mm.caps.tolist(), "val_accuracy": mm.val_accuracy,
                   "val_accuracy_original": mm.val_accuracy_original,
                   "n_val": int(len(mm.val_index))}
            row.update(evaluate(config, params, data, mm.decomposition, mono,
                                compactable=i == 0, caches=caches))
            logging.info("minimal (%s, cost %g): δ %+.2f, kept %.1f%%", cand, cost,
                         row["delta"], 100 * row["kept_fraction_mean"])
            result["rows"].append(row)
    return result


def _f(v, spec=".2f", signed=False):
    return "–" if v is None else format(v, ("+" if signed else "") + spec)


def markdown(doc) -> str:
    lines = ["# Minimal modules", "",
             "Generated by `experiments/minimal_modules.py`; do not edit by hand.", "",
             "Command(s): " + "; ".join(f"`{c}`" for c in doc["commands"]) + "  ",
             f"Hardware: {doc['hardware']}  ",
             f"Wall time: {doc['wall_s']:.0f} s in all ({doc['date']})"
             + (f"; first {doc['limit_test']} test examples only" if doc["limit_test"] else ""),
             "",
             "Rows: the default decomposition (rolled, the authors' cap for the model) in the "
             "paper's mask semantics (`u_mask=paper`, compactable) and the authors' scripts' "
             "(`code`, not compactable), and `modjax.minimal_modules` (rolled, `u_mask=paper`) "
             f"with a cost of {100 * doc['max_cost']:g} point(s) on a validation split of "
             f"{100 * doc['val_fraction']:g}% of the training data (seed {doc['val_seed']}, at "
             "most the model's `max_val` examples; the test split is not used to choose; "
             + ("the models were trained without that split (`--holdout`), so the validation "
                "cost is measured on examples they did not learn" if doc.get("holdout") else
                "the models were trained on all the training data, so the validation split is "
                "in-sample and tends to understate the test cost")
             + "), with the "
             "method's candidates (`negative`: units with d < 0 only), with every unit a "
             "candidate in ascending d (`all`), and with every unit a candidate in ascending "
             "first-order removal effect on its class's contrast (`first_order`, "
             "`modjax.minimal.removal_effect`), and with that effect re-measured at each "
             "cap's module (`iterative`, `modjax.minimal.iterative_removal_order`), as "
             "`--candidates` lists. δ = composed − "
             "monolithic test accuracy in points (many-output: "
             "every position, padding included; *no pad* without). *Kept* is the mean over "
             "modules and layers of the kept units, as a fraction of H = 100. *Speedup* is the "
             "full model's forward time over the model's first `n_time` test examples divided by "
             "a compacted module's, timed one right after the other for every module and "
             f"averaged over modules (median of {doc['reps']} runs each; the machine is shared "
             "with other jobs, so timings are noisy); rows at the extra costs "
             f"({', '.join(f'{100 * c:g}' for c in doc['extra_costs'])} pt) come from the same "
             "ladder and are not timed. *Params* "
             "compares a compacted module with the full model, all parameters and without the "
             "embeddings (which a forward pass indexes rather than multiplies). *Score diff* is "
             "the largest |compacted score − module score| on 256 test examples.", ""]
    for m in doc["models"]:
        lines += [f"## {m['dataset']} {m['model']} ({m['io']})", "",
                  f"Monolithic test accuracy {100 * m['mono']['acc']:.2f}%"
                  + (f" (no pad {100 * m['mono']['acc_nopad']:.2f}%)"
                     if "acc_nopad" in m["mono"] else "")
                  + f"; {m['params']} parameters ({m['params_no_embed']} without embeddings); "
                  f"full forward over {m['n_time']} test examples {m['full_forward_s']:.3f} s; "
                  f"max_val {m['max_val']}, n_time {m['n_time']}; "
                  + (f"trained on {m['n_train']} examples (the validation split held out); "
                     if m.get("holdout") else "")
                  + 
                  f"model {'loaded from' if m['model_cached'] else 'trained into'} "
                  f"`{m['model_dir']}`.", "",
                  "| rows | caps | kept (mean) | kept min–max | δ | δ no pad | val acc "
                  "(orig → modules) | speedup | params | params w/o emb. | score diff |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in m["rows"]:
            kept = [v for row in r["units_kept"] for v in row]
            if r["kind"] == "default":
                label = f"default, u_mask={r['u_mask']}"
                caps = f"{r['max_remove']:.2f}"
                val = "–"
            else:
                label = f"minimal, {r['candidates']}, cost {100 * r['max_cost']:g} pt"
                caps = f"{min(r['caps']):.2f}–{max(r['caps']):.2f}"
                val = f"{100 * r['val_accuracy_original']:.2f} → {100 * r['val_accuracy']:.2f}"
            comp = "compacted" in r
            lines.append(
                f"| {label} | {caps} | {100 * r['kept_fraction_mean']:.1f}% | "
                f"{min(kept):.0f}–{max(kept):.0f} | {r['delta']:+.2f} | "
                f"{_f(r.get('delta_nopad'), signed=True)} | {val} | "
                + (f"{r['speedup_mean']:.2f}x | {r['params_ratio_mean']:.3f} | "
                   f"{r['params_no_embed_ratio_mean']:.3f} | {r['max_score_diff']:.1e} |"
                   if comp else "– | – | – | – |"))
        lines.append("")
        for r in m["rows"]:
            if r["kind"] == "minimal" and r["max_cost"] == doc["max_cost"]:
                lines.append(f"Caps per class (`{r['candidates']}`): "
                             + ", ".join(f"{c:.2f}" for c in r["caps"]) + "  ")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)
    from experiments import runner

    from modjax import compile_cache


    compile_cache.enable()
    t0 = time.perf_counter()
    command = "python -m experiments.minimal_modules " + " ".join(sys.argv[1:])
    settings = {"max_cost": FLAGS.max_cost, "val_fraction": FLAGS.val_fraction,
                "val_seed": FLAGS.val_seed, "reps": FLAGS.reps,
                "extra_costs": [float(v) for v in FLAGS.extra_costs],
                "limit_test": FLAGS.limit_test, "holdout": FLAGS.holdout}
    done, commands, wall = {}, [], 0.0
    if FLAGS.resume and os.path.isfile(FLAGS.out + ".json"):
        with open(FLAGS.out + ".json") as f:
            old = json.load(f)
        if all(old.get(k, False if k == "holdout" else None) == v
               for k, v in settings.items()):
            done = {(m["dataset"], m["cell"], m["layers"]): m for m in old["models"]}
            commands, wall = old.get("commands", [old["command"]]), old["wall_s"]
        else:
            logging.warning("%s.json has other settings: computing every model", FLAGS.out)
    models = []
    for spec in FLAGS.models:
        parts = spec.rsplit(":", 2)  # the dataset may be synthetic:<io>
        if len(parts) != 3:
            raise app.UsageError(f"--models entries must be dataset:cell:layers, got {spec!r}")
        key = (parts[0], parts[1], int(parts[2]))
        models.append(done[key] if key in done else run_model(*key))
    import jax

    doc = {"format": "modjax-minimal-modules", "version": 1, "command": command,
           "commands": commands + [command],
           "hardware": f"{cpu_model()}, {os.cpu_count()} cores, jax {jax.__version__} "
                       f"({jax.default_backend()})",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "wall_s": wall + time.perf_counter() - t0, **settings, "models": models}
    runner.write_atomic(FLAGS.out + ".json", json.dumps(doc, indent=1))
    runner.write_atomic(FLAGS.out + ".md", markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    define_flags()
    app.run(main)
