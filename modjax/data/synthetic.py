"""Embedded synthetic tasks, one per I/O type: the default data of modjax.

Every task is small, seeded and generated in well under a second, so a small model trains on
it in seconds on a CPU. Each one *needs* the recurrence (or at least word order): a
bag-of-words model, or a last-token / current-token model, does clearly worse than a 1-layer
LSTM, and no model reaches 100% because of label noise or genuine ambiguity.

The tasks stand in for the datasets of the paper:

* ``one_to_one`` (MathQA-like, 20 tokens seen as one flattened step) and ``many_to_one``
  (Clinc-like, 15 steps): *templated intents*. Several class keywords appear among filler
  words; the label is the class of the **first** keyword. Bag-of-words sees which classes
  occur but not which came first. 3% label noise.
* ``one_to_many`` (toxic-like, 20 tokens in, 6 label steps out): a comment is quoted text
  followed by a reply (its last 8 words); attribute ``k`` (ids 2..7) is active iff one of its
  trigger words occurs **in the reply**. The label sequence is the sorted list of active ids
  pre-padded with 0, or ``[0, .., 0, 1]`` ("clean"). Bag-of-words sees the triggers but not
  where they are. 2% of examples have one attribute flipped.
* ``many_to_many`` (POS-like tagging, 15 steps): a hidden Markov grammar over 7 tags with many
  ambiguous words (``run`` is a noun after ``the`` and a verb after ``they``). Some ambiguities
  are resolved only by the *next* word, so a left-to-right model stays below 100%; the best
  possible left-to-right tagger is :func:`rule_predictions` (HMM forward filtering).
* ``encoder_decoder`` (Tatoeba-like): source sentences of 3..6 words; three rule-based target
  languages, each with its own lexicon (some words with two synonyms, picked at random) and its
  own word order: ``rev`` (reversed), ``swap`` (adjacent pairs swapped), ``rot`` (first word
  moved to the end).

Conventions (as in the paper's Keras pipelines): token id 0 is padding; classification and
tagging inputs and labels are **pre-padded** (zeros first) to a fixed length; vocabularies map
word -> id with ids from 1 and no entry for padding. Encoder-decoder sources and targets are
**post-padded** (zeros last), as Keras ``TextVectorization`` does; the models use ``mask_zero``
on both sides there.

The languages, lexicons and grammars are fixed; ``seed`` only changes which examples are drawn.
"""
from __future__ import annotations

import numpy as np

from modjax.data.base import IO_TYPES, TaskData

__all__ = [
    "load_synthetic",
    "make_one_to_one",
    "make_many_to_one",
    "make_one_to_many",
    "make_many_to_many",
    "make_encoder_decoder",
    "rule_predictions",
]

# ---------------------------------------------------------------------------------------------
# Lexicons (fixed; the seed only changes the sampled examples).
# ---------------------------------------------------------------------------------------------

_MATHQA_CLASSES = ("gain", "general", "geometry", "other", "physics", "probability")
_MATHQA_KEYWORDS = (
    ("profit", "loss", "percent", "interest"),
    ("number", "sum", "digits", "remainder"),
    ("triangle", "circle", "area", "radius"),
    ("ratio", "average", "ages", "workers"),
    ("speed", "train", "distance", "hours"),
    ("dice", "random", "chance", "coin"),
)
_MATHQA_FILLERS = (
    "a", "an", "the", "of", "is", "are", "if", "what", "find", "how", "many", "much", "and",
    "in", "to", "by", "for", "with", "then", "when", "its", "his", "her", "their", "two",
    "three", "four", "five", "six", "ten", "first", "second", "total", "value", "each", "one",
    "more", "less", "than", "times", "equal", "given", "x", "y", "be", "will", "was", "has",
    "after", "before", "at", "on", "from", "rs", "per", "cent",
)

_CLINC_CLASSES = ("banking", "travel", "cooking", "music", "weather", "health")
_CLINC_KEYWORDS = (
    ("balance", "transfer", "account", "deposit"),
    ("flight", "hotel", "passport", "luggage"),
    ("recipe", "oven", "bake", "ingredients"),
    ("song", "playlist", "album", "volume"),
    ("rain", "forecast", "umbrella", "temperature"),
    ("doctor", "fever", "medicine", "headache"),
)
_CLINC_FILLERS = (
    "please", "can", "you", "tell", "me", "the", "a", "my", "what", "is", "for", "to", "i",
    "need", "want", "help", "with", "about", "today", "tomorrow", "now", "again", "could",
    "would", "like", "know", "check", "find", "get", "set", "up", "some", "how", "do", "and",
    "or", "it", "this", "that", "there", "here", "any", "new", "next", "last", "time", "quick",
    "really", "just", "also", "let", "us", "our", "your", "good", "thanks",
)

_TOXIC_CLASSES = ("<pad>", "clean", "toxic", "severe_toxic", "obscene", "threat", "insult",
                  "identity_hate")
_TOXIC_TRIGGERS = (
    ("nasty", "vile"),
    ("scum", "filth"),
    ("crap", "damn"),
    ("hurt", "kill"),
    ("idiot", "stupid"),
    ("bigot", "racist"),
)
_TOXIC_FILLERS = (
    "the", "a", "this", "that", "article", "page", "edit", "you", "your", "i", "we", "is",
    "are", "was", "be", "it", "of", "to", "and", "in", "for", "on", "talk", "user", "please",
    "thanks", "source", "wiki", "section", "change", "revert", "just", "really", "so", "all",
    "what", "why", "here", "about", "people",
)

# POS-like grammar: tags 1..7 (0 is padding), a tag Markov chain and per-tag word weights.
_POS_CLASSES = ("<pad>", "NOUN", "VERB", "DET", "ADJ", "ADP", "PRON", "ADV")
_NOUN, _VERB, _DET, _ADJ, _ADP, _PRON, _ADV = range(1, 8)
# _POS_START[t]: P(first tag = t); _POS_TRANS[s, t]: P(next tag = t | tag s). Index 0 unused.
_POS_START = np.array([0, .15, 0, .40, 0, 0, .35, .10])
_POS_TRANS = np.array([
    [0, 0, 0, 0, 0, 0, 0, 0],
    [0, .05, .55, 0, 0, .25, 0, .15],   # NOUN -> VERB / ADP / ADV
    [0, 0, 0, .35, .10, .15, .20, .20],  # VERB -> DET / PRON / ADP / ADV / ADJ
    [0, .65, 0, 0, .35, 0, 0, 0],       # DET  -> NOUN / ADJ
    [0, .85, 0, 0, .15, 0, 0, 0],       # ADJ  -> NOUN / ADJ
    [0, .15, 0, .60, 0, 0, .25, 0],     # ADP  -> DET / PRON / NOUN
    [0, 0, .85, 0, 0, 0, 0, .15],       # PRON -> VERB / ADV
    [0, 0, .50, 0, .30, .20, 0, 0],     # ADV  -> VERB / ADJ / ADP
])
# (words, {tag: share of that tag's emissions spread evenly over these words})
_POS_LEXICON = (
    (("dog", "cat", "house", "car", "city", "child", "teacher", "river", "garden", "story"),
     {_NOUN: .45}),
    (("eats", "sees", "takes", "gives", "finds", "likes", "makes", "knows"), {_VERB: .35}),
    (("run", "walk", "plan", "watch", "play", "work", "cook", "fish", "rain", "book"),
     {_NOUN: .55, _VERB: .65}),
    (("the", "a", "every", "some"), {_DET: .55}),
    (("that", "this"), {_DET: .45, _PRON: .35}),
    (("he", "she", "they", "we", "it"), {_PRON: .65}),
    (("big", "small", "red", "old", "happy", "green"), {_ADJ: .45}),
    (("fast", "hard", "late", "early"), {_ADJ: .55, _ADV: .40}),
    (("in", "on", "with", "from", "to"), {_ADP: .50}),
    (("up", "down", "out", "over"), {_ADP: .50, _ADV: .35}),
    (("very", "often", "quickly", "never"), {_ADV: .25}),
)

_TRANSLATION_LANGS = ("rev", "swap", "rot")
_TRANSLATION_SOURCE = (
    "i", "you", "he", "she", "we", "they", "see", "like", "want", "have", "eat", "read",
    "the", "a", "big", "small", "red", "old", "cat", "dog", "book", "house", "apple", "car",
    "today", "now", "here", "often",
)


def _vocab(words) -> dict:
    """word -> id from 1, in first-seen order (duplicates keep their first id)."""
    vocab: dict = {}
    for w in words:
        if w not in vocab:
            vocab[w] = len(vocab) + 1
    return vocab


def _check_sizes(n_train: int, n_test: int) -> None:
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p!r}")


def _flip_labels(rng, y: np.ndarray, num_classes: int, noise: float) -> np.ndarray:
    """Replace a fraction ``noise`` of the labels ``y: [N]`` by a different, uniform class."""
    flip = rng.random(y.shape[0]) < noise
    shift = rng.integers(1, num_classes, size=y.shape[0])
    return np.where(flip, (y + shift) % num_classes, y)


# ---------------------------------------------------------------------------------------------
# one_to_one / many_to_one: templated intents, label = class of the first keyword.
# ---------------------------------------------------------------------------------------------

def _intent_arrays(rng, n, seq_len, min_len, kw_ids, filler_ids, n_keywords_p, noise):
    """Sentences ``x: [n, seq_len]`` (pre-padded) and labels ``y: [n]``.

    ``kw_ids: [C, K]`` keyword ids per class; ``n_keywords_p[m - 1]`` = P(m keywords).
    """
    num_classes, per_class = kw_ids.shape
    max_kw = len(n_keywords_p)
    if max_kw > num_classes or max_kw > min_len:
        raise ValueError(f"at most min(num_classes, min_len) keywords per sentence, "
                         f"got n_keywords_p of length {max_kw}")
    steps = np.arange(seq_len)[None, :]
    lengths = rng.integers(min_len, seq_len + 1, size=n)
    start = seq_len - lengths                                     # first real position
    m = rng.choice(max_kw, p=np.asarray(n_keywords_p, float), size=n) + 1
    x = filler_ids[rng.integers(0, len(filler_ids), size=(n, seq_len))]
    classes = np.argsort(rng.random((n, num_classes)), axis=1)[:, :max_kw]   # distinct classes
    keys = rng.random((n, seq_len)) + (steps < start[:, None])    # padded steps sort last
    pos = np.argsort(keys, axis=1)[:, :max_kw]                    # distinct real positions
    word = kw_ids[classes, rng.integers(0, per_class, size=(n, max_kw))]
    used = np.arange(max_kw)[None, :] < m[:, None]
    rows = np.broadcast_to(np.arange(n)[:, None], used.shape)
    x[rows[used], pos[used]] = word[used]
    first = np.argmin(np.where(used, pos, seq_len), axis=1)
    y = classes[np.arange(n), first]
    y = _flip_labels(rng, y, num_classes, noise)
    x = np.where(steps < start[:, None], 0, x)
    return x.astype(np.int32), y.astype(np.int32)


def _intent_task(name, io, classes, keywords, fillers, *, n_train, n_test, seed, seq_len,
                 min_len, n_keywords_p, noise):
    _check_sizes(n_train, n_test)
    _check_prob("noise", noise)
    if not 1 <= min_len <= seq_len:
        raise ValueError(f"min_len must be in [1, seq_len={seq_len}], got {min_len}")
    vocab = _vocab([w for ws in keywords for w in ws] + list(fillers))
    kw_ids = np.array([[vocab[w] for w in ws] for ws in keywords])
    filler_ids = np.array([vocab[w] for w in fillers])
    rng = np.random.default_rng(seed)
    x, y = _intent_arrays(rng, n_train + n_test, seq_len, min_len, kw_ids, filler_ids,
                          n_keywords_p, noise)
    return TaskData(
        name=name, io=io,
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        class_names=tuple(classes), vocab_size=len(vocab) + 1, in_len=seq_len, out_len=1,
        vocab=vocab,
        notes=(f"templated intents: label = class of the first keyword; "
               f"{noise:.0%} label noise; pre-padded to {seq_len}"),
    )


def make_one_to_one(*, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                    seq_len: int = 20, min_len: int = 8,
                    n_keywords_p=(0.1, 0.3, 0.3, 0.3), noise: float = 0.03) -> TaskData:
    """MathQA-like 1:1 task: 6 categories, the label is the class of the first keyword.

    ``x: [N, seq_len]`` int32 pre-padded token ids; ``y: [N]`` int32 in ``[0, 6)``.
    ``n_keywords_p[m - 1]`` is the probability of ``m`` keywords (of distinct classes).
    """
    return _intent_task("synthetic_one_to_one", "one_to_one", _MATHQA_CLASSES,
                        _MATHQA_KEYWORDS, _MATHQA_FILLERS, n_train=n_train, n_test=n_test,
                        seed=seed, seq_len=seq_len, min_len=min_len,
                        n_keywords_p=n_keywords_p, noise=noise)


def make_many_to_one(*, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                     seq_len: int = 15, min_len: int = 6,
                     n_keywords_p=(0.1, 0.3, 0.3, 0.3), noise: float = 0.03) -> TaskData:
    """Clinc-like M:1 task: 6 domains, the label is the domain of the first keyword.

    ``x: [N, seq_len]`` int32 pre-padded token ids; ``y: [N]`` int32 in ``[0, 6)``.
    """
    return _intent_task("synthetic_many_to_one", "many_to_one", _CLINC_CLASSES,
                        _CLINC_KEYWORDS, _CLINC_FILLERS, n_train=n_train, n_test=n_test,
                        seed=seed, seq_len=seq_len, min_len=min_len,
                        n_keywords_p=n_keywords_p, noise=noise)


def _intent_rule(x: np.ndarray, keywords, fillers) -> np.ndarray:
    """Noise-free label of ``x: [N, T]``: class of the first keyword (0 if none)."""
    vocab = _vocab([w for ws in keywords for w in ws] + list(fillers))
    cls_of = np.full(len(vocab) + 1, -1)
    for c, ws in enumerate(keywords):
        cls_of[[vocab[w] for w in ws]] = c
    cls = cls_of[x]
    first = np.argmax(cls >= 0, axis=1)
    return np.maximum(cls[np.arange(x.shape[0]), first], 0).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# one_to_many: toxic-like attributes, judged on the reply (the last words) only.
# ---------------------------------------------------------------------------------------------

def make_one_to_many(*, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                     seq_len: int = 20, min_len: int = 12, reply_len: int = 8,
                     n_triggers_p=(0.05, 0.1, 0.15, 0.2, 0.2, 0.15, 0.15),
                     noise: float = 0.02) -> TaskData:
    """Toxic-like 1:N task: which of 6 attributes (ids 2..7) the reply shows.

    A comment is quoted text followed by a reply of the last ``reply_len`` words. Attribute
    ``k`` is active iff one of its trigger words occurs **in the reply**; triggers in the
    quoted part do not count. Trigger words are spread uniformly over the comment, so a
    bag-of-words sees them but not where they are. ``n_triggers_p[k]`` = P(k trigger words,
    attributes drawn with replacement). A fraction ``noise`` of the examples has one
    attribute flipped.

    ``x: [N, seq_len]`` int32 pre-padded (so the reply is always ``x[:, -reply_len:]``);
    ``y: [N, 6]`` int32: the sorted active ids pre-padded with 0, or ``[0, 0, 0, 0, 0, 1]``
    when none is active (1 = clean).
    """
    _check_sizes(n_train, n_test)
    _check_prob("noise", noise)
    if not 1 <= reply_len < min_len <= seq_len:
        raise ValueError(f"need 1 <= reply_len < min_len <= seq_len={seq_len}, got "
                         f"reply_len={reply_len}, min_len={min_len}")
    max_trig = len(n_triggers_p) - 1
    if max_trig > min_len:
        raise ValueError(f"n_triggers_p allows {max_trig} triggers, more than min_len={min_len}")
    n_attr, out_len = len(_TOXIC_TRIGGERS), 6
    vocab = _toxic_vocab()
    trig_ids = np.array([[vocab[w] for w in ws] for ws in _TOXIC_TRIGGERS])
    filler_ids = np.array([vocab[w] for w in _TOXIC_FILLERS])

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    steps = np.arange(seq_len)[None, :]
    lengths = rng.integers(min_len, seq_len + 1, size=n)
    pad = steps < (seq_len - lengths)[:, None]
    k = rng.choice(max_trig + 1, p=np.asarray(n_triggers_p, float), size=n)
    x = filler_ids[rng.integers(0, len(filler_ids), size=(n, seq_len))]
    pos = np.argsort(rng.random((n, seq_len)) + pad, axis=1)[:, :max(max_trig, 1)]
    used = np.arange(pos.shape[1])[None, :] < k[:, None]
    attr = rng.integers(0, n_attr, size=pos.shape)
    word = trig_ids[attr, rng.integers(0, trig_ids.shape[1], size=pos.shape)]
    rows = np.broadcast_to(np.arange(n)[:, None], used.shape)
    x[rows[used], pos[used]] = word[used]
    x = np.where(pad, 0, x).astype(np.int32)

    active = np.zeros((n, n_attr), bool)
    hit = used & (pos >= seq_len - reply_len)
    active[rows[hit], attr[hit]] = True
    flip = rng.random(n) < noise
    flip_attr = rng.integers(0, n_attr, size=n)
    active[np.nonzero(flip)[0], flip_attr[flip]] ^= True
    y = _toxic_labels(active, out_len)
    return TaskData(
        name="synthetic_one_to_many", io="one_to_many",
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        class_names=_TOXIC_CLASSES, vocab_size=len(vocab) + 1, in_len=seq_len,
        out_len=out_len, vocab=vocab,
        notes=(f"toxic-like attributes: active iff a trigger occurs in the last {reply_len} "
               f"words (the reply); {noise:.0%} of examples with one attribute flipped; "
               "x and y pre-padded"),
    )


def _toxic_vocab() -> dict:
    return _vocab([w for ws in _TOXIC_TRIGGERS for w in ws] + list(_TOXIC_FILLERS))


def _toxic_labels(active: np.ndarray, out_len: int) -> np.ndarray:
    """``active: [N, 6]`` bool -> ``y: [N, out_len]`` sorted ids (2..7) pre-padded, or clean."""
    n_attr = active.shape[1]
    vals = np.sort(np.where(active, np.arange(2, 2 + n_attr)[None, :], 0), axis=1)
    y = np.zeros((active.shape[0], out_len), np.int32)
    y[:, -min(out_len, n_attr):] = vals[:, -min(out_len, n_attr):]
    y[~active.any(axis=1), -1] = 1
    return y


def _toxic_rule(x: np.ndarray, reply_len: int) -> np.ndarray:
    """Noise-free labels ``[N, 6]`` of toxic-like inputs ``x: [N, T]`` (pre-padded)."""
    vocab = _toxic_vocab()
    attr_of = np.full(len(vocab) + 1, -1)
    for a, ws in enumerate(_TOXIC_TRIGGERS):
        attr_of[[vocab[w] for w in ws]] = a
    a = attr_of[x[:, -reply_len:]]
    active = np.zeros((x.shape[0], len(_TOXIC_TRIGGERS)), bool)
    r, t = np.nonzero(a >= 0)
    active[r, a[r, t]] = True
    return _toxic_labels(active, 6)

# ---------------------------------------------------------------------------------------------
# many_to_many: POS-like tagging from a hidden Markov grammar with ambiguous words.
# ---------------------------------------------------------------------------------------------

def _pos_tables():
    """``vocab``, emission matrix ``E: [8, V + 1]`` (rows = tags, P(word | tag))."""
    vocab = _vocab([w for ws, _ in _POS_LEXICON for w in ws])
    emit = np.zeros((len(_POS_CLASSES), len(vocab) + 1))
    for words, shares in _POS_LEXICON:
        for tag, share in shares.items():
            emit[tag, [vocab[w] for w in words]] += share / len(words)
    emit[1:] /= emit[1:].sum(axis=1, keepdims=True)
    return vocab, emit


def make_many_to_many(*, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                      seq_len: int = 15, min_len: int = 5) -> TaskData:
    """POS-like M:N tagging: a hidden Markov grammar over 7 tags with ambiguous words.

    ``x: [N, seq_len]`` int32 pre-padded token ids; ``y: [N, seq_len]`` int32 tags in
    ``[1, 8)`` at real words and 0 at padding. Many words take two tags; the previous words
    mostly tell which, but some only the next word does, so left-to-right tagging stays below
    100% (its ceiling is :func:`rule_predictions`).
    """
    _check_sizes(n_train, n_test)
    if not 1 <= min_len <= seq_len:
        raise ValueError(f"min_len must be in [1, seq_len={seq_len}], got {min_len}")
    vocab, emit = _pos_tables()
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    tags = np.zeros((n, seq_len), np.int64)
    trans_cdf = np.cumsum(_POS_TRANS, axis=1)
    tag = np.searchsorted(np.cumsum(_POS_START), rng.random(n), side="right")
    tags[:, 0] = tag
    for t in range(1, seq_len):
        u = rng.random(n)
        tag = np.minimum((u[:, None] >= trans_cdf[tag]).sum(axis=1), len(_POS_CLASSES) - 1)
        tags[:, t] = tag
    emit_cdf = np.cumsum(emit, axis=1)
    u = rng.random((n, seq_len))
    words = (u[..., None] >= emit_cdf[tags]).sum(axis=-1)
    words = np.minimum(words, len(vocab))
    lengths = rng.integers(min_len, seq_len + 1, size=n)
    # Right-align the first `length` generated steps: real words end at the last position.
    src = np.arange(seq_len)[None, :] - (seq_len - lengths)[:, None]
    pad = src < 0
    src = np.clip(src, 0, seq_len - 1)
    x = np.where(pad, 0, np.take_along_axis(words, src, axis=1)).astype(np.int32)
    y = np.where(pad, 0, np.take_along_axis(tags, src, axis=1)).astype(np.int32)
    return TaskData(
        name="synthetic_many_to_many", io="many_to_many",
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        class_names=_POS_CLASSES, vocab_size=len(vocab) + 1, in_len=seq_len, out_len=seq_len,
        vocab=vocab,
        notes="POS-like hidden Markov grammar; x and y pre-padded; tag 0 = padding",
    )


def _pos_rule(x: np.ndarray) -> np.ndarray:
    """Best left-to-right tags ``[N, T]`` for ``x: [N, T]``: argmax of the HMM filter."""
    _, emit = _pos_tables()
    n, seq_len = x.shape
    started = np.zeros(n, bool)
    alpha = np.zeros((n, len(_POS_CLASSES)))
    out = np.zeros((n, seq_len), np.int32)
    for t in range(seq_len):
        w = x[:, t]
        real = w > 0
        prior = np.where(started[:, None], alpha @ _POS_TRANS, _POS_START[None, :])
        post = prior * emit[:, w].T
        post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)
        alpha = np.where(real[:, None], post, alpha)
        started |= real
        out[:, t] = np.where(real, post.argmax(axis=1), 0)
    return out


# ---------------------------------------------------------------------------------------------
# encoder_decoder: rule-based pseudo-languages with their own lexicon and word order.
# ---------------------------------------------------------------------------------------------

def _translation_tables():
    """Source vocab, target vocab and ``lex[lang][src_id] -> tuple of target ids``."""
    src_vocab = _vocab(_TRANSLATION_SOURCE)
    lex_rng = np.random.default_rng(20230514)          # fixed: the languages never change
    onsets, vowels = list("bdfgklmnprstvz"), ["a", "e", "i", "o", "u"]
    endings = {"rev": "a", "swap": "o", "rot": "i"}
    words, lex_words = [], {}
    for lang in _TRANSLATION_LANGS:
        words += [f"[start{lang}]", f"[end{lang}]"]
    for lang in _TRANSLATION_LANGS:
        seen, table = set(), []
        for i, _ in enumerate(_TRANSLATION_SOURCE):
            forms = []
            for _k in range(2 if (i % 4 == 1) else 1):     # every 4th word has two synonyms
                while True:
                    syl = lex_rng.integers(0, len(onsets), 2), lex_rng.integers(0, 5, 2)
                    w = (onsets[syl[0][0]] + vowels[syl[1][0]] + onsets[syl[0][1]]
                         + vowels[syl[1][1]] + endings[lang])
                    if w not in seen:
                        seen.add(w)
                        break
                forms.append(w)
            table.append(tuple(forms))
        lex_words[lang] = table
        words += [w for forms in table for w in forms]
    tgt_vocab = _vocab(words)
    lex = {lang: [tuple(tgt_vocab[w] for w in forms) for forms in lex_words[lang]]
           for lang in _TRANSLATION_LANGS}
    return src_vocab, tgt_vocab, lex


def _reorder(lang: str, length: np.ndarray, width: int) -> np.ndarray:
    """Source position read at each target position: ``[N, width]`` (garbage past length)."""
    j = np.arange(width)[None, :]
    ln = length[:, None]
    if lang == "rev":
        return np.clip(ln - 1 - j, 0, width - 1)
    if lang == "swap":
        partner = j ^ 1
        return np.where(partner < ln, partner, j)
    if lang == "rot":
        return np.where(j == ln - 1, 0, np.minimum(j + 1, width - 1))
    raise ValueError(f"unknown language {lang!r}")


def make_encoder_decoder(*, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                         min_len: int = 3, max_len: int = 6, p_second_synonym: float = 0.5
                         ) -> TaskData:
    """Tatoeba-like encoder-decoder task: translate into one of 3 rule-based languages.

    Each pair draws a source sentence of ``min_len..max_len`` uniform words and a target
    language ``l`` (``rev``: reversed order, ``swap``: adjacent pairs swapped, ``rot``: first
    word moved to the end). Every fourth source word has two target synonyms; the second is
    used with probability ``p_second_synonym`` (genuine ambiguity: BLEU stays below 100).

    Shapes (all int32, **post-padded** with 0 on both sides):

    * ``x: [N, max_len]`` source ids;
    * target ``[start_l] w1 .. wk [end_l]`` of width ``max_len + 2``;
      ``decoder_input = target[:, :-1]`` and ``y = target[:, 1:]``, both ``[N, max_len + 1]``;
    * ``concern: [N]`` the language index into ``class_names``.
    """
    _check_sizes(n_train, n_test)
    _check_prob("p_second_synonym", p_second_synonym)
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")
    src_vocab, tgt_vocab, lex = _translation_tables()
    n_langs, n_src = len(_TRANSLATION_LANGS), len(src_vocab)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    j = np.arange(max_len)[None, :]
    length = rng.integers(min_len, max_len + 1, size=n)
    real = j < length[:, None]
    src = rng.integers(1, n_src + 1, size=(n, max_len))
    x = np.where(real, src, 0).astype(np.int32)
    lang = rng.integers(0, n_langs, size=n)
    second = rng.random((n, max_len)) < p_second_synonym
    words = np.zeros((n, max_len), np.int64)
    for li, name in enumerate(_TRANSLATION_LANGS):
        first_form = np.array([0] + [forms[0] for forms in lex[name]])
        last_form = np.array([0] + [forms[-1] for forms in lex[name]])
        rows = lang == li
        order = _reorder(name, length[rows], max_len)
        src_l = np.take_along_axis(x[rows], order, axis=1)
        words[rows] = np.where(second[rows], last_form[src_l], first_form[src_l])
    words = np.where(real, words, 0)
    start_ids = np.array([tgt_vocab[f"[start{l}]"] for l in _TRANSLATION_LANGS])
    end_ids = np.array([tgt_vocab[f"[end{l}]"] for l in _TRANSLATION_LANGS])
    target = np.zeros((n, max_len + 2), np.int64)
    target[:, 0] = start_ids[lang]
    target[:, 1:max_len + 1] = words
    target[np.arange(n), length + 1] = end_ids[lang]
    target = target.astype(np.int32)
    dec_in, y = target[:, :-1], target[:, 1:]
    lang = lang.astype(np.int32)
    return TaskData(
        name="synthetic_encoder_decoder", io="encoder_decoder",
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        class_names=_TRANSLATION_LANGS, vocab_size=n_src + 1, in_len=max_len,
        out_len=max_len + 1, vocab=src_vocab,
        decoder_input_train=dec_in[:n_train], decoder_input_test=dec_in[n_train:],
        concern_train=lang[:n_train], concern_test=lang[n_train:],
        target_vocab=tgt_vocab, target_vocab_size=len(tgt_vocab) + 1,
        notes=("rule-based pseudo-languages rev/swap/rot with synonyms; source and target "
               "post-padded (mask_zero)"),
    )


def _translation_rule(x: np.ndarray, concern: np.ndarray) -> np.ndarray:
    """Noise-free decoder labels ``[N, T_in + 1]`` (first synonym always) for ``x: [N, T_in]``."""
    _, tgt_vocab, lex = _translation_tables()
    n, max_len = x.shape
    length = (x > 0).sum(axis=1)
    real = np.arange(max_len)[None, :] < length[:, None]
    y = np.zeros((n, max_len + 1), np.int64)
    for li, name in enumerate(_TRANSLATION_LANGS):
        rows = concern == li
        first_form = np.array([0] + [forms[0] for forms in lex[name]])
        order = _reorder(name, length[rows], max_len)
        w = first_form[np.take_along_axis(x[rows], order, axis=1)]
        y[rows, :max_len] = np.where(real[rows], w, 0)
        y[np.nonzero(rows)[0], length[rows]] = tgt_vocab[f"[end{name}]"]
    return y.astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Public entry points.
# ---------------------------------------------------------------------------------------------

_MAKERS = {
    "one_to_one": make_one_to_one,
    "many_to_one": make_many_to_one,
    "one_to_many": make_one_to_many,
    "many_to_many": make_many_to_many,
    "encoder_decoder": make_encoder_decoder,
}


def load_synthetic(io: str, *, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                   **kw) -> TaskData:
    """The embedded synthetic task for I/O type ``io`` (see the module docstring).

    Args:
      io: one of ``"one_to_one"``, ``"many_to_one"``, ``"one_to_many"``, ``"many_to_many"``,
        ``"encoder_decoder"``.
      n_train, n_test: number of examples (pairs for encoder-decoder).
      seed: seed of ``numpy.random.default_rng``; same arguments -> identical arrays.
      **kw: task options of the matching ``make_*`` function (e.g. ``noise``).

    Returns:
      a :class:`~modjax.data.base.TaskData`; shapes are in the ``make_*`` docstrings.
    """
    if io not in IO_TYPES:
        raise ValueError(f"io must be one of {IO_TYPES}, got {io!r}")
    return _MAKERS[io](n_train=n_train, n_test=n_test, seed=seed, **kw)


def rule_predictions(data: TaskData, split: str = "test", *, reply_len: int = 8) -> np.ndarray:
    """What the noise-free generating rule predicts for ``data``'s inputs: the ceiling.

    Shapes follow ``data.y_<split>``: ``[N]`` (one-output), ``[N, T_out]`` (one-to-many,
    many-to-many, encoder-decoder). For ``many_to_many`` this is the best possible
    left-to-right tagger (HMM forward filtering); for ``encoder_decoder`` the reference
    translation with the first synonym of every word. ``reply_len`` must match the one the
    ``one_to_many`` task was made with.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    x = getattr(data, f"x_{split}")
    if data.name == "synthetic_one_to_one":
        return _intent_rule(x, _MATHQA_KEYWORDS, _MATHQA_FILLERS)
    if data.name == "synthetic_many_to_one":
        return _intent_rule(x, _CLINC_KEYWORDS, _CLINC_FILLERS)
    if data.name == "synthetic_one_to_many":
        return _toxic_rule(x, reply_len)
    if data.name == "synthetic_many_to_many":
        return _pos_rule(x)
    if data.name == "synthetic_encoder_decoder":
        return _translation_rule(x, getattr(data, f"concern_{split}"))
    raise ValueError(f"data must come from load_synthetic, got data.name={data.name!r}")
