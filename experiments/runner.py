"""What every paper-experiment binary shares: data, the paper's models, a resumable result store,
timing, and rendering.

The binaries (``experiments.reproduce`` for Table II, and the later reuse / replacement /
translation tables) are thin over this module:

* :func:`parse_dataset` / :func:`load_data` — which dataset, from where, optionally subsampled;
* :func:`paper_config` / :func:`train_or_load` — the paper's architecture for a dataset, trained
  once and cached under ``<out>/models/<name>`` (a checkpoint whose config differs is retrained);
* :class:`ResultStore` — rows in ``results.json``, written atomically after every row. Each row
  carries the *settings* that produced it (every flag or option that changes a number); a stored
  row whose settings differ from this run's is recomputed, never shown as this run's result;
* :class:`Phases` and :func:`compile_seconds` — wall time per phase and XLA compile time;
* :func:`hardware`, :func:`text_table`, :func:`markdown_table`, :func:`write_atomic`.

Nothing here imports JAX at module import time, so flag parsing and the tests of the pure
pieces stay fast.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from absl import logging

IO_LABELS = {"one_to_one": "1:1", "many_to_one": "M:1", "one_to_many": "1:N",
             "many_to_many": "M:N", "encoder_decoder": "M:N enc-dec"}
#: The paper's (epochs, batch size) per I/O type.
PAPER_TRAINING = {"one_to_one": (5, 32), "many_to_one": (15, 128), "one_to_many": (5, 32),
                  "many_to_many": (10, 128)}
REAL_DATASETS = ("mathqa", "clinc", "toxic", "brown")
IO_OF = {"mathqa": "one_to_one", "clinc": "many_to_one", "toxic": "one_to_many",
         "brown": "many_to_many"}  # as modjax.data.IO_OF, without importing JAX
SYNTHETIC_IOS = ("one_to_one", "many_to_one", "one_to_many", "many_to_many")
CELLS = ("lstm", "gru", "simple")
#: Bidirectional variants (``bilstm`` ...): every recurrent layer runs both directions, merged
#: by concatenation (``docs/method.md#bidirectional``); not in the paper.
BI_CELLS = tuple("bi" + c for c in CELLS)


def split_cell(cell: str) -> Tuple[str, bool]:
    """``"bilstm" -> ("lstm", True)``, ``"lstm" -> ("lstm", False)``."""
    return (cell[2:], True) if cell in BI_CELLS else (cell, False)
#: What the data behind each dataset lacks against the paper's, and what it does to comparing.
DATA_CAVEATS = {
    "mathqa": "MathQA's train split is not available offline: models train on the dev split "
              "(4,475 problems, about 15% of the paper's 29.8k) and are tested on the original "
              "test split (2,985). Monolithic accuracies are lower than the paper's; δ compares "
              "a model with its own modules, so it stays comparable in kind, not in level.",
    "toxic": "Wiki-toxicity is a real 40,184-row sample of Kaggle's train.csv, split here for "
             "training and test; the paper trained on the full 159,571 rows and tested on "
             "Kaggle's labelled test set. Fewer rare labels are seen, so rare-label modules are "
             "sampled from fewer positives.",
}


# -- datasets ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset named on the command line: ``id`` keys results; ``paper_name`` is the Table II
    dataset it reproduces (``None`` for synthetic data)."""

    id: str
    name: str
    source: str
    io: str
    paper_name: Optional[str]


def parse_dataset(dataset: str, source: str = "local") -> DatasetSpec:
    """Validate a dataset name (``clinc``, ``synthetic:many_to_one`` ...) and its ``source``.

    Raises:
      ValueError: naming ``--dataset`` and the accepted names.
    """
    d = dataset.strip().lower()
    if d == "tatoeba" or d.startswith("tatoeba") or d == "synthetic:encoder_decoder":
        raise ValueError(
            "--dataset: encoder-decoder models (tatoeba) are not classifiers: their modules are "
            "chosen by target language and scored by BLEU, not voted; this binary handles "
            f"{REAL_DATASETS} and synthetic:<io>")
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


def _split_fields(data, split: str) -> List[str]:
    """The per-example arrays of a split (encoder-decoder: also decoder inputs and languages)."""
    return [f"{k}_{split}" for k in ("x", "y", "decoder_input", "concern")
            if getattr(data, f"{k}_{split}", None) is not None]


def subset(data, limit_train: Optional[int], limit_test: Optional[int], seed: int):
    """``data`` with a seeded random subset of ``limit_train`` training examples (sorted, so
    dataset order is kept) and the first ``limit_test`` test examples."""
    import numpy as np

    changes = {}
    if limit_train and limit_train < len(data.x_train):
        idx = np.sort(np.random.RandomState(seed).choice(len(data.x_train), limit_train,
                                                         replace=False))
        changes.update({k: getattr(data, k)[idx] for k in _split_fields(data, "train")})
    if limit_test and limit_test < len(data.x_test):
        changes.update({k: getattr(data, k)[:limit_test] for k in _split_fields(data, "test")})
    return dataclasses.replace(data, **changes) if changes else data


def select_train(data, idx):
    """``data`` with only the training examples ``idx`` (indices or a boolean mask ``[N]``); the
    test split, vocabularies and class names unchanged."""
    import numpy as np

    idx = np.asarray(idx)
    return dataclasses.replace(data, **{k: getattr(data, k)[idx]
                                        for k in _split_fields(data, "train")})


def load_data(spec: DatasetSpec, seed: int, *, limit_train: Optional[int] = None,
              limit_test: Optional[int] = None):
    """The :class:`~modjax.data.base.TaskData` of ``spec`` (subsampled as asked), with a log line
    of its sizes and load time."""
    from modjax.data import load_dataset
    from modjax.data.synthetic import load_synthetic

    t0 = time.perf_counter()
    if spec.name.startswith("synthetic:"):
        data = load_synthetic(spec.io, seed=seed)
    elif spec.source == "synthetic":
        data = load_dataset(spec.name, source="synthetic", seed=seed)
    else:
        logging.info("loading %s from %s (tokenising; a few seconds)", spec.name, spec.source)
        data = load_dataset(spec.name, source=spec.source)
    data = subset(data, limit_train, limit_test, seed)
    if data.io != spec.io:
        raise ValueError(f"dataset {spec.id} has io {data.io}, expected {spec.io}")
    logging.info("loaded %s: %d train / %d test, %d classes, vocab %d, in_len %d (%.1fs)",
                 spec.id, len(data.x_train), len(data.x_test), data.num_classes,
                 data.vocab_size, data.in_len, time.perf_counter() - t0)
    return data


# -- the paper's models ------------------------------------------------------------------------
def paper_dropout(cell: str, layers: int, io: str) -> float:
    """Dropout 0.2 before the head where the paper's models have it (LSTM-4 M:1, LSTM-4 and
    GRU-4 1:N); 0 elsewhere."""
    cell = split_cell(cell)[0]
    if layers == 4 and ((io == "many_to_one" and cell == "lstm")
                        or (io == "one_to_many" and cell in ("lstm", "gru"))):
        return 0.2
    return 0.0


def paper_embed_dim(io: str) -> int:
    """Embedding width: 100 for M:N (Brown), 50 otherwise."""
    return 100 if io == "many_to_many" else 50


def model_label(cell: str, layers: int) -> str:
    """How users name the model: ``LSTM-2``, ``GRU-1``, ``RNN-3`` (vanilla), ``BiLSTM-2``."""
    base, bi = split_cell(cell)
    return ("Bi" if bi else "") + {"lstm": "LSTM", "gru": "GRU", "simple": "RNN",
                                   "vanilla": "RNN"}[base] + f"-{layers}"


def model_name(spec: DatasetSpec, cell: str, layers: int, epochs: int, batch_size: int,
               seed: int, limit_train: Optional[int], units: int) -> str:
    """Cache folder name under ``<out>/models``; changes whenever the training changes."""
    name = f"{spec.id.replace(':', '-')}_{cell}-{layers}_e{epochs}_b{batch_size}_s{seed}"
    if units != 100:
        name += f"_h{units}"
    if limit_train:
        name += f"_n{limit_train}"
    return name


def paper_config(data, spec: DatasetSpec, cell: str, layers: int, *, units: int = 100,
                 forward: str = "artifact"):
    """The paper's architecture for ``spec`` (H units, its embedding width and dropout), with
    the logistic-sigmoid gates of the authors' evaluation forward pass (``docs/method.md#artifact``).

    ``forward="artifact"`` also selects the authors' GRU candidate; models are trained with the
    function they are evaluated with.
    """
    from modjax.models import config_for

    cell, bidirectional = split_cell(cell)
    return config_for(data, cell=cell, layers=layers, units=units, bidirectional=bidirectional,
                      embed_dim=paper_embed_dim(spec.io), gate_activation="sigmoid",
                      dropout=paper_dropout(cell, layers, spec.io), forward=forward)


def load_cached(config, dirs: Sequence[str]):
    """``(params, meta, where)`` of the first checkpoint among ``dirs`` that computes the same
    function as ``config`` (:meth:`~modjax.ModelConfig.function_key`), or ``None``; ``meta`` is
    its ``.train.json`` (training time, losses) or ``{}``. Unreadable or different entries are
    logged and skipped; nothing is written."""
    from modjax.checkpoint import load_model

    for where in dirs:
        if not os.path.isdir(where):
            continue
        try:
            cached_cfg, params = load_model(where)
        except (ValueError, OSError) as e:
            logging.warning("cached model %s unreadable (%s): not used", where, e)
            continue
        if cached_cfg.function_key() != config.function_key():
            logging.warning("cached model %s has a different config: not used", where)
            continue
        meta = {}
        if os.path.isfile(where + ".train.json"):
            with open(where + ".train.json") as f:
                meta = json.load(f)
        logging.info("loaded cached model %s (trained in %.1fs)", where,
                     meta.get("train_s", float("nan")))
        return params, meta, where
    return None


def parse_layers(values) -> List[int]:
    """``--layers`` entries as depths ``>= 1``; ``ValueError`` naming the flag otherwise."""
    try:
        layers = [int(x) for x in values]
    except ValueError:
        raise ValueError(f"--layers must be integers >= 1, got {values}") from None
    if not layers or any(k < 1 for k in layers):
        raise ValueError(f"--layers must be integers >= 1, got {values}")
    return layers


def train_or_load(config, data, model_dir: str, *, epochs: int, batch_size: int, seed: int,
                  retrain: bool = False, progress: bool = False,
                  read_only_dirs: Sequence[str] = ()):
    """``(params, meta, cached)``: the checkpoint at ``model_dir`` (or first at one of
    ``read_only_dirs``, which are never written) if it computes the same function as
    ``config`` (:func:`load_cached`), else a freshly trained model saved at ``model_dir``.
    ``meta`` holds the training time and losses."""
    from modjax.checkpoint import save_model
    from modjax.train import fit

    found = None if retrain else load_cached(config, tuple(read_only_dirs) + (model_dir,))
    if found is not None:
        return found[0], found[1], True
    meta_path = model_dir + ".train.json"
    logging.info("training %s: %d examples, %d epochs, batch %d", os.path.basename(model_dir),
                 len(data.x_train), epochs, batch_size)
    t0, c0 = time.perf_counter(), time.process_time()
    params, hist = fit(config, data, epochs=epochs, batch_size=batch_size, seed=seed,
                       progress=progress, validate=False)
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    logging.info("trained in %.1fs (%.1fs/epoch, %.1f CPU s), final loss %.4f", train_s,
                 train_s / epochs, cpu_s, hist["loss"][-1])
    save_model(model_dir, config, params, overwrite=True)  # our own cache entry
    meta = {"train_s": train_s, "train_cpu_s": cpu_s, "epoch_s": hist["seconds"],
            "loss": hist["loss"], "epochs": epochs, "batch_size": batch_size, "seed": seed,
            "n_train": int(len(data.x_train))}
    write_atomic(meta_path, json.dumps(meta, indent=1))
    return params, meta, False


# -- results -----------------------------------------------------------------------------------
def write_atomic(path: str, content) -> None:
    """Write ``content`` (str or bytes) to ``path`` atomically, with the library's writer
    (:func:`modjax.atomic.write_bytes`: synced temporary sibling, umask, ``os.replace``)."""
    from modjax.atomic import write_bytes

    write_bytes(path, content.encode() if isinstance(content, str) else content)


def settings_digest(settings: dict) -> str:
    """A short stable digest of a settings dict (canonical JSON)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


class ResultStore:
    """Rows of one experiment in ``<out>/results.json``, keyed by ``key_fields``.

    Every row stores ``settings`` — all that changes its numbers (training, data limits, the
    resolved decomposition options). :meth:`fresh` returns a stored row only when its settings
    equal this run's; a row made with other settings is reported as stale and recomputed.
    """

    def __init__(self, out: str, fmt: str, key_fields: Sequence[str], version: int = 2):
        self.path = os.path.join(out, "results.json")
        self.fmt, self.version, self.key_fields = fmt, version, tuple(key_fields)
        self.rows: Dict[tuple, dict] = {}
        if os.path.isfile(self.path):
            with open(self.path) as f:
                doc = json.load(f)
            if doc.get("format") != fmt:
                raise ValueError(f"--out: {self.path} is not a {fmt} results file "
                                 f"(format {doc.get('format')!r})")
            if doc.get("version") != version:
                logging.warning("%s has version %s, this binary writes %s: its rows are "
                                "recomputed", self.path, doc.get("version"), version)
            else:
                self.rows = {self.key(r): r for r in doc.get("rows", [])}

    def adopt(self, path: str) -> int:
        """Take the rows of a generated report's JSON (``rows``, each with its ``settings``)
        that this store lacks; returns how many. A later session resumes a run this way from
        the committed report, recomputing only what is missing or made with other settings."""
        with open(path) as f:
            doc = json.load(f)
        rows = doc.get("rows") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise ValueError(f"--resume_from: {path} holds no 'rows' list")
        n = 0
        for r in rows:
            if not isinstance(r, dict) or "settings" not in r:
                raise ValueError(f"--resume_from: {path} has a row without its settings")
            if self.key(r) not in self.rows:
                self.rows[self.key(r)] = r
                n += 1
        return n

    def key(self, row: dict) -> tuple:
        return tuple(row[k] for k in self.key_fields)

    def fresh(self, key: tuple, settings: dict) -> Optional[dict]:
        """The stored row for ``key`` if it was made with ``settings``, else ``None`` (a row
        with other settings is logged as stale)."""
        row = self.rows.get(key)
        if row is None:
            return None
        if row.get("settings") != json.loads(json.dumps(settings, default=str)):
            old, new = row.get("settings") or {}, settings
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            logging.warning("%s in results.json was made with other settings (%s): recomputing",
                            key, ", ".join(diff))
            return None
        return row

    def put(self, row: dict, settings: dict) -> dict:
        row = dict(row, settings=json.loads(json.dumps(settings, default=str)),
                   settings_digest=settings_digest(settings))
        self.rows[self.key(row)] = row
        return row

    def save(self, **extra) -> None:
        doc = {"format": self.fmt, "version": self.version, **extra,
               "rows": sorted(self.rows.values(), key=lambda r: json.dumps(
                   [r[k] for k in self.key_fields], default=str))}
        write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True))


# -- timing ------------------------------------------------------------------------------------
class Phases:
    """Wall time per named phase: ``with phases("train"): ...``; :attr:`seconds` sums them."""

    def __init__(self):
        self.seconds: Dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


_COMPILE_LOG: List[float] = []
_LISTENING = False


def _on_duration(event: str, duration: float, **_):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILE_LOG.append(float(duration))


@contextlib.contextmanager
def compile_seconds():
    """Yields a one-element list that holds, on exit, the XLA compile seconds spent inside the
    block (from JAX's monitoring events; 0 when everything came from the caches)."""
    global _LISTENING
    import jax

    if not _LISTENING:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _LISTENING = True
    start = len(_COMPILE_LOG)
    box = [0.0]
    try:
        yield box
    finally:
        box[0] = float(sum(_COMPILE_LOG[start:]))


def hardware() -> str:
    """One line: CPU model, cores, memory, JAX backend and version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 2 ** 20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import jax

        dev = f"; JAX {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device(s))"
    except Exception:  # pragma: no cover
        dev = ""
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores{mem}{dev}"


def exit_on_value_error(fn, *args):
    """``fn(*args)``; a ``ValueError`` (a bad flag or input, its message naming it) ends the
    program with its message on one line of stderr and exit status 2, without a traceback."""
    import sys

    try:
        return fn(*args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def main_of(program, binary: str):
    """An absl ``main`` that runs ``program(command)`` (verbose logging unless
    ``--verbosity``; a ``ValueError`` exits 2 with one line)."""
    import sys

    from absl import app, flags

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.INFO)
        exit_on_value_error(program, f"python -m experiments.{binary} "
                            + " ".join(sys.argv[1:]))

    return main


# -- rendering ---------------------------------------------------------------------------------
def fmt(v, spec: str = ".2f", signed: bool = False) -> str:
    """A number for a table; ``–`` for missing or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, ("+" if signed else "") + spec)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 4) -> str:
    """A fixed-width table; the first ``left`` columns left-aligned, the rest right-aligned."""
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
         for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w[i]) if i >= left else c.ljust(w[i])
                         for i, c in enumerate(cells))
    return "\n".join([line(headers), line(["-" * x for x in w])] + [line(r) for r in rows])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 4) -> str:
    """A GitHub markdown table; the first ``left`` columns left-aligned."""
    def esc(s):
        return str(s).replace("|", "\\|")
    out = ["| " + " | ".join(esc(h) for h in headers) + " |",
           "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def save_figure(fig, path: str) -> None:
    """Save a matplotlib figure as PNG atomically (:func:`modjax.report.save_figure_atomic`)."""
    from modjax.report import save_figure_atomic

    save_figure_atomic(fig, path)


def mean_median(values: Iterable[Optional[float]]) -> Tuple[Optional[float], Optional[float], int]:
    """``(mean, median, n)`` over the values that are not ``None``; ``(None, None, 0)`` if none."""
    import statistics

    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None, 0
    return statistics.fmean(v), statistics.median(v), len(v)
