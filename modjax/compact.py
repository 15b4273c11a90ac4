"""Compaction: a module as a physically smaller ordinary model, its removed units dropped.

A module of a :class:`~modjax.decomposition.Decomposition` runs on the full-size weights with
masks (:func:`modjax.compose.module_scores`). :func:`compact` instead *drops* the removed units:
it returns the ``(ModelConfig, params)`` of an ordinary model with fewer units per recurrent
layer and a two-class head, which computes the module's score exactly and is cheaper to run.

When the drop is exact
----------------------
In the paper's mask semantics (``u_mask="paper"``, see ``docs/method.md#masks``) a removed unit
``j`` loses its input columns, its bias, and every recurrent edge into and out of it. From a
zero initial state its pre-activations are ``0`` at every step, so its output is identically
zero: ``tanh(0) = relu(0) = 0``; an LSTM's candidate is ``0``, its cell stays ``0`` and so does
``h = o * tanh(c)``; a GRU's candidate is ``0`` and ``h = z * h_prev + (1 - z) * 0`` stays ``0``.
Its out-edges (the next layer's kernel rows, the head's rows) are masked as well. Dropping it
removes nothing the module computes.

Where that does not hold, :func:`compact` refuses with a ``ValueError`` that says why:

* ``u_mask="code"`` (the authors' scripts, ``docs/method.md#artifact``): a removed unit keeps
  its recurrent input from kept units, so it is generally non-zero after the first step and
  feeds the kept units. Accepted only where the two semantics coincide: a module that removes
  no unit, or a single-step model (``one_to_one``) whose zero initial state never reaches the
  recurrent kernel.
* encoder-decoder: the decoder's first layer starts from the encoder's final state, not from
  zeros, so a removed decoder unit is not zero (``docs/method.md#encoder-decoder``).
* ``mode="unrolled"`` with keep vectors that differ between steps: a unit removed at one step
  and kept at another is not zero where it is removed (an LSTM's cell decays by ``f = 0.5``
  instead of vanishing), and an ordinary model has one weight per layer. Accepted when every
  step keeps the same units (then it is a rolled module).
* ``gate_mode="per_gate"``: single gate columns are removed, never a unit as a whole; an
  ordinary cell has no smaller form.

The compacted model
-------------------
* Every recurrent layer keeps the module's kept units, in their original order. A
  :class:`~modjax.models.ModelConfig` has one width for all layers, so the width is the largest
  number of kept units over the layers; a layer that keeps fewer is padded with units whose
  weights are all zero (no input, bias, recurrent or out-edges), which output exactly ``0`` for
  the same reason as a removed unit.
* The head is the module's channelled head (``docs/method.md#channelling``) as two classes,
  in the order ``[q, p]``: logit 1 is the module's class ``p`` (``dense`` column ``p``), logit
  0 the mean of the other classes' columns and biases. ``softmax(logits)[..., 1] =
  sigmoid(z_p - z_q)`` is the module's score; arg-max 1 means "class ``p``".
* Embeddings (and, for one-to-one / one-to-many, the flattened input) are kept whole: they are
  indexed, not multiplied, so their size does not change the cost of a forward pass.

The compacted model saves and loads with :func:`modjax.save_model` / :func:`modjax.load_model`
and runs with :func:`modjax.apply_model` like any other.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from modjax.cells import CELL_TABLE
from modjax.checkpoint import to_plain_dict
from modjax.decompose import check_params
from modjax.decomposition import Decomposition, check_module_index
from modjax.models import ModelConfig


def _compactable_keep(decomp: Decomposition, c: int) -> np.ndarray:
    """The module's keep vectors ``[L, H]`` if it can be compacted exactly; ValueError if not."""
    cfg = decomp.config
    opts = decomp.options
    if cfg.io == "encoder_decoder":
        raise ValueError(
            "compact cannot drop units of an encoder_decoder module: its first decoder layer "
            "starts from the encoder's final state, so a removed decoder unit is not zero; "
            "got decomp.config.io='encoder_decoder'")
    if cfg.directions == 2:
        raise ValueError("compact supports unidirectional models only (a bidirectional layer's "
                         "two directions would need their own widths); got "
                         "decomp.config.bidirectional=True")
    if opts.gate_mode != "unit":
        raise ValueError(
            "compact needs gate_mode='unit' (units removed as a whole); gate_mode="
            f"{opts.gate_mode!r} removes single gate columns, which an ordinary cell cannot drop")
    keep = np.asarray(decomp.keep[c], bool)  # [L, H] or [L, T, H]
    if decomp.unrolled:
        if not (keep == keep[:, :1]).all():
            steps = int(np.sum((keep != keep[:, :1]).any(axis=(0, 2)))) + 1
            raise ValueError(
                f"compact needs one keep vector per layer; module {c} of this unrolled "
                f"decomposition keeps different units at {steps} of its {keep.shape[1]} steps "
                "(a unit removed at one step and kept at another is not zero where removed)")
        keep = keep[:, 0]
    if opts.u_mask != "paper" and (~keep).any() and cfg.steps > 1:
        raise ValueError(
            f"compact needs u_mask='paper'; with u_mask={opts.u_mask!r} a removed unit keeps its "
            "recurrent input from kept units, so it is not zero after the first step and cannot "
            f"be dropped (module {c} removes {int((~keep).sum())} units over "
            f"{cfg.steps} steps)")
    return keep


def compacted_units(decomp: Decomposition) -> np.ndarray:
    """Width ``[C]`` of every module's compacted model: the most kept units over the layers
    (per step, for an unrolled decomposition; exact only where :func:`compact` accepts it)."""
    keep = np.asarray(decomp.unit_keep(), bool)  # [C, L, (T,) H]
    return np.maximum(keep.sum(-1).reshape(keep.shape[0], -1).max(-1), 1)


def compact(params, decomp: Decomposition, c: int) -> Tuple[ModelConfig, dict]:
    """Module ``c`` as a physically smaller ordinary model (see the module docstring).

    Args:
      params: the base params the decomposition came from (rolled layout, Keras names).
      decomp: a decomposition with ``u_mask="paper"`` and ``gate_mode="unit"``, rolled (or
        unrolled with the same keep vector at every step); not encoder-decoder.
      c: module index in ``[0, C)``.

    Returns:
      ``(config, params)``: ``config`` is ``decomp.config`` with ``units = H'`` (the most units
      the module keeps in any layer) and ``num_classes = 2``; ``params`` are float NumPy arrays
      with ``rnn_l/kernel [D_l, g*H']``, ``recurrent_kernel [H', g*H']``, ``bias [g*H']`` (GRU
      ``reset_after``: ``[2, g*H']``), ``dense/kernel [H', 2]``, ``dense/bias [2]``.
      ``softmax(apply_model(config, params, x))[..., 1]`` equals the module's score
      ``module_scores(decomp, params, x)[c]``.

    Raises:
      ValueError: ``c`` out of range, or a module whose removed units are not identically
        zero (the message names the reason), or params that do not match the config.
    """
    check_module_index("c", c, decomp.num_modules)
    cfg = decomp.config
    keep = _compactable_keep(decomp, c)  # [L, H]
    params = check_params(cfg, to_plain_dict(params))
    g = CELL_TABLE[cfg.cell].blocks
    H, L = cfg.units, cfg.layers
    width = max(int(keep.sum(-1).max()), 1)
    # per layer: indices of the kept units, padded to ``width`` (padding rows/columns -> 0)
    idx = np.zeros((L, width), np.int64)
    valid = np.zeros((L, width), bool)
    for l in range(L):
        kept = np.nonzero(keep[l])[0]
        idx[l, :len(kept)] = kept
        valid[l, :len(kept)] = True

    def cols(l):  # gate columns of the kept units: block b holds b*H + unit
        return (np.arange(g)[:, None] * H + idx[l][None, :]).reshape(-1), np.tile(valid[l], g)

    out = {name: {k: np.asarray(v) for k, v in leaves.items()}
           for name, leaves in params.items() if not name.startswith("rnn_")}
    for l in range(L):
        p = params[f"rnn_{l}"]
        col, col_ok = cols(l)
        kernel = np.asarray(p["kernel"])[:, col] * col_ok
        if l > 0:  # rows: the previous layer's kept units only
            kernel = kernel[idx[l - 1]] * valid[l - 1][:, None]
        rk = np.asarray(p["recurrent_kernel"])[idx[l]][:, col] * (valid[l][:, None] & col_ok)
        bias = np.asarray(p["bias"])[..., col] * col_ok
        out[f"rnn_{l}"] = {"kernel": kernel, "recurrent_kernel": rk, "bias": bias}
    wk = np.asarray(params["dense"]["kernel"])[idx[L - 1]] * valid[L - 1][:, None]  # [H', C]
    wb = np.asarray(params["dense"]["bias"])
    pc = int(decomp.head_class[c])
    others = np.arange(cfg.num_classes) != pc
    out["dense"] = {
        "kernel": np.stack([wk[:, others].sum(1) / (cfg.num_classes - 1), wk[:, pc]], axis=1),
        "bias": np.stack([wb[others].sum() / (cfg.num_classes - 1), wb[pc]]).astype(wb.dtype)}
    config = dataclasses.replace(cfg, units=width, num_classes=2)
    return config, out
