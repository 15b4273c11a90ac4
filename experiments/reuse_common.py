"""What the reuse (Table III) and replacement (Table IV) binaries share.

* the paper's decomposition mode per I/O type (:data:`PAPER_MODES`) and :func:`decompose_paper`;
* :func:`model_for` — a Table II model from a read-only cache (``--models_from``), else trained
  into this run's own ``<out>/models`` (a read-only folder is never written);
* :func:`shared_vocab_pair` — the inter-reuse datasets over one shared tokenizer, and their
  models;
* :func:`balanced_indices`, :func:`with_split`, :func:`train_baseline` — the baselines' data and
  training;
* :func:`summary_table` — means and medians per group, beside the paper's, for the reports.

Nothing here imports JAX at module import time.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict, List, Sequence, Tuple

from absl import flags, logging

from experiments import paper_results, runner

#: The decomposition mode the paper's reuse and replacement scripts used, per I/O type.
PAPER_MODES = {"one_to_one": "rolled", "many_to_one": "unrolled", "one_to_many": "unrolled",
               "many_to_many": "unrolled"}
#: The two datasets of each inter-reuse / inter-replacement problem: (one-output, many-output).
SHARED_PAIRS = {"mathqa+toxic": ("mathqa", "toxic"), "clinc+brown": ("clinc", "brown")}
#: Training of every baseline (the paper's: 5 epochs, batch 32).
BASELINE_TRAINING = (5, 32)


def define_common_flags(default_out: str) -> None:
    """Flags both binaries take."""
    flags.DEFINE_list("datasets", ["mathqa", "clinc", "toxic", "brown"],
                      "Intra experiments: mathqa (1:1), clinc (M:1), toxic (1:N), brown (M:N), "
                      "or synthetic:<io>.")
    flags.DEFINE_list("cells", ["lstm"], "lstm, gru, simple (vanilla tanh).")
    flags.DEFINE_list("parts", ["intra", "inter"], "Which experiments: intra, inter.")
    flags.DEFINE_list("inter", list(SHARED_PAIRS), f"Inter problems, of {list(SHARED_PAIRS)}.")
    flags.DEFINE_string("out", default_out, "Folder of results.json and this run's models.")
    flags.DEFINE_list("models_from", [], "Read-only model caches searched before --out/models "
                      "(e.g. the Table II binary's runs/table2/models); never written.")
    flags.DEFINE_string("report", None, "Write the report here (.md; .json beside it).")
    flags.DEFINE_integer("units", 100, "Units per recurrent layer (the paper: 100).")
    flags.DEFINE_integer("limit_train", None, "A seeded random subset of N training examples.")
    flags.DEFINE_integer("limit_test", None, "The first N test examples.")
    flags.DEFINE_integer("seed", 0, "Data subsets, initialisation and shuffling seed.")
    flags.DEFINE_integer("max_items", None, "At most N new rows per (dataset, cell) this run "
                         "(the rest are left for a later, resumed run).")
    flags.DEFINE_bool("render_only", False, "Only render --report from the stored rows.")
    flags.DEFINE_list("merge", [], "results.json files of other runs (e.g. parts run in "
                      "parallel, each with its own --out) whose rows the report adds.")
    flags.DEFINE_bool("smoke", False, "Tiny synthetic run of the whole pipeline (tests).")


def common_run(FLAGS) -> dict:
    """The validated run description shared by both binaries (``ValueError`` names the flag)."""
    if FLAGS.smoke and not FLAGS["datasets"].present:
        datasets = [f"synthetic:{io}" for io in runner.SYNTHETIC_IOS]
    else:
        datasets = [d.strip().lower() for d in FLAGS.datasets]
    specs = [runner.parse_dataset(d, "local") for d in datasets]
    cells = ["simple" if c.strip().lower() == "vanilla" else c.strip().lower()
             for c in FLAGS.cells]
    bad = [c for c in cells if c not in runner.CELLS]
    if bad or not cells:
        raise ValueError(f"--cells entries must be lstm, gru or simple, got {FLAGS.cells}")
    parts = [p.strip().lower() for p in FLAGS.parts]
    if not parts or any(p not in ("intra", "inter") for p in parts):
        raise ValueError(f"--parts entries must be intra or inter, got {FLAGS.parts}")
    inter = [p.strip().lower() for p in FLAGS.inter]
    if any(p not in SHARED_PAIRS for p in inter):
        raise ValueError(f"--inter entries must be among {list(SHARED_PAIRS)}, got {FLAGS.inter}")
    for name in ("units", "limit_train", "limit_test", "max_items"):
        v = getattr(FLAGS, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    given = lambda name: FLAGS[name].present or not FLAGS.smoke
    max_items = FLAGS.max_items if given("max_items") else 3
    if FLAGS.smoke and not FLAGS["inter"].present:
        inter = []  # the shared-vocabulary datasets are real data; smoke runs stay synthetic
    return dict(specs=specs, cells=cells, parts=parts, inter=inter,
                units=FLAGS.units if given("units") else 8,
                limit_train=FLAGS.limit_train if given("limit_train") else 300,
                limit_test=FLAGS.limit_test if given("limit_test") else 120,
                seed=FLAGS.seed, max_items=max_items,
                epochs_override=None if not FLAGS.smoke else 1,
                models_from=[os.path.abspath(p) for p in FLAGS.models_from], out=FLAGS.out)


# -- models ------------------------------------------------------------------------------------
def model_for(spec, data, cell: str, layers: int, run: dict, *, suffix: str = "",
              train: bool = True):
    """``(config, params, meta, model_dir)``: the paper's model of ``spec`` with ``layers``
    layers, trained with the paper's epochs and batch, from the first read-only cache holding an
    equal function, else trained (or loaded) under ``<out>/models``; ``None`` when it is in
    neither and ``train`` is false."""
    p_epochs, bs = runner.PAPER_TRAINING[spec.io]
    epochs = run["epochs_override"] or p_epochs
    config = runner.paper_config(data, spec, cell, layers, units=run["units"])
    name = runner.model_name(spec, cell, layers, epochs, bs, run["seed"], run["limit_train"],
                             run["units"]) + suffix
    found = runner.load_cached(config, [os.path.join(f, name) for f in run["models_from"]])
    if found is not None:
        params, meta, d = found
        logging.info("loaded %s from the read-only cache %s", name, os.path.dirname(d))
        return config, params, meta, d
    own = os.path.join(run["out"], "models", name)
    if not train and not os.path.isdir(own):
        return None
    params, meta, _ = runner.train_or_load(config, data, own, epochs=epochs, batch_size=bs,
                                           seed=run["seed"])
    return config, params, meta, own


def decompose_paper(config, params, data) -> Tuple[object, float]:
    """``(decomp, seconds)``: the ``artifact`` preset in the paper's reuse mode for the I/O type
    (:data:`PAPER_MODES`), on ``data``'s training split."""
    import jax

    from modjax.decompose import decompose
    from modjax.presets import options_for

    mode = PAPER_MODES[config.io]
    opts = dataclasses.asdict(options_for("artifact", config, mode))
    t0 = time.perf_counter()
    decomp = decompose(params, data, model=config, **opts)
    jax.block_until_ready(decomp.keep)
    return decomp, time.perf_counter() - t0


def decompose_settings(config) -> dict:
    """The resolved options :func:`decompose_paper` uses (stored in every row's settings)."""
    from modjax.presets import options_for

    return dataclasses.asdict(options_for("artifact", config, PAPER_MODES[config.io]))


def module_index(decomp, cls: int) -> int:
    """The index of the module whose head class is ``cls``."""
    import numpy as np

    idx = np.flatnonzero(np.asarray(decomp.head_class) == cls)
    if len(idx) != 1:
        raise ValueError(f"cls: no single module of class {cls} in this decomposition")
    return int(idx[0])


def kept_fraction(decomp, modules: Sequence[int]) -> float:
    """Mean fraction of recurrent units the given modules keep (over modules and layers)."""
    import numpy as np

    from modjax.metrics import units_kept

    k = np.asarray(units_kept(decomp), np.float64)[list(modules)]
    return float(k.mean() / decomp.config.units)


def shared_vocab_pair(name: str, run: dict, cell: str, layers: int, cache: dict):
    """``{dataset: (spec, data, config, params, meta)}`` for an inter problem: both datasets
    encoded with ONE tokenizer (fitted once) and their models trained on them (``_shared``
    suffix in ``<out>/models``). ``cache`` keeps the loaded data across cells."""
    from modjax.data import load_clinc_brown_shared, load_mathqa_toxic_shared

    if name not in cache:
        t0 = time.perf_counter()
        loader = load_mathqa_toxic_shared if name == "mathqa+toxic" else load_clinc_brown_shared
        datas = loader()
        specs = [runner.parse_dataset(n, "local") for n in SHARED_PAIRS[name]]
        datas = [runner.subset(d, run["limit_train"], run["limit_test"], run["seed"])
                 for d in datas]
        cache[name] = list(zip(specs, datas))
        logging.info("loaded %s over one tokenizer (vocab %d) in %.1fs", name,
                     datas[0].vocab_size, time.perf_counter() - t0)
    out = {}
    for spec, data in cache[name]:
        config, params, meta, _ = model_for(spec, data, cell, layers, run,
                                            suffix=f"_shared-{name.replace('+', '-')}")
        out[spec.name] = (spec, data, config, params, meta)
    return out


def inter_setup(name: str, run: dict, cell: str, layers: int, cache: dict, phases):
    """``(one, many, settings)`` of an inter problem: ``(spec, data, config, params, meta)`` of
    its one-output and many-output models over the shared tokenizer, and the settings that
    change its rows' numbers."""
    with phases("train"):
        models = shared_vocab_pair(name, run, cell, layers, cache)
    one, many = (models[n] for n in SHARED_PAIRS[name])
    settings = dict(baseline_epochs_batch=list(BASELINE_TRAINING), units=run["units"],
                    limit_train=run["limit_train"], limit_test=run["limit_test"],
                    seed=run["seed"], layers=layers, vocab=one[1].vocab_size,
                    options=[decompose_settings(one[2]), decompose_settings(many[2])])
    return one, many, settings


def pending(store, prefix: tuple, items, settings: dict, max_items, what: str) -> list:
    """The ``items`` whose row ``prefix + item`` is missing or stale (at most ``max_items``)."""
    todo = [p for p in items if store.fresh(prefix + tuple(p), settings) is None]
    logging.info("%s: %d of %d %s to compute", " ".join(map(str, prefix)), len(todo),
                 len(items), what)
    return todo[:max_items] if max_items else todo


def decompose_pair(one, many, phases):
    """``(d_one, d_many, seconds)``: both inter models decomposed (:func:`decompose_paper`)."""
    with phases("decompose"):
        d_o, s_o = decompose_paper(one[2], one[3], one[1])
        d_m, s_m = decompose_paper(many[2], many[3], many[1])
    return d_o, d_m, s_o + s_m


# -- baselines ---------------------------------------------------------------------------------
def balanced_indices(groups: Sequence, *, factor: float = 1.0, floor: int = 0,
                     seed: int = 0):
    """Indices down-sampling each group to at most ``max(factor * min size, floor)`` examples
    (seeded, sorted); empty groups are ignored in the minimum."""
    import numpy as np

    groups = [np.asarray(g, np.int64) for g in groups]
    sizes = [len(g) for g in groups if len(g)]
    if not sizes:
        return np.zeros(0, np.int64)
    cap = int(max(factor * min(sizes), floor))
    rng = np.random.RandomState(seed)
    out = [g if len(g) <= cap else rng.choice(g, cap, replace=False) for g in groups]
    return np.sort(np.concatenate(out))


def with_split(data, x_train, y_train, x_test, y_test, **changes):
    """``data`` with new train and test arrays (and other field ``changes``)."""
    return dataclasses.replace(data, x_train=x_train, y_train=y_train, x_test=x_test,
                               y_test=y_test, **changes)


def train_baseline(config, data, run: dict, *, params=None) -> Tuple[object, float]:
    """``(params, seconds)``: ``config`` trained on ``data`` for the paper's 5 epochs, batch 32
    (1 epoch in smoke runs), from ``params`` (fine-tuning) or a fresh initialisation."""
    from modjax.train import fit

    epochs, bs = BASELINE_TRAINING
    epochs = run["epochs_override"] or epochs
    t0 = time.perf_counter()
    params, _ = fit(config, data, epochs=epochs, batch_size=bs, seed=run["seed"], params=params,
                    progress=False, validate=False)
    return params, time.perf_counter() - t0


def timed_accuracy(fn, y, *args) -> Tuple[float, float]:
    """``(accuracy, seconds)`` of ``fn(*args)``'s predictions against ``y`` (all positions)."""
    import numpy as np

    from modjax.metrics import accuracy

    t0 = time.perf_counter()
    pred = np.asarray(fn(*args))
    return accuracy(pred, y), time.perf_counter() - t0


def pair_classes(data) -> List[int]:
    """The classes pairs are drawn from: all (one-output) or all but padding 0 (many-output)."""
    start = 1 if data.io in ("one_to_many", "many_to_many") else 0
    return list(range(start, data.num_classes))


def baseline_rows(spec, data, task, config, params, run, which) -> dict:
    """Accuracy and training time of baselines (a) and (b) on ``task``."""
    import dataclasses

    from modjax.models import init_params
    from modjax.train import predict

    out = {}
    one = task.y_train.ndim == 1
    scratch = None
    for b in which:
        if b == "a" and one:
            cfg = dataclasses.replace(config, num_classes=2)
            start = dict(params, dense=init_params(cfg, run["seed"])["dense"])
        elif scratch is not None:  # (a) is (b) for 1:N and M:N: trained once
            out[f"acc_{b}"], out[f"train_s_{b}"] = scratch
            continue
        else:
            cfg, start = runner.paper_config(task, spec, config.cell, config.layers,
                                             units=run["units"]), None
        p, train_s = train_baseline(cfg, task, run, params=start)
        acc, _ = timed_accuracy(lambda x: predict(cfg, p, x), task.y_test, task.x_test)
        out[f"acc_{b}"], out[f"train_s_{b}"] = acc, train_s
        if start is None:
            scratch = (acc, train_s)
    return out


def save_row(store, row: dict, settings: dict, message: str, *args) -> None:
    """Store ``row`` with its ``settings``, write the store, and log ``message % args``."""
    store.put(row, settings)
    store.save()
    logging.info(message, *args)


# -- the binaries' driver ----------------------------------------------------------------------
def run_experiments(desc: dict, store, command: str, intra_fn, inter_fn) -> None:
    """Every pending row: ``intra_fn(spec, desc, cell, store, phases, command)`` per dataset and
    ``inter_fn(name, desc, cell, store, phases, command, cache)`` per inter problem."""
    phases = runner.Phases()
    from modjax import compile_cache

    compile_cache.enable()
    cache: dict = {}
    for cell in desc["cells"]:
        if "intra" in desc["parts"]:
            for spec in desc["specs"]:
                intra_fn(spec, desc, cell, store, phases, command)
        if "inter" in desc["parts"]:
            for name in desc["inter"]:
                inter_fn(name, desc, cell, store, phases, command, cache)
    store.save()
    logging.info("phases this run: %s", ", ".join(f"{k} {v:.1f}s"
                                                  for k, v in phases.seconds.items()))


def main(argv, *, FLAGS, binary: str, results_format: str, key, check_flags, intra_fn,
         inter_fn, render) -> None:
    """A binary's ``main``: compute (unless ``--render_only``), then render ``--report``;
    a ``ValueError`` exits 2 with one line."""
    import sys

    from absl import app

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)
    command = f"python -m {binary} " + " ".join(sys.argv[1:])
    try:
        if not FLAGS.render_only:
            desc = check_flags()
            run_experiments(desc, runner.ResultStore(FLAGS.out, results_format, key), command,
                            intra_fn, inter_fn)
        store = runner.ResultStore(FLAGS.out, results_format, key)
        for path in FLAGS.merge:  # for the report only; this run's store is not rewritten
            logging.info("report adds %d rows of %s", store.adopt(path), path)
        rows = list(store.rows.values())
        print(f"{len(rows)} rows in {store.path} and {len(FLAGS.merge)} merged file(s)")
        if FLAGS.report:
            render(rows, FLAGS.report, command)
            print(f"report: {FLAGS.report}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


# -- reports -----------------------------------------------------------------------------------
def summary_table(rows: List[dict], value: str, paper: Dict[tuple, Tuple[float, float]],
                  group: Sequence[str], extra: Sequence[Tuple[str, str]] = ()
                  ) -> Tuple[List[str], List[List[str]], List[dict]]:
    """Mean and median of ``value`` per ``group`` key, beside the paper's ``(mean, median)``.

    ``paper`` maps ``(part, io, cell)`` to the paper's numbers; ``extra`` adds
    ``(header, row field)`` means. Returns ``(headers, text rows, json rows)``.
    """
    keys = sorted({tuple(r[g] for g in group) for r in rows}, key=str)
    headers = list(group) + ["n", "mean", "median", "paper mean", "paper median"]
    headers += [h for h, _ in extra]
    out, js = [], []
    for k in keys:
        sel = [r for r in rows if tuple(r[g] for g in group) == k]
        mean, med, n = runner.mean_median(r.get(value) for r in sel)
        pk = dict(zip(group, k))
        pm = paper.get((pk.get("part"), pk.get("io"), pk.get("cell")))
        ex = [runner.mean_median(r.get(f) for r in sel)[0] for _, f in extra]
        label = [runner.IO_LABELS.get(v, v) if g == "io" else str(v) for g, v in zip(group, k)]
        out.append(label + [str(n), runner.fmt(mean, signed=True), runner.fmt(med, signed=True),
                            runner.fmt(pm and pm[0], signed=True),
                            runner.fmt(pm and pm[1], signed=True)]
                   + [runner.fmt(e, ".3g") for e in ex])
        js.append(dict(pk, n=n, mean=mean, median=med, paper_mean=pm and pm[0],
                       paper_median=pm and pm[1], **{f: e for (_, f), e in zip(extra, ex)}))
    return headers, out, js


def render_report(path: str, title: str, lead: str, bullets: List[str],
                  sections: List[Tuple[str, str]], doc: dict, command: str) -> None:
    """Write ``path`` (markdown: title, lead, the command, hardware, ``bullets``, the data
    caveats, then ``sections``) and ``<path stem>.json`` (``doc`` with command and hardware)."""
    hw = runner.hardware()
    made_by = sorted({r.get("command", "?") for r in doc.get("rows", [])})
    md = [f"# {title}", "", lead, "", f"* Command (this report): `{command}`",
          f"* Hardware: {hw}"]
    md += [f"* Rows computed by: `{m}`" for m in made_by]
    md += [f"* {b}" for b in bullets]
    md += [f"* Data: {c}" for c in runner.DATA_CAVEATS.values()] + [""]
    for head, body in sections:
        md += [f"## {head}", "", body, ""]
    runner.write_atomic(path, "\n".join(md))
    runner.write_atomic(os.path.splitext(path)[0] + ".json",
                        json.dumps(dict(doc, command=command, hardware=hw), indent=1,
                                   sort_keys=True, default=str))


def paper_cells(table: str) -> Dict[tuple, Tuple[float, float]]:
    """The paper's ``(mean, median)`` per ``(part, io, cell)`` of Table III or IV."""
    return paper_results.reuse_table(table)
