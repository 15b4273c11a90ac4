"""Table V: the paper's motivating scenarios with translator modules, BLEU-1 beside the paper's.

    python -m experiments.motivating --preset=cpu --out=/work/runs/motivating \\
        --report=docs/results/table5_motivating.md

Two scenarios on the motivating-example corpora (``<data>/tatoeba/motivating``,
:func:`modjax.data.load_tatoeba_motivating`), each with three encoder-decoders trained here
and decomposed into one module per target language (``preset="artifact"``, one mode):

* **Add Ukrainian** (problem 1, English source): the *original* model translates into
  {de, ua, it, fr}; *solution 1* into {de, ua}; *solution 2* into ua only.
* **Update Estonian-English** (problem 2, Estonian source): the original into {en, de, it};
  solution 1 into {en, it}; solution 2 into en only, from the larger ``*_s2`` corpus.

Modules are scored separately, language by language (no vote): BLEU-1 of module ``ℓ`` on the
test pairs of language ``ℓ`` of its own model's split, first ``--first`` pairs (the paper's
500). With ``kept`` the languages the scenario keeps and ``new`` the one it adds or fixes:

* TMA = mean(the original model's monolithic BLEU-1 on ``kept``, solution 1's monolithic BLEU-1
  on ``new``) — the trained models;
* MA1 = mean(the original model's modules for ``kept``, solution 1's module for ``new``);
* MA2 = the same with solution 2's module for ``new``.

A one-language model (solution 2) decomposes into a single module with no negative examples,
which keeps every unit: its module is the model itself.

Size presets (``--preset``): ``cpu`` — the Table II translation preset (embedding 64, hidden
128, vocabularies of 8,000, 3 epochs of batch 128 on at most 40,000 training pairs); ``quick``
— the same with 2 epochs on at most 12,000 pairs; ``smoke`` — a tiny model for tests. Rows are
written to ``<out>/results.json`` after each model and resume across runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict, List

from absl import app, flags, logging

from experiments import runner
from experiments import translation as tx

FLAGS = flags.FLAGS
RESULTS_FORMAT = "modjax-table5-motivating"
KEY = ("scenario", "role", "language")
ROLES = ("original", "solution1", "solution2")


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One row of Table V: three models, the languages kept and the one added or fixed."""

    title: str
    problem: int
    new: str
    kept: tuple
    models: dict  # role -> keyword arguments of load_tatoeba_motivating (targets, s2)
    paper: dict  # "TMA", "MA1", "MA2": the paper's average BLEU-1 (%)


SCENARIOS = {
    "add_ua": Scenario("Add Ukrainian Language", 1, "ua", ("de", "it", "fr"),
                       {"original": dict(targets=("de", "ua", "it", "fr")),
                        "solution1": dict(targets=("de", "ua")),
                        "solution2": dict(targets=("ua",))},
                       {"TMA": 32.12, "MA1": 31.94, "MA2": 32.53}),
    "update_et_en": Scenario("Update Estonian-English Translation", 2, "en", ("de", "it"),
                             {"original": dict(targets=("en", "de", "it")),
                              "solution1": dict(targets=("en", "it")),
                              "solution2": dict(targets=("en",), s2=True)},
                             {"TMA": 20.80, "MA1": 20.89, "MA2": 21.30}),
}
PRESETS = {
    "cpu": dict(tx.PRESETS["cpu"]),
    "quick": dict(tx.PRESETS["cpu"], epochs=2, limit_train=12000),
    "smoke": dict(units=16, embed_dim=8, max_tokens=2000, epochs=1, batch_size=64,
                  limit_train=600),
}


def define_flags():
    """Define this binary's flags (only when it runs as a program)."""
    flags.DEFINE_list("scenarios", list(SCENARIOS), f"Scenarios, of {list(SCENARIOS)}.")
    flags.DEFINE_enum("preset", "cpu", list(PRESETS), "Model and training size.")
    flags.DEFINE_enum("cell", "lstm", runner.CELLS, "Cell of every model (the paper: LSTM).")
    flags.DEFINE_integer("layers", 1, "Depth of every model (encoder and decoder).")
    flags.DEFINE_enum("mode", "rolled", ["rolled", "unrolled"], "Decomposition mode.")
    tx.define_translator_flags("runs/motivating")


def check_flags() -> dict:
    """The validated run description from the flags; ``ValueError`` naming the flag."""
    scenarios = [s.strip() for s in FLAGS.scenarios if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or not scenarios:
        raise ValueError(f"--scenarios entries must be among {list(SCENARIOS)}, got "
                         f"{FLAGS.scenarios}")
    if FLAGS.layers < 1:
        raise ValueError(f"--layers must be >= 1, got {FLAGS.layers}")
    size = tx.preset_size(PRESETS[FLAGS.preset])
    return dict(scenarios=scenarios, preset=FLAGS.preset, size=size, cell=FLAGS.cell,
                layers=FLAGS.layers, mode=FLAGS.mode, limit_test=FLAGS.limit_test,
                first=FLAGS.first, seed=FLAGS.seed)


def load(scenario: Scenario, role: str, run: dict):
    """``(data, references)`` of one model of a scenario (training pairs subsampled as the
    preset says; the test split whole)."""
    from modjax import translation
    from modjax.data.tatoeba import load_tatoeba_motivating, motivating_pairs

    kw = scenario.models[role]
    data = load_tatoeba_motivating(scenario.problem, max_tokens=run["size"]["max_tokens"], **kw)
    refs = translation.split_references(motivating_pairs(scenario.problem, **kw)[0])
    if len(refs) != len(data.x_test):
        raise ValueError(f"the raw test pairs ({len(refs)}) do not line up with the vectorised "
                         f"ones ({len(data.x_test)})")
    return runner.subset(data, run["size"]["limit_train"], None, run["seed"]), refs


def run_model(name: str, scenario: Scenario, role: str, run: dict, store, settings: dict,
              phases, command: str) -> None:
    """Train or load one model of a scenario, decode with it and with its modules, and store
    one row per target language."""
    from modjax import translation

    with phases("load"):
        data, refs = load(scenario, role, run)
    logging.info("== %s %s", name, role)
    config, params, meta, model_dir = tx.train_translator(
        data, run["cell"], run["layers"], run["size"], run["seed"],
        "_" + "-".join(data.class_names), phases)
    rows = translation.language_rows(data.concern_test, len(data.class_names), run["limit_test"])
    refs_by_lang = [[refs[i] for i in r] for r in rows]
    unseen = tx.unseen_sources(data, rows)
    with phases("decode"):
        mono = tx.scores(tx.decode_all(config, params, data, rows)[0], refs_by_lang, data,
                         run["first"], unseen)
    mod, _, ji, kept, decompose_s = tx.modules_bleu(config, params, data, rows, refs_by_lang,
                                                    unseen, run["first"], settings["options"],
                                                    phases)
    for lang, lname in enumerate(data.class_names):
        m, u = mono[lang], mod[lang]
        store.put({"scenario": name, "role": role, "language": lname,
                   "languages": list(data.class_names), "cell": run["cell"],
                   "layers": run["layers"], "mode": run["mode"], "preset": run["preset"],
                   "n_train": int(len(data.x_train)), "n_test": int(len(rows[lang])),
                   "n_first": int(min(run["first"], len(rows[lang]))),
                   "mono_bleu1": m["first"]["bleu1"], "module_bleu1": u["first"]["bleu1"],
                   "mono_sacrebleu": m["first"]["sacrebleu"],
                   "module_sacrebleu": u["first"]["sacrebleu"],
                   "ji": float(ji[lang]), "units_kept_per_layer": kept[lang].tolist(),
                   "units": int(config.units), "decompose_s": decompose_s,
                   "train_s": meta.get("train_s"), "model_dir": model_dir,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command}, settings)
    store.save()
    logging.info("%s %s: monolithic BLEU-1 %s, modules %s", name, role,
                 [round(mono[l]["first"]["bleu1"], 2) for l in mono],
                 [round(mod[l]["first"]["bleu1"], 2) for l in mod])


def run(command: str) -> List[dict]:
    """Compute every pending model of the flags' scenarios; returns their rows."""
    from modjax.presets import options_for

    desc = check_flags()
    store, phases = tx.start(RESULTS_FORMAT, KEY)
    # the options depend on the architecture only (not on the data or the trained weights):
    # the same settings for every model of the run
    from modjax.models import ModelConfig

    probe = ModelConfig(io="encoder_decoder", cell=desc["cell"], num_classes=2, vocab_size=2,
                        in_len=2, out_len=2, layers=desc["layers"], units=desc["size"]["units"],
                        embed_dim=desc["size"]["embed_dim"], gate_activation="sigmoid",
                        forward="artifact")
    settings = {"size": desc["size"], "seed": desc["seed"], "limit_test": desc["limit_test"],
                "first": desc["first"], "cell": desc["cell"], "layers": desc["layers"],
                "metrics": tx.METRICS_VERSION,
                "options": dataclasses.asdict(options_for("artifact", probe, desc["mode"]))}
    shown = []
    for name in desc["scenarios"]:
        scenario = SCENARIOS[name]
        for role in ROLES:
            targets = scenario.models[role]["targets"]
            keys = [(name, role, lang) for lang in targets]
            if any(store.fresh(key, settings) is None for key in keys):
                run_model(name, scenario, role, desc, store, settings, phases, command)
            shown += keys
    store.save()
    logging.info("phases this run: %s", ", ".join(f"{k} {v:.1f}s"
                                                  for k, v in phases.seconds.items()))
    return [store.rows[k] for k in shown if k in store.rows]


# -- report ------------------------------------------------------------------------------------
def averages(rows: List[dict]) -> Dict[str, dict]:
    """Per scenario with all its rows: ``{"TMA", "MA1", "MA2"}`` (mean BLEU-1 over the
    languages, as defined in the module docstring)."""
    import statistics

    by = {(r["scenario"], r["role"], r["language"]): r for r in rows}
    out = {}
    for name, sc in SCENARIOS.items():
        def get(role, lang, field):
            r = by.get((name, role, lang))
            return None if r is None else r[field]

        parts = {
            "TMA": [get("original", l, "mono_bleu1") for l in sc.kept]
            + [get("solution1", sc.new, "mono_bleu1")],
            "MA1": [get("original", l, "module_bleu1") for l in sc.kept]
            + [get("solution1", sc.new, "module_bleu1")],
            "MA2": [get("original", l, "module_bleu1") for l in sc.kept]
            + [get("solution2", sc.new, "module_bleu1")]}
        if all(v is not None for p in parts.values() for v in p):
            out[name] = {k: statistics.fmean(v) for k, v in parts.items()}
    return out


def render(rows: List[dict], path: str, command: str) -> None:
    """Write the markdown report and its JSON beside it."""
    f = runner.fmt
    avg = averages(rows)
    presets = sorted({r["preset"] for r in rows})
    head = ["scenario", "TMA ours", "TMA paper", "MA1 ours", "MA1 paper", "MA2 ours",
            "MA2 paper", "MA1 − TMA ours (paper)", "MA2 − TMA ours (paper)"]
    body = []
    for name, sc in SCENARIOS.items():
        a, p = avg.get(name), sc.paper
        if a is None:
            body.append([sc.title, "–", f(p["TMA"]), "–", f(p["MA1"]), "–", f(p["MA2"]),
                         f"– ({f(p['MA1'] - p['TMA'], signed=True)})",
                         f"– ({f(p['MA2'] - p['TMA'], signed=True)})"])
            continue
        body.append([sc.title, f(a["TMA"]), f(p["TMA"]), f(a["MA1"]), f(p["MA1"]), f(a["MA2"]),
                     f(p["MA2"]),
                     f"{f(a['MA1'] - a['TMA'], signed=True)} ({f(p['MA1'] - p['TMA'], signed=True)})",
                     f"{f(a['MA2'] - a['TMA'], signed=True)} ({f(p['MA2'] - p['TMA'], signed=True)})"])
    per = ["scenario", "model", "targets", "language", "train pairs", "test pairs (scored)",
           "BLEU-1 model", "BLEU-1 module", "δ", "sacreBLEU model / module", "JI",
           "units kept", "train (s)"]
    order = {n: i for i, n in enumerate(SCENARIOS)}
    lines_rows = []
    for r in sorted(rows, key=lambda r: (order.get(r["scenario"], 99), ROLES.index(r["role"]),
                                         r["languages"].index(r["language"]))):
        lines_rows.append([
            r["scenario"], r["role"], ",".join(r["languages"]), r["language"], str(r["n_train"]),
            f"{r['n_test']} ({r['n_first']})", f(r["mono_bleu1"]), f(r["module_bleu1"]),
            f(r["module_bleu1"] - r["mono_bleu1"], signed=True),
            f"{f(r['mono_sacrebleu'])} / {f(r['module_sacrebleu'])}", f(r["ji"], ".3f"),
            " / ".join(f"{k:.0f}" for k in r["units_kept_per_layer"]) + f" of {r['units']}",
            f(r.get("train_s"), ".0f")])
    sizes = {p: PRESETS[p] for p in presets if p in PRESETS}
    lines = [
        "# Table V: motivating scenarios (add a language, fix a language)",
        "",
        "Generated by `experiments/motivating.py`; do not edit by hand.",
        "",
        f"Rendered by: `{command}`  ",
        f"Rows computed by: {'; '.join(sorted({'`' + r['command'] + '`' for r in rows}))}  ",
        f"Hardware: {runner.hardware()}  ",
        f"Wall time: training {sum(r.get('train_s') or 0 for r in {r['model_dir']: r for r in rows}.values()):.0f} s "
        f"for {len({r['model_dir'] for r in rows})} models (machine shared with other jobs)  ",
        f"Models: {', '.join(sorted({runner.model_label(r['cell'], r['layers']) for r in rows}))}; "
        f"preset(s) {', '.join(presets)} ({json.dumps(sizes)}); mode "
        f"{', '.join(sorted({r['mode'] for r in rows}))}; modules with `preset=\"artifact\"`.",
        "",
        "BLEU-1 (0–100) of each language on the first test pairs of the model's own split "
        "(`n_first`), as in the paper. TMA = mean of the original model's monolithic BLEU-1 on "
        "the kept languages and solution 1's on the new one; MA1 = the original model's modules "
        "for the kept languages and solution 1's module for the new one; MA2 = the same with "
        "solution 2's module (a one-language model: its single module keeps every unit). The "
        "paper's models were larger and trained longer; compare the differences "
        "(MA − TMA) more than the levels.",
        "",
        runner.markdown_table(head, body, left=1),
        "",
        "## Every model and language",
        "",
        runner.markdown_table(per, lines_rows, left=4),
    ]
    runner.write_atomic(path, "\n".join(lines) + "\n")
    runner.write_atomic(os.path.splitext(path)[0] + ".json", json.dumps(
        {"command": sorted({r["command"] for r in rows}), "hardware": runner.hardware(),
         "averages": avg, "paper": {n: s.paper for n, s in SCENARIOS.items()}, "rows": rows},
        indent=1, sort_keys=True))


def program(command: str) -> None:
    """Run the scenarios (unless ``--render_only``), print the averages, write the report."""
    rows = [] if FLAGS.render_only else run(command)
    for name, a in averages(rows).items():
        p = SCENARIOS[name].paper
        print(f"{name}: TMA {a['TMA']:.2f} (paper {p['TMA']}), MA1 {a['MA1']:.2f} "
              f"(paper {p['MA1']}), MA2 {a['MA2']:.2f} (paper {p['MA2']})")
    if FLAGS.report:
        tx.write_report(RESULTS_FORMAT, KEY, render, command)


main = runner.main_of(program, "motivating")


if __name__ == "__main__":
    define_flags()
    app.run(main)
