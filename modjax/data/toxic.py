"""Wikipedia toxic comments (Jigsaw), one-to-many: comment (20 ids) -> 6-step label sequence.

Local data (``<data>/toxicity/jigsaw_train_sample.csv[.xz]``): a real 40,184-row sample of Kaggle's
``train.csv``, read through ``datasets`` (``load_dataset("csv", data_files=...)``). Hub:
``thesofakillers/jigsaw-toxic-comment-classification-challenge`` (``source="hf"``), the same
columns. The Kaggle test labels are not available, so the sample is split 80/20 with
``sklearn.train_test_split(test_size=0.2, random_state=seed)`` semantics (default ``seed=4``,
re-implemented, see :func:`modjax.data.text.shuffle_split_indices`). A full ``train.csv`` plus
``test_cleaned.csv`` (rows with ``-1`` labels dropped) in the same folder are used instead when
present.

Targets (paper): the sorted indices of the active labels plus 2 (toxic=2 ... identity_hate=7), or
``[1]`` for a clean comment, pre-padded with 0 to 6 steps. Inputs: ``Tokenizer(num_words=2000,
oov_token="<OOV>")`` fitted on train then test; pre-padding, keep the first 20 tokens.
"""
from __future__ import annotations

import os

import numpy as np

from modjax.data.base import TaskData
from modjax.data.text import (check_source, data_folder, hf_load, load_files, shuffle_split_indices,
                              synthetic)
from modjax.data.tokenizer import Tokenizer, pad_sequences

LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
CLASS_NAMES = ("pad", "clean") + LABELS
HF_REPO = "thesofakillers/jigsaw-toxic-comment-classification-challenge"


def _columns(ds):
    """``(texts, labels [N, 6] int64)`` of a ``datasets.Dataset`` with Kaggle's columns."""
    texts = list(ds["comment_text"])
    labels = np.stack([np.asarray(ds[k], dtype=np.int64) for k in LABELS], 1)
    return texts, labels


def _read_csv(path):
    # every field as the file's text (no "NA" -> NaN), as the csv module reads it
    return _columns(load_files("csv", path, na_filter=False, converters={"comment_text": str}))


def label_sequences(labels: np.ndarray, out_len: int = 6) -> np.ndarray:
    """``[N, 6]`` 0/1 label matrix -> int32 ``[N, out_len]``: active labels + 2, or [1], pre-padded."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(LABELS):
        raise ValueError(f"labels must have shape [N, {len(LABELS)}], got {labels.shape}")
    seqs = [([i + 2 for i in np.flatnonzero(row > 0)] or [1]) for row in labels]
    return pad_sequences(seqs, maxlen=out_len, padding="pre", truncating="post")


def toxic_texts(source="local", path=None, *, test_size: float = 0.2, seed: int = 4, hf_repo: str = HF_REPO,
                hf_data_files=None):
    """Raw toxic data: ``(train_texts, train_labels[N,6], test_texts, test_labels[M,6], notes)``.

    ``hf_data_files`` (with ``hf_repo="csv"``): ``{"train": url[, "test": url]}`` of Kaggle-format
    csv files (``hf://datasets/...`` or ``file://`` URLs) instead of the repo's own files.
    """
    check_source(source)
    if source == "local":
        folder = data_folder(path, "toxicity")
        full_tr, full_te = os.path.join(folder, "train.csv"), os.path.join(folder, "test_cleaned.csv")
        if os.path.isfile(full_tr) and os.path.isfile(full_te):
            xtr, ltr = _read_csv(full_tr)
            xte, lte = _read_csv(full_te)
            return xtr, ltr, xte, lte, "Kaggle train.csv / test_cleaned.csv"
        sample = None
        for name in ("jigsaw_train_sample.csv", "jigsaw_train_sample.csv.xz"):
            if os.path.isfile(os.path.join(folder, name)):
                sample = os.path.join(folder, name)
        if sample is None:
            raise ValueError(f"path: expected jigsaw_train_sample.csv(.xz) or train.csv+test_cleaned.csv in {folder!r}")
        texts, labels = _read_csv(sample)
        notes = f"40,184-row sample split {1 - test_size:.0%}/{test_size:.0%} (random_state={seed})"
    elif source == "hf":
        ds = hf_load(hf_repo, data_files=hf_data_files) if hf_data_files else hf_load(hf_repo)
        if "test" in ds:
            xtr, ltr = _columns(ds["train"])
            xte, lte = _columns(ds["test"])
            keep = (lte >= 0).all(1)
            xte = [t for t, k in zip(xte, keep) if k]
            return xtr, ltr, xte, lte[keep], f"from Hugging Face {hf_repo}"
        texts, labels = _columns(ds["train"])
        notes = f"from Hugging Face {hf_repo} train, split {1 - test_size:.0%}/{test_size:.0%} (random_state={seed})"
    else:
        raise ValueError("source='synthetic' has no texts")
    tr_idx, te_idx = shuffle_split_indices(len(texts), test_size, seed)
    return ([texts[i] for i in tr_idx], labels[tr_idx], [texts[i] for i in te_idx], labels[te_idx], notes)


def load_toxic(source: str = "local", path=None, *, max_len: int = 20, out_len: int = 6, num_words: int = 2000,
               oov_token: str = "<OOV>", test_size: float = 0.2, seed: int = 4, hf_repo: str = HF_REPO,
               hf_data_files=None, **synthetic_kwargs) -> TaskData:
    """Toxic comments as :class:`TaskData` (io ``one_to_many``).

    Returns ``x_*`` int32 ``[N, max_len]`` and ``y_*`` int32 ``[N, out_len]`` with values in 0..7
    (:data:`CLASS_NAMES`: 0 pad, 1 clean, 2..7 the six labels); ``vocab_size = num_words``.
    ``source="synthetic"`` delegates to ``load_synthetic("one_to_many", **synthetic_kwargs)``.
    """
    check_source(source)
    if source == "synthetic":
        return synthetic("one_to_many", **synthetic_kwargs)
    xtr, ltr, xte, lte, notes = toxic_texts(source, path, test_size=test_size, seed=seed, hf_repo=hf_repo,
                                            hf_data_files=hf_data_files)
    tok = Tokenizer(num_words=num_words, oov_token=oov_token)
    tok.fit_on_texts(xtr)
    tok.fit_on_texts(xte)
    return encode_toxic(tok, xtr, ltr, xte, lte, max_len=max_len, out_len=out_len, notes=notes)


def encode_toxic(tok: Tokenizer, xtr, ltr, xte, lte, *, max_len: int = 20, out_len: int = 6, notes: str = "") -> TaskData:
    """Encode raw toxic texts/labels with a fitted tokenizer into :class:`TaskData`."""
    pad = lambda t: pad_sequences(tok.texts_to_sequences(t), maxlen=max_len, padding="pre", truncating="post")
    return TaskData(name="toxic", io="one_to_many", x_train=pad(xtr), y_train=label_sequences(ltr, out_len),
                    x_test=pad(xte), y_test=label_sequences(lte, out_len), class_names=CLASS_NAMES,
                    vocab_size=tok.vocab_size, in_len=max_len, out_len=out_len, vocab=dict(tok.word_index),
                    notes=notes)
