"""Shape buckets: the few batch sizes every compiled program of modjax is called with.

A jit-compiled function compiles once per distinct input shape. Rounding every batch up to a
*bucket* (a multiple of 1/8 of the power of two below it: 128, 144, 160, ..., 256, 288, ...)
keeps the number of distinct programs small across calls with other example counts, at most
12.5% padding. :func:`modjax.decompose` (the sampled examples it traces),
:func:`modjax.compose.module_scores` (composed evaluation) and :func:`modjax.train.predict`
(the monolithic model) batch through :func:`batch_plan`, so with the persistent compilation
cache a second run with a slightly different amount of data compiles nothing new.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np


def bucket(n: int, minimum: int = 16) -> int:
    """``n`` rounded up to a bucket: a multiple of ``2 ** (floor(log2 n) - 3)`` (so at most
    12.5% more), and at least ``minimum``."""
    if not (isinstance(n, (int, np.integer)) and n >= 0):
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if n <= minimum:
        return int(minimum)
    step = 2 ** max(int(np.floor(np.log2(n))) - 3, 0)
    return int(-(-n // step) * step)


def batch_plan(n: int, batch_size: int, minimum: int = 16) -> Tuple[int, List[Tuple[int, int]]]:
    """How to run ``n`` examples in compiled calls of at most about ``batch_size``.

    Returns ``(size, spans)``: every call gets ``size`` rows (a :func:`bucket`; the real rows
    ``spans[i] = (start, end)``, the rest padding). The examples are split into
    ``ceil(n / batch_size)`` near-equal parts first, so the padding stays at most 12.5% plus
    the rounding of the minimum.
    """
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if n == 0:
        return bucket(0, minimum), []
    parts = -(-n // batch_size)
    per = -(-n // parts)
    size = bucket(per, minimum)
    return size, [(s, min(s + per, n)) for s in range(0, n, per)]


def pad_rows(a, size: int):
    """``a [n, ...]`` padded with zero rows to ``[size, ...]`` (``None`` stays ``None``)."""
    if a is None or a.shape[0] == size:
        return a
    out = np.zeros((size,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    return out


__all__ = ["batch_plan", "bucket", "pad_rows"]
