"""The direction axis of bidirectional recurrent layers (``docs/method.md#bidirectional``).

A bidirectional layer runs a forward and a backward scan over the same inputs. Its hidden
states, gates and keep vectors carry a direction axis of size 2 just before the feature axis
(``[..., T, 2, H]``: index 0 forward, 1 backward), always in **input-position order**: entry
``t`` of the backward direction is its state after reading position ``t`` (it reads ``T - 1``
first). A unidirectional layer has no direction axis; every helper here is the identity on it.

Two views of the axis:

* **merged**: what the next layer and the head read. ``"concat"`` (Keras's default) puts the
  directions side by side, ``[..., 2H]`` (forward units ``0..H-1``, backward ``H..2H-1``);
  ``"sum"`` adds them, ``[..., H]``. A merged keep vector follows: concatenated, or, under
  ``"sum"``, row ``i`` kept iff unit ``i`` is kept in either direction.
* **own order**: each direction's steps in the order it runs them; the backward direction is
  flipped in time. A direction's *last* step (the final state a one-output model reads) is
  entry ``T - 1`` in own order: position ``T - 1`` forward, position 0 backward.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

MERGES = ("concat", "sum")


def merge(h: Array, merge_mode: str, bidirectional: bool) -> Array:
    """The merged view of ``h [..., 2, F]``: ``[..., 2F]`` (concat) or ``[..., F]`` (sum)."""
    if not bidirectional:
        return h
    if merge_mode == "concat":
        return h.reshape(h.shape[:-2] + (2 * h.shape[-1],))
    if merge_mode == "sum":
        return h[..., 0, :] + h[..., 1, :]
    raise ValueError(f"merge must be one of {MERGES}, got {merge_mode!r}")


def merged_keep(keep, merge_mode: str, bidirectional: bool):
    """Rows of the merged view a module keeps, from a keep vector ``[..., 2, F]`` (or ``None``):
    concatenated, or under ``"sum"`` kept where either direction keeps the unit."""
    if keep is None or not bidirectional:
        return keep
    if merge_mode == "sum":
        return jnp.maximum(keep[..., 0, :], keep[..., 1, :])
    return merge(keep, "concat", True)


def own_order(a, time_axis: int, bidirectional: bool):
    """``a [..., T, ..., 2, F]`` with the backward direction (index 1 of axis ``-2``) flipped
    along ``time_axis``: entry ``t`` is each direction's ``t``-th step in its own run order."""
    if a is None or not bidirectional:
        return a
    back = jnp.flip(a[..., 1, :], axis=time_axis if time_axis >= 0 else time_axis + 1)
    return jnp.stack([a[..., 0, :], back], axis=-2)
