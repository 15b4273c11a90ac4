"""BLEU for the translation modules: the paper's BLEU-1 and sacreBLEU (docs/method.md#encoder-decoder).

Two scores, both in ``[0, 100]``:

* :func:`paper_bleu1` — the score the paper's Table II reports for translation: corpus BLEU with
  n-gram weights ``(1, 0, 0, 0)`` and no smoothing, i.e. the brevity penalty times the clipped
  unigram precision pooled over the corpus. Each hypothesis is counted with at least one
  unigram in the precision's denominator (an empty hypothesis adds 0 matches over 1). Tokens are
  whitespace-split words; the references are the raw target sentences *with* their
  ``[startℓ]``/``[endℓ]`` tags (original case and punctuation), the hypotheses the decoded words
  starting with the ``[startℓ]`` tag (:func:`paper_hypothesis`).
* :func:`sacre_bleu` — sacreBLEU's corpus BLEU (4-gram, its default ``13a`` tokeniser, case
  sensitive) on detokenised text without tags (:func:`strip_tags`). A translator whose target
  vocabulary was lower-cased and stripped of punctuation cannot write either, so
  :func:`bleu_scores` can put the references through the same standardisation first
  (``standardize``); otherwise every capital and full stop of a reference is an unmatchable
  token and the 4-gram score sinks towards 0 whatever the translation.

Both are plain Python/NumPy over strings; nothing here touches JAX.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

Tokens = Sequence[str]


def _check_pairs(hypotheses, references) -> None:
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be sequences of sentences, got a str")
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references must have the same length, got "
                         f"{len(hypotheses)} and {len(references)}")
    if len(hypotheses) == 0:
        raise ValueError("hypotheses must hold at least one sentence, got 0")


def _tokens(s, name: str, i: int) -> List[str]:
    if isinstance(s, str):
        return s.split()
    if not all(isinstance(w, str) for w in s):
        raise TypeError(f"{name}[{i}] must be a str or a sequence of str, got {s!r}")
    return list(s)


def paper_bleu1(hypotheses: Sequence, references: Sequence) -> float:
    """The paper's BLEU-1 (``[0, 100]``): corpus BLEU, weights ``(1, 0, 0, 0)``, no smoothing.

    Args:
      hypotheses: ``N`` sentences, each a whitespace-separated ``str`` or a list of tokens.
      references: ``N`` reference sentences (one reference per hypothesis), same forms.

    Returns:
      ``100 · BP · P1`` with ``P1 = Σ_i Σ_w min(h_i(w), r_i(w)) / Σ_i max(1, |h_i|)`` (clipped
      unigram matches over hypothesis words) and the brevity penalty ``BP = 1`` if
      ``c > r``, ``exp(1 − r / c)`` otherwise (``c = Σ |h_i|``, ``r = Σ |r_i|``; 0 when
      ``c = 0``). 0 when no unigram matches.
    """
    _check_pairs(hypotheses, references)
    matches = denom = c = r = 0
    for i, (h, ref) in enumerate(zip(hypotheses, references)):
        h, ref = _tokens(h, "hypotheses", i), _tokens(ref, "references", i)
        rc = Counter(ref)
        matches += sum(min(n, rc[w]) for w, n in Counter(h).items())
        denom += max(1, len(h))
        c += len(h)
        r += len(ref)
    if matches == 0 or c == 0:
        return 0.0
    bp = 1.0 if c > r else math.exp(1.0 - r / c)
    return 100.0 * bp * matches / denom


def sacre_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacreBLEU corpus BLEU (``[0, 100]``, 4-gram, ``13a`` tokeniser, case sensitive).

    Args:
      hypotheses: ``N`` detokenised sentences (no tags).
      references: ``N`` reference sentences (one each, no tags).
    """
    import sacrebleu

    _check_pairs(hypotheses, references)
    for name, seq in (("hypotheses", hypotheses), ("references", references)):
        bad = [i for i, s in enumerate(seq) if not isinstance(s, str)]
        if bad:
            raise TypeError(f"{name}[{bad[0]}] must be a str, got {type(seq[bad[0]]).__name__}")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def is_tag(word: str) -> bool:
    """``[startℓ]`` / ``[endℓ]`` style tags (a word in square brackets)."""
    return (word.startswith("[start") or word.startswith("[end")) and word.endswith("]")


def strip_tags(sentence: str) -> str:
    """The sentence without its ``[start…]``/``[end…]`` words, whitespace collapsed."""
    return " ".join(w for w in sentence.split() if not is_tag(w))


def id_words(vocab: Mapping[str, int], size: int) -> np.ndarray:
    """``[size]`` object array: the word of every id (``""`` for padding and unused ids)."""
    words = np.full(size, "", dtype=object)
    for w, i in vocab.items():
        if 0 < i < size:
            words[i] = w
    return words


def decoded_words(ids: np.ndarray, words: np.ndarray, end_ids: np.ndarray) -> List[List[str]]:
    """Words of decoded ids ``[N, T]`` up to and including each row's end id ``end_ids [N]``.

    Padding (id 0, the empty word) is dropped, as splitting the decoded text on whitespace
    drops it.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be [N, T] decoded ids, got shape {ids.shape}")
    end_ids = np.asarray(end_ids)
    if end_ids.shape != (ids.shape[0],):
        raise ValueError(f"end_ids must have shape [{ids.shape[0]}], got {end_ids.shape}")
    out = []
    for row, end in zip(ids, end_ids):
        stop = np.nonzero(row == end)[0]
        row = row[: stop[0] + 1] if stop.size else row
        out.append([w for w in words[row] if w])
    return out


def paper_hypothesis(start_word: str, words: Tokens) -> List[str]:
    """The paper's hypothesis tokens: the start tag, then the decoded words (end tag included
    when it was emitted)."""
    return [start_word, *words]


def bleu_scores(decoded: Sequence[Tokens], references: Sequence[str],
                start_words: Sequence[str],
                standardize: Optional[Callable[[str], str]] = None) -> Dict[str, float]:
    """Both scores of decoded sentences against raw tagged references.

    Args:
      decoded: ``N`` lists of decoded words (:func:`decoded_words`).
      references: ``N`` raw target sentences with tags (``"[startfr] Je suis là. [endfr]"``).
      start_words: ``N`` start tags (``"[startfr]"``).
      standardize: ``str -> str`` applied to each reference before sacreBLEU (not BLEU-1, which
        is the paper's and scores the raw text): the standardisation the model's target
        vocabulary went through, e.g. :func:`modjax.data.tokenizer.standardize_keep_brackets`
        for Tatoeba; ``None`` scores the raw references.

    Returns:
      ``{"bleu1": paper BLEU-1, "bleu1_words": BLEU-1 on the words alone, "sacrebleu":
      sacreBLEU}``, each in ``[0, 100]``. ``bleu1_words`` is :func:`paper_bleu1` without the
      tags on either side (references standardised when ``standardize`` is given): every
      hypothesis of a translator that stops matches its start and end tags, which lifts the
      paper's score by about two matches per sentence whatever the words.
    """
    _check_pairs(decoded, references)
    if standardize is not None and not callable(standardize):
        raise TypeError(f"standardize must be None or a callable str -> str, got {standardize!r}")
    hyps = [paper_hypothesis(s, d) for s, d in zip(start_words, decoded)]
    words = [" ".join(w for w in d if not is_tag(w)) for d in decoded]
    refs = [strip_tags(standardize(r) if standardize else r) for r in references]
    return {"bleu1": paper_bleu1(hyps, references), "bleu1_words": paper_bleu1(words, refs),
            "sacrebleu": sacre_bleu(words, refs)}
