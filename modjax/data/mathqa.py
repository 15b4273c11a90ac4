"""MathQA, one-to-one: problem text (20 token ids) -> one of 6 categories.

Local data (``<data>/mathqa/``): the original MathQA ``dev.json`` and ``test.json`` (``.xz`` allowed),
read through ``datasets`` (``load_dataset("json", data_files=...)``, :func:`modjax.data.text.load_files`).
Hub: ``allenai/math_qa`` (``source="hf"``), the same columns.
The train split (29,837 problems) is not available locally, so by default the model is **trained on
dev (4,475 problems) and evaluated on test (2,985)**; pass ``train_file=`` to use a real
``train.json``. The paper used TFDS ``math_qa`` train/test.

Preprocessing (paper): ``Tokenizer(num_words=5000, oov_token="<OOV>")`` fitted on the train texts
then the test texts; pre-padding, keep the first 20 tokens (``truncating="post"``).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from modjax.data.base import TaskData
from modjax.data.text import check_source, data_folder, find_file, hf_load, load_files, synthetic
from modjax.data.tokenizer import Tokenizer, pad_sequences

CLASS_NAMES = ("gain", "general", "geometry", "other", "physics", "probability")
HF_REPO = "allenai/math_qa"


def _columns(ds):
    """``(problems, categories)`` of a ``datasets.Dataset`` with MathQA's columns (local or hub)."""
    return list(ds["Problem"]), list(ds["category"])


def _read_json(path):
    return _columns(load_files("json", path))


def _labels(cats, where):
    idx = {c: i for i, c in enumerate(CLASS_NAMES)}
    bad = sorted(set(c for c in cats if c not in idx))
    if bad:
        raise ValueError(f"{where}: category must be one of {CLASS_NAMES}, got {bad[:5]}")
    return np.asarray([idx[c] for c in cats], dtype=np.int32)


def mathqa_texts(source="local", path=None, *, train_file: Optional[str] = None, hf_repo: str = HF_REPO,
                 hf_data_files=None):
    """Raw MathQA: ``(train_texts, y_train, test_texts, y_test, notes)``; labels index :data:`CLASS_NAMES`.

    ``source="hf"`` reads ``hf_repo`` (default :data:`HF_REPO`); ``hf_data_files`` (a
    ``{"train": url, "test": url}`` mapping, e.g. ``hf://datasets/<repo>/<file>`` or ``file://``
    URLs of MathQA json files, with ``hf_repo="json"``) reads those files instead.
    """
    check_source(source)
    if source == "local":
        folder = data_folder(path, "mathqa")
        tr_path = train_file if train_file is not None else find_file(folder, "dev.json")
        if not os.path.isfile(tr_path):
            raise ValueError(f"train_file must be an existing MathQA json(.xz) file, got {train_file!r}")
        xtr, ctr = _read_json(tr_path)
        xte, cte = _read_json(find_file(folder, "test.json"))
        notes = ("train = MathQA dev (train split not available)" if train_file is None
                 else f"train = {os.path.basename(tr_path)}") + "; test = MathQA test"
    elif source == "hf":
        ds = hf_load(hf_repo, data_files=hf_data_files) if hf_data_files else hf_load(hf_repo)
        xtr, ctr = _columns(ds["train"])
        xte, cte = _columns(ds["test"])
        notes = f"from Hugging Face {hf_repo} train/test"
    else:
        raise ValueError("source='synthetic' has no texts")
    return xtr, _labels(ctr, "train"), xte, _labels(cte, "test"), notes


def load_mathqa(source: str = "local", path=None, *, max_len: int = 20, num_words: int = 5000,
                oov_token: str = "<OOV>", train_file: Optional[str] = None, hf_repo: str = HF_REPO,
                hf_data_files=None, **synthetic_kwargs) -> TaskData:
    """MathQA as :class:`TaskData` (io ``one_to_one``).

    Returns ``x_*`` int32 ``[N, max_len]`` (ids < ``num_words``, 1 = OOV) and ``y_*`` int32 ``[N]``
    in 0..5 (:data:`CLASS_NAMES`); ``vocab_size = num_words``. ``source="synthetic"`` delegates to
    ``load_synthetic("one_to_one", **synthetic_kwargs)``.
    """
    check_source(source)
    if source == "synthetic":
        return synthetic("one_to_one", **synthetic_kwargs)
    xtr, ytr, xte, yte, notes = mathqa_texts(source, path, train_file=train_file, hf_repo=hf_repo,
                                             hf_data_files=hf_data_files)
    tok = Tokenizer(num_words=num_words, oov_token=oov_token)
    tok.fit_on_texts(xtr)
    tok.fit_on_texts(xte)
    return encode_mathqa(tok, xtr, ytr, xte, yte, max_len=max_len, notes=notes)


def encode_mathqa(tok: Tokenizer, xtr, ytr, xte, yte, *, max_len: int = 20, notes: str = "") -> TaskData:
    """Encode raw MathQA texts with a fitted tokenizer into :class:`TaskData`."""
    pad = lambda t: pad_sequences(tok.texts_to_sequences(t), maxlen=max_len, padding="pre", truncating="post")
    return TaskData(name="mathqa", io="one_to_one", x_train=pad(xtr), y_train=ytr, x_test=pad(xte), y_test=yte,
                    class_names=CLASS_NAMES, vocab_size=tok.vocab_size, in_len=max_len, out_len=1,
                    vocab=dict(tok.word_index), notes=notes)
