"""Keras-compatible text preprocessing, without TensorFlow.

The paper's models were trained on integer sequences made by Keras 2 preprocessing. To feed the
same ids to re-implemented models, this module re-implements, in plain Python/NumPy:

* :class:`Tokenizer` -- ``keras.preprocessing.text.Tokenizer`` (word ids by frequency, ``num_words``,
  ``oov_token``), with :func:`text_to_word_sequence`;
* :func:`pad_sequences` -- ``keras.utils.pad_sequences``;
* :class:`TextVectorization` -- the ``int`` output mode of ``keras.layers.TextVectorization``
  (used for Tatoeba), with :func:`standardize_lower_strip` and :func:`standardize_keep_brackets`.

Keras behaviours reproduced on purpose (they decide which id a word gets):

* ``Tokenizer.fit_on_texts`` counts words in first-seen order and sorts them by count with a
  *stable* sort, so ties keep first-seen order; ids start at 1 (the OOV token, when given, is 1
  and every word shifts by one).
* A text given as a string is lower-cased, every character of ``filters`` becomes ``split`` and the
  result is split on ``split`` (empty pieces dropped). A text given as a *list of tokens* is used as
  it is -- no filtering, no splitting -- except that each token is lower-cased when ``lower``.
* ``texts_to_sequences`` emits only ids ``< num_words``; rarer words become the OOV id when there is
  an OOV token and are dropped otherwise. Unknown words likewise.
* ``TextVectorization`` lower-cases ASCII letters only (``tf.strings.lower``), removes ASCII
  punctuation, splits on ASCII whitespace, and orders its vocabulary by count, ties broken by the
  token's UTF-8 bytes in *descending* order; id 0 is ``''`` (padding) and 1 is ``'[UNK]'``.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

TextOrTokens = Union[str, Sequence[str]]


def _check_texts(texts, name="texts"):
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of texts (str or list of str), got a single {type(texts).__name__}")
    return texts


def text_to_word_sequence(text: str, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " ") -> List[str]:
    """Split one string into words the way Keras does.

    Lower-cases (if ``lower``), replaces every character in ``filters`` by ``split``, splits on
    ``split`` and drops empty pieces. Returns a list of words.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    if filters:
        rx = _FILTER_RX.get(filters)
        if rx is None:
            rx = _FILTER_RX[filters] = re.compile("[" + re.escape(filters) + "]")
        text = rx.sub(split, text)
    return [w for w in text.split(split) if w]


_FILTER_RX: Dict[str, "re.Pattern"] = {}


class Tokenizer:
    """Word-level tokenizer with the semantics of Keras 2 ``Tokenizer``.

    Args:
      num_words: if set, :meth:`texts_to_sequences` keeps only ids ``< num_words`` (the
        ``num_words - 1`` most frequent words, counting the OOV token). ``word_index`` still holds
        every word.
      filters: characters turned into separators (strings only).
      lower: lower-case texts (and the tokens of pre-tokenised texts).
      split: separator used to split strings.
      char_level: treat every character as a token.
      oov_token: if given, gets id 1 and stands for unknown/rare words.

    Attributes after :meth:`fit_on_texts`: ``word_counts`` (dict in first-seen order),
    ``word_docs``, ``document_count``, ``word_index`` (word -> id, ids from 1) and ``index_word``.
    """

    def __init__(self, num_words: Optional[int] = None, filters: str = DEFAULT_FILTERS, lower: bool = True,
                 split: str = " ", char_level: bool = False, oov_token: Optional[str] = None):
        if num_words is not None and (not isinstance(num_words, (int, np.integer)) or num_words < 0):
            raise ValueError(f"num_words must be None or a non-negative int, got {num_words!r}")
        if oov_token is not None and not isinstance(oov_token, str):
            raise TypeError(f"oov_token must be None or a str, got {type(oov_token).__name__}")
        self.num_words = None if num_words is None else int(num_words)
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self.word_counts: Dict[str, int] = {}
        self.word_docs: Dict[str, int] = {}
        self.document_count = 0
        self.word_index: Dict[str, int] = {}
        self.index_word: Dict[int, str] = {}

    def _words(self, text: TextOrTokens) -> List[str]:
        if self.char_level or not isinstance(text, str):
            if isinstance(text, bytes):
                raise TypeError("texts must hold str or lists of str, got bytes")
            if self.lower:
                return [t.lower() for t in text] if not isinstance(text, str) else list(text.lower())
            return list(text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts: Iterable[TextOrTokens]) -> "Tokenizer":
        """Update word counts with ``texts`` (strings or token lists) and rebuild ``word_index``.

        May be called several times; counts accumulate and first-seen order is kept. Returns self.
        """
        _check_texts(texts)
        counts = collections.Counter(self.word_counts)  # Counter keeps first-seen (insertion) order
        docs = collections.Counter(self.word_docs)
        for text in texts:
            self.document_count += 1
            seq = self._words(text)
            counts.update(seq)
            docs.update(set(seq))
        self.word_counts = dict(counts)
        self.word_docs = dict(docs)
        ordered = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)  # stable: ties keep first-seen order
        vocab = ([self.oov_token] if self.oov_token is not None else []) + [w for w, _ in ordered]
        self.word_index = dict(zip(vocab, range(1, len(vocab) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        return self

    def texts_to_sequences(self, texts: Iterable[TextOrTokens]) -> List[List[int]]:
        """Encode each text as a list of ids (variable length; see :func:`pad_sequences`)."""
        _check_texts(texts)
        num_words = self.num_words
        oov_id = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        # word -> emitted id (None = dropped): ids >= num_words become the OOV id or are dropped.
        emit = {w: (i if not (num_words and i >= num_words) else oov_id) for w, i in self.word_index.items()}
        out = []
        for text in texts:
            vect = [emit.get(w, oov_id) for w in self._words(text)]
            if oov_id is None:
                vect = [i for i in vect if i is not None]
            out.append(vect)
        return out

    @property
    def vocab_size(self) -> int:
        """Embedding input size for the emitted ids: ``num_words`` if set, else ``len(word_index) + 1``."""
        if self.num_words:
            return self.num_words
        return len(self.word_index) + 1


def pad_sequences(sequences: Sequence[Sequence[int]], maxlen: Optional[int] = None, dtype="int32",
                  padding: str = "pre", truncating: str = "pre", value=0) -> np.ndarray:
    """Pad/truncate id lists to one length, like Keras ``pad_sequences``.

    Returns an array ``[len(sequences), maxlen]`` (``maxlen`` defaults to the longest sequence).
    ``padding``/``truncating`` are ``"pre"`` (Keras's default: pad and cut at the start) or
    ``"post"``. The paper uses ``padding="pre", truncating="post"`` (keep the first words).
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding must be 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
    if isinstance(sequences, (str, bytes)):
        raise TypeError("sequences must be a list of id lists, got a string")
    seqs = [s if isinstance(s, (list, np.ndarray)) else list(s) for s in sequences]
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    elif not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"maxlen must be None or a non-negative int, got {maxlen!r}")
    out = np.full((len(seqs), int(maxlen)), value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(seqs):
        if len(s) == 0:
            continue
        s = s[:maxlen] if truncating == "post" else s[-maxlen:]
        if padding == "post":
            out[i, : len(s)] = s
        else:
            out[i, maxlen - len(s):] = s
    return out


# --------------------------------------------------------------------------- TextVectorization

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_STRIP_ALL = re.compile("[" + re.escape(string.punctuation) + "]")
_STRIP_KEEP_BRACKETS = re.compile(
    "[" + re.escape(string.punctuation.replace("[", "").replace("]", "") + "\u00bf") + "]")
_ASCII_WS = re.compile(r"[ \t\n\r\f\v]+")


def _ascii_lower(text: str) -> str:
    # tf.strings.lower without an encoding changes only A-Z.
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def standardize_lower_strip(text: str) -> str:
    """Keras's default ``lower_and_strip_punctuation``: ASCII lower-case, drop ASCII punctuation."""
    return _STRIP_ALL.sub("", _ascii_lower(text))


def standardize_keep_brackets(text: str) -> str:
    """The paper's target-side standardisation: ASCII lower-case, drop ASCII punctuation and ``¿``
    but keep ``[`` and ``]`` (so ``[startfr]`` stays one token)."""
    return _STRIP_KEEP_BRACKETS.sub("", _ascii_lower(text))


#: Text standardisations by name (``TextVectorization(standardize=...)`` and
#: :attr:`modjax.data.base.TaskData.target_standardize`): ``str -> str``.
STANDARDIZATIONS: Dict[str, Callable[[str], str]] = {
    "lower_and_strip_punctuation": standardize_lower_strip,
    "lower": _ascii_lower,
    "strip_punctuation": lambda t: _STRIP_ALL.sub("", t),
    "keep_brackets": standardize_keep_brackets,
}


def standardization(name: str) -> Callable[[str], str]:
    """The standardisation called ``name`` (a key of :data:`STANDARDIZATIONS`)."""
    if not isinstance(name, str) or name not in STANDARDIZATIONS:
        raise ValueError(f"standardize must be one of {sorted(STANDARDIZATIONS)}, None or a "
                         f"callable, got {name!r}")
    return STANDARDIZATIONS[name]


#: ``TextVectorization``'s unknown-word token (id 1).
UNKNOWN = "[UNK]"


class TextVectorization:
    """Integer output of Keras ``TextVectorization`` (``output_mode="int"``), without TensorFlow.

    Args:
      max_tokens: vocabulary size including ``''`` (id 0) and ``'[UNK]'`` (id 1); ``None`` = no cap.
      output_sequence_length: pad (with 0, at the end) or cut (at the end) to this length;
        ``None`` pads to the longest text of each call.
      standardize: a name from :data:`STANDARDIZATIONS` (``"lower_and_strip_punctuation"``,
        the default; ``"lower"``, ``"strip_punctuation"``, ``"keep_brackets"``), ``None`` or a
        callable ``str -> str``.
    """

    def __init__(self, max_tokens: Optional[int] = None, output_sequence_length: Optional[int] = None,
                 standardize: Union[None, str, Callable[[str], str]] = "lower_and_strip_punctuation"):
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 3):
            raise ValueError(f"max_tokens must be None or an int >= 3, got {max_tokens!r}")
        if output_sequence_length is not None and (not isinstance(output_sequence_length, int) or output_sequence_length < 1):
            raise ValueError(f"output_sequence_length must be None or a positive int, got {output_sequence_length!r}")
        if callable(standardize):
            self._standardize = standardize
        elif standardize is None:
            self._standardize = lambda t: t
        else:
            self._standardize = standardization(standardize)
        self.max_tokens = max_tokens
        self.output_sequence_length = output_sequence_length
        self._vocab: List[str] = ["", UNKNOWN]
        self._index: Dict[str, int] = {"": 0, UNKNOWN: 1}

    def tokens(self, text: str) -> List[str]:
        """Standardise and split one text into tokens."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = self._standardize(text)
        if text.isascii():  # str.split() == splitting on ASCII whitespace for ASCII text
            return text.split()
        return [t for t in _ASCII_WS.split(text) if t]

    def adapt(self, texts: Iterable[str]) -> "TextVectorization":
        """Build the vocabulary from ``texts``: by count, ties by token bytes descending. Returns self."""
        _check_texts(texts)
        counts: Dict[str, int] = {}
        for text in texts:
            for t in self.tokens(text):
                counts[t] = counts.get(t, 0) + 1
        counts.pop("", None)
        counts.pop(UNKNOWN, None)
        ordered = sorted(counts.items(), key=lambda kv: (kv[1], kv[0].encode("utf-8")), reverse=True)
        if self.max_tokens:
            ordered = ordered[: self.max_tokens - 2]
        self._vocab = ["", UNKNOWN] + [w for w, _ in ordered]
        self._index = {w: i for i, w in enumerate(self._vocab)}
        return self

    def get_vocabulary(self) -> List[str]:
        """Tokens by id (``['', '[UNK]', ...]``)."""
        return list(self._vocab)

    def vocabulary_size(self) -> int:
        """Number of ids (vocabulary length including ``''`` and ``'[UNK]'``)."""
        return len(self._vocab)

    @property
    def vocab(self) -> Dict[str, int]:
        """token -> id."""
        return dict(self._index)

    def __call__(self, texts: Iterable[str]) -> np.ndarray:
        """Encode texts as int32 ``[N, output_sequence_length]`` (0 = padding, 1 = unknown)."""
        _check_texts(texts)
        idx = self._index
        seqs = [[idx.get(t, 1) for t in self.tokens(text)] for text in texts]
        return pad_sequences(seqs, maxlen=self.output_sequence_length, padding="post", truncating="post")
