"""Recurrent cells with a fixed, Keras-compatible parameter layout.

Every cell owns three parameters::

    kernel            [D, g*H]   input weights, gate blocks side by side
    recurrent_kernel  [H, g*H]   recurrent weights, same column order
    bias              [g*H]      (GRU with reset_after=True: [2, g*H], input and recurrent bias)

``g`` is the number of gate blocks (:data:`CELL_TABLE`). The column block order is Keras's:
LSTM ``i, f, c, o`` and GRU ``z, r, h``. So masking a unit in every gate is a tile of its keep
vector over the blocks, and a Keras ``.h5`` weight is copied as it is.

The arithmetic lives in one pure function, :func:`cell_step`, which also applies a module's
unit masks to the matmul inputs and outputs (see :func:`masked_recurrent`). The Flax modules
only declare the parameters and call it, so the same code runs training, tracing and every
decomposed module.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from modjax.precision import matmul

Array = jax.Array

U_MASK_MODES = ("paper", "code")

#: Forward passes: ``"keras"`` (the equations the model was trained with) or ``"artifact"``
#: (the authors' NumPy forward pass, which produced every published number: logistic-sigmoid
#: gates whatever the trained gate activation, and a GRU (``reset_after=False``) candidate
#: ``φ(x W_h + b_h + r ⊙ (h_prev U_h))``; see ``docs/method.md#artifact``).
FORWARDS = ("keras", "artifact")


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """What the decomposition needs to know of a cell type.

    Attributes:
      name: ``"simple"``, ``"lstm"`` or ``"gru"``.
      blocks: number of gate blocks ``g`` in ``kernel``'s columns.
      gate_names: block names in column order.
      gate_kinds: per block, ``"gate"`` (the gate activation: sigmoid or hard_sigmoid) or
        ``"candidate"`` (the cell activation: tanh or relu).
    """

    name: str
    blocks: int
    gate_names: Tuple[str, ...]
    gate_kinds: Tuple[str, ...]


#: The one place that says, per cell, how many gate blocks it has and what each block is.
CELL_TABLE = {
    "simple": CellSpec("simple", 1, ("h",), ("candidate",)),
    "lstm": CellSpec("lstm", 4, ("i", "f", "c", "o"), ("gate", "gate", "candidate", "gate")),
    "gru": CellSpec("gru", 3, ("z", "r", "h"), ("gate", "gate", "candidate")),
}

ACTIVATIONS = ("tanh", "relu")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


def hard_sigmoid(x: Array) -> Array:
    """Keras 2 hard sigmoid: ``clip(0.2 x + 0.5, 0, 1)``."""
    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def _act(name: str):
    if name == "tanh":
        return jnp.tanh
    if name == "relu":
        return jax.nn.relu
    if name == "sigmoid":
        return jax.nn.sigmoid
    if name == "hard_sigmoid":
        return hard_sigmoid
    raise ValueError(f"unknown activation {name!r}")


@dataclasses.dataclass(frozen=True)
class CellConfig:
    """Static description of one recurrent layer's cell.

    Attributes:
      cell: ``"simple"``, ``"lstm"`` or ``"gru"``.
      units: ``H``.
      activation: ``"tanh"`` or ``"relu"`` (candidate / SimpleRNN activation).
      gate_activation: ``"sigmoid"`` or ``"hard_sigmoid"`` (LSTM/GRU gates).
      reset_after: GRU only; Keras's ``reset_after`` flag.
      forward: ``"keras"`` or ``"artifact"`` (:data:`FORWARDS`; see :func:`cell_step`).
    """

    cell: str = "lstm"
    units: int = 100
    activation: str = "tanh"
    gate_activation: str = "sigmoid"
    reset_after: bool = False
    forward: str = "keras"

    def __post_init__(self):
        if self.cell not in CELL_TABLE:
            raise ValueError(f"cell must be one of {sorted(CELL_TABLE)}, got {self.cell!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.gate_activation not in GATE_ACTIVATIONS:
            raise ValueError(
                f"gate_activation must be one of {GATE_ACTIVATIONS}, got {self.gate_activation!r}")
        if not isinstance(self.units, int) or self.units < 1:
            raise ValueError(f"units must be a positive int, got {self.units!r}")
        if self.forward not in FORWARDS:
            raise ValueError(f"forward must be one of {FORWARDS}, got {self.forward!r}")

    @property
    def spec(self) -> CellSpec:
        return CELL_TABLE[self.cell]

    @property
    def gate_width(self) -> int:
        """``g * H``, the number of columns of the kernels."""
        return self.spec.blocks * self.units


def zero_carry(cfg: CellConfig, batch: int, dtype=jnp.float32):
    """The zero initial state: ``h [N, H]``, or ``(h, c)`` for an LSTM."""
    h = jnp.zeros((batch, cfg.units), dtype)
    return (h, h) if cfg.cell == "lstm" else h


def carry_h(cfg: CellConfig, carry) -> Array:
    """The hidden state ``h [N, H]`` inside a carry."""
    return carry[0] if cfg.cell == "lstm" else carry


def masked_recurrent(src: Array, u: Array, keep: Optional[Array], col: Optional[Array],
                     u_mask: str, removed_bound: Optional[int] = None) -> Array:
    """``src @ U`` with a module's recurrent mask applied to the matmul input and output.

    Args:
      src: ``[N, H]`` the recurrent input (``h_prev``, or ``r * h_prev`` for a GRU candidate).
      u: ``[H, k]`` recurrent kernel columns.
      keep: ``[H]`` 1.0 for kept source units, or ``None`` (no mask).
      col: ``[k]`` 1.0 for kept destination columns.
      u_mask: ``"paper"`` (entry kept iff source and destination kept) or ``"code"`` (entry
        dropped only if source and destination are both removed).
      removed_bound: ``"code"`` only: a static upper bound on the number of removed source
        units. The correction term then multiplies only the (at most ``removed_bound``) removed
        rows of ``U`` — a gather and an ``[N, r] @ [r, k]`` matmul — instead of a second full
        ``[N, H] @ [H, k]`` matmul. Same result.

    Returns:
      ``[N, k]``: equal to ``src @ (U * M)`` for the dense mask ``M`` of ``u_mask``.
    """
    if keep is None:
        return matmul(src, u)
    if u_mask == "paper":
        return matmul(src * keep, u) * col
    if u_mask == "code":
        if removed_bound is not None:
            if removed_bound == 0:
                return matmul(src, u)
            removed = keep < 0.5
            idx = jnp.nonzero(removed, size=removed_bound, fill_value=0)[0]
            real = jnp.arange(removed_bound) < jnp.sum(removed)  # padding entries weigh 0
            w = jnp.where(real, (1.0 - keep)[idx], 0.0)
            return matmul(src, u) - matmul(src[:, idx] * w, u[idx]) * (1.0 - col)
        return matmul(src, u) - matmul(src * (1.0 - keep), u) * (1.0 - col)
    raise ValueError(f"u_mask must be one of {U_MASK_MODES}, got {u_mask!r}")


def unit_and_column_keep(cfg: CellConfig, keep: Array):
    """``(source keep [H], column keep [gH])`` of a keep vector ``[H]`` (per unit) or ``[gH]``
    (per gate column, where no unit is removed as a whole)."""
    H, g = cfg.units, cfg.spec.blocks
    if keep.shape[-1] == g * H and g > 1:
        return jnp.ones(keep.shape[:-1] + (H,), keep.dtype), keep
    return keep, jnp.tile(keep, (1,) * (keep.ndim - 1) + (g,))


def masked_cell_params(cfg: CellConfig, params: Any, keep: Array, u_mask: str = "paper") -> dict:
    """The dense masked weights of one module: ``cell_step(masked, ..., keep=None)`` equals
    ``cell_step(params, ..., keep)``.

    ``kernel * col``, ``bias * col`` and ``recurrent_kernel * M`` with ``M = keep ⊗ col``
    (``"paper"``) or ``1 - (1 - keep) ⊗ (1 - col)`` (``"code"``); ``keep`` is ``[H]`` or
    ``[gH]`` (float 0/1).
    """
    src, col = unit_and_column_keep(cfg, keep)
    if u_mask == "paper":
        m = src[:, None] * col[None, :]
    elif u_mask == "code":
        m = 1.0 - (1.0 - src)[:, None] * (1.0 - col)[None, :]
    else:
        raise ValueError(f"u_mask must be one of {U_MASK_MODES}, got {u_mask!r}")
    return {"kernel": params["kernel"] * col, "recurrent_kernel": params["recurrent_kernel"] * m,
            "bias": params["bias"] * col}


def input_projection(cfg: CellConfig, params: Any, xs: Array) -> Array:
    """The input part of every gate pre-activation, ``xs @ kernel + b_x``: ``[..., D]`` ->
    ``[..., gH]`` (``b_x`` is the bias, or its input half ``bias[0]`` for a ``reset_after``
    GRU). :func:`cell_step` with ``projected=True`` takes one step's row of it as ``x``."""
    bias = params["bias"]
    b_x = bias[0] if (cfg.cell == "gru" and cfg.reset_after) else bias
    return matmul(xs, params["kernel"]) + b_x


def cell_step(cfg: CellConfig, params: Any, carry, x: Array, keep: Optional[Array] = None,
              u_mask: str = "paper", removed_bound: Optional[int] = None,
              projected: bool = False):
    """One step of a cell, optionally as a decomposed module.

    Equations (``σ`` = gate activation, ``φ`` = activation, ``[·]_k`` = gate block k)::

      SimpleRNN:  h = φ(x W + h_prev U + b)
      LSTM:       i, f, o = σ([x W + h_prev U + b]_{i,f,o});  c~ = φ([x W + h_prev U + b]_c)
                  c = f * c_prev + i * c~;                    h = o * φ(c)
      GRU (reset_after=False, Keras 2 "before"):
                  z, r = σ([x W + h_prev U + b]_{z,r})
                  h~ = φ([x W + b]_h + (r * h_prev) U_h)
                  h = z * h_prev + (1 - z) * h~
      GRU (reset_after=True, bias = (b_x, b_h)):
                  z, r = σ([x W + b_x + h_prev U + b_h]_{z,r})
                  h~ = φ([x W + b_x]_h + r * (h_prev U_h + [b_h]_h))
                  h = z * h_prev + (1 - z) * h~

    With ``cfg.forward == "artifact"`` (the authors' NumPy forward pass) ``σ`` is the logistic
    sigmoid whatever ``cfg.gate_activation`` says, and the ``reset_after=False`` GRU candidate
    is ``h~ = φ([x W + b]_h + r * (h_prev U_h))`` (reset applied after the matmul, no recurrent
    bias).

    With ``keep`` (``[H]``, 1.0 = unit kept) the gate columns of removed units lose their input
    weights and bias (``col = tile(keep, g)``) and the recurrent kernel is masked per
    ``u_mask`` (:func:`masked_recurrent`). The carry itself is never masked.

    Args:
      cfg: the cell's static config.
      params: dict with ``kernel [D, gH]``, ``recurrent_kernel [H, gH]``, ``bias``.
      carry: ``h [N, H]`` or ``(h, c)`` for an LSTM.
      x: ``[N, D]`` the step's input.
      keep: ``[H]`` float keep vector of the module (per unit), ``[gH]`` (per gate column:
        only the columns are masked, every source unit is kept), or ``None``.
      u_mask: ``"paper"`` or ``"code"``.
      removed_bound: optional static bound on removed units (see :func:`masked_recurrent`).
      projected: ``x`` is already the step's unmasked input projection ``x W + b_x``
        ``[N, gH]`` (:func:`input_projection`); the module's column mask is still applied.

    Returns:
      ``(new_carry, gates)`` with ``gates [N, gH]`` the activated gate values (block order as
      the kernel; for the candidate block the candidate ``c~`` / ``h~``).
    """
    H = cfg.units
    kernel = params["kernel"]
    rk = params["recurrent_kernel"]
    bias = params["bias"]
    artifact = cfg.forward == "artifact"
    sig = jax.nn.sigmoid if artifact else _act(cfg.gate_activation)
    act = _act(cfg.activation)
    col = None
    if keep is not None:
        keep, col = unit_and_column_keep(cfg, keep)
    def inp(cols_slice, b):
        z = x[:, cols_slice] if projected else matmul(x, kernel[:, cols_slice]) + b
        return z if col is None else z * col[cols_slice]

    if cfg.cell == "simple":
        h_prev = carry
        pre = inp(slice(None), bias) + masked_recurrent(h_prev, rk, keep, col, u_mask,
                                                         removed_bound)
        h = act(pre)
        return h, h
    if cfg.cell == "lstm":
        h_prev, c_prev = carry
        pre = inp(slice(None), bias) + masked_recurrent(h_prev, rk, keep, col, u_mask,
                                                         removed_bound)
        i = sig(pre[:, :H])
        f = sig(pre[:, H:2 * H])
        cc = act(pre[:, 2 * H:3 * H])
        o = sig(pre[:, 3 * H:])
        c = f * c_prev + i * cc
        h = o * act(c)
        return (h, c), jnp.concatenate([i, f, cc, o], axis=-1)
    # GRU
    h_prev = carry
    zr = slice(0, 2 * H)
    hh = slice(2 * H, 3 * H)
    col_zr = None if col is None else col[zr]
    col_h = None if col is None else col[hh]
    if cfg.reset_after:
        b_x, b_h = bias[0], bias[1]
        x_part = inp(slice(None), b_x)
        rec_zr = masked_recurrent(h_prev, rk[:, zr], keep, col_zr, u_mask,
                                  removed_bound)
        rec_h = masked_recurrent(h_prev, rk[:, hh], keep, col_h, u_mask,
                                 removed_bound)
        b_h_zr = b_h[zr] if col is None else b_h[zr] * col_zr
        b_h_h = b_h[hh] if col is None else b_h[hh] * col_h
        zr_val = sig(x_part[:, zr] + rec_zr + b_h_zr)
        z, r = zr_val[:, :H], zr_val[:, H:]
        cand = act(x_part[:, hh] + r * (rec_h + b_h_h))
    else:
        x_part = inp(slice(None), bias)
        rec_zr = masked_recurrent(h_prev, rk[:, zr], keep, col_zr, u_mask,
                                  removed_bound)
        zr_val = sig(x_part[:, zr] + rec_zr)
        z, r = zr_val[:, :H], zr_val[:, H:]
        if artifact:  # r * (h_prev U_h): the module's mask stays on the matmul
            cand = act(x_part[:, hh] + r * masked_recurrent(h_prev, rk[:, hh], keep, col_h,
                                                            u_mask, removed_bound))
        else:
            cand = act(x_part[:, hh] + masked_recurrent(r * h_prev, rk[:, hh], keep, col_h,
                                                        u_mask, removed_bound))
    h = z * h_prev + (1.0 - z) * cand
    return h, jnp.concatenate([z, r, cand], axis=-1)


def declare_cell_params(module: nn.Module, cfg: CellConfig, in_dim: int) -> dict:
    """Declare a cell's parameters on a Flax ``module`` and return them as a dict.

    Keras initialisers: ``glorot_uniform`` kernel ``[in_dim, gH]``, ``orthogonal`` recurrent
    kernel ``[H, gH]``, zero bias ``[gH]`` (LSTM: ``unit_forget_bias``, the f block starts at 1;
    GRU ``reset_after=True``: ``[2, gH]``).
    """
    gw = cfg.gate_width
    f32 = jnp.float32  # explicit: under jax_enable_x64 the initialisers default to float64
    kernel = module.param("kernel", nn.initializers.glorot_uniform(), (in_dim, gw), f32)
    rk = module.param("recurrent_kernel", nn.initializers.orthogonal(), (cfg.units, gw), f32)
    if cfg.cell == "lstm":
        def init(key, shape, dtype=f32):
            del key
            return jnp.zeros(shape, dtype).at[cfg.units:2 * cfg.units].set(1.0)
        bias = module.param("bias", init, (gw,), f32)
    elif cfg.cell == "gru" and cfg.reset_after:
        bias = module.param("bias", nn.initializers.zeros, (2, gw), f32)
    else:
        bias = module.param("bias", nn.initializers.zeros, (gw,), f32)
    return {"kernel": kernel, "recurrent_kernel": rk, "bias": bias}


class RNNCell(nn.Module):
    """A recurrent cell as a pure Flax module (SimpleRNN, LSTM or GRU; see :func:`cell_step`).

    Parameters are created with Keras's initialisers: ``glorot_uniform`` kernel, ``orthogonal``
    recurrent kernel, zero bias (LSTM: ``unit_forget_bias``, the f block starts at 1).

    Call: ``cell(carry, x, keep=None, u_mask="paper") -> (new_carry, (h, gates))`` with
    ``x [N, D]``, ``h [N, H]``, ``gates [N, gH]``.
    """

    config: CellConfig

    @nn.compact
    def __call__(self, carry, x, keep=None, u_mask: str = "paper"):
        cfg = self.config
        params = declare_cell_params(self, cfg, x.shape[-1])
        new_carry, gates = cell_step(cfg, params, carry, x, keep, u_mask)
        return new_carry, (carry_h(cfg, new_carry), gates)


def SimpleRNNCell(units: int, activation: str = "tanh") -> RNNCell:
    """A Keras ``SimpleRNN`` cell (tanh or ReLU)."""
    return RNNCell(CellConfig("simple", units, activation))


def LSTMCell(units: int, gate_activation: str = "sigmoid", activation: str = "tanh") -> RNNCell:
    """A Keras ``LSTM`` cell, gate order i, f, c, o, with ``unit_forget_bias``."""
    return RNNCell(CellConfig("lstm", units, activation, gate_activation))


def GRUCell(units: int, gate_activation: str = "sigmoid", reset_after: bool = False,
            activation: str = "tanh") -> RNNCell:
    """A Keras ``GRU`` cell, gate order z, r, h, in either ``reset_after`` form."""
    return RNNCell(CellConfig("gru", units, activation, gate_activation, reset_after))
