"""Keep vectors -> boolean weight masks that mirror the params (derived on demand).

A module's masks follow the chosen recurrent semantics (``decomp.options.u_mask``):

* every recurrent layer: ``kernel`` and ``bias`` columns of removed gate columns are False
  (``col = tile(keep, g)``); ``recurrent_kernel`` entry ``[i, j]`` is kept iff source ``i`` and
  destination column ``j`` are kept (``"paper"``) or unless both are removed (``"code"``);
* ``"paper"`` only: rows of the next recurrent layer's ``kernel`` that come from removed units;
* the output ``dense/kernel`` rows of the last layer's removed units (both semantics), as
  ``decomp.options.head_rows`` says (:func:`modjax.models.head_row_keep`: the step's removed
  units, those of the last or the first step at every step, or none).

Unrolled decompositions give every masked leaf a leading step axis ``[T, ...]``.
Bidirectional models (``docs/method.md#bidirectional``): a layer's leaves have a direction axis
(``kernel [2, D, gH]``) masked by that direction's keep vector; the rows of the next layer's
``kernel`` and of the head follow the merged layout (:func:`modjax.direction.merged_keep`).
Embeddings, the encoder (encoder-decoder) and the dense bias are all True. The channelled
head is not a mask: see :func:`modjax.compose.apply_masks`.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from modjax import direction
from modjax.cells import unit_and_column_keep
from modjax.checkpoint import to_plain_dict
from modjax.decomposition import Decomposition
from modjax.models import head_row_keep


def layer_prefix(config) -> str:
    """Name prefix of the decomposed recurrent layers (``rnn_`` or ``decoder_rnn_``)."""
    return "decoder_rnn_" if config.io == "encoder_decoder" else "rnn_"


def module_masks(config, options, keep, params) -> dict:
    """The masks of one module from its keep vector ``keep [L, (T,) (2,) F]`` (bool); pure
    array code, so it can be ``jax.vmap``-ed over modules (:func:`all_masks`).

    ``config`` and ``options`` are the decomposition's :class:`~modjax.ModelConfig` and
    :class:`~modjax.DecomposeOptions`; ``params`` gives the structure and shapes.
    """
    cfg = config
    keep = jnp.asarray(keep, bool)  # [L, (T,) (2,) F]
    masks = jax.tree_util.tree_map(lambda a: jnp.ones(np.shape(a), bool), params)
    prefix = layer_prefix(cfg)
    paper = options.u_mask == "paper"
    bi = cfg.directions == 2
    lead = keep.shape[1:-1 - bi]  # () rolled or (T,) unrolled
    merged = lambda k: direction.merged_keep(k, cfg.merge, bi)  # [(T,) D] rows of next layer

    def full(shape):
        return jnp.ones(lead + tuple(shape), bool)

    for l in range(cfg.layers):
        name = f"{prefix}{l}"
        src, col = unit_and_column_keep(cfg.cell_config, keep[l])
        k_shape = np.shape(params[name]["kernel"])
        kmask = full(k_shape) & col[..., None, :]
        if paper and l > 0:
            prev_src, _ = unit_and_column_keep(cfg.cell_config, keep[l - 1])
            rows = merged(prev_src)[..., :, None]
            kmask = kmask & (rows[..., None, :, :] if bi else rows)
        masks[name]["kernel"] = kmask
        b_shape = np.shape(params[name]["bias"])
        two_biases = len(b_shape) == 2 + bi  # GRU reset_after: (input, recurrent) bias
        masks[name]["bias"] = full(b_shape) & (col[..., None, :] if two_biases else col)
        if paper:
            u = src[..., :, None] & col[..., None, :]
        else:
            u = ~(~src[..., :, None] & ~col[..., None, :])
        masks[name]["recurrent_kernel"] = u
    last_src, _ = unit_and_column_keep(cfg.cell_config, keep[cfg.layers - 1])
    rows = head_row_keep(last_src, options.head_rows, bi)  # [(T,) (2,) H] or None
    if bi and rows is not None and rows.ndim == 3 and cfg.io in ("one_to_one", "many_to_one"):
        rows = direction.own_order(rows, 0, bi)  # the head reads each direction's last step
    rows = merged(rows)
    dense = full(np.shape(params["dense"]["kernel"]))
    masks["dense"]["kernel"] = dense if rows is None else dense & rows[..., :, None]
    return masks


def masks_for(decomp: Decomposition, c: int, params) -> dict:
    """Boolean pytree mirroring ``params`` for module ``c`` (see the module docstring).

    Args:
      decomp: the decomposition.
      c: module index in ``[0, C)``.
      params: the base params (only their structure and shapes are read).

    Returns:
      A nested dict of bool arrays: the leaf's shape, or ``[T] + shape`` for masked leaves of an
      unrolled decomposition.
    """
    C = decomp.num_modules
    if not (isinstance(c, (int, np.integer)) and 0 <= c < C):
        raise ValueError(f"c must be a module index in [0, {C}), got {c!r}")
    return module_masks(decomp.config, decomp.options, decomp.keep[c], to_plain_dict(params))


def all_masks(decomp: Decomposition, params) -> dict:
    """Every module's masks at once: the pytree of :func:`masks_for` with a leading module
    axis on every leaf, ``[C, ...]`` (``[C, T, ...]`` for masked leaves of an unrolled
    decomposition; the always-True leaves are ``[C, ...]`` too).

    One compiled program per (config, options, params structure and shapes); only the
    params' shapes are read, so their values are never copied to the device."""
    leaves, treedef = jax.tree_util.tree_flatten(to_plain_dict(params))
    shapes = tuple(tuple(np.shape(a)) for a in leaves)
    fn = _all_masks_program(decomp.config, decomp.options, treedef, shapes)
    return fn(jnp.asarray(decomp.keep, bool))


@functools.lru_cache(maxsize=32)
def _all_masks_program(config, options, treedef, shapes):
    """``jit(vmap(module_masks))`` for params of this structure and these shapes."""
    like = jax.tree_util.tree_unflatten(
        treedef, [jax.ShapeDtypeStruct(s, np.float32) for s in shapes])
    return jax.jit(jax.vmap(lambda k: module_masks(config, options, k, like)))


__all__ = ["all_masks", "layer_prefix", "masks_for", "module_masks"]
