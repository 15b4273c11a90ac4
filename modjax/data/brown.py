"""Brown corpus POS tagging, many-to-many (same length): 15 word ids -> 15 universal tags.

Local data (``<data>/brown/``): the NLTK layout (files ``ca01`` ... ``cr09``, one sentence per
non-empty line, tokens ``word/tag``). Sentences are read in file-id order like
``nltk.corpus.brown.tagged_sents(tagset='universal')`` (57,340 sentences) and tags are mapped with
:func:`modjax.data.universal_tagset.map_brown_tag`. The files are read through ``datasets``
(``load_dataset("text", data_files=..., sample_by="document")``). Hub: ``nltk/brown``
(``source="hf"``, columns ``tokens`` and ``tags``).

Preprocessing (paper): word ``Tokenizer()`` (no cap; pre-tokenised lists are only lower-cased) and
a tag ``Tokenizer()`` (ids 1..12 by frequency) fitted on all sentences; pre-padding, keep the first
15 tokens; then ``train_test_split(test_size=0.25, random_state=4)`` (re-implemented exactly).
Class 0 is padding, so there are 13 classes.
"""
from __future__ import annotations

import os
import re

from modjax.data.base import TaskData
from modjax.data.text import check_source, data_folder, hf_load, load_files, shuffle_split_indices, synthetic
from modjax.data.tokenizer import Tokenizer, pad_sequences
from modjax.data.universal_tagset import UNIVERSAL_TAGS, map_brown_tag

HF_REPO = "nltk/brown"
_FILEID = re.compile(r"c[a-r]\d\d")


def read_brown(path=None, raw_tags: bool = False):
    """Sentences of the local Brown corpus: ``(words, tags)``, two lists of lists of str.

    Tags are universal (upper-case) unless ``raw_tags``, then the corpus's own lower-case tags.
    """
    folder = data_folder(path, "brown")
    files = sorted(f for f in os.listdir(folder) if _FILEID.fullmatch(f))
    if not files:
        raise ValueError(f"path: no Brown files (ca01 ... cr09) in {folder!r}")
    words, tags, cache = [], [], {}
    # one ``datasets`` call, one row per file (in the order given): the files' whole text
    texts = load_files("text", [os.path.join(folder, name) for name in files],
                       sample_by="document", keep_linebreaks=True)["text"]
    if len(texts) != len(files):
        raise ValueError(f"path: expected {len(files)} Brown files to read, got {len(texts)}")
    for text in texts:
        for line in text.split("\n"):
            toks = line.split()
            if not toks:
                continue
            ws, ts = [], []
            for tok in toks:
                cut = tok.rfind("/")
                ws.append(tok[:cut])
                t = tok[cut + 1:]
                if not raw_tags:
                    u = cache.get(t)
                    if u is None:
                        u = cache[t] = map_brown_tag(t)
                    t = u
                ts.append(t)
            words.append(ws)
            tags.append(ts)
    return words, tags


def brown_sentences(source="local", path=None, *, hf_repo: str = HF_REPO, hf_split: str = "train"):
    """``(words, universal_tags, notes)`` for all sentences, from the local corpus or Hugging Face.

    The Hugging Face dataset must have columns ``tokens`` and ``tags`` (Brown or universal tags).
    """
    check_source(source)
    if source == "local":
        w, t = read_brown(path)
        return w, t, "Brown corpus (NLTK layout), universal tagset"
    if source == "hf":
        ds = hf_load(hf_repo, split=hf_split)
        words = [list(s) for s in ds["tokens"]]
        tags = [[t if t in UNIVERSAL_TAGS else map_brown_tag(t) for t in s] for s in ds["tags"]]
        return words, tags, f"from Hugging Face {hf_repo} ({hf_split})"
    raise ValueError("source='synthetic' has no sentences")


def load_brown(source: str = "local", path=None, *, max_len: int = 15, test_size: float = 0.25,
               seed: int = 4, hf_repo: str = HF_REPO, **synthetic_kwargs) -> TaskData:
    """Brown POS tagging as :class:`TaskData` (io ``many_to_many``).

    Returns ``x_*`` and ``y_*`` int32 ``[N, max_len]`` (train 43,005 / test 14,335 sentences);
    ``y`` holds tag ids 1..12 (``class_names[i]``) and 0 for padding; ``vocab_size = len(vocab) + 1``.
    ``source="synthetic"`` delegates to ``load_synthetic("many_to_many", **synthetic_kwargs)``.
    """
    check_source(source)
    if source == "synthetic":
        return synthetic("many_to_many", **synthetic_kwargs)
    words, tags, notes = brown_sentences(source, path, hf_repo=hf_repo)
    wtok = Tokenizer()
    wtok.fit_on_texts(words)
    return encode_brown(wtok, words, tags, max_len=max_len, test_size=test_size, seed=seed, notes=notes)


def encode_brown(wtok: Tokenizer, words, tags, *, max_len: int = 15, test_size: float = 0.25, seed: int = 4,
                 notes: str = "") -> TaskData:
    """Encode Brown sentences with a fitted word tokenizer, fit the tag tokenizer, split; -> TaskData."""
    ttok = Tokenizer()
    ttok.fit_on_texts(tags)
    x = pad_sequences(wtok.texts_to_sequences(words), maxlen=max_len, padding="pre", truncating="post")
    y = pad_sequences(ttok.texts_to_sequences(tags), maxlen=max_len, padding="pre", truncating="post")
    tr, te = shuffle_split_indices(len(x), test_size, seed)
    names = ("pad",) + tuple(ttok.index_word[i].upper() for i in range(1, len(ttok.word_index) + 1))
    return TaskData(name="brown", io="many_to_many", x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
                    class_names=names, vocab_size=wtok.vocab_size, in_len=max_len, out_len=max_len,
                    vocab=dict(wtok.word_index), notes=notes)
