"""Table III's encoder-decoder row: a translator's language modules reused for a language pair,
against two-language translators trained from scratch.

    python -m experiments.translation_reuse --preset=cpu --cells=lstm --layers=1 \\
        --models_from=/work/runs/translate/cpu/models --out=/work/runs/translation_reuse \\
        --report=docs/results/table3_translation_reuse.md

For every cell × depth: the three-language translator of ``experiments.translation`` (EN →
{fr, de, it}, the same data, subset and size, so it is read from ``--models_from`` when that
run trained it) is decomposed into one module per target language (``preset="artifact"``,
``--modes``, the paper's rolled by default). For every language pair {fr, de}, {de, it},
{fr, it} a translator into those two languages only is trained from scratch on the same
training pairs without the third language (same vocabularies and size). Each language of a
pair is then scored twice on the same test pairs (the first ``--first`` of the language in the
seed-19 test split, which neither model saw): BLEU-1 of the three-language model's module for
that language, and BLEU-1 of the two-language model. δ = module − scratch (the paper's
value; six per cell type, its mean and median beside the paper's). Beyond the paper, each row
also gives what the choice costs: the module's units kept, decomposition time against the
scratch model's training time.

Rows are written to ``<out>/results.json`` after each model and resume across runs.
``--smoke`` runs the whole pipeline on the synthetic translation task in seconds.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from typing import List

from absl import app, flags, logging

from experiments import paper_results, runner
from experiments import translation as tx

FLAGS = flags.FLAGS
RESULTS_FORMAT = "modjax-table3-translation-reuse"
KEY = ("dataset", "preset", "cell", "layers", "mode", "pair", "language")


def define_flags():
    """Define this binary's flags (only when it runs as a program)."""
    tx.define_flags()
    flags.DEFINE_list("models_from", [], "Read-only model folders to take trained translators "
                      "from (e.g. the translation run's <out>/models); new models go to "
                      "<out>/models.")
    FLAGS.set_default("modes", ["rolled"])
    FLAGS.set_default("out", "runs/translation_reuse")


def language_pairs(languages) -> List[tuple]:
    """Every unordered pair of ``languages``, as ``(i, j)`` indices with ``i < j``."""
    return list(itertools.combinations(range(len(languages)), 2))


def two_languages(data, pair) -> object:
    """``data`` with only the training pairs whose target language is in ``pair`` (indices)."""
    import numpy as np

    return runner.select_train(data, np.isin(np.asarray(data.concern_train), list(pair)))


def paper_row(cell: str):
    """The paper's ``(mean, median)`` δ BLEU-1 of Table III's encoder-decoder row, or ``None``."""
    return paper_results.reuse_table("3").get(("intra", "encoder_decoder", cell))


def run_model(data, refs, cell: str, k: int, todo: List[tuple], run: dict, store, phases,
              command: str) -> None:
    """The three-language model's modules and the scratch pair models of one cell × depth."""
    import numpy as np

    from modjax import translation

    size, seed = run["size"], run["seed"]
    config, params, meta, model_dir = tx.train_translator(
        data, cell, k, size, seed, f"_{run['preset']}", phases, FLAGS.models_from)
    names = data.class_names
    rows = translation.language_rows(data.concern_test, len(names), run["limit_test"])
    refs_by_lang = [[refs[i] for i in r] for r in rows]
    unseen = tx.unseen_sources(data, rows)
    with phases("decode"):
        mono = tx.scores(tx.decode_all(config, params, data, rows)[0], refs_by_lang, data,
                         run["first"], unseen)
    for mode, settings in todo:
        mod, mod_sps, ji, kept, decompose_s = tx.modules_bleu(
            config, params, data, rows, refs_by_lang, unseen, run["first"],
            settings["options"], phases)
        for pair in language_pairs(names):
            pair_name = "-".join(names[i] for i in pair)
            pdata = two_languages(data, pair)
            pconfig, pparams, pmeta, pdir = tx.train_translator(
                pdata, cell, k, size, seed, f"_{run['preset']}_{pair_name}", phases,
                FLAGS.models_from)
            with phases("decode"):
                t0 = time.perf_counter()
                words = {l: translation.decode_language(pconfig, pparams, pdata, rows[l], l,
                                                        batch_size=FLAGS.decode_batch)
                         for l in pair}
                scratch_sps = sum(len(rows[l]) for l in pair) / max(time.perf_counter() - t0,
                                                                    1e-9)
            scratch = tx.scores(words, refs_by_lang, data, run["first"], unseen)
            for l in pair:
                u, s = mod[l]["first"], scratch[l]["first"]
                store.put({
                    "dataset": run["dataset"], "preset": run["preset"], "cell": cell,
                    "layers": k, "model": runner.model_label(cell, k), "mode": mode,
                    "pair": pair_name, "language": names[l],
                    "n_first": int(min(run["first"], len(rows[l]))),
                    "n_test": int(len(rows[l])),
                    "module_bleu1": u["bleu1"], "scratch_bleu1": s["bleu1"],
                    "delta": u["bleu1"] - s["bleu1"],
                    "module_sacrebleu": u["sacrebleu"], "scratch_sacrebleu": s["sacrebleu"],
                    "delta_sacrebleu": u["sacrebleu"] - s["sacrebleu"],
                    "module_bleu1_all": mod[l]["all"]["bleu1"],
                    "scratch_bleu1_all": scratch[l]["all"]["bleu1"],
                    "delta_all": mod[l]["all"]["bleu1"] - scratch[l]["all"]["bleu1"],
                    "mono_bleu1": mono[l]["first"]["bleu1"], "ji": float(ji[l]),
                    "units_kept_per_layer": kept[l].tolist(), "units": int(config.units),
                    "kept_fraction": float(np.sum(kept[l]) / (config.units * config.layers)),
                    "decompose_s": decompose_s, "module_decode_sps": mod_sps,
                    "scratch_decode_sps": scratch_sps,
                    "n_train_model": int(len(data.x_train)),
                    "n_train_scratch": int(len(pdata.x_train)),
                    "train_s_model": meta.get("train_s"), "train_s_scratch": pmeta.get("train_s"),
                    "model_dir": model_dir, "scratch_dir": pdir,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command}, settings)
            store.save()
            logging.info("%s %s %s: module BLEU-1 %s, scratch %s", runner.model_label(cell, k),
                         mode, pair_name, [round(mod[l]["first"]["bleu1"], 2) for l in pair],
                         [round(scratch[l]["first"]["bleu1"], 2) for l in pair])


def _keys(desc: dict, data, cell: str, k: int, mode: str) -> List[tuple]:
    """The row keys of one model and mode: every language of every pair."""
    names = data.class_names
    return [(desc["dataset"], desc["preset"], cell, k, mode, f"{names[i]}-{names[j]}",
             names[l]) for i, j in language_pairs(names) for l in (i, j)]


def run(command: str) -> List[dict]:
    """Compute every pending row of the flags' grid; returns the grid's rows."""
    return tx.run_grid(command, RESULTS_FORMAT, KEY, _keys, run_model)


# -- report ------------------------------------------------------------------------------------
def failed_baseline(row: dict) -> bool:
    """The two-language model did not learn: its BLEU-1 is under half the three-language
    model's on the same pairs (a δ against it says nothing about the module)."""
    return row["scratch_bleu1"] < 0.5 * row["mono_bleu1"]


def summary(rows: List[dict]) -> List[dict]:
    """Per (preset, cell, depth, mode): mean and median δ over the rows, beside the paper's
    (whose rows are its 4-layer models of each cell)."""
    out = []
    for preset, cell, k, mode in sorted(
            {(r["preset"], r["cell"], r["layers"], r["mode"]) for r in rows},
            key=lambda t: (t[0], runner.CELLS.index(t[1]), t[2], t[3])):
        sel = [r for r in rows
               if (r["preset"], r["cell"], r["layers"], r["mode"]) == (preset, cell, k, mode)]
        mean, median, n = runner.mean_median(r["delta"] for r in sel)
        ok_mean, ok_median, ok_n = runner.mean_median(r["delta"] for r in sel
                                                      if not failed_baseline(r))
        paper = paper_row(cell)
        out.append({"preset": preset, "cell": cell, "layers": k, "mode": mode, "n": n,
                    "mean": mean, "mean_learned": ok_mean, "median_learned": ok_median,
                    "n_failed_baseline": n - ok_n,
                    "median": median, "paper_mean": paper and paper[0],
                    "paper_median": paper and paper[1],
                    "models": sorted({r["model"] for r in sel}),
                    "sacrebleu_mean": runner.mean_median(r["delta_sacrebleu"] for r in sel)[0],
                    "kept_fraction_mean": runner.mean_median(r["kept_fraction"]
                                                             for r in sel)[0]})
    return out


def render(rows: List[dict], path: str, command: str) -> None:
    """Write the markdown report at ``path`` and its JSON beside it."""
    f = runner.fmt
    rows = sorted(rows, key=lambda r: (r["preset"], runner.CELLS.index(r["cell"]), r["layers"],
                                       r["mode"], r["pair"], r["language"]))
    summ = summary(rows)
    head = ["preset", "model", "mode", "n", "δ mean", "δ median", "paper mean (its 4-layer model)",
            "paper median", "† (baseline did not learn)", "δ mean / median without †",
            "sacreBLEU δ mean", "units kept (mean)"]
    body = [[s["preset"], runner.model_label(s["cell"], s["layers"]), s["mode"],
             str(s["n"]), f(s["mean"], signed=True),
             f(s["median"], signed=True), f(s["paper_mean"], signed=True),
             f(s["paper_median"], signed=True), str(s["n_failed_baseline"]),
             f"{f(s['mean_learned'], signed=True)} / {f(s['median_learned'], signed=True)}",
             f(s["sacrebleu_mean"], signed=True),
             f(100 * s["kept_fraction_mean"], ".1f") + "%"] for s in summ]
    per = ["model", "mode", "pair", "language", "n", "BLEU-1 module", "BLEU-1 scratch", "δ",
           "δ (all pairs)", "sacreBLEU module / scratch", "BLEU-1 3-language model",
           "units kept", "decompose (s)", "scratch training (s)"]
    per_rows = [[r["model"] + (" †" if failed_baseline(r) else ""), r["mode"], r["pair"],
                 r["language"],
                 f"{r['n_first']} / {r['n_test']}", f(r["module_bleu1"]), f(r["scratch_bleu1"]),
                 f(r["delta"], signed=True), f(r["delta_all"], signed=True),
                 f"{f(r['module_sacrebleu'])} / {f(r['scratch_sacrebleu'])}",
                 f(r["mono_bleu1"]), f"{100 * r['kept_fraction']:.1f}%",
                 f(r["decompose_s"], ".1f"), f(r["train_s_scratch"], ".0f")] for r in rows]
    presets = sorted({r["preset"] for r in rows})
    sizes = {p: tx.PRESETS[p] for p in presets if p in tx.PRESETS}
    trained = {r["scratch_dir"]: r["train_s_scratch"] or 0 for r in rows}
    lines = [
        "# Table III, encoder-decoder row: language modules reused against two-language "
        "translators",
        "",
        "Generated by `experiments/translation_reuse.py`; do not edit by hand.",
        "",
        f"Rendered by: `{command}`  ",
        "Rows computed by: " + "; ".join(sorted({f"`{r['command']}`" for r in rows})) + "  ",
        f"Hardware: {runner.hardware()}  ",
        f"Wall time: training the {len(trained)} two-language models took "
        f"{sum(trained.values()):.0f} s (machine shared with other jobs); rendered "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Preset(s) {', '.join(presets)} (`{json.dumps(sizes)}`). For each language pair, the "
        "three-language translator's modules (one per target language, `preset=\"artifact\"`) "
        "are scored beside a translator into the two languages only, trained from scratch on "
        "the same training pairs without the third language, same size and vocabularies. Both "
        "are scored with the paper's BLEU-1 on the same test pairs of each language (the first "
        "`n` of the seed-19 test split; neither model trained on them). δ = module − scratch "
        "(BLEU-1 points); \"all pairs\" uses every decoded test pair of the language. The paper "
        "used RNN-4 models, rolled; its GRU and vanilla rows could not be recomputed from its "
        "logs, only the LSTM one.",
        "",
        runner.markdown_table(head, body, left=4),
        "",
        "## Every pair and language",
        "",
        runner.markdown_table(per, per_rows, left=4),
        "",
        "† The two-language model did not learn: its BLEU-1 is under half the three-language "
        "model's on the same pairs, so δ against it says nothing about the module; the summary "
        "also gives δ without these rows.",
        "",
        "Beyond the paper: a module costs its decomposition (seconds, last column but one) "
        "where the scratch model costs a training run (last column), and keeps the units "
        "listed; each two-language model is one more model to train and keep.",
    ]
    runner.write_atomic(path, "\n".join(lines) + "\n")
    runner.write_atomic(os.path.splitext(path)[0] + ".json", json.dumps(
        {"command": command, "hardware": runner.hardware(), "summary": summ, "rows": rows},
        indent=1, sort_keys=True, default=str))


def program(command: str) -> None:
    """Run the grid (unless ``--render_only``), print the summary, write the report."""
    rows = [] if FLAGS.render_only else run(command)
    for s in summary(rows):
        print(f"{s['preset']} {runner.model_label(s['cell'], s['layers'])} {s['mode']}: δ BLEU-1 mean {runner.fmt(s['mean'], signed=True)}"
              f", median {runner.fmt(s['median'], signed=True)} over {s['n']} (paper "
              f"{runner.fmt(s['paper_mean'], signed=True)} / "
              f"{runner.fmt(s['paper_median'], signed=True)})")
    if FLAGS.report:
        tx.write_report(RESULTS_FORMAT, KEY, render, command)


main = runner.main_of(program, "translation_reuse")


if __name__ == "__main__":
    define_flags()
    app.run(main)
