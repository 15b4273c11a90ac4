"""The decision rules of reuse and replacement experiments (docs/method.md#reuse).

The plain vote (:func:`modjax.compose.vote`) takes the arg-max of every module's contrast
``z_p - z_q``. The paper's reuse experiments decide otherwise in three places, and these pure,
jit-friendly functions state each rule once:

* **two modules, one output** (intra reuse of a 1:1 or M:1 model): :func:`pair_decision`. Each
  module *claims* its class when its class is the arg-max of its own output; if exactly one of
  the two claims, it wins, else the higher own-class probability wins. The 1:1 score is the
  C-way softmax of the *channelled* logits (:func:`channelled_logits`: ``z_p`` at ``p``, the mean
  of the other logits at the negative slot ``q``, zeros elsewhere); the M:1 score is the
  pairwise softmax over ``(z_q, z_p)``, i.e. ``sigmoid(z_p - z_q)``.
* **many outputs, two classes** (intra reuse of 1:N / M:N): every module votes per step, a
  winner outside the pair becomes 0 (:func:`restrict_votes`); a 1:N prediction is then collapsed
  to the two-step format ``[c1, c2]``, ``[0, c1]`` or ``[0, c2]`` (:func:`collapse_pair`).
* **modules of different models** (inter reuse and replacement): each module is scored by its
  odds ``p_pos / p_neg``, a many-output module by its largest odds over the steps; the larger
  odds win (:func:`max_log_odds`, :func:`odds_decision`). Odds are compared as log-odds
  ``z_p - z_q`` (equal to ``log(p_p / p_q)`` under either score), so nothing saturates.

Probabilities are compared in log space for the same reason: ``softmax`` rounds to 1.0 in
float32 long before the logits stop differing.
"""
from __future__ import annotations

import functools
import operator
from typing import Tuple

import jax
import jax.numpy as jnp

Array = jax.Array

#: Module scores for :func:`pair_decision`: ``"softmax"`` (C-way softmax of the channelled
#: logits; the paper's 1:1 rule) or ``"pairwise"`` (softmax over ``(z_q, z_p)``; M:1).
PAIR_SCORES = ("softmax", "pairwise")


def _class_index(name: str, value, num_classes: int) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int class index, got {value!r}") from None
    if not 0 <= v < num_classes:
        raise ValueError(f"{name} must be in [0, {num_classes}), got {v}")
    return v


def negative_slot(p: int) -> int:
    """The column a channelled head keeps for "not ``p``": ``0``, or ``1`` when ``p == 0``."""
    return 1 if int(p) == 0 else 0


def channelled_logits(logits: Array, p: int) -> Array:
    """The logits of module ``p``'s channelled head from the original head's logits.

    ``logits [..., C]`` (``C >= 2``) -> ``[..., C]``: ``z_p`` at ``p``, the mean of the other
    ``C - 1`` logits at ``q = negative_slot(p)``, 0 elsewhere (docs/method.md#channelling; the
    head is linear, so the mean logit is the logit of the averaged column).
    """
    logits = jnp.asarray(logits)
    C = logits.shape[-1]
    if C < 2:
        raise ValueError(f"logits must have at least 2 classes on the last axis, got shape "
                         f"{logits.shape}")
    p = _class_index("p", p, C)
    q = negative_slot(p)
    z_p = logits[..., p]
    z_q = (jnp.sum(logits, axis=-1) - z_p) / (C - 1)
    out = jnp.zeros_like(logits)
    return out.at[..., p].set(z_p).at[..., q].set(z_q)


def own_class_log_probability(logits: Array, p: int, score: str = "softmax") -> Array:
    """``log`` of module ``p``'s probability of its class: ``[..., C] -> [...]``.

    ``score="softmax"``: ``log softmax(channelled_logits(logits, p))[p]`` over all ``C``
    entries (the zeros included). ``score="pairwise"``: ``log sigmoid(z_p - z_q)``.
    """
    if score not in PAIR_SCORES:
        raise ValueError(f"score must be one of {PAIR_SCORES}, got {score!r}")
    ch = channelled_logits(logits, p)
    p = int(p)
    if score == "softmax":
        return jax.nn.log_softmax(ch, axis=-1)[..., p]
    return jax.nn.log_sigmoid(ch[..., p] - ch[..., negative_slot(p)])


def claims_own_class(logits: Array, p: int, score: str = "softmax") -> Array:
    """Whether module ``p``'s output has its class as arg-max: ``[..., C] -> bool [...]``.

    ``"softmax"``: ``argmax(channelled_logits) == p`` over all ``C`` entries (first index on
    ties, as NumPy's and Keras's arg-max); ``"pairwise"``: ``z_p > z_q`` (``q`` comes first
    when ``p > q``; when ``p == 0``, ``q == 1`` and a tie goes to ``p``).
    """
    if score not in PAIR_SCORES:
        raise ValueError(f"score must be one of {PAIR_SCORES}, got {score!r}")
    ch = channelled_logits(logits, p)
    p = int(p)
    if score == "softmax":
        return jnp.argmax(ch, axis=-1) == p
    z_p, z_q = ch[..., p], ch[..., negative_slot(p)]
    return (z_p >= z_q) if p < negative_slot(p) else (z_p > z_q)


@functools.partial(jax.jit, static_argnames=("classes", "score"))
def pair_decision(logits_a: Array, logits_b: Array, classes: Tuple[int, int],
                  score: str = "softmax") -> Array:
    """Two modules of one model decide a two-class problem: ``0`` (class ``classes[0]``) or
    ``1`` (``classes[1]``), per example.

    Args:
      logits_a, logits_b: ``[..., C]`` the original head's logits under module
        ``classes[0]`` and module ``classes[1]`` (``module_scores(..., kind="logits")``).
      classes: the two modules' classes ``(c1, c2)``, distinct (a tuple: it is static under
        ``jax.jit``; one compilation per pair and input shape).
      score: ``"softmax"`` (1:1) or ``"pairwise"`` (M:1), see :data:`PAIR_SCORES`.

    Returns:
      int32 ``[...]``: if exactly one module claims its class (:func:`claims_own_class`) it
      wins; otherwise the larger own-class probability wins, ties to ``classes[0]``.
    """
    logits_a, logits_b = jnp.asarray(logits_a), jnp.asarray(logits_b)
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"logits_a and logits_b must have the same shape, got "
                         f"{logits_a.shape} and {logits_b.shape}")
    if len(classes) != 2:
        raise ValueError(f"classes must be two class indices, got {classes!r}")
    C = logits_a.shape[-1]
    c1 = _class_index("classes[0]", classes[0], C)
    c2 = _class_index("classes[1]", classes[1], C)
    if c1 == c2:
        raise ValueError(f"classes must be two distinct classes, got {classes!r}")
    claim_a = claims_own_class(logits_a, c1, score)
    claim_b = claims_own_class(logits_b, c2, score)
    lp_a = own_class_log_probability(logits_a, c1, score)
    lp_b = own_class_log_probability(logits_b, c2, score)
    by_prob = jnp.where(lp_a >= lp_b, 0, 1)
    return jnp.where(claim_a & ~claim_b, 0,
                     jnp.where(claim_b & ~claim_a, 1, by_prob)).astype(jnp.int32)


def restrict_votes(pred: Array, classes) -> Array:
    """``pred`` (any int shape) with every class not in ``classes`` replaced by 0."""
    pred = jnp.asarray(pred)
    keep = jnp.isin(pred, jnp.asarray(list(classes), pred.dtype))
    return jnp.where(keep, pred, 0)


@functools.partial(jax.jit, static_argnames=("c1", "c2"))
def collapse_pair(pred: Array, score_c1: Array, score_c2: Array, c1: int, c2: int) -> Array:
    """A many-output prediction collapsed to the two-step format of a two-class 1:N problem.

    Args:
      pred: ``[N, T]`` the per-step vote (:func:`restrict_votes` applied or not).
      score_c1, score_c2: ``[N, T]`` monotone scores of modules ``c1`` and ``c2`` (contrasts
        ``z_p - z_q`` or probabilities) at every step.
      c1, c2: the two classes, ``c1 < c2`` (the labels list active classes in order).

    Returns:
      int32 ``[N, 2]``: ``[c1, c2]`` if both classes appear in ``pred``; ``[0, c]`` if only
      ``c`` does; if neither does, ``[0, c]`` for the class whose module's largest per-step
      score is larger (ties to ``c1``).
    """
    pred = jnp.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"pred must be [N, T], got shape {pred.shape}")
    for name, s in (("score_c1", score_c1), ("score_c2", score_c2)):
        if jnp.shape(s) != pred.shape:
            raise ValueError(f"{name} must have pred's shape {pred.shape}, got {jnp.shape(s)}")
    c1, c2 = int(c1), int(c2)
    if not 0 < c1 < c2:
        raise ValueError(f"c1, c2 must satisfy 0 < c1 < c2, got c1={c1}, c2={c2}")
    has1 = jnp.any(pred == c1, axis=1)
    has2 = jnp.any(pred == c2, axis=1)
    fallback = jnp.where(jnp.max(jnp.asarray(score_c1), axis=1)
                         >= jnp.max(jnp.asarray(score_c2), axis=1), c1, c2)
    second = jnp.where(has2, c2, jnp.where(has1, c1, fallback))
    first = jnp.where(has1 & has2, c1, 0)
    return jnp.stack([first, second], axis=1).astype(jnp.int32)


def max_log_odds(contrast: Array, step_axis: int = -1) -> Array:
    """A many-output module's log-odds: the largest ``z_p - z_q`` over its steps.

    ``[N, T] -> [N]``; the largest odds ``p_pos / p_neg`` is ``exp`` of it.
    """
    return jnp.max(jnp.asarray(contrast), axis=step_axis)


def odds_decision(log_odds_a: Array, log_odds_b: Array) -> Array:
    """Inter reuse: ``0`` where module a's odds are at least module b's, else ``1``.

    ``log_odds_*``: ``[N]`` (one-output) or ``[N, T]`` (many-output: the maximum over the steps
    is taken, :func:`max_log_odds`). Returns int32 ``[N]``.
    """
    a, b = jnp.asarray(log_odds_a), jnp.asarray(log_odds_b)
    a = max_log_odds(a) if a.ndim == 2 else a
    b = max_log_odds(b) if b.ndim == 2 else b
    if a.ndim != 1 or b.shape != a.shape:
        raise ValueError(f"log_odds_a and log_odds_b must be [N] or [N, T] with the same N, "
                         f"got shapes {jnp.shape(log_odds_a)} and {jnp.shape(log_odds_b)}")
    return jnp.where(a >= b, 0, 1).astype(jnp.int32)


__all__ = ["PAIR_SCORES", "negative_slot", "channelled_logits", "own_class_log_probability",
           "claims_own_class", "pair_decision", "restrict_votes", "collapse_pair",
           "max_log_odds", "odds_decision"]
