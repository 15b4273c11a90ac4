"""CLINC150 (OOS evaluation set), many-to-one: utterance (15 token ids) -> one of 10 domains.

Local data (``<data>/clinc/``), two layouts:

* ``layout="tfds"`` (default): ``tfds/train.csv`` and ``tfds/test.csv``, the files TensorFlow
  Datasets builds ``clinc_oos`` from (what the paper's models were trained on). TFDS serves each
  split's records sorted by ``md5(split_name + str(row_index))`` and this loader reproduces that
  order, because Keras breaks word-frequency ties by first-seen order. Domain ids are TFDS's.
* ``layout="json"``: the original ``data_full.json`` + ``domains.json`` (records in file order;
  domains numbered in TFDS's order; with ``num_classes=150`` intents are numbered alphabetically).

The TFDS files are read through ``datasets`` (``load_dataset("csv", data_files=...)``). Hub:
``clinc/clinc_oos`` (config ``plus``; ``source="hf"``), with the domain map from ``domains.json``.

Only in-scope records are used (15,000 train / 4,500 test). ``num_classes=150`` predicts the intent
instead of the domain.

Preprocessing (paper): :func:`modjax.data.text.clean_clinc` + Treebank word tokenisation
(:func:`modjax.data.text.word_tokenize`), ``Tokenizer()`` without cap fitted on train then test,
pre-padding, keep the first 15 tokens. The TFDS layout gives 5,530 words (``vocab_size`` 5,531).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

import numpy as np

from modjax.data.base import TaskData
from modjax.data.text import check_source, clinc_tokens, data_folder, hf_load, load_files, synthetic
from modjax.data.tokenizer import Tokenizer, pad_sequences

DOMAINS = ("banking", "credit_cards", "kitchen_and_dining", "home", "auto_and_commute", "travel", "utility",
           "work", "small_talk", "meta")
HF_REPO = "clinc/clinc_oos"


def tfds_order(split: str, n: int) -> list:
    """Row indices of a TFDS split in the order TFDS serves them (sorted by ``md5(split + str(i))``)."""
    return sorted(range(n), key=lambda i: hashlib.md5((split + str(i)).encode("utf-8")).digest())


def _read_tfds(folder, split):
    # every field as the file's text (as the csv module reads it), through ``datasets``
    rows = load_files("csv", os.path.join(folder, "tfds", split + ".csv"), na_filter=False,
                      converters={k: str for k in ("text", "intent_name", "domain_name")}).to_list()
    return [rows[i] for i in tfds_order(split, len(rows))]


def clinc_texts(source="local", path=None, *, layout: str = "tfds", num_classes: int = 10,
                hf_repo: str = HF_REPO, hf_config: str = "plus", domains: Optional[dict] = None):
    """Raw CLINC: ``(train_texts, y_train, test_texts, y_test, class_names, notes)`` (texts uncleaned)."""
    check_source(source)
    if num_classes not in (10, 150):
        raise ValueError(f"num_classes must be 10 (domains) or 150 (intents), got {num_classes!r}")
    if layout not in ("tfds", "json"):
        raise ValueError(f"layout must be 'tfds' or 'json', got {layout!r}")
    if source == "local" and layout == "tfds":
        folder = data_folder(path, "clinc")
        tr, te = _read_tfds(folder, "train"), _read_tfds(folder, "test")
        key = "domain" if num_classes == 10 else "intent"
        if num_classes == 10:
            names = DOMAINS
        else:
            m = {int(r["intent"]): r["intent_name"] for r in tr + te}
            names = tuple(m[i] for i in range(len(m)))
        ytr = np.asarray([int(r[key]) for r in tr], np.int32)
        yte = np.asarray([int(r[key]) for r in te], np.int32)
        return [r["text"] for r in tr], ytr, [r["text"] for r in te], yte, names, "TFDS clinc_oos files, TFDS order"
    if source == "local":
        folder = data_folder(path, "clinc")
        with open(os.path.join(folder, "data_full.json"), encoding="utf-8") as f:
            data = json.load(f)
        with open(os.path.join(folder, "domains.json"), encoding="utf-8") as f:
            dom = json.load(f)
        pairs_tr, pairs_te = data["train"], data["test"]
        notes = "data_full.json (file order)"
    elif source == "hf":
        ds = hf_load(hf_repo, hf_config) if hf_config else hf_load(hf_repo)
        names_hf = ds["train"].features["intent"].names
        pairs_tr = [(t, names_hf[i]) for t, i in zip(ds["train"]["text"], ds["train"]["intent"])]
        pairs_te = [(t, names_hf[i]) for t, i in zip(ds["test"]["text"], ds["test"]["intent"])]
        pairs_tr = [p for p in pairs_tr if p[1] != "oos"]
        pairs_te = [p for p in pairs_te if p[1] != "oos"]
        if domains is None:
            with open(os.path.join(data_folder(path, "clinc"), "domains.json"), encoding="utf-8") as f:
                domains = json.load(f)
        dom = domains
        notes = f"from Hugging Face {hf_repo} ({hf_config}), in-scope only"
    else:
        raise ValueError("source='synthetic' has no texts")
    intent_domain = {i: d for d, intents in dom.items() for i in intents}
    if num_classes == 10:
        names = DOMAINS
        lab = lambda intent: DOMAINS.index(intent_domain[intent])
    else:
        names = tuple(sorted(intent_domain))
        lab = names.index
    ytr = np.asarray([lab(i) for _, i in pairs_tr], np.int32)
    yte = np.asarray([lab(i) for _, i in pairs_te], np.int32)
    return [t for t, _ in pairs_tr], ytr, [t for t, _ in pairs_te], yte, names, notes


def load_clinc(source: str = "local", path=None, *, max_len: int = 15, num_classes: int = 10,
               layout: str = "tfds", hf_repo: str = HF_REPO, hf_config: str = "plus",
               domains: Optional[dict] = None, **synthetic_kwargs) -> TaskData:
    """CLINC as :class:`TaskData` (io ``many_to_one``).

    Returns ``x_*`` int32 ``[N, max_len]`` and ``y_*`` int32 ``[N]`` (domain 0..9, or intent
    0..149 with ``num_classes=150``); ``vocab_size = len(vocab) + 1``. ``source="hf"`` needs a
    domain map (``domains=`` or ``<data>/clinc/domains.json``). ``source="synthetic"`` delegates to
    ``load_synthetic("many_to_one", **synthetic_kwargs)``.
    """
    check_source(source)
    if source == "synthetic":
        return synthetic("many_to_one", **synthetic_kwargs)
    xtr, ytr, xte, yte, names, notes = clinc_texts(source, path, layout=layout, num_classes=num_classes,
                                                   hf_repo=hf_repo, hf_config=hf_config, domains=domains)
    ttr = [clinc_tokens(t) for t in xtr]
    tte = [clinc_tokens(t) for t in xte]
    tok = Tokenizer()
    tok.fit_on_texts(ttr)
    tok.fit_on_texts(tte)
    return encode_clinc(tok, ttr, ytr, tte, yte, names, max_len=max_len, notes=notes)


def encode_clinc(tok: Tokenizer, ttr, ytr, tte, yte, class_names, *, max_len: int = 15, notes: str = "") -> TaskData:
    """Encode tokenised CLINC utterances with a fitted tokenizer into :class:`TaskData`."""
    pad = lambda t: pad_sequences(tok.texts_to_sequences(t), maxlen=max_len, padding="pre", truncating="post")
    return TaskData(name="clinc", io="many_to_one", x_train=pad(ttr), y_train=ytr, x_test=pad(tte), y_test=yte,
                    class_names=tuple(class_names), vocab_size=tok.vocab_size, in_len=max_len, out_len=1,
                    vocab=dict(tok.word_index), notes=notes)
