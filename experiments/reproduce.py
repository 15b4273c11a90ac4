"""Table II (RQ1): train the paper's models, decompose, compose, and set our δ beside the paper's.

    python -m experiments.reproduce --datasets=mathqa,clinc,toxic,brown \\
        --configs=artifact,paper,per_gate --out=runs/table2 --report=docs/results/table2.md

For every dataset × cell × depth this trains the paper's architecture (or loads it from
``<out>/models``), measures the monolithic test accuracy, and then, for every mode and
configuration, decomposes it, composes the modules by vote and records the composed accuracy,
δ = composed − monolithic (percentage points; many-output with and without padding positions),
the Jaccard index, weight retention, units kept per layer, and the decompose / compile /
evaluation times. Configurations (``docs/method.md#artifact``):

* ``artifact`` — the authors' scripts: ``preset="artifact"`` (per-script caps, mask semantics,
  observation and head rows), evaluated with their forward pass;
* ``paper`` — the paper's text: 20% cap, ``u_mask="paper"``, all steps observed;
* ``per_gate`` — ``artifact`` with each gate column scored on its own (LSTM and GRU on CLINC and
  Brown only);
* ``artifact_paper_mask`` — ``artifact`` with the paper's recurrent mask semantics
  (``u_mask="paper"``: a removed unit's recurrent row and column both go) instead of the
  scripts' (``"code"``), on the many-output models (toxic, Brown), where the scripts use
  ``"code"`` in both modes: it isolates what the mask semantics do to δ.

Rows are written to ``<out>/results.json`` after each one and resume across runs; a row made
with other settings is recomputed. ``--report`` renders the whole store (markdown, JSON and a
PNG figure) with :mod:`experiments.table2_report`. ``--smoke`` runs the same pipeline on tiny
synthetic models in seconds.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import List

from absl import app, flags, logging

from experiments import paper_results, runner

FLAGS = flags.FLAGS
CONFIGS = ("artifact", "paper", "per_gate", "artifact_paper_mask")
RESULTS_FORMAT = "modjax-table2"


def define_flags():
    """Define this binary's flags (only when it runs as a program)."""
    flags.DEFINE_list("datasets", ["mathqa", "clinc", "toxic", "brown"],
                      "mathqa (1:1), clinc (M:1), toxic (1:N), brown (M:N), or synthetic:<io>.")
    flags.DEFINE_enum("source", "local", ["local", "hf", "synthetic"],
                      "Where the datasets come from (modjax.data.load_dataset's source).")
    flags.DEFINE_list("cells", list(runner.CELLS), "lstm, gru, simple (vanilla tanh); bilstm, "
                      "bigru, bisimple: bidirectional layers (concatenated directions).")
    flags.DEFINE_list("model_cache", [], "Read-only model caches (e.g. another run's <out>/models) "
                      "searched before <out>/models; never written.")
    flags.DEFINE_list("layers", ["1", "2", "3", "4"], "Model depths (stacked recurrent layers).")
    flags.DEFINE_list("modes", ["rolled", "unrolled"], "Decomposition modes.")
    flags.DEFINE_list("configs", ["artifact", "paper"],
                      f"Decomposition configurations, of {CONFIGS}.")
    flags.DEFINE_string("out", "runs/table2", "Folder of results.json and the model cache.")
    flags.DEFINE_string("report", None, "Write the report here (.md; .json and .png beside it).")
    flags.DEFINE_integer("epochs", None, "Training epochs (default: the paper's per I/O type).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default: the paper's per I/O type).")
    flags.DEFINE_integer("limit_train", None, "A seeded random subset of N training examples.")
    flags.DEFINE_integer("limit_test", None, "The first N test examples.")
    flags.DEFINE_integer("units", 100, "Units per recurrent layer (the paper: 100).")
    flags.DEFINE_integer("seed", 0, "Subset, initialisation, shuffling and dropout seed.")
    flags.DEFINE_bool("retrain", False, "Train again even if a cached checkpoint exists.")
    flags.DEFINE_string("resume_from", None, "A report JSON (e.g. docs/results/table2.json) "
                        "whose rows seed --out's results: only missing or stale rows are "
                        "computed.")
    flags.DEFINE_bool("render_only", False, "Only render --report from the stored rows.")
    flags.DEFINE_bool("smoke", False, "Tiny synthetic run of the whole pipeline (tests).")
    flags.DEFINE_bool("compilation_cache", True, "Use JAX's persistent compilation cache.")


def check_flags() -> dict:
    """The validated run description from the flags; ``ValueError`` naming the flag."""
    if FLAGS.smoke and not FLAGS["datasets"].present:
        datasets = [f"synthetic:{io}" for io in runner.SYNTHETIC_IOS]
    else:
        datasets = [d.strip().lower() for d in FLAGS.datasets]
    specs = [runner.parse_dataset(d, FLAGS.source) for d in datasets]
    cells = ["simple" if c.strip().lower() == "vanilla" else c.strip().lower()
             for c in FLAGS.cells]
    for c in cells:
        if c not in runner.CELLS + runner.BI_CELLS:
            raise ValueError(f"--cells entries must be lstm, gru, simple or their bidirectional "
                             f"bilstm, bigru, bisimple, got {c!r}")
    try:
        layers = [int(x) for x in FLAGS.layers]
    except ValueError:
        raise ValueError(f"--layers must be integers >= 1, got {FLAGS.layers}") from None
    if any(k < 1 for k in layers):
        raise ValueError(f"--layers must be integers >= 1, got {layers}")
    modes = [m.strip().lower() for m in FLAGS.modes]
    configs = [c.strip().lower() for c in FLAGS.configs]
    for name, vals, allowed in (("--modes", modes, ("rolled", "unrolled")),
                                ("--configs", configs, CONFIGS)):
        bad = [v for v in vals if v not in allowed]
        if bad or not vals:
            raise ValueError(f"{name} entries must be among {allowed}, got {vals}")
    for name in ("epochs", "batch_size", "limit_train", "limit_test", "units"):
        v = getattr(FLAGS, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    given = lambda name: FLAGS[name].present or not FLAGS.smoke
    return dict(specs=specs, cells=cells, layers=layers if given("layers") else [1, 2],
                modes=modes, configs=configs, units=FLAGS.units if given("units") else 8,
                epochs=FLAGS.epochs if given("epochs") else 1, batch_size=FLAGS.batch_size,
                limit_train=FLAGS.limit_train if given("limit_train") else 300,
                limit_test=FLAGS.limit_test if given("limit_test") else 100, seed=FLAGS.seed)


def applies(config_name: str, spec: runner.DatasetSpec, cell: str, mode: str) -> bool:
    """Whether a (configuration, dataset, cell, mode) row exists: 1:1 has no unrolled mode (a
    single step); per-gate rows are LSTM and GRU on CLINC and Brown (or synthetic M:1, M:N);
    ``artifact_paper_mask`` rows are the many-output models (toxic, Brown, synthetic 1:N, M:N)."""
    if spec.io == "one_to_one" and mode == "unrolled":
        return False
    if config_name == "per_gate":
        return cell in ("lstm", "gru") and spec.io in ("many_to_one", "many_to_many")
    if config_name == "artifact_paper_mask":
        return spec.io in ("one_to_many", "many_to_many")
    return True


def decompose_options(config_name: str, model_config, mode: str) -> dict:
    """The resolved :class:`~modjax.DecomposeOptions` fields of a configuration."""
    import dataclasses

    from modjax.presets import options_for

    if config_name == "paper":
        opts = options_for("paper_text", model_config, mode, u_mask="paper",
                           rolled_obs="all_steps")
    elif config_name == "per_gate":
        opts = options_for("artifact", model_config, mode, gate_mode="per_gate")
    elif config_name == "artifact_paper_mask":
        opts = options_for("artifact", model_config, mode, u_mask="paper")
    else:
        opts = options_for("artifact", model_config, mode)
    return dataclasses.asdict(opts)


def evaluate(config, params, data, options: dict) -> dict:
    """Decompose with ``options``, compose, and measure; returns the row's numbers."""
    import jax
    import numpy as np

    from modjax import metrics
    from modjax.compose import compose
    from modjax.decompose import decompose

    t0 = time.perf_counter()
    with runner.compile_seconds() as comp_s, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decomp = decompose(params, data, model=config, **options)
        jax.block_until_ready(decomp.keep)
    decompose_s = time.perf_counter() - t0
    for w in caught:
        logging.warning("decompose: %s", w.message)
    kept = np.asarray(metrics.units_kept(decomp), np.float64)  # [C, L]
    t0 = time.perf_counter()
    with runner.compile_seconds() as ccomp_s:
        pred, _ = compose(decomp, params)(data.x_test)
        pred = np.asarray(pred)
    compose_s = time.perf_counter() - t0
    y = np.asarray(data.y_test)
    comp = metrics.accuracy(pred, y)
    comp_np = metrics.accuracy(pred, y, ignore_padding=True) if config.many_output else None
    t0 = time.perf_counter()
    ji = metrics.jaccard_paper(decomp, params)
    ret = metrics.retention(decomp, params)
    metrics_s = time.perf_counter() - t0
    logging.info("%d modules: decompose %.2fs (compile %.2fs), compose %.2fs, composed %.4f, "
                 "JI %.3f, units kept/layer %s", decomp.num_modules, decompose_s, comp_s[0],
                 compose_s, comp, float(ji.mean()), np.round(kept.mean(0), 1).tolist())
    return {"comp_acc": comp, "comp_acc_nopad": comp_np, "ji": float(ji.mean()),
            "retention": float(ret.mean()), "units_kept_per_layer": kept.mean(0).tolist(),
            "units_kept_min": float(kept.min()), "decompose_s": decompose_s,
            "decompose_compile_s": comp_s[0], "compose_s": compose_s,
            "compose_compile_s": ccomp_s[0], "metrics_s": metrics_s,
            "warnings": sorted({str(w.message) for w in caught})}


def run_model(spec, data, cell: str, k: int, todo: List[tuple], run: dict, store, phases,
              command: str) -> None:
    """Train or load one model and compute its pending ``(mode, config, settings)`` rows."""
    import numpy as np

    from modjax import metrics
    from modjax.train import predict

    p_epochs, p_bs = runner.PAPER_TRAINING[spec.io]
    epochs, bs = run["epochs"] or p_epochs, run["batch_size"] or p_bs
    config = runner.paper_config(data, spec, cell, k, units=run["units"])
    name = runner.model_name(spec, cell, k, epochs, bs, run["seed"], run["limit_train"],
                             run["units"])
    model_dir = os.path.join(FLAGS.out, "models", name)
    label = runner.model_label(cell, k)
    logging.info("== %s on %s (%s)", label, spec.id, name)
    with phases("train"):
        params, meta, cached = runner.train_or_load(
            config, data, model_dir, epochs=epochs, batch_size=bs, seed=run["seed"],
            retrain=FLAGS.retrain,
            read_only_dirs=[os.path.join(d, name) for d in FLAGS.model_cache])
    with phases("evaluate"):
        t0 = time.perf_counter()
        mono_pred = predict(config, params, data.x_test)
        mono_s = time.perf_counter() - t0
    y = np.asarray(data.y_test)
    mono = metrics.accuracy(mono_pred, y)
    mono_np = metrics.accuracy(mono_pred, y, ignore_padding=True) if config.many_output else None
    logging.info("monolithic test accuracy %.4f%s", mono,
                 "" if mono_np is None else f" (no padding {mono_np:.4f})")
    for mode, cfg_name, settings in todo:
        logging.info("-- %s %s %s", label, mode, cfg_name)
        with phases("decompose+compose"):
            m = evaluate(config, params, data, settings["options"])
        pd = pj = None
        if spec.paper_name is not None and cell in runner.CELLS:  # the paper has no Bi* models
            pd = paper_results.paper_delta(spec.paper_name, cell, k, mode)
            pj = paper_results.paper_avg_ji(spec.paper_name, mode)
        row = {"dataset": spec.id, "io": spec.io, "cell": cell, "layers": k, "model": label,
               "mode": mode, "config": cfg_name, "n_train": int(len(data.x_train)),
               "n_test": int(len(data.x_test)), "model_dir": model_dir,
               "train_s": meta.get("train_s"), "train_cpu_s": meta.get("train_cpu_s"),
               "mono_acc": mono, "mono_acc_nopad": mono_np, "mono_eval_s": mono_s,
               "delta": 100.0 * (m["comp_acc"] - mono),
               "delta_nopad": None if mono_np is None else 100 * (m["comp_acc_nopad"] - mono_np),
               "paper_delta": pd, "paper_avg_ji": pj, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "command": command, **m}
        store.put(row, settings)
        store.save()
        logging.info("%s %s %s: δ %+.2f (paper %s)%s, JI %.3f", label, mode, cfg_name,
                     row["delta"], runner.fmt(pd, signed=True),
                     "" if mono_np is None else f", δ no pad {row['delta_nopad']:+.2f}", m["ji"])


def run(command: str) -> List[dict]:
    """Compute every pending row of the flags' grid; returns the grid's rows."""
    run_desc = check_flags()
    store = runner.ResultStore(FLAGS.out, RESULTS_FORMAT,
                               ("dataset", "cell", "layers", "mode", "config"))
    if FLAGS.resume_from:
        logging.info("adopted %d stored rows from %s", store.adopt(FLAGS.resume_from),
                     FLAGS.resume_from)
    phases = runner.Phases()
    shown = []
    if FLAGS.compilation_cache:
        from modjax import compile_cache

        compile_cache.enable()
    for spec in run_desc["specs"]:
        data = None
        for cell in run_desc["cells"]:
            for k in run_desc["layers"]:
                todo = []
                for mode in run_desc["modes"]:
                    for cfg_name in run_desc["configs"]:
                        if not applies(cfg_name, spec, cell, mode):
                            continue
                        if data is None:
                            with phases("load"):
                                data = runner.load_data(
                                    spec, run_desc["seed"], limit_train=run_desc["limit_train"],
                                    limit_test=run_desc["limit_test"])
                        config = runner.paper_config(data, spec, cell, k, units=run_desc["units"])
                        p_epochs, p_bs = runner.PAPER_TRAINING[spec.io]
                        settings = {
                            "epochs": run_desc["epochs"] or p_epochs,
                            "batch_size": run_desc["batch_size"] or p_bs,
                            "seed": run_desc["seed"], "limit_train": run_desc["limit_train"],
                            "limit_test": run_desc["limit_test"], "units": run_desc["units"],
                            "source": spec.source, "forward": config.forward,
                            "options": decompose_options(cfg_name, config, mode)}
                        key = (spec.id, cell, k, mode, cfg_name)
                        row = store.fresh(key, settings)
                        if row is None:
                            todo.append((mode, cfg_name, settings))
                        shown.append(key)
                if todo:
                    run_model(spec, data, cell, k, todo, run_desc, store, phases, command)
    store.save()
    rows = [store.rows[k] for k in shown if k in store.rows]
    logging.info("phases this run: %s", ", ".join(f"{k} {v:.1f}s"
                                                  for k, v in phases.seconds.items()))
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)
    command = "python -m experiments.reproduce " + " ".join(sys.argv[1:])
    from experiments import table2_report

    try:
        rows = [] if FLAGS.render_only else run(command)
        if rows:
            print(table2_report.text_summary(rows))
        if FLAGS.report:
            store = runner.ResultStore(FLAGS.out, RESULTS_FORMAT,
                                       ("dataset", "cell", "layers", "mode", "config"))
            table2_report.render(list(store.rows.values()), FLAGS.report, command=command)
            print(f"report: {FLAGS.report}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
