"""Input checks shared by the public entry points (``decompose``, ``module_scores``, ``compose``,
``predict``, ``compose_modules``, ``greedy_decode``, ``select``, the options).

Every check raises ``ValueError`` (``TypeError`` for a wrong kind of object where noted) whose
message names the argument, the value given and the expected kind or range. The checks run on
the host on concrete arrays; a JAX tracer (the function is being traced under ``jit``) is
passed through unchecked, so nothing is added to compiled code.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Optional, Sequence

import jax
import numpy as np


def is_tracer(x) -> bool:
    """True for an abstract value being traced (``jit``/``vmap``): no concrete data to check."""
    return isinstance(x, jax.core.Tracer)


def _range_of(a: np.ndarray) -> str:
    return f"[{a.min()}, {a.max()}]" if a.size else "[] (empty)"


def token_ids(name: str, x, vocab_size: int, *, length: Optional[int] = None,
              length_name: str = "in_len", vocab_name: str = "vocab_size",
              ndim: int = 2):
    """``x`` as int32 token ids ``[N, length]`` (``[N]`` with ``ndim=1``), each in
    ``[0, vocab_size)``.

    Refused: a non-integer dtype (float ids would be truncated), another rank or length,
    negative ids (they would wrap around) and ids ``>= vocab_size`` (NaN scores). A tracer is
    returned as it is.
    """
    if is_tracer(x):
        return x
    a = np.asarray(x)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {a.dtype}")
    if a.ndim != ndim:
        want = "[N]" if ndim == 1 else f"[N, {length if length is not None else length_name}]"
        raise ValueError(f"{name} must have shape {want}, got shape {list(a.shape)}")
    if length is not None and a.shape[1] != length:
        raise ValueError(f"{name} must have shape [N, {length}] ({length_name}={length}), got "
                         f"shape {list(a.shape)}")
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
        bad = a[(a < 0) | (a >= vocab_size)]
        raise ValueError(f"{name} holds token id {int(bad.flat[0])}; ids must lie in "
                         f"[0, {vocab_size}) ({vocab_name}={vocab_size}), got range "
                         f"{_range_of(a)}")
    return a.astype(np.int32)


def model_inputs(config, x, dec_in=None, *, x_name: str = "x", dec_name: str = "dec_in",
                 allow_empty: bool = False):
    """``(x, dec_in)`` checked against ``config``: ``x [N, in_len]`` ids below ``vocab_size``;
    for an encoder-decoder, ``dec_in [N, out_len]`` ids below the target vocabulary
    (``num_classes``), required; for other models ``dec_in`` must be ``None``. ``N = 0`` is
    refused unless ``allow_empty`` (scoring and prediction return empty results; a
    decomposition needs examples)."""
    x = token_ids(x_name, x, config.vocab_size, length=config.in_len)
    if not allow_empty and not is_tracer(x) and x.shape[0] == 0:
        raise ValueError(f"{x_name} must hold at least one example, got shape {list(x.shape)}")
    if config.io == "encoder_decoder":
        if dec_in is None:
            raise ValueError(f"{dec_name} (decoder input ids [N, {config.out_len}]) is required "
                             "for an encoder_decoder model, got None")
        dec_in = token_ids(dec_name, dec_in, config.num_classes, length=config.out_len,
                           length_name="out_len", vocab_name="target vocabulary num_classes")
        if not is_tracer(x) and not is_tracer(dec_in) and dec_in.shape[0] != x.shape[0]:
            raise ValueError(f"{dec_name} must have one row per example of {x_name} "
                             f"({x.shape[0]}), got {dec_in.shape[0]}")
    elif dec_in is not None:
        raise ValueError(f"{dec_name} is only for encoder_decoder models; this model is "
                         f"{config.io}, got an array of shape {list(np.shape(dec_in))}")
    return x, dec_in


def decode_inputs(config, src, start_ids, end_ids=None):
    """``(src, start_ids, end_ids)`` of greedy decoding checked against ``config``:
    ``src [N, in_len]`` below ``vocab_size``; ``start_ids [N]`` and ``end_ids [N]`` (or
    ``None``) below the target vocabulary ``num_classes``."""
    src = token_ids("src", src, config.vocab_size, length=config.in_len)
    tgt = "target vocabulary num_classes"
    start_ids = token_ids("start_ids", start_ids, config.num_classes, ndim=1, vocab_name=tgt)
    if end_ids is not None:
        end_ids = token_ids("end_ids", end_ids, config.num_classes, ndim=1, vocab_name=tgt)
    for name, a in (("start_ids", start_ids), ("end_ids", end_ids)):
        if a is not None and not is_tracer(a) and not is_tracer(src) and \
                a.shape[0] != src.shape[0]:
            raise ValueError(f"{name} must have one entry per example of src ({src.shape[0]}), "
                             f"got {a.shape[0]}")
    return src, start_ids, end_ids


def labels(name: str, y, shape: Sequence[int], num_classes: int) -> np.ndarray:
    """Integer labels of ``shape``, each in ``[0, num_classes)``, or their one-hot encoding
    ``shape + [num_classes]`` (exactly one 1 per row, zeros elsewhere) -> int32 ``shape``.

    Refused: soft or all-zero one-hot rows (no silent arg-max), non-integral values, labels
    out of range.
    """
    shape = tuple(int(s) for s in shape)
    a = np.asarray(y)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer)
                               or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer labels or one-hot rows, got dtype {a.dtype}")
    if a.shape == shape + (num_classes,):
        bad = (~((a == 0) | (a == 1))).any(-1) | (a.sum(-1) != 1)
        if a.size and bad.any():
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            raise ValueError(f"{name} looks one-hot ({list(a.shape)}) but row {list(i)} is "
                             f"{a[i].tolist()[:8]}: one-hot rows must hold exactly one 1 and "
                             "zeros (soft or all-zero labels are not arg-maxed silently)")
        return a.argmax(-1).astype(np.int32)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)} (integer labels) or "
                         f"{list(shape) + [num_classes]} (one-hot), got {list(a.shape)}")
    if not np.issubdtype(a.dtype, np.integer):
        if a.size and not np.all(np.isfinite(a) & (np.mod(a, 1) == 0)):
            raise ValueError(f"{name} must be integers, got non-integral values of dtype "
                             f"{a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range {_range_of(a)}")
    return a.astype(np.int32)


def index(name: str, value, size: int, what: str = "a module index") -> int:
    """``value`` as an int in ``[0, size)``; refuses floats (``1.7`` is not module 1) and bools."""
    try:
        ok = not isinstance(value, (bool, np.bool_)) and 0 <= operator.index(value) < size
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be {what} in [0, {size}) (an int), got {value!r}")
    return operator.index(value)


def indices(name: str, values, size: int) -> list:
    """A non-empty sequence of module indices, each checked by :func:`index`."""
    if is_tracer(values):
        raise TypeError(f"{name} must be concrete module indices, not a traced array")
    vals = np.asarray(values).tolist() if isinstance(values, (np.ndarray, jax.Array)) \
        else list(values)
    if not isinstance(vals, list):
        vals = [vals]
    if not vals:
        raise ValueError(f"{name} must name at least one module, got {values!r}")
    return [index(f"{name}[{i}]", v, size) for i, v in enumerate(vals)]


def positive_int(name: str, value, *, allow_none: bool = False) -> Optional[int]:
    """``value`` as an int ``>= 1`` (NumPy integers accepted); ``None`` if allowed."""
    if value is None and allow_none:
        return None
    try:
        ok = not isinstance(value, (bool, np.bool_)) and operator.index(value) >= 1
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return operator.index(value)


def real(name: str, value, *, lo: float = -math.inf, hi: float = math.inf,
         what: str = "") -> float:
    """``value`` as a finite float in ``[lo, hi]``; refuses strings, bools, NaN and inf."""
    ok = (isinstance(value, (numbers.Real, np.floating, np.integer))
          and not isinstance(value, (bool, np.bool_)))
    v = float(value) if ok else math.nan
    if not (ok and math.isfinite(v) and lo <= v <= hi):
        rng = f"[{lo}, {hi}]" if math.isfinite(lo) and math.isfinite(hi) else (
            f">= {lo}" if math.isfinite(lo) else "finite")
        raise ValueError(f"{name} must be a real number {rng}{what}, got {value!r}")
    return v
