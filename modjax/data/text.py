"""Text cleaning and word tokenisation for CLINC (the paper's ``text_processing``).

Cleaning (:func:`clean_clinc`), in the paper's order: remove ``http...`` links; drop the ASCII
punctuation characters except ``.``, ``,`` and ``'``; lower-case; turn every digit into a space;
collapse runs of whitespace into one space.

Word tokenisation (:func:`word_tokenize`) is written here, not imported: it is the Treebank-style
algorithm of nltk 3.8.1's ``word_tokenize`` (``NLTKWordTokenizer``: quotes, punctuation, brackets,
dashes, ending quotes and clitics such as ``'s``/``n't``, and the ``cannot``/``gonna``-style
splits), so modjax needs neither nltk nor its downloaded data. nltk's ``word_tokenize`` first splits
the text into sentences with the Punkt model; this module does not, because that step cannot change
CLINC: after cleaning, no utterance contains a period followed by whitespace, the only place Punkt
could break (``tests/test_data_loaders.py`` checks this). With this tokeniser the TFDS CLINC
train+test in-scope utterances give exactly 5,530 distinct words, the paper's vocabulary
(Embedding input 5,531).
"""
from __future__ import annotations

import re
from typing import List

_URL = re.compile(r"http\S+")
_PUNCT_REMOVED = '!"#$%&()*+-/:;<=>?@[\\]^_`{|}~'  # ASCII punctuation minus . , '
_PUNCT_TABLE = str.maketrans("", "", _PUNCT_REMOVED)
_DIGIT = re.compile(r"\d")


def clean_clinc(text: str) -> str:
    """The paper's cleaning of one CLINC utterance (see the module docstring). Returns a str."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not isinstance(text, str):
        raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
    text = _URL.sub("", text)
    text = text.translate(_PUNCT_TABLE)
    text = text.lower()
    text = _DIGIT.sub(" ", text)
    return " ".join(text.split())


# Treebank rules, applied in this order. Each entry: (pattern, replacement).
_OPENING = [
    (re.compile("([\u00ab\u201c\u2018\u201e]|[`]+)"), r" \1 "),  # « “ ‘ „ and backticks stand alone
    (re.compile(r'^"'), r"``"),  # a leading double quote opens
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),  # quote after space/bracket opens
    (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b"), r"\1 \2"),  # 'word (not a clitic)
]
_CLOSERS = "\\]\\)}>\"'\u00bb\u201d\u2019 "
_PUNCT = [
    (re.compile(r"([^\.])(\.)([" + _CLOSERS + r"]*)\s*$"), r"\1 \2 \3 "),  # final period
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),  # comma/colon not inside a number
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),  # ellipsis
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"([^\.])(\.)([\]\)}>\"\']*)\s*$"), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
]
_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DASHES = (re.compile(r"--"), r" -- ")
_CLOSING = [
    (re.compile("([\u00bb\u201d\u2019])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_SPLIT_WORDS = [re.compile(p) for p in (
    r"(?i)\b(can)(not)\b", r"(?i)\b(d)('ye)\b", r"(?i)\b(gim)(me)\b", r"(?i)\b(gon)(na)\b",
    r"(?i)\b(got)(ta)\b", r"(?i)\b(lem)(me)\b", r"(?i)\b(more)('n)\b", r"(?i)\b(wan)(na)(?=\s)",
    r"(?i) ('t)(is)\b", r"(?i) ('t)(was)\b",
)]


# Characters one of which a rule's pattern needs in the text to match (each rule is applied to
# the text as the earlier rules left it, and skipped when none is there: same result, and most
# of the 33 substitutions never run on a typical utterance).
_OPENING_NEEDS = ("\u00ab\u201c\u2018\u201e`", '"', "`", "\"'", "'")
_PUNCT_NEEDS = (".", ":,", ":,", ".", ";@#$%&", ".", "?!", "'", "*")
_CLOSING_NEEDS = ("\u00bb\u201d\u2019", "'", '"', "'", "'")
# ...and the lower-case words one of which the case-insensitive splits need (ASCII text)
_SPLIT_NEEDS = ("cannot", "d'ye", "gimme", "gonna", "gotta", "lemme", "more'n", "wanna", "'tis",
                "'twas")


def _has(text: str, chars: str) -> bool:
    return any(c in text for c in chars)


def word_tokenize(text: str) -> List[str]:
    """Split one sentence into Treebank-style tokens, as nltk 3.8.1 ``NLTKWordTokenizer`` does.

    Example: ``"i can't pay, it's late."`` -> ``['i', 'ca', "n't", 'pay', ',', 'it', "'s", 'late', '.']``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    for (rx, rep), needs in zip(_OPENING, _OPENING_NEEDS):
        if _has(text, needs):
            text = rx.sub(rep, text)
    for (rx, rep), needs in zip(_PUNCT, _PUNCT_NEEDS):
        if _has(text, needs):
            text = rx.sub(rep, text)
    if _has(text, "][(){}<>"):
        text = _BRACKETS[0].sub(_BRACKETS[1], text)
    if "--" in text:
        text = _DASHES[0].sub(_DASHES[1], text)
    text = " " + text + " "
    for (rx, rep), needs in zip(_CLOSING, _CLOSING_NEEDS):
        if _has(text, needs):
            text = rx.sub(rep, text)
    # (non-ASCII text: Unicode case-insensitive matching also pairs letters such as U+017F with
    # "s", which a lower-cased substring test would miss, so every split is tried)
    lower = text.lower()
    if not text.isascii() or any(w in lower for w in _SPLIT_NEEDS):
        for rx in _SPLIT_WORDS:
            text = rx.sub(r" \1 \2 ", text)
    return text.split()


def clinc_tokens(text: str) -> List[str]:
    """:func:`clean_clinc` then :func:`word_tokenize`: the token list the paper's tokenizer sees."""
    return word_tokenize(clean_clinc(text))


# --------------------------------------------------------------------------- loader helpers
# Small pieces shared by the dataset loaders (kept here so the loaders stay short).

import math  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402

SOURCES = ("local", "hf", "synthetic")


def check_source(source: str) -> str:
    """Validate a loader's ``source`` argument (``"local"``, ``"hf"`` or ``"synthetic"``)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return source


def data_folder(path, sub: str) -> str:
    """``path`` (default :func:`modjax.data.base.default_data_dir`) joined with ``sub``; must exist."""
    from modjax.data.base import default_data_dir

    root = default_data_dir() if path is None else os.fspath(path)
    folder = os.path.join(root, sub) if sub else root
    if not os.path.isdir(folder):
        raise ValueError(f"path must be a folder holding {sub or 'the data'}/, got {root!r} (no {folder!r})")
    return folder


def shuffle_split_indices(n: int, test_size: float, random_state: int):
    """Train/test row indices exactly as ``sklearn.model_selection.train_test_split`` makes them.

    ``n_test = ceil(test_size * n)``, ``n_train = floor((1 - test_size) * n)``; the permutation is
    ``numpy.random.RandomState(random_state).permutation(n)``, test = its first ``n_test`` entries,
    train = the next ``n_train``. Returns ``(train_idx, test_idx)`` int arrays.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    n_test = int(math.ceil(test_size * n))
    n_train = int(math.floor((1.0 - test_size) * n))
    perm = np.random.RandomState(random_state).permutation(n)
    return perm[n_test:n_test + n_train], perm[:n_test]


def hf_load(repo: str, *args, **kwargs):
    """``datasets.load_dataset(repo, *args, **kwargs)`` (imported lazily; tests monkeypatch it)."""
    import datasets

    return datasets.load_dataset(repo, *args, **kwargs)


def load_files(kind: str, data_files, **kwargs):
    """Rows of data files through ``datasets``: ``load_dataset(kind, data_files=..., split="train")``.

    ``kind`` is a packaged builder (``"json"``, ``"csv"``, ``"text"``); ``data_files`` a path, a
    URL (``file://``, ``https://``, ``hf://datasets/<repo>/<file>``) or a list of them, read in
    order; ``.xz`` files are decompressed. Every local loader reads its files here, through the
    same :func:`hf_load` as the hub loaders, so the offline tests exercise the hub's code path;
    only where the files come from differs. Returns a ``datasets.Dataset``.
    """
    if kind not in ("json", "csv", "text"):
        raise ValueError(f"kind must be 'json', 'csv' or 'text', got {kind!r}")
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a loader's internals, not the user's progress
    try:
        return hf_load(kind, data_files=data_files, split="train", **kwargs)
    finally:
        if was_on:
            datasets.enable_progress_bars()


def read_text_file(path: str) -> str:
    """The whole of one text file (``.xz`` allowed) as one string, through :func:`load_files`."""
    ds = load_files("text", path, sample_by="document", keep_linebreaks=True)
    return "".join(ds["text"])


def synthetic(io: str, **kwargs):
    """Delegate to ``modjax.data.synthetic.load_synthetic(io, **kwargs)`` (imported lazily)."""
    from modjax.data.synthetic import load_synthetic

    return load_synthetic(io, **kwargs)


def open_text(path: str):
    """Open a UTF-8 text file, transparently decompressing ``.xz``."""
    if path.endswith(".xz"):
        import lzma

        return lzma.open(path, "rt", encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


def find_file(folder: str, stem: str) -> str:
    """``folder/stem`` or ``folder/stem.xz``, whichever exists (ValueError naming both if neither)."""
    for cand in (os.path.join(folder, stem), os.path.join(folder, stem + ".xz")):
        if os.path.isfile(cand):
            return cand
    raise ValueError(f"expected {stem} or {stem}.xz in {folder!r}, found neither")
