"""Table II's translation rows: per-language decoder modules of Tatoeba EN → {FR, DE, IT}, BLEU.

    python -m experiments.translation --preset=cpu --out=/work/runs/translate/cpu \\
        --report=docs/results/table2_translation.md

For every cell × depth this trains one encoder-decoder (the target language is chosen by the
``[startℓ]`` token), or loads it from ``<out>/models``; greedily decodes the test split with the
monolithic model; and for every mode decomposes it into one module per target language
(``preset="artifact"``: 1,000 positives per language, 500 per other language;
docs/method.md#encoder-decoder) and decodes each language's test pairs with that language's
module. Every decoding is one jit-compiled scan over output steps per batch
(:func:`modjax.greedy_decode`). Scores (:mod:`modjax.bleu`): the paper's BLEU-1 (tagged raw
references, hypotheses with the start tag) and sacreBLEU on untagged text (references
standardised like the targets the model was trained on: lower-case, no punctuation), on the first
``--first`` test pairs of each language (the paper's 500) and on the whole test split;
δ = module − monolithic, beside the paper's δ. The split is the seed-19 70/15/15 one of
training, so no test pair was seen in training or decomposition.

Size presets (``--preset``):

* ``cpu`` — embedding 64, hidden 128, source and target vocabularies of 8,000 words, 3 epochs
  of batch 128 on a seeded 40,000-pair subset of the training split: the 12 models train in a
  few hours on 2 CPU cores.
* ``paper`` — embedding 256, hidden 1024, vocabularies of 30,000, batch 64, 15 epochs on the
  whole training split (the seq2seq example the paper follows); for an accelerator.

Rows are written to ``<out>/results.json`` after each one and resume across runs. ``--smoke``
runs the whole pipeline on the synthetic translation task in seconds.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Dict, List

from absl import app, flags, logging

from experiments import paper_results, runner

FLAGS = flags.FLAGS
RESULTS_FORMAT = "modjax-table2-translation"
KEY = ("dataset", "preset", "cell", "layers", "mode", "language")
#: Size presets: model, vocabulary and training.
PRESETS = {
    "cpu": dict(units=128, embed_dim=64, max_tokens=8000, epochs=3, batch_size=128,
                limit_train=40000),
    "paper": dict(units=1024, embed_dim=256, max_tokens=30000, epochs=15, batch_size=64,
                  limit_train=None),
    "smoke": dict(units=16, embed_dim=8, max_tokens=30000, epochs=3, batch_size=32,
                  limit_train=None),
}
#: Bumped when a stored row's metrics change meaning, so that rows computed before are stale
#: and recomputed: 2 — the JI of a translator's module counts its masked head (not a
#: classifier's channelled one); 3 — sacreBLEU's references are standardised like the
#: model's targets (lower-case, no punctuation), which the decoded words cannot escape; 4 —
#: rows add BLEU-1 on the words alone and the share of unknown-word tokens.
METRICS_VERSION = 4
#: The paper's closing numbers for translation: mean δ (BLEU-1 points) rolled and unrolled.
PAPER_MEAN_DELTA = {"rolled": 0.10, "unrolled": -0.2}


def paper_delta(lang: str, cell: str, layers: int, mode: str):
    """The paper's δ for a Tatoeba model and language, or ``None`` when its table is missing."""
    try:
        return paper_results.paper_delta(f"tatoeba_{lang}", cell, layers, mode)
    except FileNotFoundError:
        logging.log_first_n(logging.WARNING, "no paper results table (%s): paper δ left out", 1,
                            paper_results.default_path())
        return None


def paper_avg_ji(mode: str):
    """The paper's average JI of the translation rows of ``mode``, or ``None``."""
    try:
        return paper_results.paper_avg_ji("tatoeba_fr", mode)
    except FileNotFoundError:
        return None


def define_flags():
    """Define this binary's flags (only when it runs as a program)."""
    flags.DEFINE_enum("dataset", "tatoeba", ["tatoeba", "synthetic"],
                      "Tatoeba EN -> {fr, de, it}, or the synthetic translation task.")
    flags.DEFINE_enum("preset", "cpu", ["cpu", "paper"], "Model and training size.")
    flags.DEFINE_list("cells", list(runner.CELLS), "lstm, gru, simple (vanilla tanh).")
    flags.DEFINE_list("layers", ["1", "2", "3", "4"], "Model depths (encoder and decoder).")
    flags.DEFINE_list("modes", ["rolled", "unrolled"], "Decomposition modes.")
    define_translator_flags("runs/translation")
    flags.DEFINE_bool("smoke", False, "Tiny synthetic run of the whole pipeline (tests).")


def define_translator_flags(out: str) -> None:
    """The flags every translator experiment shares: where results go, training size
    overrides, decoding and scoring."""
    flags.DEFINE_string("out", out, "Folder of results.json and the model cache.")
    flags.DEFINE_string("report", None, "Write the report here (.md; .json beside it).")
    flags.DEFINE_integer("epochs", None, "Training epochs (default: the preset's).")
    flags.DEFINE_integer("limit_train", None, "A seeded subset of N training pairs (default: "
                         "the preset's).")
    flags.DEFINE_integer("limit_test", None, "Decode only the first N test pairs of each "
                         "language (default: all).")
    flags.DEFINE_integer("first", 500, "BLEU also on the first N test pairs of each language.")
    flags.DEFINE_integer("decode_batch", 512, "Sentences per compiled decoding batch.")
    flags.DEFINE_integer("seed", 0, "Subset, initialisation, shuffling and dropout seed.")
    flags.DEFINE_bool("retrain", False, "Train again even if a cached checkpoint exists.")
    flags.DEFINE_bool("render_only", False, "Only render --report from the stored rows.")
    flags.DEFINE_bool("compilation_cache", True, "Use JAX's persistent compilation cache.")


def preset_size(preset: dict) -> dict:
    """The training size of a preset with ``--epochs`` and ``--limit_train`` applied, after
    checking the shared numeric flags (``ValueError`` naming the flag)."""
    for name in ("epochs", "limit_train", "limit_test", "first", "decode_batch"):
        v = getattr(FLAGS, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    size = dict(preset)
    if FLAGS.epochs:
        size["epochs"] = FLAGS.epochs
    if FLAGS["limit_train"].present:
        size["limit_train"] = FLAGS.limit_train
    return size


def train_translator(data, cell: str, layers: int, size: dict, seed: int, suffix: str, phases,
                     models_from=()):
    """``(config, params, meta, model_dir)``: the preset's encoder-decoder for ``data``, from
    the first read-only model folder of ``models_from`` that holds ``<name><suffix>`` with the
    same config, else trained or loaded from ``<--out>/models/<name><suffix>``."""
    config = model_config(data, cell, layers, size)
    spec = runner.DatasetSpec(id=data.name, name=data.name, source="local",
                              io="encoder_decoder", paper_name=None)
    name = runner.model_name(spec, cell, layers, size["epochs"], size["batch_size"], seed,
                             size["limit_train"], size["units"]) + suffix
    logging.info("== %s (%s)", runner.model_label(cell, layers), name)
    found = runner.load_cached(config, [os.path.join(f, name) for f in models_from])
    if found is not None:
        return (config,) + found
    model_dir = os.path.join(FLAGS.out, "models", name)
    with phases("train"):
        params, meta, _ = runner.train_or_load(config, data, model_dir, epochs=size["epochs"],
                                               batch_size=size["batch_size"], seed=seed,
                                               retrain=FLAGS.retrain)
    return config, params, meta, model_dir


def start(results_format: str, key) -> tuple:
    """``(store, phases)`` of a run, with JAX's persistent compilation cache turned on unless
    ``--nocompilation_cache``."""
    if FLAGS.compilation_cache:
        from modjax import compile_cache

        compile_cache.enable()
    return runner.ResultStore(FLAGS.out, results_format, key), runner.Phases()


def check_flags() -> dict:
    """The validated run description from the flags; ``ValueError`` naming the flag."""
    cells = ["simple" if c.strip().lower() == "vanilla" else c.strip().lower()
             for c in FLAGS.cells]
    bad = [c for c in cells if c not in runner.CELLS]
    if bad or not cells:
        raise ValueError(f"--cells entries must be lstm, gru or simple, got {FLAGS.cells}")
    layers = runner.parse_layers(FLAGS.layers)
    modes = [m.strip().lower() for m in FLAGS.modes]
    if not modes or any(m not in ("rolled", "unrolled") for m in modes):
        raise ValueError(f"--modes entries must be rolled or unrolled, got {FLAGS.modes}")
    preset = "smoke" if FLAGS.smoke else FLAGS.preset
    size = preset_size(PRESETS[preset])
    dataset = "synthetic" if FLAGS.smoke else FLAGS.dataset
    if FLAGS.smoke and not FLAGS["layers"].present:
        layers = [1]
    if FLAGS.smoke and not FLAGS["cells"].present:
        cells = ["lstm"]
    return dict(dataset=dataset, preset=preset, size=size, cells=cells, layers=layers,
                modes=modes, limit_test=FLAGS.limit_test, first=FLAGS.first, seed=FLAGS.seed)


def load(run: dict):
    """``(data, references)``: the task (subsampled as asked) and the raw tagged target sentence
    of every test pair."""
    from modjax import translation
    from modjax.data.synthetic import load_synthetic
    from modjax.data.tatoeba import load_tatoeba

    t0 = time.perf_counter()
    if run["dataset"] == "synthetic":
        data = load_synthetic("encoder_decoder", n_train=900, n_test=90, seed=run["seed"])
        refs = translation.references_from_ids(data)
    else:
        data = load_tatoeba(max_tokens=run["size"]["max_tokens"])
        refs = translation.tatoeba_references()
        if len(refs) != len(data.x_test):
            raise ValueError(f"the raw test pairs ({len(refs)}) do not line up with the "
                             f"vectorised ones ({len(data.x_test)})")
    data = runner.subset(data, run["size"]["limit_train"], None, run["seed"])
    logging.info("loaded %s: %d train / %d test pairs, vocabularies %d / %d (%.1fs)", data.name,
                 len(data.x_train), len(data.x_test), data.vocab_size, data.target_vocab_size,
                 time.perf_counter() - t0)
    return data, refs


def model_config(data, cell: str, layers: int, size: dict):
    """The encoder-decoder of a preset, with the authors' evaluation forward pass."""
    from modjax.models import config_for

    return config_for(data, cell=cell, layers=layers, units=size["units"],
                      embed_dim=size["embed_dim"], gate_activation="sigmoid", forward="artifact")


def decode_all(config, params, data, rows, *, decomp=None) -> Dict[int, list]:
    """Decoded words per language (module ``ℓ`` for language ``ℓ`` when ``decomp``), and the
    decoding rate."""
    from modjax import translation

    out, t0 = {}, time.perf_counter()
    for lang, idx in enumerate(rows):
        out[lang] = translation.decode_language(config, params, data, idx, lang, decomp=decomp,
                                                use_module=decomp is not None,
                                                batch_size=FLAGS.decode_batch)
    secs = time.perf_counter() - t0
    return out, sum(len(r) for r in rows) / max(secs, 1e-9)


def unseen_sources(data, rows) -> List[list]:
    """Per language, the positions (within ``rows[ℓ]``) of test pairs whose source ids appear
    in no training pair: with three targets per English sentence, most test sources were seen
    in training, translated into another language."""
    import numpy as np

    seen = {bytes(r) for r in np.asarray(data.x_train, np.int32)}
    x = np.asarray(data.x_test, np.int32)
    return [[j for j, i in enumerate(r) if bytes(x[i]) not in seen] for r in rows]


def unknown_share(decoded) -> float:
    """The share of the unknown-word token (:data:`modjax.data.tokenizer.UNKNOWN`) among the
    decoded words (tags excluded) of ``decoded`` (lists of words); 0 when there are none."""
    from modjax.bleu import is_tag
    from modjax.data.tokenizer import UNKNOWN

    words = [w for d in decoded for w in d if not is_tag(w)]
    return sum(w == UNKNOWN for w in words) / max(1, len(words))


def scores(words: Dict[int, list], refs_by_lang, data, first: int, unseen) -> Dict[int, dict]:
    """BLEU-1 (tagged and on the words alone), sacreBLEU and the unknown-word share per
    language, on the first ``first`` pairs, on all, and on those with a source unseen in
    training (``unseen``: positions per language; ``None`` if none)."""
    from modjax import translation
    from modjax.data.tokenizer import standardization

    # the standardisation the data's targets went through (the Tatoeba loader's); references
    # rebuilt from ids (the synthetic task, None) are already in the model's form
    std = None if data.target_standardize is None else standardization(data.target_standardize)
    score = functools.partial(translation.score_language, standardize=std)
    out = {}
    for lang, w in words.items():
        start = f"[start{data.class_names[lang]}]"
        refs, pos = refs_by_lang[lang], unseen[lang]
        out[lang] = {
            "first": score(w, refs, start, first),
            "all": dict(score(w, refs, start), unk=unknown_share(w)),
            "unseen": score([w[j] for j in pos], [refs[j] for j in pos], start) if pos else None}
    return out


def modules_bleu(config, params, data, rows, refs_by_lang, unseen, first: int, options: dict,
                 phases):
    """Decompose with ``options`` and score every language's module on its test rows:
    ``(scores per language (:func:`scores`), sentences/s, JI [C], units kept [C, L],
    decomposition seconds)``."""
    import numpy as np

    from modjax import metrics
    from modjax.decompose import decompose

    with phases("decompose"):
        t0 = time.perf_counter()
        decomp = decompose(params, data, model=config, **options)
        decompose_s = time.perf_counter() - t0
    ji = metrics.jaccard_paper(decomp, params)
    kept = np.asarray(metrics.units_kept(decomp), np.float64)  # [C, L]
    with phases("decode"):
        words, sps = decode_all(config, params, data, rows, decomp=decomp)
    return scores(words, refs_by_lang, data, first, unseen), sps, ji, kept, decompose_s


def run_model(data, refs, cell: str, k: int, todo: List[tuple], run: dict, store, phases,
              command: str) -> None:
    """Train or load one model and compute its pending ``(mode, settings)`` rows."""
    import numpy as np

    from modjax import translation

    config, params, meta, model_dir = train_translator(data, cell, k, run["size"], run["seed"],
                                                       f"_{run['preset']}", phases)
    label = runner.model_label(cell, k)
    rows = translation.language_rows(data.concern_test, len(data.class_names), run["limit_test"])
    refs_by_lang = [[refs[i] for i in r] for r in rows]
    unseen = unseen_sources(data, rows)
    with phases("decode"), runner.compile_seconds() as mono_comp:
        mono_words, mono_sps = decode_all(config, params, data, rows)
    mono = scores(mono_words, refs_by_lang, data, run["first"], unseen)
    logging.info("monolithic BLEU-1 (first %d) %s, %.0f sentences/s", run["first"],
                 [round(mono[l]["first"]["bleu1"], 2) for l in mono], mono_sps)
    for mode, settings in todo:
        mod, mod_sps, ji, kept, decompose_s = modules_bleu(
            config, params, data, rows, refs_by_lang, unseen, run["first"],
            settings["options"], phases)
        for lang, lname in enumerate(data.class_names):
            m, u = mono[lang], mod[lang]
            paper = paper_delta(lname, cell, k, mode) if run["dataset"] == "tatoeba" else None
            row = {"dataset": run["dataset"], "preset": run["preset"], "cell": cell,
                   "layers": k, "model": label, "mode": mode, "language": lname,
                   "n_train": int(len(data.x_train)), "n_test": int(len(rows[lang])),
                   "n_first": int(min(run["first"], len(rows[lang]))),
                   "mono_bleu1": m["first"]["bleu1"], "module_bleu1": u["first"]["bleu1"],
                   "delta": u["first"]["bleu1"] - m["first"]["bleu1"],
                   "mono_bleu1_all": m["all"]["bleu1"], "module_bleu1_all": u["all"]["bleu1"],
                   "delta_all": u["all"]["bleu1"] - m["all"]["bleu1"],
                   "mono_sacrebleu": m["first"]["sacrebleu"],
                   "module_sacrebleu": u["first"]["sacrebleu"],
                   "mono_sacrebleu_all": m["all"]["sacrebleu"],
                   "module_sacrebleu_all": u["all"]["sacrebleu"],
                   "delta_sacrebleu_all": u["all"]["sacrebleu"] - m["all"]["sacrebleu"],
                   "mono_bleu1_words_all": m["all"]["bleu1_words"],
                   "module_bleu1_words_all": u["all"]["bleu1_words"],
                   "mono_unk_all": m["all"]["unk"], "module_unk_all": u["all"]["unk"],
                   "n_unseen": len(unseen[lang]),
                   "mono_bleu1_unseen": m["unseen"] and m["unseen"]["bleu1"],
                   "module_bleu1_unseen": u["unseen"] and u["unseen"]["bleu1"],
                   "paper_delta": paper, "ji": float(ji[lang]),
                   "units_kept_per_layer": kept[lang].tolist(), "decompose_s": decompose_s,
                   "mono_decode_sps": mono_sps, "module_decode_sps": mod_sps,
                   "mono_decode_compile_s": mono_comp[0], "train_s": meta.get("train_s"),
                   "epoch_s": meta.get("epoch_s"), "model_dir": model_dir,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command}
            store.put(row, settings)
        store.save()
        logging.info("%s %s: δ BLEU-1 %s (paper %s), JI %s", label, mode,
                     [round(mod[l]["first"]["bleu1"] - mono[l]["first"]["bleu1"], 2)
                      for l in mod],
                     [paper_delta(n, cell, k, mode) if run["dataset"] == "tatoeba" else None
                      for n in data.class_names], np.round(np.asarray(ji), 3).tolist())


def run_grid(command: str, results_format: str, key, keys_of, compute) -> List[dict]:
    """Compute every pending row of the flags' grid (cells × depths × modes); returns the
    grid's rows.

    ``keys_of(desc, data, cell, k, mode)`` lists the row keys of one model and mode;
    ``compute(data, refs, cell, k, todo, desc, store, phases, command)`` computes a model's
    pending ``todo = [(mode, settings), ...]`` and stores its rows.
    """
    from modjax.presets import options_for

    desc = check_flags()
    store, phases = start(results_format, key)
    data = refs = None
    shown = []
    for cell in desc["cells"]:
        for k in desc["layers"]:
            todo = []
            for mode in desc["modes"]:
                if data is None:
                    with phases("load"):
                        data, refs = load(desc)
                config = model_config(data, cell, k, desc["size"])
                settings = {"size": desc["size"], "seed": desc["seed"],
                            "limit_test": desc["limit_test"], "first": desc["first"],
                            "forward": config.forward, "metrics": METRICS_VERSION,
                            "options": dataclasses.asdict(options_for("artifact", config,
                                                                      mode))}
                keys = keys_of(desc, data, cell, k, mode)
                if any(store.fresh(kk, settings) is None for kk in keys):
                    todo.append((mode, settings))
                shown += keys
            if todo:
                compute(data, refs, cell, k, todo, desc, store, phases, command)
    store.save()
    logging.info("phases this run: %s", ", ".join(f"{k} {v:.1f}s"
                                                  for k, v in phases.seconds.items()))
    return [store.rows[k] for k in shown if k in store.rows]


def _keys(desc: dict, data, cell: str, k: int, mode: str) -> List[tuple]:
    """The row keys of one model and mode: one per target language."""
    return [(desc["dataset"], desc["preset"], cell, k, mode, lang) for lang in data.class_names]


def run(command: str) -> List[dict]:
    """Compute every pending row of the flags' grid; returns the grid's rows."""
    return run_grid(command, RESULTS_FORMAT, KEY, _keys, run_model)


def write_report(results_format: str, key, render, command: str, *extra) -> None:
    """Render ``--report`` from every row stored under ``--out`` with
    ``render(rows, path, command, *extra)``."""
    store = runner.ResultStore(FLAGS.out, results_format, key)
    render(list(store.rows.values()), FLAGS.report, command, *extra)
    print(f"report: {FLAGS.report}")


# -- report ------------------------------------------------------------------------------------
def summary(rows: List[dict]) -> Dict[str, dict]:
    """Mean and median δ (BLEU-1, first pairs) per mode, ours and the paper's on the same
    models."""
    out = {}
    for mode in ("rolled", "unrolled"):
        rs = [r for r in rows if r["mode"] == mode]
        ours = runner.mean_median(r["delta"] for r in rs)
        ours_all = runner.mean_median(r["delta_all"] for r in rs)
        sacre = runner.mean_median(r["delta_sacrebleu_all"] for r in rs)
        words = runner.mean_median(r["module_bleu1_words_all"] - r["mono_bleu1_words_all"]
                                   for r in rs if r.get("mono_bleu1_words_all") is not None)
        quality = {k: runner.mean_median(r[k] for r in rs if r.get(k) is not None)[0]
                   for k in ("mono_bleu1_all", "mono_bleu1_words_all", "mono_sacrebleu_all",
                             "mono_unk_all")}
        paper_same = runner.mean_median(r["paper_delta"] for r in rs)
        paper_all = runner.mean_median(
            paper_delta(lang, cell, k, mode) for lang in ("fr", "de", "it") for cell in runner.CELLS for k in (1, 2, 3, 4))
        ji = runner.mean_median(r["ji"] for r in rs)
        out[mode] = {"delta": ours, "delta_all": ours_all, "delta_sacrebleu_all": sacre,
                     "delta_bleu1_words_all": words, "mono_quality": quality,
                     "paper_delta_same_models": paper_same, "paper_delta_all_models": paper_all,
                     "ji": ji, "paper_avg_ji": paper_avg_ji(mode)}
    return out


def _pct(x) -> str:
    """``x`` (a share in [0, 1]) as a whole percentage, ``–`` when missing."""
    return "–" if x is None else f"{100 * x:.0f}%"


def render(rows: List[dict], path: str, command: str, bench: dict = None) -> None:
    """Write the markdown report at ``path`` and its JSON beside it."""
    f = runner.fmt
    rows = sorted(rows, key=lambda r: (r["preset"], r["mode"], runner.CELLS.index(r["cell"]),
                                       r["layers"], ("fr", "de", "it").index(r["language"])
                                       if r["language"] in ("fr", "de", "it") else 9))
    head = ["Mode", "Model", "Lang", "n (first / all)", "BLEU-1 mono", "BLEU-1 module", "δ",
            "paper δ", "BLEU-1 mono (all)", "BLEU-1 module (all)", "δ (all)",
            "BLEU-1 words mono / module (all)", "sacreBLEU mono (all)",
            "sacreBLEU module (all)", "[UNK] mono / module (all)", "n unseen src",
            "BLEU-1 mono (unseen)", "BLEU-1 module (unseen)", "JI"]
    body = [[r["mode"], r["model"], r["language"], f"{r['n_first']} / {r['n_test']}",
             f(r["mono_bleu1"]), f(r["module_bleu1"]), f(r["delta"], signed=True),
             f(r["paper_delta"], signed=True), f(r["mono_bleu1_all"]), f(r["module_bleu1_all"]),
             f(r["delta_all"], signed=True),
             f"{f(r.get('mono_bleu1_words_all'))} / {f(r.get('module_bleu1_words_all'))}",
             f(r["mono_sacrebleu_all"]), f(r["module_sacrebleu_all"]),
             f"{_pct(r.get('mono_unk_all'))} / {_pct(r.get('module_unk_all'))}",
             str(r.get("n_unseen", "–")),
             f(r.get("mono_bleu1_unseen")), f(r.get("module_bleu1_unseen")),
             f(r["ji"], ".3f")] for r in rows]
    summ = summary(rows)
    models = sorted({(r["cell"], r["layers"]) for r in rows})
    missing = [runner.model_label(c, k) for c in runner.CELLS for k in (1, 2, 3, 4)
               if (c, k) not in models]
    presets = sorted({r["preset"] for r in rows})
    datasets = sorted({r["dataset"] for r in rows})
    used = sorted({json.dumps({k: r["settings"].get(k) for k in ("size", "limit_test", "first")},
                              sort_keys=True) for r in rows if "settings" in r})
    lines = [
        "# Table II, translation rows: per-language modules of an encoder-decoder",
        "",
        f"Generated by `{command}` on {runner.hardware()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Do not edit by hand.",
        "",
        "Rows computed by: " + "; ".join(f"`{c}`" for c in sorted({r["command"] for r in rows}))
        + ".",
        "",
        f"Data: {', '.join(datasets)}; preset(s) {', '.join(presets)}; settings of the rows "
        "(model size, training, test pairs decoded per language): "
        + "; ".join(f"`{u}`" for u in used) + ". The `cpu` preset itself: "
        f"`{json.dumps(PRESETS['cpu'])}`."
        + (" Some rows were computed with a reduced size (fewer training pairs, epochs or "
           "test pairs than their preset): their numbers are not the preset's."
           if any(r.get("settings", {}).get("size") != PRESETS.get(r["preset"])
                  or r.get("settings", {}).get("limit_test") for r in rows) else ""),
        "Modules: one per target language, `preset=\"artifact\"` (1,000 positives per "
        "language, 500 per other language; docs/method.md#encoder-decoder). BLEU-1 is the "
        "paper's (corpus BLEU, unigram weights, no smoothing, tagged raw references, hypotheses "
        "with the start tag); sacreBLEU is 4-gram BLEU on untagged text, its references "
        "standardised like the model's targets (lower-case, no punctuation: the decoded words "
        "can have neither). δ = module − "
        "monolithic on the first pairs of each language (the paper's 500); \"(all)\": every "
        "decoded test pair of the language (the whole test split unless the settings' "
        "`limit_test` caps it). The split is the training one (seed 19), so test pairs are "
        "unseen in training and decomposition; the paper's evaluation used another split (its "
        "BLEU test pairs overlapped training). Each English sentence gives one pair per "
        "language, so most test pairs have a source seen in training (translated into another "
        "language): \"unseen\" columns score only the decoded pairs whose source ids occur in "
        "no training pair. \"BLEU-1 words\": the paper's BLEU-1 without the tags on either side "
        "(references standardised), since every hypothesis that stops matches its two tags; "
        "\"[UNK]\": the share of decoded words that are the unknown-word token.",
        "",
        f"Coverage: {len(models)} of 12 models"
        + (f"; missing: {', '.join(missing)} (not computed by the deadline of this run)"
           if missing else "") + ".",
        "",
        runner.markdown_table(head, body, left=4),
        "",
        "## Means and medians",
        "",
    ]
    for mode, s in summ.items():
        (m, md, n), (pm, pmd, pn) = s["delta"], s["paper_delta_same_models"]
        (am, amd, _), (jm, _, _) = s["paper_delta_all_models"], s["ji"]
        if n == 0:
            continue
        lines.append(
            f"* {mode}: δ BLEU-1 mean {f(m, signed=True)}, median {f(md, signed=True)} over "
            f"{n} (model, language) pairs; the paper on the same models: mean "
            f"{f(pm, signed=True)}, median {f(pmd, signed=True)} ({pn}); the paper on all 36: "
            f"mean {f(am, signed=True)}, median {f(amd, signed=True)} (its text quotes "
            f"{PAPER_MEAN_DELTA[mode]:+.2f}). All decoded test pairs: mean "
            f"{f(s['delta_all'][0], signed=True)}; sacreBLEU δ mean "
            f"{f(s['delta_sacrebleu_all'][0], signed=True)}; BLEU-1 on the words alone δ mean "
            f"{f(s['delta_bleu1_words_all'][0], signed=True)}. JI mean {f(jm, '.3f')} "
            f"(paper's average {f(s['paper_avg_ji'], '.2f')}).")
    q = next((s["mono_quality"] for s in summ.values() if s["delta"][2]), None)
    if q and q["mono_bleu1_words_all"] is not None:
        lines += ["", "How good the monolithic translators are (means over the rows, all decoded "
                  f"test pairs): BLEU-1 {f(q['mono_bleu1_all'])}, and "
                  f"{f(q['mono_bleu1_words_all'])} on the words alone (the rest is the tags); "
                  f"sacreBLEU {f(q['mono_sacrebleu_all'])}; {_pct(q['mono_unk_all'])} of the "
                  "decoded words are the unknown-word token. δ compares each model with its own "
                  "modules, so it is measured on these translators, not on good ones."]
    if bench:
        lines += ["", f"Decoding ({bench.get('what', 'benchmarks/decode.py')}): batched scan "
                  f"{f(bench['scan_sps'], '.0f')} sentences/s, prefix re-running "
                  f"{f(bench['prefix_sps'], '.0f')} sentences/s: {f(bench['speedup'], '.1f')}× "
                  f"faster; modules {f(bench.get('module_sps'), '.0f')} sentences/s."]
    timing = {(r["preset"], r["model"]): r for r in rows if r.get("train_s")}
    if timing:
        lines += ["", "Training wall time per model (machine shared with other jobs): " + ", ".join(
            f"{r['model']} {r['train_s']:.0f} s ({r['n_train']} pairs; per epoch "
            + "/".join(f"{e:.0f}" for e in (r.get("epoch_s") or [])) + " s)"
            for r in timing.values()) + "."]
    runner.write_atomic(path, "\n".join(lines) + "\n")
    runner.write_atomic(os.path.splitext(path)[0] + ".json", json.dumps(
        {"command": command, "hardware": runner.hardware(), "summary": summ, "bench": bench,
         "rows": rows}, indent=1, sort_keys=True, default=str))


def report(command: str) -> None:
    """Render ``--report`` from every stored row, with the decoding benchmark's numbers when
    ``decode_benchmark.json`` sits beside it."""
    bench_path = os.path.join(os.path.dirname(FLAGS.report), "decode_benchmark.json")
    bench = None
    if os.path.isfile(bench_path):
        with open(bench_path) as fh:
            bench = json.load(fh).get("summary")
    write_report(RESULTS_FORMAT, KEY, render, command, bench)


def program(command: str) -> None:
    """Run the grid (unless ``--render_only``), print its rows, write the report."""
    for r in [] if FLAGS.render_only else run(command):
        print(f"{r['mode']:8s} {r['model']:7s} {r['language']}: BLEU-1 {r['mono_bleu1']:.2f}"
              f" -> {r['module_bleu1']:.2f} (δ {r['delta']:+.2f}, paper "
              f"{runner.fmt(r['paper_delta'], signed=True)}), JI {r['ji']:.3f}")
    if FLAGS.report:
        report(command)


main = runner.main_of(program, "translation")


if __name__ == "__main__":
    define_flags()
    app.run(main)
