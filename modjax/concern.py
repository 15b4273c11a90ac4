"""Concern identification: robust statistics over observations and the removal rule.

All functions are pure, shape-static and vmappable; observations come with a validity mask so
that classes (and steps) with different sample counts share one compiled computation.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def masked_median(a: Array, valid: Array) -> Array:
    """Median over axis 0 of the valid rows, as ``numpy.median`` computes it.

    Args:
      a: ``[n, H]`` values.
      valid: ``[n]`` bool.

    Returns:
      ``[H]``; NaN where no row is valid.
    """
    big = jnp.asarray(jnp.inf, a.dtype)
    s = jnp.sort(jnp.where(valid[:, None], a, big), axis=0)
    k = jnp.sum(valid)
    lo = jnp.clip((k - 1) // 2, 0, a.shape[0] - 1)
    hi = jnp.clip(k // 2, 0, a.shape[0] - 1)
    med = (s[lo] + s[hi]) / 2
    return jnp.where(k > 0, med, jnp.nan)


def robust_mean(a: Array, valid: Array) -> Array:
    """The paper's central tendency of each column: MAD-filtered mean.

    ``med = median(a)``, ``dev = |a - med|``, ``mad = median(dev)``; the mean of the rows with
    ``dev / mad < 2`` (of all valid rows when ``mad == 0``).

    Args:
      a: ``[n, H]`` observations (already ``|h|`` for the logistic rule).
      valid: ``[n]`` bool.

    Returns:
      ``[H]`` (NaN where no row is valid).
    """
    med = masked_median(a, valid)
    dev = jnp.abs(a - med)
    mad = masked_median(dev, valid)
    # ``dev / mad < 2`` written as ``dev < 2 * mad``: doubling is exact, and for a correctly
    # rounded division the two agree; XLA's division is not always correctly rounded (1 ulp
    # off on CPU), and the boundary is hit exactly whenever half the observations share one
    # value (pre-padded steps): then ``mad`` is half the next deviation, whose ratio is 2.
    inlier = jnp.where(mad > 0, dev < 2 * mad, True) & valid[:, None]
    total = jnp.sum(jnp.where(inlier, a, 0), axis=0)
    count = jnp.sum(inlier, axis=0)
    return total / count


def active_rate(a: Array, valid: Array, threshold: float = 0.0, absolute: bool = False) -> Array:
    """Fraction of valid rows with ``a > threshold`` (``|a| >= threshold`` when ``absolute``).

    ``[n, H], [n] -> [H]``.
    """
    hit = (jnp.abs(a) >= threshold) if absolute else (a > threshold)
    hit = hit & valid[:, None]
    count = jnp.sum(hit, axis=0)
    # XLA rewrites ``x / broadcast(n)`` as ``x * (1 / n)``, which is off by an ulp (12 / 40 ->
    # 0.30000000000000004) and flips the ReLU rule's ``d <= threshold`` at exact boundaries.
    # A same-shape divisor keeps a true, correctly rounded division, as NumPy computes it.
    # ``n`` is built elementwise from ``count`` (not a broadcast, also under vmap).
    n = jax.lax.optimization_barrier(jnp.where(count >= 0, jnp.sum(valid), 0))
    return count / n


def removal_count(max_remove: float, H: int) -> int:
    """``ceil(max_remove * H)``: removals per layer before the tie rule."""
    return int(math.ceil(max_remove * H - 1e-9))


def select_logistic(d: Array, k: int, tie_ratio: float = 1.1) -> Array:
    """The paper's removal rule for logistic activations (spec §2.10 ``SELECT``).

    Units sorted by ``d`` ascending (stable); the first ``k`` with ``d < 0`` are removed; after
    the cap, a unit is also removed if ``d < 0`` and ``d_min / d < tie_ratio`` (a near-tie with
    the most negative score).

    Args:
      d: ``[H]`` scores ``ct_pos - ct_neg``.
      k: the cap ``ceil(max_remove * H)``.

    Returns:
      ``[H]`` bool keep vector.
    """
    H = d.shape[0]
    order = jnp.argsort(d, stable=True)
    rank = jnp.zeros((H,), jnp.int32).at[order].set(jnp.arange(H, dtype=jnp.int32))
    neg = d < 0
    d_min = d[order[0]]
    tie = (d_min / jnp.where(neg, d, -1.0) < tie_ratio) & (rank > 0)
    removed = neg & ((rank < k) | tie)
    return ~removed


def select_relu(d: Array, k: int, threshold: float = -0.5) -> Array:
    """The artifact's ReLU rule: remove units with ``d <= threshold`` (lowest first), at most ``k``.

    ``d`` is ``active_rate_pos - active_rate_neg``. ``[H] -> [H]`` bool keep vector.
    """
    H = d.shape[0]
    order = jnp.argsort(d, stable=True)
    rank = jnp.zeros((H,), jnp.int32).at[order].set(jnp.arange(H, dtype=jnp.int32))
    return ~((d <= threshold) & (rank < k))


def unit_scores(pos: Array, pos_valid: Array, neg: Array, neg_valid: Array, relu: bool) -> Array:
    """Score ``d [H]`` of every unit from hidden states ``pos [n1, H]`` and ``neg [n2, H]``.

    Logistic: ``robust_mean(|pos|) - robust_mean(|neg|)``. ReLU: difference of active rates.
    """
    if relu:
        return active_rate(pos, pos_valid) - active_rate(neg, neg_valid)
    return robust_mean(jnp.abs(pos), pos_valid) - robust_mean(jnp.abs(neg), neg_valid)


def gate_scores(pos: Array, pos_valid: Array, neg: Array, neg_valid: Array, kinds, H: int
                ) -> Array:
    """Per-gate scores (approach 1) from gate values ``[n, gH]``.

    Sigmoid gate blocks: difference of active rates (``|v| >= 0.5``); candidate blocks:
    difference of central tendencies of ``|v|``. Returns ``[gH]``.
    """
    parts = []
    for b, kind in enumerate(kinds):
        sl = slice(b * H, (b + 1) * H)
        if kind == "gate":
            parts.append(active_rate(pos[:, sl], pos_valid, 0.5, True)
                         - active_rate(neg[:, sl], neg_valid, 0.5, True))
        else:
            parts.append(robust_mean(jnp.abs(pos[:, sl]), pos_valid)
                         - robust_mean(jnp.abs(neg[:, sl]), neg_valid))
    return jnp.concatenate(parts)


def select_gates(d: Array, k: int, blocks: int) -> Array:
    """Per-gate selection (approach 1): in each gate block of ``d [gH]`` separately, remove the
    (at most) ``k`` lowest columns with ``d < 0``. As in the artifact's ``ALL_GATE`` path, the
    cap applies per block and there is no tie rule. Returns ``[gH]`` bool keep."""
    H = d.shape[0] // blocks
    no_tie = 0.0  # d_min / d >= 1 for negative d, so a ratio of 0 never admits a tie
    return jnp.concatenate([select_logistic(d[b * H:(b + 1) * H], k, no_tie)
                            for b in range(blocks)])
