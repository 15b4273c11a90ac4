"""The paper's published Table II (RQ1): δ = composed − monolithic accuracy, and the avg. JI.

The numbers live in ``table2_delta.csv`` (transcribed from the paper's Table II), one row per
I/O type × dataset × mode, one column per model (``lstm-1`` … ``vanilla-4``) plus ``avg_ji``.
δ is in percentage points (BLEU-1 points for Tatoeba); ``N/A`` cells (1:1 unrolled) read as
``None``.

The CSV is looked up in ``$MODJAX_PAPER_RESULTS`` (a folder holding ``table2_delta.csv``, or the
file itself), else ``../shared/paper_results`` relative to the working directory, else relative
to the folder that holds this checkout.

    >>> from experiments import paper_results
    >>> paper_results.paper_delta("clinc", "lstm", 1, "unrolled")
    0.96
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import os
from typing import Dict, Optional, Tuple

TABLE2_FILE = "table2_delta.csv"

#: Paper dataset label -> modjax dataset name (Tatoeba: one row per target language).
DATASET_NAMES = {
    "Math QA": "mathqa",
    "Clinc OOS": "clinc",
    "Toxic Comment": "toxic",
    "Brown Corpus": "brown",
    "Tatoeba EN-FR": "tatoeba_fr",
    "Tatoeba EN-DE": "tatoeba_de",
    "Tatoeba EN-IT": "tatoeba_it",
}
#: Paper I/O label -> modjax ``io``.
IO_NAMES = {"1:1": "one_to_one", "M:1": "many_to_one", "1:N": "one_to_many",
            "M:N": "many_to_many", "M:N enc-dec": "encoder_decoder"}
#: modjax cell name -> the paper's column prefix.
CELL_COLUMNS = {"lstm": "lstm", "gru": "gru", "simple": "vanilla", "vanilla": "vanilla"}
#: Display names of the models (``LSTM-1``, ``GRU-2``, ``Vanilla-3``).
CELL_LABELS = {"lstm": "LSTM", "gru": "GRU", "simple": "Vanilla", "vanilla": "Vanilla"}


@dataclasses.dataclass(frozen=True)
class Table2Row:
    """One row of Table II.

    Attributes:
      io: modjax I/O type (``many_to_one`` ...); ``io_label`` the paper's (``M:1``).
      dataset: modjax dataset name (``clinc``; ``tatoeba_fr`` ...); ``dataset_label`` the paper's.
      mode: ``rolled`` or ``unrolled``.
      delta: ``{"lstm-1": 0.96, ..., "vanilla-4": ...}``; ``None`` where the paper has N/A.
      avg_ji: the row's average Jaccard index over the 12 models, or ``None``.
    """

    io: str
    io_label: str
    dataset: str
    dataset_label: str
    mode: str
    delta: Dict[str, Optional[float]]
    avg_ji: Optional[float]


def _num(s: str) -> Optional[float]:
    s = s.strip().replace("\u2212", "-")
    if s.upper() in ("N/A", "NA", ""):
        return None
    return float(s)


def default_path() -> str:
    """Where ``table2_delta.csv`` is read from (see the module docstring)."""
    env = os.environ.get("MODJAX_PAPER_RESULTS")
    if env:
        return env if env.endswith(".csv") else os.path.join(env, TABLE2_FILE)
    here = os.path.abspath(os.path.join(os.getcwd(), "..", "shared", "paper_results", TABLE2_FILE))
    if os.path.isfile(here):
        return here
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.abspath(os.path.join(root, "..", "shared", "paper_results", TABLE2_FILE))


def parse_table2(path: Optional[str] = None) -> Tuple[Table2Row, ...]:
    """Parse Table II from ``path`` (default :func:`default_path`). Raises FileNotFoundError."""
    path = path or default_path()
    rows = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            ds_label = rec["dataset"].strip()
            io_label = rec["io"].strip()
            models = {k.strip(): _num(v) for k, v in rec.items()
                      if k and k.strip() not in ("io", "dataset", "mode", "avg_ji")}
            rows.append(Table2Row(
                io=IO_NAMES.get(io_label, io_label), io_label=io_label,
                dataset=DATASET_NAMES.get(ds_label, ds_label.lower().replace(" ", "_")),
                dataset_label=ds_label, mode=rec["mode"].strip().lower(), delta=models,
                avg_ji=_num(rec.get("avg_ji", ""))))
    return tuple(rows)


@functools.lru_cache(maxsize=4)
def _cached(path: str) -> Tuple[Table2Row, ...]:
    return parse_table2(path)


def table2(path: Optional[str] = None) -> Tuple[Table2Row, ...]:
    """Table II (cached per path)."""
    return _cached(os.path.abspath(path or default_path()))


def model_key(cell: str, layers: int) -> str:
    """The CSV column of a model: ``("simple", 2) -> "vanilla-2"``."""
    if cell not in CELL_COLUMNS:
        raise ValueError(f"cell must be one of {sorted(CELL_COLUMNS)}, got {cell!r}")
    return f"{CELL_COLUMNS[cell]}-{int(layers)}"


def model_label(cell: str, layers: int) -> str:
    """Display name of a model: ``("lstm", 1) -> "LSTM-1"``."""
    return f"{CELL_LABELS.get(cell, cell)}-{int(layers)}"


def find_row(dataset: str, mode: str, path: Optional[str] = None) -> Optional[Table2Row]:
    """The Table II row of ``dataset`` (modjax name) and ``mode``, or ``None``."""
    for row in table2(path):
        if row.dataset == dataset and row.mode == mode:
            return row
    return None


def paper_delta(dataset: str, cell: str, layers: int, mode: str,
                path: Optional[str] = None) -> Optional[float]:
    """The paper's δ (points) for a model, or ``None`` (N/A, or no such row)."""
    row = find_row(dataset, mode, path)
    return None if row is None else row.delta.get(model_key(cell, layers))


def paper_avg_ji(dataset: str, mode: str, path: Optional[str] = None) -> Optional[float]:
    """The paper's average JI of a (dataset, mode) row, or ``None``."""
    row = find_row(dataset, mode, path)
    return None if row is None else row.avg_ji


# -- Tables III and IV (RQ2 reuse, RQ3 replacement) ---------------------------------------------
#: The paper's Tables III and IV as printed (mean and median per I/O type and cell, in
#: percentage points; encoder-decoder rows in BLEU-1 points), transcribed into a CSV beside this
#: module. Table IV's LSTM 1:1 median is printed as -0.49; the per-class accuracies behind it
#: give +0.49, so the sign is likely a misprint (kept as printed).
REUSE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_reuse_replace.csv")


@functools.lru_cache(maxsize=2)
def reuse_table(table: str) -> Dict[tuple, Tuple[float, float]]:
    """The paper's Table ``"3"`` (reuse) or ``"4"`` (replacement): ``{(part, io, cell):
    (mean, median)}`` with ``part`` ``intra``/``inter``, ``io`` a modjax I/O type for intra rows
    and ``mathqa+toxic`` / ``clinc+brown`` for inter rows, ``cell`` ``lstm``/``gru``/``simple``.
    """
    if str(table) not in ("3", "4"):
        raise ValueError(f"table must be '3' or '4', got {table!r}")
    out = {}
    with open(REUSE_FILE, newline="") as f:
        for rec in csv.DictReader(f):
            if rec["table"] == str(table):
                out[(rec["part"], rec["io"], rec["cell"])] = (float(rec["mean"]),
                                                               float(rec["median"]))
    return out
