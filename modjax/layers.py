"""A recurrent layer over ``jax.lax.scan``: one cell run along the time axis."""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from modjax.cells import (CellConfig, RNNCell, carry_h, cell_step, declare_cell_params,
                          input_projection, masked_cell_params, unit_and_column_keep,
                          zero_carry)
from modjax.precision import MATMUL_PRECISION

Array = jax.Array

#: Largest masked weight copy (bytes, per module and layer) that ``scan_layer`` makes to apply
#: a module's masks on the weights instead of on the activations.
PREMASK_BYTES = 64 * 2 ** 20


def _broadcast_keep(keep: Optional[Array], T: int, H: int) -> Optional[Array]:
    """``None``, ``[H]`` or ``[T, H]`` keep vector -> ``None`` or ``[T, H]`` float32."""
    if keep is None:
        return None
    keep = jnp.asarray(keep, jnp.float32)
    if keep.ndim == 1:
        keep = jnp.broadcast_to(keep, (T, keep.shape[0]))
    if keep.ndim != 2 or keep.shape[0] != T or keep.shape[1] % H:
        raise ValueError(f"keep must have shape [F] or [{T}, F] with F = {H} (units) or a "
                         f"multiple (gate columns), got {keep.shape}")
    return keep


def _step_row(table: Array, t: Array) -> Array:
    """``table[t]`` for a small per-step table ``[T, ...]`` inside a scan step, as a one-hot
    contraction at ``HIGHEST`` precision: exact on every backend for finite tables (one term is
    ``1 * x``, the others ``0 * x``; subnormals are flushed to zero, as XLA's CPU matmuls do).

    A plain ``table[t]`` is a dynamic slice that XLA's CPU backend fuses into every elementwise
    consumer; for the bias that put an index computation inside the gate nonlinearities' loop
    and made a step with per-step weights ~1.6x slower than one with fixed weights. The
    contraction is its own (tiny) op, so the gate loop reads a materialised row. (A select and
    a sum over the rows was as fast for one module, but 1.5x slower with modules vmapped.)
    """
    onehot = jax.nn.one_hot(t, table.shape[0], dtype=table.dtype)
    return jnp.tensordot(onehot, table, axes=1, precision=MATMUL_PRECISION)


def scan_layer(cfg: CellConfig, params: Any, xs: Array, *, initial_carry=None,
               pad_mask: Optional[Array] = None, keep: Optional[Array] = None,
               u_mask: str = "paper", reverse: bool = False, return_gates: bool = False,
               removed_bound: Optional[int] = None, project_inputs: bool = False):
    """Run one recurrent layer over a sequence.

    Args:
      cfg: the cell config.
      params: the cell's params (``kernel``, ``recurrent_kernel``, ``bias``).
      xs: ``[N, T, D]`` inputs.
      initial_carry: ``h [N, H]`` or ``(h, c)``; zeros when ``None``.
      pad_mask: ``[N, T]`` bool, ``True`` at real steps. At a masked step the carry (and the
        output) is held from the previous step, as Keras does with ``mask_zero``.
      keep: a module's keep vector, ``[H]`` (rolled) or ``[T, H]`` (per step), or ``None``.
      u_mask: recurrent mask semantics, ``"paper"`` or ``"code"``.
      reverse: run from the last step to the first (outputs stay in input order).
      return_gates: also return the gate values of every step.
      removed_bound: static bound on removed units per step (``"code"`` masks; see
        :func:`modjax.cells.masked_recurrent`).
      project_inputs: compute each step's input projection ``x_t @ kernel + b`` with the
        unmasked kernel and apply the module's column mask to it (same result). Under
        ``jax.vmap`` over modules with ``xs`` shared by all modules (the first layer's
        embeddings) the projection does not depend on the module, so it is computed once per
        step for all modules instead of once per module.

    Returns:
      ``(hs [N, T, H], final_carry)`` or, with ``return_gates``,
      ``(hs, final_carry, gates [N, T, gH])``.
    """
    N, T, D = xs.shape
    H = cfg.units
    carry0 = zero_carry(cfg, N, xs.dtype) if initial_carry is None else initial_carry
    keep_t = _broadcast_keep(keep, T, H)
    x_tm = jnp.swapaxes(xs, 0, 1)  # [T, N, D]
    m_tm = None if pad_mask is None else jnp.swapaxes(jnp.asarray(pad_mask, bool), 0, 1)
    # Where to apply a module's masks (same result either way): on a masked copy of the
    # weights, made once per layer (rolled keep) or once per step (a [T, ...] stack read at
    # step t), when the batch is larger than the weights' rows and the copies stay small;
    # else on the matmul inputs and outputs inside the step.
    rolled = keep is not None and jnp.ndim(keep) == 1
    copy_bytes = (1 if rolled else T) * (D + H + 2) * cfg.gate_width * 4
    premask = keep is not None and N > D + H and copy_bytes <= PREMASK_BYTES
    w_t = None
    # premasked weights with projected inputs: the projection is unmasked, so its column mask
    # (a constant [gH], or a [T, gH] table read through _step_row: as a scan input its
    # dynamic slice fused into the gate loop and made unrolled steps ~1.45x slower) is
    # applied in the step
    col_c, col_t = None, None
    raw = params  # the unmasked weights: the projection inside the step reads these
    if project_inputs:
        if premask:
            col = unit_and_column_keep(cfg, keep_t if not rolled else
                                       jnp.asarray(keep, jnp.float32))[1]
            col_c, col_t = (col, None) if rolled else (None, col)
    if premask and rolled:
        params = masked_cell_params(cfg, params, jnp.asarray(keep, jnp.float32), u_mask)
        keep_t = None
    elif premask:
        w_t = jax.vmap(lambda k: masked_cell_params(cfg, params, k, u_mask))(keep_t)
        keep_t = None

    def step(carry, inp):
        x_t, k_t, m_t, t = inp
        # this step's weights: matrices sliced (XLA copies them for the matmul), the bias read
        # through _step_row (it feeds the elementwise gate loop)
        p = params if w_t is None else {
            name: _step_row(w, t) if name == "bias" else w[t] for name, w in w_t.items()}
        if project_inputs:
            # from the unmasked weights: under jax.vmap over modules with shared inputs this
            # matmul is not batched, so it runs once per step for all modules
            x_t = input_projection(cfg, raw, x_t)
        if col_c is not None:
            x_t = x_t * col_c
        elif col_t is not None:
            x_t = x_t * _step_row(col_t, t)
        new_carry, gates = cell_step(cfg, p, carry, x_t, k_t, u_mask, removed_bound,
                                     projected=project_inputs)
        if m_t is not None:
            new_carry = jax.tree_util.tree_map(
                lambda n, o: jnp.where(m_t[:, None], n, o), new_carry, carry)
        out = (carry_h(cfg, new_carry), gates) if return_gates else carry_h(cfg, new_carry)
        return new_carry, out

    final, ys = jax.lax.scan(step, carry0, (x_tm, keep_t, m_tm, jnp.arange(T)),
                             reverse=reverse)
    if return_gates:
        hs, gates = ys
        return jnp.swapaxes(hs, 0, 1), final, jnp.swapaxes(gates, 0, 1)
    return jnp.swapaxes(ys, 0, 1), final


def scan_directions(cfg: CellConfig, params: Any, xs: Array, *, bidirectional: bool,
                    initial_carry=None, pad_mask: Optional[Array] = None,
                    keep: Optional[Array] = None, u_mask: str = "paper",
                    return_gates: bool = False, removed_bound: Optional[int] = None,
                    project_inputs: bool = False):
    """:func:`scan_layer`, or both directions of a bidirectional layer in one vmapped scan.

    Unidirectional: exactly :func:`scan_layer`. Bidirectional (``docs/method.md#bidirectional``):
    ``params`` leaves carry a leading direction axis (``kernel [2, D, gH]``, ...), ``keep`` is
    ``[2, F]`` (rolled) or ``[T, 2, F]`` (per input position), ``initial_carry`` has a leading
    axis 2 (or is ``None``). The backward direction runs as a forward scan over the time-flipped
    inputs, pad mask and per-step keep vectors, and its outputs are flipped back, so entry ``t``
    of either direction belongs to input position ``t``; masked (padded) steps hold the carry
    in both directions, as Keras does.

    Returns:
      ``(hs [N, T, 2, H], final_carry (leading axis 2))`` (``gates [N, T, 2, gH]`` too with
      ``return_gates``); the unidirectional shapes of :func:`scan_layer` otherwise.
    """
    kw = dict(u_mask=u_mask, return_gates=return_gates, removed_bound=removed_bound,
              project_inputs=project_inputs)
    if not bidirectional:
        return scan_layer(cfg, params, xs, initial_carry=initial_carry, pad_mask=pad_mask,
                          keep=keep, **kw)
    T = xs.shape[1]
    flip_t = lambda a, axis: None if a is None else jnp.stack([a[0], jnp.flip(a[1], axis)])
    xs2 = flip_t(jnp.stack([xs, xs]), 1)  # [2, N, T, D]
    pad2 = None if pad_mask is None else flip_t(jnp.stack([pad_mask, pad_mask]), 1)
    keep2 = None
    if keep is not None:
        keep = jnp.asarray(keep, jnp.float32)
        if keep.ndim < 2 or keep.shape[-2] != 2 or keep.ndim > 3 or \
                (keep.ndim == 3 and keep.shape[0] != T):
            raise ValueError(f"keep of a bidirectional layer must have shape [2, F] or "
                             f"[{T}, 2, F], got {keep.shape}")
        keep2 = jnp.moveaxis(keep, -2, 0)  # [2, F] or [2, T, F]
        if keep2.ndim == 3:
            keep2 = flip_t(keep2, 0)

    def one(p, x, m, k, c0):
        return scan_layer(cfg, p, x, initial_carry=c0, pad_mask=m, keep=k, **kw)

    out = jax.vmap(one)(params, xs2, pad2, keep2, initial_carry)
    back = lambda a: jnp.moveaxis(flip_t(a, 1), 0, 2)  # [2, N, T, F] -> [N, T, 2, F]
    return (back(out[0]), out[1]) + tuple(back(g) for g in out[2:])


class _TwoDirections:
    """Stands in for a Flax module in :func:`declare_cell_params`: every parameter gets a
    leading direction axis of 2, each direction drawn from its own key by the same
    initialiser."""

    def __init__(self, module: nn.Module):
        self.module = module

    def param(self, name, init, shape, dtype):
        def stacked(key, shape2, dtype=dtype):
            keys = jax.random.split(key, shape2[0])
            return jax.vmap(lambda k: init(k, tuple(shape2[1:]), dtype))(keys)

        return self.module.param(name, stacked, (2,) + tuple(shape), dtype)


def declare_layer_params(module: nn.Module, cfg: CellConfig, in_dim: int,
                         bidirectional: bool = False) -> dict:
    """:func:`~modjax.cells.declare_cell_params`, with a leading direction axis of 2 (index 0
    forward, 1 backward; each initialised from its own key) for a bidirectional layer."""
    return declare_cell_params(_TwoDirections(module) if bidirectional else module, cfg, in_dim)


class RNN(nn.Module):
    """A recurrent layer (Flax module) with the cell's parameters at its own level.

    Params: ``{"kernel": [D, gH], "recurrent_kernel": [H, gH], "bias": [gH]}``; with
    ``bidirectional`` each has a leading direction axis of 2 and the call returns
    ``hs [N, T, 2, H]`` (see :func:`scan_directions`).

    Call: ``layer(xs, initial_carry=None, pad_mask=None, keep=None, return_gates=False,
    u_mask="paper", removed_bound=None, project_inputs=False)``
    with ``xs [N, T, D]``; returns ``(outputs, final_carry)`` where ``outputs`` is
    ``[N, T, H]`` with ``return_sequences`` and the last real step's ``h [N, H]`` without
    (plus ``gates [N, T, gH]`` when ``return_gates``). See :func:`scan_layer`.
    """

    config: CellConfig
    return_sequences: bool = True
    reverse: bool = False
    bidirectional: bool = False

    @nn.compact
    def __call__(self, xs, initial_carry=None, pad_mask=None, keep=None, return_gates=False,
                 u_mask: str = "paper", removed_bound=None, project_inputs: bool = False):
        params = declare_layer_params(self, self.config, xs.shape[-1], self.bidirectional)
        if self.bidirectional:
            if self.reverse or not self.return_sequences:
                raise ValueError("a bidirectional RNN layer runs both directions and returns "
                                 "sequences: reverse and return_sequences=False do not apply")
            return scan_directions(self.config, params, xs, bidirectional=True,
                                   initial_carry=initial_carry, pad_mask=pad_mask, keep=keep,
                                   u_mask=u_mask, removed_bound=removed_bound,
                                   return_gates=return_gates, project_inputs=project_inputs)
        out = scan_layer(self.config, params, xs, initial_carry=initial_carry,
                         pad_mask=pad_mask, keep=keep, u_mask=u_mask,
                         removed_bound=removed_bound, project_inputs=project_inputs,
                         reverse=self.reverse, return_gates=return_gates)
        hs, final = out[0], out[1]
        seq = hs if self.return_sequences else carry_h(self.config, final)
        return (seq, final) + tuple(out[2:])


__all__ = ["RNN", "RNNCell", "scan_layer", "scan_directions", "declare_cell_params",
           "declare_layer_params"]
