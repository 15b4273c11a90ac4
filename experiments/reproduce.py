"""Reproduce the paper's RQ1 (Table II): train, decompose, compose, compare δ with the paper.

    python -m experiments.reproduce --dataset=clinc --cells=lstm,gru,simple \\
        --layers=1,2,3,4 --modes=rolled,unrolled --out=runs/reproduce

For every model (cell × layers) of the dataset's I/O type this

1. builds the paper's architecture (spec §7): H = 100 units, Embedding 50 (Brown 100), Dropout
   0.2 before the head for LSTM-4 (M:1) and LSTM-4/GRU-4 (1:N), Adam 1e-3, the paper's
   epochs / batch size per I/O type (1:1 5/32, M:1 15/128, 1:N 5/32, M:N 10/128);
2. trains it, or loads the checkpoint cached under ``<out>/models/<name>`` (resume);
3. evaluates the monolithic accuracy on the test split (many-output: every position, padding
   included, as the paper; the non-padding accuracy is reported too);
4. decomposes it in each requested mode (1:1 has no unrolled mode), composes the modules by
   arg-max vote and reports the composed accuracy, δ = composed − monolithic in points, the
   paper's mean Jaccard index over modules (spec §8.3) and the decomposition time;
5. prints our δ and JI beside the paper's, and writes ``<out>/results.json`` and
   ``<out>/results.md`` atomically after every row. A (dataset, cell, layers, mode) already in
   ``results.json`` is skipped unless ``--overwrite``.

Forward pass. Models are trained *and* evaluated with ``forward="artifact"``
(:attr:`modjax.ModelConfig.forward`): the authors' NumPy forward pass, which computed every
published accuracy and every monitored hidden state (logistic-sigmoid gates, their GRU
candidate), so the training function equals the paper's evaluation function. For LSTM and
vanilla models (sigmoid gates) it is the Keras function itself, and checkpoints trained before
the option existed are reused (the cache compares ``ModelConfig.function_key``).

Decomposition options come from ``--preset`` (default ``artifact``:
:func:`modjax.decompose_options` resolves the authors' script for each cell, I/O type, mode and
depth: cap, recurrent mask semantics, head rows; ``docs/method.md#artifact``). ``--max_remove``,
``--u_mask`` and ``--rolled_obs`` override it. A stored row decomposed with other options is
recomputed (the model is reused). Encoder-decoder (Tatoeba) is not handled here.

Synthetic data (no downloads): ``--dataset=synthetic:many_to_one`` (any of the four I/O types),
or ``--source=synthetic`` with a real dataset name (its I/O type's synthetic task).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app, flags, logging

from experiments import paper_results

FLAGS = flags.FLAGS
def define_flags():
    """Define this binary's flags (called only when it runs as a program, so importing
    the module from tests or other binaries defines nothing)."""
    flags.DEFINE_string("dataset", "clinc",
                        "mathqa (1:1), clinc (M:1), toxic (1:N), brown (M:N), or synthetic:<io> with "
                        "<io> one of one_to_one, many_to_one, one_to_many, many_to_many. tatoeba "
                        "(encoder-decoder) is out of scope.")
    flags.DEFINE_enum("source", "local", ["local", "hf", "synthetic"],
                      "Where the dataset comes from (modjax.data.load_dataset's source).")
    flags.DEFINE_list("cells", ["lstm", "gru", "simple"], "Cells: lstm, gru, simple (vanilla tanh).")
    flags.DEFINE_list("layers", ["1", "2", "3", "4"], "Model depths (stacked recurrent layers).")
    flags.DEFINE_list("modes", ["rolled", "unrolled"], "Decomposition modes.")
    flags.DEFINE_string("out", "runs/reproduce", "Output folder (results.json, results.md, models/).")
    flags.DEFINE_integer("epochs", None, "Training epochs (default: the paper's for the I/O type).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default: the paper's for the I/O type).")
    flags.DEFINE_enum("preset", "artifact", ["artifact", "paper_text", "library"],
                      "Decomposition options (modjax.decompose_options): 'artifact' reproduces "
                      "the published tables (each script's cap, u_mask and head rows).")
    flags.DEFINE_string("max_remove", None,
                        "Override the preset's cap: a number in [0, 1], or 'paper_script' (the "
                        "authors' per-script caps).")
    flags.DEFINE_enum("u_mask", None, ["code", "paper"],
                      "Override the preset's recurrent-kernel mask semantics.")
    flags.DEFINE_enum("rolled_obs", None, ["last_step", "all_steps"],
                      "Override what one-output rolled decompositions observe.")
    flags.DEFINE_integer("limit_train", None, "Use a random subset of this many training examples "
                         "(quick runs); the test split is untouched.")
    flags.DEFINE_integer("limit_test", None, "Use the first N test examples (quick runs).")
    flags.DEFINE_integer("units", 100, "Units per recurrent layer (the paper: 100).")
    flags.DEFINE_integer("seed", 0, "Seed for the subset, initialisation, shuffling and dropout.")
    flags.DEFINE_bool("overwrite", False, "Recompute rows already in results.json.")
    flags.DEFINE_bool("retrain", False, "Train again even if a cached checkpoint exists.")
    flags.DEFINE_bool("progress", True, "Print per-epoch training progress.")

IO_LABELS = {"one_to_one": "1:1", "many_to_one": "M:1", "one_to_many": "1:N",
             "many_to_many": "M:N", "encoder_decoder": "M:N enc-dec"}
#: The paper's (epochs, batch size) per I/O type (spec §7).
PAPER_TRAINING = {"one_to_one": (5, 32), "many_to_one": (15, 128), "one_to_many": (5, 32),
                  "many_to_many": (10, 128)}
REAL_DATASETS = ("mathqa", "clinc", "toxic", "brown")
IO_OF = {"mathqa": "one_to_one", "clinc": "many_to_one", "toxic": "one_to_many",
         "brown": "many_to_many"}  # as modjax.data.IO_OF, without importing JAX
SYNTHETIC_IOS = ("one_to_one", "many_to_one", "one_to_many", "many_to_many")
RESULTS_FORMAT = "modjax-reproduce"
RESULTS_VERSION = 1
GATE_ACTIVATION = "sigmoid"
FORWARD = "artifact"


# -- pieces that do not need JAX ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What ``--dataset``/``--source`` name: ``id`` is the results key's dataset field."""

    id: str
    name: str
    source: str
    io: str
    paper_name: Optional[str]  # Table II dataset, None for synthetic data


def parse_dataset(dataset: str, source: str) -> DatasetSpec:
    """Validate ``--dataset``/``--source``; raises ``ValueError`` with a clear message."""
    d = dataset.strip().lower()
    if d == "tatoeba" or d.startswith("tatoeba") or d == "synthetic:encoder_decoder":
        raise ValueError(
            "encoder-decoder models (tatoeba) are out of scope for experiments.reproduce: their "
            "modules are chosen by target language and scored by BLEU, not voted. Use "
            "modjax.greedy_decode with a decomposition's keep vectors instead.")
    if d.startswith("synthetic:"):
        io = d.split(":", 1)[1]
        if io not in SYNTHETIC_IOS:
            raise ValueError(f"--dataset=synthetic:<io> needs <io> in {SYNTHETIC_IOS}, got {io!r}")
        return DatasetSpec(id=d, name=d, source="synthetic", io=io, paper_name=None)
    if d not in REAL_DATASETS:
        raise ValueError(f"--dataset must be one of {REAL_DATASETS} or synthetic:<io>, got "
                         f"{dataset!r}")
    if source == "synthetic":
        return DatasetSpec(id=f"synthetic:{d}", name=d, source="synthetic", io=IO_OF[d],
                           paper_name=None)
    return DatasetSpec(id=d, name=d, source=source, io=IO_OF[d], paper_name=d)


def parse_max_remove(value: Optional[str]):
    """``None`` (the preset's), ``"paper_script"`` or a float in [0, 1]."""
    if value is None or value == "paper_script":
        return value
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"--max_remove must be 'paper_script' or a number, got {value!r}") \
            from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"--max_remove must be in [0, 1], got {v}")
    return v


def paper_dropout(cell: str, layers: int, io: str) -> float:
    """Dropout 0.2 before the head where spec §7 has it (LSTM-4 M:1, LSTM-4/GRU-4 1:N)."""
    if layers == 4 and ((io == "many_to_one" and cell == "lstm")
                        or (io == "one_to_many" and cell in ("lstm", "gru"))):
        return 0.2
    return 0.0


def paper_embed_dim(io: str) -> int:
    """Embedding width: 100 for M:N (Brown), 50 otherwise."""
    return 100 if io == "many_to_many" else 50


def modes_for(io: str, modes: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(run, not_applicable)``: 1:1 has no unrolled mode (a single step, spec §2.6)."""
    run, na = [], []
    for m in modes:
        (na if (io == "one_to_one" and m == "unrolled") else run).append(m)
    return run, na


def row_key(row: dict) -> Tuple[str, str, int, str]:
    return (row["dataset"], row["cell"], int(row["layers"]), row["mode"])


def model_name(spec: DatasetSpec, cell: str, layers: int, epochs: int, batch_size: int,
               seed: int, limit_train: Optional[int], units: int) -> str:
    """Cache folder name under ``<out>/models``; changes whenever the training changes."""
    name = f"{spec.id.replace(':', '-')}_{cell}-{layers}_e{epochs}_b{batch_size}_s{seed}"
    if units != 100:
        name += f"_h{units}"
    if limit_train:
        name += f"_n{limit_train}"
    return name


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary sibling and ``os.replace``."""
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_results(out: str) -> Dict[tuple, dict]:
    """Rows of ``<out>/results.json`` by key; empty if the file does not exist."""
    path = os.path.join(out, "results.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not a {RESULTS_FORMAT} results file")
    return {row_key(r): r for r in doc.get("rows", [])}


def _fmt(v, spec: str = ".2f", signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, ("+" if signed else "") + spec)


TABLE_HEADERS = ("Dataset", "I/O", "Model", "Mode", "Mono acc", "Comp acc", "δ ours",
                 "δ paper", "Mono (no pad)", "Comp (no pad)", "δ no pad", "JI ours",
                 "JI paper (avg)", "max_rm", "Decomp s", "Epochs")


def table_rows(rows: Sequence[dict]) -> List[List[str]]:
    out = []
    for r in rows:
        out.append([r["dataset"], IO_LABELS.get(r["io"], r["io"]), r["model"], r["mode"],
                    _fmt(100 * r["mono_acc"]), _fmt(100 * r["comp_acc"]),
                    _fmt(r["delta"], signed=True), _fmt(r.get("paper_delta"), signed=True),
                    _fmt(None if r.get("mono_acc_nopad") is None else 100 * r["mono_acc_nopad"]),
                    _fmt(None if r.get("comp_acc_nopad") is None else 100 * r["comp_acc_nopad"]),
                    _fmt(r.get("delta_nopad"), signed=True), _fmt(r["ji"], ".3f"),
                    _fmt(r.get("paper_avg_ji")), _fmt(r["max_remove"], ".2f"),
                    _fmt(r["decompose_s"], ".1f"), str(r["epochs"])])
    return out


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
         for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w[i]) if i >= 4 else c.ljust(w[i])
                                   for i, c in enumerate(cells))
    return "\n".join([line(headers), line(["-" * x for x in w])] + [line(r) for r in rows])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")
    out = ["| " + " | ".join(esc(h) for h in headers) + " |",
           "|" + "|".join("---" if i < 4 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def sort_rows(rows):
    order = {"lstm": 0, "gru": 1, "simple": 2}
    return sorted(rows, key=lambda r: (r["dataset"], order.get(r["cell"], 9), r["layers"],
                                       r["mode"]))


def write_results(out: str, rows_by_key: Dict[tuple, dict], command: str) -> None:
    """``results.json`` and ``results.md`` under ``out``, each written atomically."""
    rows = sort_rows(rows_by_key.values())
    doc = {"format": RESULTS_FORMAT, "version": RESULTS_VERSION,
           "gate_activation": GATE_ACTIVATION, "forward": FORWARD, "rows": rows}
    write_atomic(os.path.join(out, "results.json"), json.dumps(doc, indent=1, sort_keys=True))
    md = ["# modjax reproduction of Table II (RQ1)", "",
          f"Last command: `{command}`", "",
          "δ = composed − monolithic test accuracy in percentage points; many-output accuracies "
          "count padding positions as the paper does (the *no pad* columns do not). JI is the "
          "paper's Jaccard index (spec §8.3) averaged over modules; the paper column is the "
          "average over its row's 12 models. Gates are the logistic sigmoid in training and "
          "evaluation (the paper's evaluation forward, spec §3.3).", "",
          markdown_table(TABLE_HEADERS, table_rows(rows)), ""]
    write_atomic(os.path.join(out, "results.md"), "\n".join(md))


# -- the experiment ----------------------------------------------------------------------------
def _subset(data, limit_train, limit_test, seed):
    import numpy as np

    changes = {}
    if limit_train and limit_train < len(data.x_train):
        idx = np.sort(np.random.RandomState(seed).choice(len(data.x_train), limit_train,
                                                         replace=False))
        changes.update(x_train=data.x_train[idx], y_train=data.y_train[idx])
    if limit_test and limit_test < len(data.x_test):
        changes.update(x_test=data.x_test[:limit_test], y_test=data.y_test[:limit_test])
    return dataclasses.replace(data, **changes) if changes else data


def load_data(spec: DatasetSpec, seed: int):
    from modjax.data import load_dataset
    from modjax.data.synthetic import load_synthetic

    if spec.name.startswith("synthetic:"):
        return load_synthetic(spec.io, seed=seed)
    if spec.source == "synthetic":
        return load_dataset(spec.name, source="synthetic", seed=seed)
    return load_dataset(spec.name, source=spec.source)


def train_or_load(config, data, model_dir: str, *, epochs, batch_size, seed, retrain, progress):
    """Params of ``config`` from ``model_dir`` if cached (same config), else trained and saved."""
    from modjax.checkpoint import load_model, save_model
    from modjax.train import fit

    meta_path = model_dir + ".train.json"
    if not retrain and os.path.isdir(model_dir):
        try:
            cached_cfg, params = load_model(model_dir)
        except (ValueError, OSError) as e:
            logging.warning("cached model %s unreadable (%s): training again", model_dir, e)
        else:
            if cached_cfg.function_key() == config.function_key():
                meta = {}
                if os.path.isfile(meta_path):
                    with open(meta_path) as f:
                        meta = json.load(f)
                logging.info("loaded cached model %s (trained in %.1fs)", model_dir,
                             meta.get("train_s", float("nan")))
                return params, meta, True
            logging.warning("cached model %s has a different config: training again", model_dir)
    logging.info("training %s: %d examples, %d epochs, batch %d", os.path.basename(model_dir),
                 len(data.x_train), epochs, batch_size)
    t0 = time.perf_counter()
    params, hist = fit(config, data, epochs=epochs, batch_size=batch_size, seed=seed,
                       progress=progress, validate=False)
    train_s = time.perf_counter() - t0
    logging.info("trained in %.1fs (%.1fs/epoch), final loss %.4f", train_s, train_s / epochs,
                 hist["loss"][-1])
    save_model(model_dir, config, params)
    meta = {"train_s": train_s, "epoch_s": hist["seconds"], "loss": hist["loss"],
            "epochs": epochs, "batch_size": batch_size, "seed": seed,
            "n_train": int(len(data.x_train))}
    write_atomic(meta_path, json.dumps(meta, indent=1))
    return params, meta, False


def decompose_options(spec, cell, k, mode, max_remove_flag):
    """The :class:`modjax.DecomposeOptions` of one (model, mode): ``--preset`` resolved for the
    model, with the explicit flags on top."""
    from modjax.presets import artifact_max_remove, decompose_options as resolve

    over = {}
    if max_remove_flag is not None:
        over["max_remove"] = (artifact_max_remove(cell, spec.io, mode, k)
                              if max_remove_flag == "paper_script" else max_remove_flag)
    if FLAGS.u_mask is not None:
        over["u_mask"] = FLAGS.u_mask
    if FLAGS.rolled_obs is not None:
        over["rolled_obs"] = FLAGS.rolled_obs
    return resolve(FLAGS.preset, cell=cell, io=spec.io, mode=mode, layers=k,
                   dropout_before_head=paper_dropout(cell, k, spec.io) > 0, **over)


def evaluate_mode(config, params, data, mode, *, options):
    """Decompose with ``options`` (in ``mode``), compose, and measure. Returns a dict."""
    import jax
    import numpy as np

    from modjax import metrics
    from modjax.compose import compose
    from modjax.decompose import decompose

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decomp = decompose(params, data, model=config,
                           **dict(dataclasses.asdict(options), mode=mode))
        jax.block_until_ready(decomp.keep)
    decompose_s = time.perf_counter() - t0
    for w in caught:
        logging.warning("decompose: %s", w.message)
    removed = config.units - np.asarray(metrics.units_kept(decomp), np.float64)  # [C, L]
    logging.info("decomposed (%s) into %d modules in %.2fs; units removed per layer: mean %.2f "
                 "(min %.1f, max %.1f)", mode, decomp.num_modules, decompose_s,
                 removed.mean(), removed.min(), removed.max())
    t0 = time.perf_counter()
    pred, _ = compose(decomp, params)(data.x_test)
    pred = np.asarray(pred)
    compose_s = time.perf_counter() - t0
    y = np.asarray(data.y_test)
    comp = metrics.accuracy(pred, y)
    comp_np = metrics.accuracy(pred, y, ignore_padding=True) if config.many_output else None
    logging.info("composed %d modules on %d test examples in %.2fs: accuracy %.4f",
                 decomp.num_modules, len(y), compose_s, comp)
    t0 = time.perf_counter()
    ji = metrics.jaccard_paper(decomp, params)
    ji_s = time.perf_counter() - t0
    logging.info("Jaccard (paper) mean %.3f over %d modules in %.1fs", float(ji.mean()),
                 len(ji), ji_s)
    return {"comp_acc": comp, "comp_acc_nopad": comp_np, "ji": float(ji.mean()),
            "ji_per_module": [float(v) for v in ji], "decompose_s": decompose_s,
            "compose_s": compose_s, "ji_s": ji_s,
            "units_removed_mean": float(removed.mean()),
            "units_removed_per_layer": [float(v) for v in removed.mean(0)],
            "warnings": [str(w.message) for w in caught]}


def _enable_compilation_cache():
    import jax

    path = os.environ.get("MODJAX_JAX_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "modjax", "jax"))
    try:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception as e:  # pragma: no cover - cache is an optimisation only
        logging.warning("no persistent compilation cache: %s", e)


def run(argv_command: str) -> List[dict]:
    spec = parse_dataset(FLAGS.dataset, FLAGS.source)
    max_remove_flag = parse_max_remove(FLAGS.max_remove)
    cells = [c.strip().lower() for c in FLAGS.cells]
    cells = ["simple" if c == "vanilla" else c for c in cells]
    for c in cells:
        if c not in ("lstm", "gru", "simple"):
            raise ValueError(f"--cells entries must be lstm, gru or simple, got {c!r}")
    try:
        layers_list = [int(x) for x in FLAGS.layers]
    except ValueError:
        raise ValueError(f"--layers must be integers, got {FLAGS.layers}") from None
    if any(k < 1 for k in layers_list):
        raise ValueError(f"--layers must be >= 1, got {layers_list}")
    modes = [m.strip().lower() for m in FLAGS.modes]
    for m in modes:
        if m not in ("rolled", "unrolled"):
            raise ValueError(f"--modes entries must be rolled or unrolled, got {m!r}")
    run_modes, na_modes = modes_for(spec.io, modes)
    for m in na_modes:
        logging.info("%s (%s) has no %s mode (a single step): N/A, as in the paper", spec.id,
                     IO_LABELS[spec.io], m)
    p_epochs, p_bs = PAPER_TRAINING[spec.io]
    epochs = FLAGS.epochs or p_epochs
    batch_size = FLAGS.batch_size or p_bs
    out = FLAGS.out
    os.makedirs(out, exist_ok=True)
    results = load_results(out)
    paper_ok = True
    if spec.paper_name is not None:
        try:
            paper_results.table2()
        except FileNotFoundError:
            paper_ok = False
            logging.warning("paper table not found at %s: paper columns left empty",
                            paper_results.default_path())
    logging.info("%s (%s, %s): %d models x %d modes; epochs %d, batch %d, preset %s "
                 "(max_remove %s, u_mask %s, rolled_obs %s), forward %s; output %s", spec.id,
                 IO_LABELS[spec.io], spec.source, len(cells) * len(layers_list), len(run_modes),
                 epochs, batch_size, FLAGS.preset, FLAGS.max_remove, FLAGS.u_mask,
                 FLAGS.rolled_obs, FORWARD, out)

    data = None
    done_keys = []
    for cell in cells:
        for k in layers_list:
            todo = []
            for m in run_modes:
                key = (spec.id, cell, k, m)
                if key in results and not FLAGS.overwrite and not _options_changed(
                        results[key], decompose_options(spec, cell, k, m, max_remove_flag)):
                    old = results[key]
                    if (old.get("epochs"), old.get("batch_size"), old.get("seed"),
                            old.get("limit_train")) != (epochs, batch_size, FLAGS.seed,
                                                        FLAGS.limit_train):
                        logging.warning("%s already in results.json with other settings "
                                        "(epochs %s, batch %s, seed %s, limit_train %s): kept; "
                                        "pass --overwrite to recompute", key, old.get("epochs"),
                                        old.get("batch_size"), old.get("seed"),
                                        old.get("limit_train"))
                    else:
                        logging.info("skip %s: already in results.json", key)
                    done_keys.append(key)
                else:
                    todo.append(m)
            if not todo:
                continue
            if data is None:
                _enable_compilation_cache()
                t0 = time.perf_counter()
                data = _subset(load_data(spec, FLAGS.seed), FLAGS.limit_train, FLAGS.limit_test,
                               FLAGS.seed)
                logging.info("loaded %s: %d train / %d test, %d classes, vocab %d, in_len %d "
                             "(%.1fs)", spec.id, len(data.x_train), len(data.x_test),
                             data.num_classes, data.vocab_size, data.in_len,
                             time.perf_counter() - t0)
                if data.io != spec.io:
                    raise ValueError(f"dataset {spec.id} has io {data.io}, expected {spec.io}")
            results.update(run_model(spec, data, cell, k, todo, epochs, batch_size,
                                     max_remove_flag, argv_command, results))
            done_keys += [(spec.id, cell, k, m) for m in todo]
    shown = [results[key] for key in done_keys if key in results]
    if not shown:
        logging.warning("nothing to show: no (cell, layers, mode) applies")
    else:
        print(f"\nTable II reproduction, {spec.id} ({IO_LABELS[spec.io]}); δ in points "
              f"(composed − monolithic accuracy); paper δ from {paper_results.TABLE2_FILE}"
              + ("" if paper_ok else " (not found)"))
        print(text_table(TABLE_HEADERS, table_rows(sort_rows(shown))))
        print(f"\nresults: {os.path.join(out, 'results.json')}, "
              f"{os.path.join(out, 'results.md')}")
    return shown


def _options_changed(row: dict, options) -> bool:
    """Whether a stored row was decomposed with other options (or another forward pass)."""
    # sigmoid-gated LSTM and vanilla models compute one function under both forward passes
    same_fn = row.get("cell") != "gru"
    old = (row.get("max_remove"), row.get("u_mask"), row.get("head_rows", "step"),
           row.get("rolled_obs"), FORWARD if same_fn else row.get("forward", "keras"))
    new = (options.max_remove, options.u_mask, options.head_rows, options.rolled_obs, FORWARD)
    if old != new:
        logging.info("%s: stored row decomposed with %s, now %s: recomputing", row_key(row),
                     old, new)
    return old != new


def run_model(spec, data, cell, k, modes, epochs, batch_size, max_remove_flag, command,
              results) -> Dict[tuple, dict]:
    """Train/load one model, evaluate it, and decompose it in every mode of ``modes``."""
    import numpy as np

    from modjax import metrics
    from modjax.models import config_for
    from modjax.train import predict

    label = paper_results.model_label(cell, k)
    dropout = paper_dropout(cell, k, spec.io)
    config = config_for(data, cell=cell, layers=k, units=FLAGS.units,
                        embed_dim=paper_embed_dim(spec.io), gate_activation=GATE_ACTIVATION,
                        dropout=dropout, forward=FORWARD)
    name = model_name(spec, cell, k, epochs, batch_size, FLAGS.seed, FLAGS.limit_train,
                      FLAGS.units)
    model_dir = os.path.join(FLAGS.out, "models", name)
    logging.info("== %s on %s: %s", label, spec.id, name)
    params, meta, cached = train_or_load(config, data, model_dir, epochs=epochs,
                                         batch_size=batch_size, seed=FLAGS.seed,
                                         retrain=FLAGS.retrain, progress=FLAGS.progress)
    t0 = time.perf_counter()
    mono_pred = predict(config, params, data.x_test)
    y = np.asarray(data.y_test)
    mono = metrics.accuracy(mono_pred, y)
    mono_np = metrics.accuracy(mono_pred, y, ignore_padding=True) if config.many_output else None
    logging.info("monolithic test accuracy %.4f%s (%.1fs)", mono,
                 "" if mono_np is None else f" (no padding {mono_np:.4f})",
                 time.perf_counter() - t0)
    new = {}
    for mode in modes:
        opts = decompose_options(spec, cell, k, mode, max_remove_flag)
        mr = opts.max_remove
        logging.info("-- %s %s: decompose (max_remove %.2f, u_mask %s, head_rows %s)", label,
                     mode, mr, opts.u_mask, opts.head_rows)
        m = evaluate_mode(config, params, data, mode, options=opts)
        pd = pj = None
        if spec.paper_name is not None:
            try:
                pd = paper_results.paper_delta(spec.paper_name, cell, k, mode)
                pj = paper_results.paper_avg_ji(spec.paper_name, mode)
            except FileNotFoundError:
                pass
        row = {
            "dataset": spec.id, "source": spec.source, "io": spec.io, "cell": cell, "layers": k,
            "model": label, "mode": mode, "epochs": epochs, "batch_size": batch_size,
            "seed": FLAGS.seed, "limit_train": FLAGS.limit_train, "limit_test": FLAGS.limit_test,
            "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test)),
            "units": FLAGS.units, "embed_dim": config.embed_dim, "dropout": dropout,
            "gate_activation": GATE_ACTIVATION, "forward": FORWARD, "preset": FLAGS.preset,
            "max_remove": float(mr), "u_mask": opts.u_mask, "head_rows": opts.head_rows,
            "rolled_obs": opts.rolled_obs, "model_dir": model_dir, "model_cached": cached,
            "train_s": meta.get("train_s"), "train_loss": (meta.get("loss") or [None])[-1],
            "mono_acc": mono, "mono_acc_nopad": mono_np,
            "delta": 100.0 * (m["comp_acc"] - mono),
            "delta_nopad": None if mono_np is None else 100.0 * (m["comp_acc_nopad"] - mono_np),
            "paper_delta": pd, "paper_avg_ji": pj,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        row.update(m)
        logging.info("%s %s: monolithic %.2f%%, composed %.2f%%, δ %+.2f (paper %s), JI %.3f "
                     "(paper avg %s)", label, mode, 100 * mono, 100 * m["comp_acc"],
                     row["delta"], _fmt(pd, signed=True), m["ji"], _fmt(pj))
        key = row_key(row)
        new[key] = row
        results[key] = row
        write_results(FLAGS.out, results, command)  # after every row: a crash loses one row
    return new


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)
    command = "python -m experiments.reproduce " + " ".join(sys.argv[1:])
    try:
        run(command)
    except ValueError as e:
        if str(e).startswith("--") or "out of scope" in str(e):
            raise app.UsageError(str(e))
        raise


if __name__ == "__main__":
    define_flags()
    app.run(main)
