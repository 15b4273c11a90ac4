"""Concern identification: robust statistics over observations and the removal rule.

All functions are pure, shape-static and vmappable; observations come with a validity mask so
that classes (and steps) with different sample counts share one compiled computation.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def _halvings(n: int) -> int:
    """How many times :func:`_count_rows` halves ``n`` rows (to at most 64)."""
    return max(0, math.ceil(math.log2(max(n, 1) / 64)))


def _pad_rows(a: Array, fill) -> Array:
    """Pad axis 0 with ``fill`` to a multiple of ``2 ** _halvings(n)`` rows."""
    n = a.shape[0]
    size = -(-n // 2 ** _halvings(n)) * 2 ** _halvings(n)
    return jnp.pad(a, [(0, size - n)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)


def _count_rows(hit: Array) -> Array:
    """``jnp.sum(hit, axis=0)`` as int32 for bool ``[n, ...]``, by pairwise halving.

    Integer sums are exact in any order. XLA's CPU backend compiles a reduction fused with the
    comparison that feeds it into a slow scalar loop; adding the two halves of the rows is an
    elementwise op it vectorises (~5x faster for the counting passes of :func:`_kth_key`).
    Rows are padded with ``False`` where needed; callers in a loop pad once (:func:`_pad_rows`).
    """
    x = _pad_rows(hit.astype(jnp.int32), 0)
    for _ in range(_halvings(hit.shape[0])):
        h = x.shape[0] // 2
        x = x[:h] + x[h:]
    return jnp.sum(x, axis=0)


def _sum_rows(a: Array) -> Array:
    """``jnp.sum(a, axis=0)`` for float ``[n, ...]`` in one fixed order: pairwise halving.

    The rows are padded with zeros to a power of two and the two halves added until one row is
    left: every addition is an elementwise op, so the result does not depend on how XLA
    lowers a reduction for a given shape (which changes with the number of classes ``vmap``-ed
    together, e.g. per device of a mesh). One order on one device and on many.
    """
    n = a.shape[0]
    size = 1 << max(n - 1, 0).bit_length()
    x = jnp.pad(a, [(0, size - n)] + [(0, 0)] * (a.ndim - 1))
    while x.shape[0] > 1:
        h = x.shape[0] // 2
        x = x[:h] + x[h:]
    return x[0]


def _kth_key(keys: Array, k: Array) -> Array:
    """The ``k``-th smallest (0-based) of each column of unsigned keys ``[n, H]``, exactly.

    Bisection over the whole key range instead of a sort: ``32`` (or ``64``) vectorised
    counting passes, each finding whether the answer lies below the midpoint.
    """
    top = jnp.iinfo(keys.dtype).max
    lo = jnp.zeros(keys.shape[1:], keys.dtype)
    hi = jnp.full(keys.shape[1:], top, keys.dtype)

    def body(_, state):
        lo, hi = state
        mid = lo + (hi - lo) // 2
        ok = _count_rows(keys <= mid) >= k + 1
        return jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi)

    return jax.lax.fori_loop(0, 8 * keys.dtype.itemsize, body, (lo, hi))[1]


def _float_keys(a: Array):
    """Unsigned integer keys whose order is the order of the float values, and the inverse."""
    utype = jnp.uint32 if a.dtype.itemsize == 4 else jnp.uint64
    sign = jnp.asarray(1 << (8 * a.dtype.itemsize - 1), utype)
    bits = jax.lax.bitcast_convert_type(a, utype)
    keys = jnp.where(bits & sign, ~bits, bits | sign)

    def back(key):
        return jax.lax.bitcast_convert_type(jnp.where(key & sign, key & ~sign, ~key), a.dtype)

    return keys, back


def masked_median(a: Array, valid: Array) -> Array:
    """Median over axis 0 of the valid rows, exactly as ``numpy.median`` computes it.

    The floats are mapped to unsigned keys with the same order (sign-flip of the IEEE bit
    pattern), the two middle order statistics ``s[(k-1)//2]`` and ``s[k//2]`` are found by
    bisection over the keys (:func:`_kth_key`) — no sort — and averaged as numpy does.

    Args:
      a: ``[n, H]`` values (float32 or float64; half precision is computed in float32).
      valid: ``[n]`` bool.

    Returns:
      ``[H]``; NaN where no row is valid (every column when ``n == 0``).
    """
    if a.shape[0] == 0:  # no rows at all (a model with one class has no negatives)
        return jnp.full(a.shape[1:], jnp.nan, jnp.promote_types(a.dtype, jnp.float32))
    if a.dtype.itemsize < 4:  # half precision: order-preserving keys need 32 or 64 bits
        a = a.astype(jnp.float32)
    keys, back = _float_keys(a)
    top = jnp.asarray(jnp.iinfo(keys.dtype).max, keys.dtype)
    keys = jnp.where(valid[:, None], keys, top)
    keys = _pad_rows(keys, top)  # padding rows sort last, like invalid ones
    k = jnp.sum(valid)
    k1 = _kth_key(keys, (k - 1) // 2)
    # the next order statistic: k1 again if it repeats, else the smallest key above it
    repeats = _count_rows(keys <= k1) >= k // 2 + 1
    above = jnp.min(jnp.where(keys > k1, keys, top), axis=0)
    k2 = jnp.where(repeats, k1, above)
    return jnp.where(k > 0, (back(k1) + back(k2)) / 2, jnp.nan)


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
    total = _sum_rows(jnp.where(inlier, a, 0))  # one summation order for any batch shape
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


#: largest ``H`` for which :func:`stable_rank` compares all pairs (``[..., H, H]``) instead of
#: sorting
PAIRWISE_RANK_MAX = 512


def stable_rank(d: Array) -> Array:
    """Each entry's position in a stable ascending sort of ``d [H]``: ``[H]`` int32, equal to
    the inverse permutation of ``jnp.argsort(d, stable=True)`` (NaN after every number, ``-0.0``
    equal to ``0.0``, ties in index order).

    For ``H <= PAIRWISE_RANK_MAX`` it counts, for each entry, the entries that sort before it
    (an ``[H, H]`` comparison) instead of sorting: a compiled program with a sort cannot be
    stored by :mod:`modjax.programs` on CPU (XLA does not serialize the sort's comparator).
    """
    H = d.shape[0]
    if H > PAIRWISE_RANK_MAX:
        order = jnp.argsort(d, stable=True)
        return jnp.zeros((H,), jnp.int32).at[order].set(jnp.arange(H, dtype=jnp.int32))
    a, b = d[:, None], d[None, :]  # a: the other entry j, b: entry i
    if jnp.issubdtype(d.dtype, jnp.floating):
        na, nb = jnp.isnan(a), jnp.isnan(b)
        less = (a < b) | (~na & nb)
        equal = (a == b) | (na & nb)
    else:
        less, equal = a < b, a == b
    j = jnp.arange(H)
    before = less | (equal & (j[:, None] < j[None, :]))
    return jnp.sum(before, axis=0, dtype=jnp.int32)


def select_logistic(d: Array, k: int, tie_ratio: float = 1.1) -> Array:
    """The paper's removal rule for logistic activations (docs/method.md#removal).

    Units sorted by ``d`` ascending (stable); the first ``k`` with ``d < 0`` are removed; after
    the cap, a unit is also removed if ``d < 0`` and ``d_min / d < tie_ratio`` (a near-tie with
    the most negative score).

    Args:
      d: ``[H]`` scores ``ct_pos - ct_neg``.
      k: the cap ``ceil(max_remove * H)``.

    Returns:
      ``[H]`` bool keep vector.
    """
    rank = stable_rank(d)
    neg = d < 0
    d_min = d[jnp.argmax(rank == 0)]
    tie = (d_min / jnp.where(neg, d, -1.0) < tie_ratio) & (rank > 0)
    removed = neg & ((rank < k) | tie)
    return ~removed


def threshold_fraction(threshold: float):
    """``threshold`` as an exact ratio of small ints ``(a, b)``, ``b > 0``, read as the decimal
    it is written as (``-0.5 -> (-1, 2)``, ``-0.3 -> (-3, 10)``)."""
    f = Fraction(repr(float(threshold)))
    return f.numerator, f.denominator


def relu_score_parts(pos: Array, pos_valid: Array, neg: Array, neg_valid: Array,
                     dtype=jnp.int32):
    """The ReLU score ``d = cp / n_p - cn / n_n`` (difference of active rates) as an exact
    fraction over a denominator shared by every unit: ``(num [H], den)`` with
    ``num = cp * n_n - cn * n_p`` and ``den = n_p * n_n`` (integers of ``dtype``).

    ``pos [n1, H]``, ``neg [n2, H]`` hidden states with validity ``[n1]``, ``[n2]``.
    """
    def counts(a, valid):
        hit = (a > 0) & valid[:, None]
        return jnp.sum(hit, axis=0).astype(dtype), jnp.sum(valid).astype(dtype)

    cp, n_p = counts(pos, pos_valid)
    cn, n_n = counts(neg, neg_valid)
    return cp * n_n - cn * n_p, n_p * n_n


def select_relu(d: Array, k: int, threshold: float = -0.5, den: Optional[Array] = None
                ) -> Array:
    """The artifact's ReLU rule: remove units with ``d <= threshold`` (lowest first), at most ``k``.

    ``d`` is ``active_rate_pos - active_rate_neg``: floats, or (with ``den``) the integer
    numerators of :func:`relu_score_parts`, in which case the boundary is decided exactly
    (``num * b <= a * den`` for ``threshold = a / b``: an exact tie such as
    ``1/3 - 5/6 = -1/2`` is removed, as in exact arithmetic). ``[H] -> [H]`` bool keep vector.
    """
    rank = stable_rank(d)
    if den is None:
        below = d <= threshold
    else:
        a, b = threshold_fraction(threshold)
        below = d * b <= a * den
    return ~(below & (rank < k))


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
