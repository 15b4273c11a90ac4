"""Translating with a model or its per-language modules, and scoring with BLEU.

An encoder-decoder's module ``ℓ`` translates into language ``ℓ`` (docs/method.md#encoder-decoder).
This module decodes a test split language by language, in fixed-size batches through the one
compiled greedy scan (:func:`modjax.models.greedy_decode`), and scores the words with
:mod:`modjax.bleu`:

* :func:`tag_ids` — the ``[startℓ]`` / ``[endℓ]`` ids of every language;
* :func:`language_rows` — the test rows of each language, in split order;
* :func:`decode_ids` — greedy decoding of many sentences, batched;
* :func:`decode_language` — one language's test sentences, by the model or by module ``ℓ``;
* :func:`references_from_ids` — tagged reference strings rebuilt from target ids (for data
  without raw text, such as the synthetic task);
* :func:`tatoeba_references` — the raw tagged Tatoeba target sentences of a split, in the order
  of :func:`modjax.data.tatoeba.load_tatoeba`'s rows; :func:`split_references` the same for
  any pairs (the motivating examples').
"""
from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from modjax import bleu


def tag_ids(data) -> Tuple[np.ndarray, np.ndarray]:
    """``(start [C], end [C])``: the target ids of ``[startℓ]`` and ``[endℓ]`` for every
    language ``ℓ`` of ``data.class_names`` (``ValueError`` if a tag is not in the vocabulary)."""
    if data.io != "encoder_decoder" or not data.target_vocab:
        raise ValueError(f"data must be an encoder_decoder TaskData with a target_vocab, got "
                         f"io={data.io!r}")
    out = []
    for kind in ("start", "end"):
        ids = []
        for lang in data.class_names:
            w = f"[{kind}{lang}]"
            if w not in data.target_vocab:
                raise ValueError(f"data.target_vocab must hold the tag {w!r} of language "
                                 f"{lang!r}; it does not")
            ids.append(int(data.target_vocab[w]))
        out.append(np.asarray(ids, np.int32))
    return out[0], out[1]


def language_rows(concern: np.ndarray, num_languages: int,
                  limit: Optional[int] = None) -> List[np.ndarray]:
    """Row indices of each language in ``concern [N]`` (split order), the first ``limit`` each."""
    concern = np.asarray(concern)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit!r}")
    return [np.nonzero(concern == l)[0][:limit] for l in range(num_languages)]


def decode_ids(config, params, src: np.ndarray, start_ids: np.ndarray, end_ids: np.ndarray, *,
               decomp=None, module: Optional[int] = None, batch_size: int = 512) -> np.ndarray:
    """Greedy decoding of ``src [N, in_len]`` in batches of ``batch_size`` (the last one padded,
    so one compiled scan serves all): ``start_ids``, ``end_ids [N]`` -> ``[N, out_len]`` ids.

    ``decomp`` and ``module`` as in :func:`modjax.models.greedy_decode`.
    """
    from modjax.models import greedy_decode

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    src = np.asarray(src, np.int32)
    n = src.shape[0]
    if n == 0:
        return np.zeros((0, config.out_len), np.int32)
    bs = min(batch_size, n)
    outs = []
    for s in range(0, n, bs):
        e = min(s + bs, n)
        pad = bs - (e - s)
        take = lambda a: np.concatenate([a[s:e], np.repeat(a[s:s + 1], pad, 0)]) if pad else a[s:e]
        ids = greedy_decode(config, params, take(src), take(np.asarray(start_ids, np.int32)),
                            decomp=decomp, module=module,
                            end_ids=take(np.asarray(end_ids, np.int32)))
        outs.append(np.asarray(ids)[: e - s])
    return np.concatenate(outs)


def decode_language(config, params, data, rows: np.ndarray, lang: int, *, decomp=None,
                    use_module: bool = False, batch_size: int = 512) -> List[List[str]]:
    """Decoded words of the test rows ``rows`` (all of language ``lang``) by the monolithic
    model, or by module ``lang`` of ``decomp`` when ``use_module``; each list ends with the end
    tag when it was emitted (:func:`modjax.bleu.decoded_words`)."""
    start, end = tag_ids(data)
    n = len(rows)
    ids = decode_ids(config, params, np.asarray(data.x_test)[rows],
                     np.full(n, start[lang], np.int32), np.full(n, end[lang], np.int32),
                     decomp=decomp if use_module else None,
                     module=lang if use_module else None, batch_size=batch_size)
    words = bleu.id_words(data.target_vocab, int(data.target_vocab_size))
    return bleu.decoded_words(ids, words, np.full(n, end[lang]))


def references_from_ids(data, split: str = "test") -> List[str]:
    """Tagged target sentences ``"[startℓ] w1 … [endℓ]"`` rebuilt from ``decoder_input`` and
    ``y`` ids (padding dropped)."""
    dec = np.asarray(getattr(data, f"decoder_input_{split}"))
    y = np.asarray(getattr(data, f"y_{split}"))
    words = bleu.id_words(data.target_vocab, int(data.target_vocab_size))
    full = np.concatenate([dec[:, :1], y], axis=1)
    return [" ".join(w for w in words[row] if w) for row in full]


def tatoeba_references(path=None, *, seed: int = 19, split: str = "test",
                       languages: Sequence[str] = ("fr", "de", "it")) -> List[str]:
    """The raw tagged target sentences (original case and punctuation) of a Tatoeba split, in
    the row order of :func:`modjax.data.tatoeba.load_tatoeba` with the same ``seed`` and
    ``eval_split=split``."""
    from modjax.data.tatoeba import tatoeba_pairs

    return split_references(tatoeba_pairs("local", path, languages=languages)[0], seed, split)


def split_references(pairs, seed: int = 19, split: str = "test") -> List[str]:
    """The tagged target sentences of ``split`` of ``(source, tagged target, language)`` pairs
    (:func:`modjax.data.tatoeba.make_pairs`), split as the loaders split them."""
    from modjax.data.tatoeba import _select, split_pairs

    _, evalp = _select(split_pairs(pairs, seed), split)
    return [p[1] for p in evalp]


def score_language(decoded: Sequence[Sequence[str]], references: Sequence[str],
                   start_word: str, limit: Optional[int] = None,
                   standardize=None) -> Dict[str, float]:
    """BLEU-1 (paper) and sacreBLEU of one language's decoded sentences against its
    references, on the first ``limit`` sentences (all when ``None``); ``standardize``: the
    target standardisation sacreBLEU's references go through (:func:`modjax.bleu.bleu_scores`)."""
    decoded, references = list(decoded)[:limit], list(references)[:limit]
    return bleu.bleu_scores(decoded, references, [start_word] * len(decoded), standardize)


def _module_args(config, decomp, module):
    """``(keep, u_mask, head_rows)`` of ``module`` of ``decomp`` (monolithic: no keep)."""
    if decomp is None:
        if module is not None:
            raise ValueError(f"module={module!r} needs decomp (the decomposition it indexes)")
        return None, "paper", "step"
    from modjax.decomposition import check_module_index

    if decomp.config != config:
        raise ValueError("decomp must be a decomposition of config's model (its config differs)")
    module = check_module_index("module", module, decomp.num_modules)
    return (np.asarray(decomp.keep[module], np.float32), decomp.options.u_mask,
            decomp.options.head_rows)


@functools.partial(jax.jit, static_argnames=("config", "u_mask", "head_rows"))
def _prefix_argmax(params, src, prefix, keep, *, config, u_mask: str, head_rows: str):
    """Arg-max ids ``[N, out_len]`` of one full pass of the model on ``prefix [N, out_len]``."""
    from modjax.models import apply_model

    logits = apply_model(config, params, src, prefix, keep=keep, u_mask=u_mask,
                         head_rows=head_rows)
    return jnp.argmax(logits, -1).astype(jnp.int32)


def prefix_decode(config, params, src: np.ndarray, start_ids: np.ndarray, end_ids: np.ndarray,
                  *, decomp=None, module: Optional[int] = None) -> np.ndarray:
    """Greedy decoding the authors' way, for comparison: at step ``i`` the whole model
    (encoder and decoder) is run again on the partial target post-padded to ``out_len``, and the
    arg-max at position ``i`` is appended — ``out_len`` full passes, ``O(T²)`` decoder steps.

    ``src [N, in_len]``, ``start_ids``, ``end_ids [N]`` -> ``[N, out_len]`` ids (0 after an
    example's end id), the same contract as :func:`modjax.models.greedy_decode`.
    """
    keep, u_mask, head_rows = _module_args(config, decomp, module)
    run = functools.partial(_prefix_argmax, config=config, u_mask=u_mask, head_rows=head_rows)
    src = np.asarray(src, np.int32)
    n, T = src.shape[0], config.out_len
    prefix = np.zeros((n, T), np.int32)
    prefix[:, 0] = start_ids
    out = np.zeros((n, T), np.int32)
    done = np.zeros(n, bool)
    for i in range(T):
        tok = np.asarray(run(params, src, prefix, keep))[:, i]
        tok = np.where(done, 0, tok)
        done |= tok == np.asarray(end_ids)
        out[:, i] = tok
        if i + 1 < T:
            prefix[:, i + 1] = tok
    return out
