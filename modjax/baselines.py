"""Order-blind baselines: what a task gives away without a recurrent model.

* :func:`bag_of_words_baseline`: multinomial logistic regression on word counts.
* :func:`last_token_baseline`: the majority label given the last word (tagging: the current
  word, i.e. a unigram tagger).
* :func:`dictionary_translation_baseline`: monotone word-by-word translation.

A task that needs the recurrence should leave these clearly below a trained RNN.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from modjax.data.base import TaskData
from modjax.precision import MATMUL_PRECISION

__all__ = ["bag_of_words_baseline", "last_token_baseline", "dictionary_translation_baseline"]

_CLASSIFICATION = ("one_to_one", "many_to_one", "one_to_many", "many_to_many")


def _check_classification(data: TaskData, fn: str) -> None:
    if data.io not in _CLASSIFICATION:
        raise ValueError(f"{fn} needs a classification or tagging task (io in "
                         f"{_CLASSIFICATION}), got data.io={data.io!r}")


def _num_classes(data: TaskData) -> int:
    return max(data.num_classes, int(data.y_train.max()) + 1, int(data.y_test.max()) + 1)


def _bag_of_words(x: np.ndarray, vocab_size: int) -> np.ndarray:
    """``x: [N, T]`` ids -> ``[N, vocab_size]`` float32 counts, padding (id 0) not counted."""
    n = x.shape[0]
    counts = np.zeros((n, vocab_size), np.float32)
    np.add.at(counts, (np.repeat(np.arange(n), x.shape[1]), x.ravel()), 1.0)
    counts[:, 0] = 0.0
    return counts


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "learning_rate",
                                             "l2", "seed"))
def _fit_softmax(feats, y, w, *, num_classes, steps, learning_rate, l2, seed):
    """Full-batch Adam on ``feats: [N, V]``, ``y, w: [N, S]`` -> ``(W [S, V, C], b [S, C])``."""
    v, s = feats.shape[1], y.shape[1]
    key = jax.random.PRNGKey(seed)
    params = (0.01 * jax.random.normal(key, (s, v, num_classes)), jnp.zeros((s, num_classes)))
    opt = optax.adam(learning_rate)

    def loss_fn(p):
        logits = jnp.einsum("nv,svc->nsc", feats, p[0], precision=MATMUL_PRECISION) + p[1]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1.0) + l2 * jnp.sum(p[0] ** 2)

    def step(carry, _):
        p, st = carry
        grads = jax.grad(loss_fn)(p)
        updates, st = opt.update(grads, st, p)
        return (optax.apply_updates(p, updates), st), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def bag_of_words_baseline(data: TaskData, *, seed: int = 0, steps: int = 300,
                          learning_rate: float = 0.05, l2: float = 1e-4) -> float:
    """Test accuracy of multinomial logistic regression on bag-of-words counts.

    Features are word counts ``[N, V]`` (``V = data.vocab_size``, padding not counted): the
    model sees which words occur and how often, never where. One-output tasks fit one softmax
    ``[V, C]``; many-output tasks fit one softmax per output step (``[T_out, V, C]``), all on
    the same counts. Trained full-batch with optax Adam for ``steps`` steps (jit-compiled),
    with an L2 penalty ``l2`` on the weights.

    Args:
      data: a classification or tagging task (``y_*: [N]`` or ``[N, T_out]``).
      seed: initialisation seed.

    Returns:
      test accuracy in ``[0, 1]``: over examples (one-output); over every (example, step)
      position, padding included (``one_to_many``); over **non-padding positions only**
      (``many_to_many``: label != 0; padding positions are also left out of the training
      loss there).
    """
    _check_classification(data, "bag_of_words_baseline")
    c = _num_classes(data)
    ytr, yte = np.asarray(data.y_train), np.asarray(data.y_test)
    if ytr.ndim == 1:
        ytr, yte = ytr[:, None], yte[:, None]
    tagging = data.io == "many_to_many"
    wtr = (ytr != 0) if tagging else np.ones_like(ytr, bool)
    W, b = _fit_softmax(jnp.asarray(_bag_of_words(data.x_train, data.vocab_size)),
                        jnp.asarray(ytr, jnp.int32), jnp.asarray(wtr, jnp.float32),
                        num_classes=c, steps=steps, learning_rate=learning_rate, l2=l2,
                        seed=seed)
    feats = jnp.asarray(_bag_of_words(data.x_test, data.vocab_size))
    logits = jnp.einsum("nv,svc->nsc", feats, W, precision=MATMUL_PRECISION) + b
    pred = np.asarray(jnp.argmax(logits, axis=-1))
    correct = pred == yte
    return float(correct[yte != 0].mean() if tagging else correct.mean())


def _last_real(x: np.ndarray) -> np.ndarray:
    """``x: [N, T]`` -> ``[N]`` the last non-padding id of each row (0 if the row is empty)."""
    real = x != 0
    idx = x.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)
    return np.where(real.any(axis=1), x[np.arange(x.shape[0]), idx], 0)


def _majority_table(keys: np.ndarray, labels: np.ndarray, num_keys: int, num_classes: int
                    ) -> np.ndarray:
    """Most frequent label per key ``[num_keys]`` (unseen keys: the overall majority)."""
    counts = np.zeros((num_keys, num_classes), np.int64)
    np.add.at(counts, (keys.ravel(), labels.ravel()), 1)
    table = counts.argmax(axis=1)
    table[counts.sum(axis=1) == 0] = np.bincount(labels.ravel(), minlength=num_classes).argmax()
    return table


def last_token_baseline(data: TaskData) -> float:
    """Test accuracy of predicting the majority training label given one word.

    * one-output (``y: [N]``): the key is the last non-padding token of ``x: [N, T_in]``.
    * ``one_to_many`` (``y: [N, T_out]``): the same key, one majority label per output step;
      accuracy over every position, padding included.
    * ``many_to_many`` (``y: [N, T]``): the key is the **current** token ``x[:, t]`` (a unigram
      tagger); accuracy over **non-padding positions only** (label != 0).

    Returns:
      test accuracy in ``[0, 1]``.
    """
    _check_classification(data, "last_token_baseline")
    c, v = _num_classes(data), data.vocab_size
    xtr, xte = np.asarray(data.x_train), np.asarray(data.x_test)
    ytr, yte = np.asarray(data.y_train), np.asarray(data.y_test)
    if data.io == "many_to_many":
        real_tr, real_te = ytr != 0, yte != 0
        table = _majority_table(xtr[real_tr], ytr[real_tr], v, c)
        return float((table[xte[real_te]] == yte[real_te]).mean())
    ktr, kte = _last_real(xtr), _last_real(xte)
    if ytr.ndim == 1:
        table = _majority_table(ktr, ytr, v, c)
        return float((table[kte] == yte).mean())
    pred = np.stack([_majority_table(ktr, ytr[:, s], v, c)[kte] for s in range(ytr.shape[1])],
                    axis=1)
    return float((pred == yte).mean())


def _id_to_word(vocab: dict, size: int) -> list:
    words = [""] * size
    for w, i in vocab.items():
        words[i] = w
    return words


def _sentences(ids: np.ndarray, id_to_word: list, skip: set) -> list:
    """``ids: [N, T]`` -> N space-joined strings, dropping padding and ids in ``skip``."""
    return [" ".join(id_to_word[i] for i in row if i != 0 and i not in skip) for row in ids]


def corpus_bleu(pred_ids: np.ndarray, ref_ids: np.ndarray, data: TaskData) -> float:
    """sacreBLEU corpus BLEU (4-gram, 0..100) of target id arrays ``[N, T]`` against ``[N, T]``.

    Padding and the ``[start…]``/``[end…]`` words are dropped; tokens are whole vocabulary
    words (``tokenize="none"``).
    """
    import sacrebleu

    words = _id_to_word(data.target_vocab, data.target_vocab_size)
    skip = {i for w, i in data.target_vocab.items() if w.startswith("[")}
    hyps = _sentences(np.asarray(pred_ids), words, skip)
    refs = _sentences(np.asarray(ref_ids), words, skip)
    return float(sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score)


def dictionary_translation_baseline(data: TaskData) -> float:
    """sacreBLEU (4-gram, 0..100) of monotone word-by-word translation on the test set.

    For every target language (``concern_*``), each source word gets the target word it is
    most associated with in the training pairs (Dice coefficient of sentence co-occurrence,
    ``[V_src, V_tgt]``); a test sentence ``x: [T_in]`` is translated word by word in source
    order. BLEU is computed over all test pairs against ``y_test: [N, T_out]`` with padding and
    the ``[start…]``/``[end…]`` words removed.

    Returns:
      corpus BLEU in ``[0, 100]``.
    """
    if data.io != "encoder_decoder":
        raise ValueError(f"dictionary_translation_baseline needs io='encoder_decoder', "
                         f"got data.io={data.io!r}")
    vs, vt = data.vocab_size, data.target_vocab_size
    special = np.zeros(vt, bool)
    special[0] = True
    special[[i for w, i in data.target_vocab.items() if w.startswith("[")]] = True
    xtr, ytr, ctr = data.x_train, data.y_train, data.concern_train
    pred = np.zeros_like(data.x_test)
    for lang in range(data.num_classes):
        rows = ctr == lang
        src = _bag_of_words(xtr[rows], vs) > 0
        tgt = _bag_of_words(ytr[rows], vt) > 0
        co = src.T.astype(np.float32) @ tgt.astype(np.float32)          # [V_src, V_tgt]
        dice = 2 * co / np.maximum(src.sum(0)[:, None] + tgt.sum(0)[None, :], 1)
        dice[:, special] = -1.0
        table = dice.argmax(axis=1)
        table[0] = 0
        test_rows = data.concern_test == lang
        pred[test_rows] = table[data.x_test[test_rows]]
    return corpus_bleu(pred, data.y_test, data)
