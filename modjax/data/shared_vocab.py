"""Two datasets encoded with ONE tokenizer (the paper's inter-reuse/replacement "combined" models).

Modules from two models can only be mixed if both models read the same ids. The paper fitted two
tokenizers on the same corpora in different orders, so tied words got different ids in the two
models (docs/method.md#reuse). Here a single :class:`~modjax.data.tokenizer.Tokenizer` is fitted once, in a
documented order -- first dataset train, first dataset test, second dataset train, second dataset
test -- and both datasets are encoded with it. Word-frequency ties therefore go to the word seen
first in that order.

* :func:`load_mathqa_toxic_shared`: MathQA (1:1) + toxic (1:N), ``num_words=7000`` with OOV.
* :func:`load_clinc_brown_shared`: CLINC (M:1) + Brown (M:N), no cap; CLINC utterances are cleaned
  and word-tokenised as in :mod:`modjax.data.clinc`, Brown sentences are pre-tokenised.
"""
from __future__ import annotations

from typing import Tuple

from modjax.data.base import TaskData
from modjax.data.brown import brown_sentences, encode_brown
from modjax.data.clinc import clinc_texts, encode_clinc
from modjax.data.mathqa import encode_mathqa, mathqa_texts
from modjax.data.text import clinc_tokens
from modjax.data.tokenizer import Tokenizer
from modjax.data.toxic import encode_toxic, toxic_texts


def _check_order(order, pair):
    if tuple(sorted(order)) != tuple(sorted(pair)) or len(order) != 2:
        raise ValueError(f"order must be a permutation of {pair}, got {order!r}")
    return tuple(order)


def load_mathqa_toxic_shared(source: str = "local", path=None, *, num_words: int = 7000, oov_token: str = "<OOV>",
                             order=("mathqa", "toxic"), mathqa_kwargs=None, toxic_kwargs=None
                             ) -> Tuple[TaskData, TaskData]:
    """``(mathqa, toxic)`` TaskData sharing one ``Tokenizer(num_words, oov_token)``.

    Fitted on the train then test texts of ``order[0]``, then of ``order[1]``. Shapes as in
    :func:`~modjax.data.mathqa.load_mathqa` (``[N, 20]``) and :func:`~modjax.data.toxic.load_toxic`
    (``[N, 20]`` / ``[N, 6]``); both have ``vocab_size = num_words`` and the same ``vocab``.
    """
    order = _check_order(order, ("mathqa", "toxic"))
    m = mathqa_texts(source, path, **(mathqa_kwargs or {}))
    t = toxic_texts(source, path, **(toxic_kwargs or {}))
    texts = {"mathqa": (m[0], m[2]), "toxic": (t[0], t[2])}
    tok = Tokenizer(num_words=num_words, oov_token=oov_token)
    for name in order:
        tok.fit_on_texts(texts[name][0])
        tok.fit_on_texts(texts[name][1])
    note = f"; shared tokenizer fitted on {order[0]} then {order[1]}"
    return (encode_mathqa(tok, m[0], m[1], m[2], m[3], notes=m[4] + note),
            encode_toxic(tok, t[0], t[1], t[2], t[3], notes=t[4] + note))


def load_clinc_brown_shared(source: str = "local", path=None, *, order=("clinc", "brown"), clinc_max_len: int = 15,
                            brown_max_len: int = 15) -> Tuple[TaskData, TaskData]:
    """``(clinc, brown)`` TaskData sharing one uncapped ``Tokenizer()``.

    Fitted on CLINC train, CLINC test, then all Brown sentences (or the reverse with
    ``order=("brown", "clinc")``). Both get ``vocab_size = len(shared vocab) + 1``.
    """
    order = _check_order(order, ("clinc", "brown"))
    xtr, ytr, xte, yte, names, cnotes = clinc_texts(source, path)
    ttr = [clinc_tokens(s) for s in xtr]
    tte = [clinc_tokens(s) for s in xte]
    words, tags, bnotes = brown_sentences(source, path)
    tok = Tokenizer()
    for name in order:
        if name == "clinc":
            tok.fit_on_texts(ttr)
            tok.fit_on_texts(tte)
        else:
            tok.fit_on_texts(words)
    note = f"; shared tokenizer fitted on {order[0]} then {order[1]}"
    return (encode_clinc(tok, ttr, ytr, tte, yte, names, max_len=clinc_max_len, notes=cnotes + note),
            encode_brown(tok, words, tags, max_len=brown_max_len, notes=bnotes + note))
