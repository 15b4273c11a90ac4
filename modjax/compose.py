"""Modules as models: apply_masks, all modules in one batched scan, and the vote.

* :func:`apply_masks` — the params of one module as an ordinary model of the same architecture
  (masked weights, channelled head). Useful to export or inspect a module.
* :func:`module_scores` — the fast path: every module of a decomposition in ONE batched scan
  over a single copy of the weights, masks applied to the matmul inputs and outputs
  (``jax.vmap`` over keep vectors). Everything else (compose, metrics, experiments) uses it.
* :func:`compose` — a jit-compiled predict function: arg-max of the module scores.
* :func:`select`, :func:`replace`, :func:`concatenate` — reuse and replacement as edits of the
  Decomposition pytree.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from modjax import validate
from modjax.checkpoint import to_plain_dict
from modjax.decomposition import Decomposition, check_module_index
from modjax.masks import masks_for
from modjax.models import ModelConfig, apply_model

Array = jax.Array


def channel_contrast(logits: Array, p) -> Array:
    """``z_p - z_q`` with ``z_q`` the mean of the other classes' logits (spec §2.5).

    ``logits [..., C]``, ``p`` int (or int array broadcastable to ``logits[..., 0]``) ->
    ``[...]``. Because the head is linear, the mean of the other columns' logits equals the
    logit of the averaged column ``mean_{c != p} w_c``.
    """
    C = logits.shape[-1]
    z_p = jnp.take_along_axis(logits, jnp.broadcast_to(jnp.asarray(p)[..., None],
                                                       logits.shape[:-1] + (1,)), -1)[..., 0]
    z_q = (jnp.sum(logits, axis=-1) - z_p) / (C - 1)
    return z_p - z_q


def channel_score(logits: Array, p) -> Array:
    """The module's probability of its class: ``sigmoid(z_p - z_q)`` (spec §2.5)."""
    return jax.nn.sigmoid(channel_contrast(logits, p))


def apply_masks(params, decomp: Decomposition, c: int) -> dict:
    """The params of module ``c`` as an ordinary model of the same architecture (rolled).

    Masked weights follow :func:`modjax.masks.masks_for` (zeros where the mask is False). The
    head is channelled explicitly (spec §2.5): column ``p`` of ``dense`` is kept, column ``q``
    (``0``, or ``1`` when ``p == 0``) is the mean of the other classes' columns (bias too), and
    the other columns are zero. With these params the module's score is
    ``sigmoid(logits[p] - logits[q])`` over the two meaningful logits (not ``channel_score``,
    which expects the original head's logits). Encoder-decoder heads are not channelled.

    Unrolled decompositions have a different weight per step, which no ordinary model holds:
    use :func:`module_scores` for them (``ValueError`` here).
    """
    if decomp.unrolled:
        raise ValueError("apply_masks needs a rolled decomposition (one weight per layer); "
                         "unrolled modules run through modjax.compose.module_scores")
    params = to_plain_dict(params)
    masks = masks_for(decomp, c, params)
    out = jax.tree_util.tree_map(lambda a, m: jnp.where(m, jnp.asarray(a), 0), params, masks)
    cfg = decomp.config
    if cfg.io != "encoder_decoder":
        p = int(decomp.head_class[c])
        q = 1 if p == 0 else 0
        k = out["dense"]["kernel"]
        b = jnp.asarray(params["dense"]["bias"])
        C = k.shape[1]
        others = jnp.arange(C) != p
        new_k = jnp.zeros_like(k).at[:, p].set(k[:, p]).at[:, q].set(
            jnp.sum(jnp.where(others[None, :], k, 0), axis=1) / (C - 1))
        new_b = jnp.zeros_like(b).at[p].set(b[p]).at[q].set(
            jnp.sum(jnp.where(others, b, 0)) / (C - 1))
        out["dense"] = {"kernel": new_k, "bias": new_b}
    return out


def removed_bound(decomp: Decomposition) -> int:
    """The most source units any module removes in any layer and step (a static bound)."""
    if decomp.options.gate_mode == "per_gate":
        return 0
    return int(np.max(np.sum(~np.asarray(decomp.keep, bool), axis=-1), initial=0))


@functools.partial(jax.jit, static_argnames=("config", "u_mask", "channel", "bound"))
def _scores_jit(params, keep, head_class, x, dec, *, config: ModelConfig, u_mask: str,
                channel: bool, bound: int):
    keep = keep.astype(jnp.float32)

    def one(k, p):
        logits = apply_model(config, params, x, dec, keep=k, u_mask=u_mask,
                             removed_bound=bound if u_mask == "code" else None)
        return channel_score(logits, p) if channel else logits

    return jax.vmap(one)(keep, head_class)


def module_scores(decomp: Decomposition, params, x, dec_in=None, *, batch_size: int = 4096,
                  channel: Optional[bool] = None) -> Array:
    """Every module's score on ``x``, all modules in one batched scan per batch.

    Args:
      decomp: the decomposition.
      params: the base params it came from.
      x: ``[N, in_len]`` ids (``dec_in [N, out_len]`` for encoder-decoder).
      batch_size: examples per compiled call (the last batch is padded).
      channel: return channelled probabilities (default for classification/tagging) or raw
        logits (default for encoder-decoder, whose heads are not channelled).

    Returns:
      ``[C, N]`` (one-output) or ``[C, N, T]`` (many-output) probabilities of each module's
      class; encoder-decoder: ``[C, N, T, V]`` logits.
    """
    cfg = decomp.config
    channel = (cfg.io != "encoder_decoder") if channel is None else channel
    params = to_plain_dict(params)
    x, dec_in = validate.model_inputs(cfg, x, dec_in)
    N = x.shape[0]
    # equal-size batches: at most n_batches - 1 padded rows, one compiled shape
    n_batches = -(-N // max(1, batch_size))
    bs = -(-N // n_batches)
    bound = removed_bound(decomp)
    outs = []
    for s in range(0, N, bs):
        e = min(s + bs, N)
        xb = np.zeros((bs,) + x.shape[1:], np.int32)
        xb[: e - s] = x[s:e]
        db = None
        if dec_in is not None:
            db = np.zeros((bs,) + dec_in.shape[1:], np.int32)
            db[: e - s] = dec_in[s:e]
        out = _scores_jit(params, decomp.keep, decomp.head_class, xb, db, config=cfg,
                          u_mask=decomp.options.u_mask, channel=channel, bound=bound)
        outs.append(out[:, : e - s])
    return jnp.concatenate(outs, axis=1)


def vote(scores: Array, head_class: Array) -> Array:
    """Arg-max over modules: ``scores [C, N(, T)]`` -> predicted class ``[N(, T)]``."""
    return jnp.asarray(head_class)[jnp.argmax(scores, axis=0)]


def compose(decomp: Decomposition, params) -> Callable:
    """A predict function for the composed modules.

    Returns ``predict(x, dec_in=None) -> (pred, scores)`` where ``pred`` is ``[N]`` or
    ``[N, T]`` (the winning module's class per example / per step) and ``scores`` are the
    module scores of :func:`module_scores`. Encoder-decoder modules are not voted: use
    :func:`modjax.models.greedy_decode` with a module's keep vectors.
    """
    if decomp.config.io == "encoder_decoder":
        raise ValueError("encoder_decoder modules are chosen by target language, not voted; use "
                         "modjax.greedy_decode(config, params, src, start, keep=decomp.keep[c])")

    def predict(x, dec_in=None):
        scores = module_scores(decomp, params, x, dec_in)
        return vote(scores, decomp.head_class), scores

    return predict


# -- reuse and replacement: edits of the pytree ------------------------------------------
def select(decomp: Decomposition, classes: Sequence[int]) -> Decomposition:
    """The sub-decomposition of the given module indices (reuse within a model)."""
    idx = jnp.asarray(validate.indices("classes", classes, decomp.num_modules), jnp.int32)
    return decomp.replace(keep=decomp.keep[idx], head_class=decomp.head_class[idx],
                          has_positives=decomp.has_positives[idx],
                          class_names=tuple(decomp.class_names[int(i)] for i in idx))


def replace(decomp: Decomposition, c: int, other: Decomposition, c_other: int) -> Decomposition:
    """Swap module ``c`` for module ``c_other`` of another decomposition of the same model."""
    check_module_index("c", c, decomp.num_modules)
    check_module_index("c_other", c_other, other.num_modules)
    if other.config != decomp.config or other.keep.shape[1:] != decomp.keep.shape[1:]:
        raise ValueError("other must decompose a model of the same architecture and mode to "
                         "swap keep vectors inside one set of params")
    return decomp.replace(keep=decomp.keep.at[c].set(other.keep[c_other]),
                          head_class=decomp.head_class.at[c].set(other.head_class[c_other]),
                          has_positives=decomp.has_positives.at[c].set(
                              other.has_positives[c_other]))


def concatenate(a: Decomposition, b: Decomposition) -> Decomposition:
    """Stack the modules of two decompositions of the same model and mode."""
    if a.config != b.config or a.options != b.options:
        raise ValueError("a and b must share config and options to be concatenated")
    return a.replace(keep=jnp.concatenate([a.keep, b.keep]),
                     head_class=jnp.concatenate([a.head_class, b.head_class]),
                     has_positives=jnp.concatenate([a.has_positives, b.has_positives]),
                     class_names=a.class_names + b.class_names)
