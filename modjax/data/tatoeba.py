"""Tatoeba translation, encoder-decoder: English (20 ids) -> French/German/Italian (21 ids).

Local data (``<data>/tatoeba/``): ``en_train.txt``, ``fr_train.txt``, ``de_train.txt``,
``it_train.txt`` (50,744 line-aligned sentences), read through ``datasets``
(``load_dataset("text", data_files=..., sample_by="document")``). Hub:
``Helsinki-NLP/tatoeba_mt`` (``source="hf"``, configs ``eng-fra``, ``deu-eng``, ``eng-ita``). Each English line gives one pair per target
language (152,232 pairs), the target wrapped as ``[start<l>] ... [end<l>]``.

Split (paper): the pairs are shuffled with Python's ``random.seed(19); random.shuffle(pairs)`` and
cut 70% / 15% / 15% (train / val / test). The paper's reader splits each file on ``"\\n"``, which
leaves one empty sentence after the final newline, so its shuffled list has 3 extra empty pairs;
they are kept during the shuffle (so every real pair lands in the same split as in the paper) and
removed afterwards. ``eval_split`` picks which held-out part fills ``x_test`` ("test" or "val").

Vectorisation (paper): source ``TextVectorization(max_tokens=30000, output_sequence_length=20)``
(default standardisation), target the same with length 21 and
:func:`modjax.data.tokenizer.standardize_keep_brackets`, both adapted on the train split only.
Decoder input = target[:, :-1], labels = target[:, 1:]. ``concern_*`` = target-language index.

:func:`load_tatoeba_motivating` loads the paper's motivating-example corpora (``motivating/``):
problem 1 adds Ukrainian (EN -> {de, ua, it, fr}, the five aligned ``*_ua_train_original.txt``
files, 24,246 lines), problem 2 translates from Estonian (ET -> {en, de, it}, 1,153 aligned lines;
``s2=True``: ET -> en from the 3,123-line ``*_s2`` files).
"""
from __future__ import annotations

import os
import random
from typing import Dict, List, Sequence

import numpy as np

from modjax.data.base import TaskData
from modjax.data.text import check_source, data_folder, hf_load, read_text_file, synthetic
from modjax.data.tokenizer import TextVectorization

#: The target side's standardisation (:func:`modjax.data.tokenizer.standardize_keep_brackets`):
#: lower-case, no punctuation, ``[`` and ``]`` kept so that the language tags stay one token.
TARGET_STANDARDIZE = "keep_brackets"

TARGETS = ("fr", "de", "it")
HF_REPO = "Helsinki-NLP/tatoeba_mt"
HF_CONFIGS = {"fr": "eng-fra", "de": "deu-eng", "it": "eng-ita"}


def _read_lines(path: str) -> List[str]:
    if not os.path.isfile(path):
        raise ValueError(f"path: expected the file {path!r}")
    # through ``datasets`` (the whole file as one row); like the paper's reader, a final
    # newline leaves one empty string
    return read_text_file(path).split("\n")


def make_pairs(source_lines: Sequence[str], targets: Dict[str, Sequence[str]]):
    """Interleave ``(source, "[start<l>] target [end<l>]", l)`` per line, languages in dict order."""
    pairs = []
    for i, src in enumerate(source_lines):
        for lang, lines in targets.items():
            if i < len(lines):
                pairs.append((src, f"[start{lang}] {lines[i]} [end{lang}]", lang))
    return pairs


def split_pairs(pairs, seed: int = 19):
    """Shuffle with ``random.seed(seed)`` and cut 70/15/15; drop empty-source pairs afterwards."""
    pairs = list(pairs)
    random.Random(seed).shuffle(pairs)
    n_val = int(0.15 * len(pairs))
    n_train = len(pairs) - 2 * n_val
    parts = pairs[:n_train], pairs[n_train:n_train + n_val], pairs[n_train + n_val:]
    return tuple([p for p in part if p[0] != ""] for part in parts)


def build_task(name, train, evalp, languages, *, src_len=20, tgt_len=20, max_tokens=30000, notes="") -> TaskData:
    """Vectorise train/eval pairs (adapting on train) into an encoder-decoder :class:`TaskData`."""
    sv = TextVectorization(max_tokens=max_tokens, output_sequence_length=src_len).adapt([p[0] for p in train])
    tv = TextVectorization(max_tokens=max_tokens, output_sequence_length=tgt_len + 1,
                           standardize=TARGET_STANDARDIZE).adapt([p[1] for p in train])
    lang_id = {l: i for i, l in enumerate(languages)}

    def enc(ps):
        x = sv([p[0] for p in ps])
        t = tv([p[1] for p in ps])
        c = np.asarray([lang_id[p[2]] for p in ps], np.int32)
        return x, t[:, :-1], t[:, 1:], c

    xtr, dtr, ytr, ctr = enc(train)
    xte, dte, yte, cte = enc(evalp)
    return TaskData(name=name, io="encoder_decoder", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                    class_names=tuple(languages), vocab_size=sv.vocabulary_size(), in_len=src_len, out_len=tgt_len,
                    vocab=sv.vocab, decoder_input_train=dtr, decoder_input_test=dte, concern_train=ctr,
                    concern_test=cte, target_vocab=tv.vocab, target_vocab_size=tv.vocabulary_size(), notes=notes,
                    target_standardize=TARGET_STANDARDIZE)


def _select(parts, eval_split):
    if eval_split not in ("test", "val"):
        raise ValueError(f"eval_split must be 'test' or 'val', got {eval_split!r}")
    train, val, test = parts
    return train, (test if eval_split == "test" else val)


def tatoeba_pairs(source="local", path=None, *, languages: Sequence[str] = TARGETS, hf_repo: str = HF_REPO):
    """All (English, wrapped target, language) pairs in the paper's pre-shuffle order, and notes."""
    check_source(source)
    languages = tuple(languages)
    bad = [l for l in languages if l not in TARGETS]
    if bad or not languages:
        raise ValueError(f"languages must be a non-empty subset of {TARGETS}, got {languages!r}")
    if source == "local":
        folder = data_folder(path, "tatoeba")
        en = _read_lines(os.path.join(folder, "en_train.txt"))
        tg = {l: _read_lines(os.path.join(folder, f"{l}_train.txt")) for l in languages}
        return make_pairs(en, tg), "Tatoeba files of the paper"
    if source == "hf":
        pairs = []
        for l in languages:
            ds = hf_load(hf_repo, HF_CONFIGS[l], split="test")
            for r in ds:
                src, tgt = (r["sourceString"], r["targetString"])
                if r.get("sourceLang", "eng").startswith("eng") is False:
                    src, tgt = tgt, src
                pairs.append((src, f"[start{l}] {tgt} [end{l}]", l))
        return pairs, f"from Hugging Face {hf_repo}"
    raise ValueError("source='synthetic' has no pairs")


def load_tatoeba(source: str = "local", path=None, *, src_len: int = 20, tgt_len: int = 20, max_tokens: int = 30000,
                 languages: Sequence[str] = TARGETS, seed: int = 19, eval_split: str = "test",
                 hf_repo: str = HF_REPO, **synthetic_kwargs) -> TaskData:
    """Tatoeba EN -> {fr, de, it} as :class:`TaskData` (io ``encoder_decoder``).

    Returns ``x_*`` int32 ``[N, src_len]``, ``decoder_input_*`` and ``y_*`` int32 ``[N, tgt_len]``
    (the vectorised target has ``tgt_len + 1`` ids), ``concern_*`` int32 ``[N]`` (index into
    ``languages``). Train has 106,563 pairs, val 22,835 and test 22,834 (152,232 in all). ``source="synthetic"``
    delegates to ``load_synthetic("encoder_decoder", **synthetic_kwargs)``.
    """
    check_source(source)
    if source == "synthetic":
        return synthetic("encoder_decoder", **synthetic_kwargs)
    pairs, notes = tatoeba_pairs(source, path, languages=languages, hf_repo=hf_repo)
    train, evalp = _select(split_pairs(pairs, seed), eval_split)
    return build_task("tatoeba", train, evalp, tuple(languages), src_len=src_len, tgt_len=tgt_len,
                      max_tokens=max_tokens, notes=f"{notes}; seed {seed}; eval = {eval_split}")


def motivating_pairs(problem: int = 1, path=None, *, targets=None, s2: bool = False):
    """``(pairs, targets, name, notes)`` of a motivating example (see
    :func:`load_tatoeba_motivating`): the interleaved ``(source, tagged target, language)``
    pairs before the split."""
    folder = data_folder(path, os.path.join("tatoeba", "motivating"))
    if problem == 1:
        targets = tuple(targets or ("de", "ua", "it", "fr"))
        allowed, src, fmt = ("de", "ua", "it", "fr"), "en", os.path.join(folder, "problem1", "{}_ua_train_original.txt")
    elif problem == 2:
        if s2:
            targets = tuple(targets or ("en",))
            allowed, src, fmt = ("en",), "et", os.path.join(folder, "problem2", "{}_et_train_s2.txt")
        else:
            targets = tuple(targets or ("en", "de", "it"))
            allowed, src, fmt = ("en", "de", "it"), "et", os.path.join(folder, "problem2", "{}_et_train.txt")
    else:
        raise ValueError(f"problem must be 1 (add Ukrainian) or 2 (Estonian source), got {problem!r}")
    bad = [t for t in targets if t not in allowed]
    if bad or not targets:
        raise ValueError(f"targets must be a non-empty subset of {allowed}, got {targets!r}")
    source_lines = _read_lines(fmt.format(src))
    pairs = make_pairs(source_lines, {t: _read_lines(fmt.format(t)) for t in targets})
    return pairs, targets, f"tatoeba_motivating{problem}{'_s2' if s2 else ''}", f"{src} -> {targets}"


def load_tatoeba_motivating(problem: int = 1, path=None, *, targets=None, s2: bool = False, src_len: int = 20,
                            tgt_len: int = 20, max_tokens: int = 30000, seed: int = 19,
                            eval_split: str = "test") -> TaskData:
    """The paper's motivating examples as :class:`TaskData` (io ``encoder_decoder``).

    ``problem=1``: English -> ``targets`` (default ``("de", "ua", "it", "fr")``) from the aligned
    ``problem1/*_ua_train_original.txt`` files. ``problem=2``: Estonian -> ``targets`` (default
    ``("en", "de", "it")``) from ``problem2/*_et_train.txt``; with ``s2=True`` Estonian -> English from
    the larger ``*_et_train_s2.txt`` pair. Same split and vectorisation as :func:`load_tatoeba`.
    """
    pairs, targets, name, notes = motivating_pairs(problem, path, targets=targets, s2=s2)
    train, evalp = _select(split_pairs(pairs, seed), eval_split)
    return build_task(name, train, evalp, targets, src_len=src_len, tgt_len=tgt_len, max_tokens=max_tokens,
                      notes=f"{notes}; seed {seed}")
