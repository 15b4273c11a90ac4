"""Tests of :func:`modjax.masks.masks_for`: keep vectors -> boolean weight masks.

The expected masks are built entry by entry from docs/method.md#masks (loops over units
and gate columns), independently of the library's ``tile``/outer-product formulation.
"""
from __future__ import annotations

import dataclasses

import flax
import jax
import numpy as np
import pytest

from modjax.cells import CELL_TABLE
from modjax.masks import masks_for

from tests.trained_models import decomposed, trained

MAX_REMOVE = 0.2


def _with_u_mask(decomp, u_mask):
    return decomp.replace(options=dataclasses.replace(decomp.options, u_mask=u_mask))


def expected_layer(keep_l, keep_prev, p_layer, g, H, u_mask):
    """Masks of one recurrent layer for one keep vector ``keep_l [H]``."""
    D = p_layer["kernel"].shape[0]
    K = np.ones((D, g * H), bool)
    B = np.ones(np.shape(p_layer["bias"]), bool)
    U = np.ones((H, g * H), bool)
    for j in range(H):
        if not keep_l[j]:
            for b in range(g):  # every gate column of unit j: j, H+j, 2H+j, ...
                K[:, b * H + j] = False
                B[..., b * H + j] = False
    for i in range(H):  # source unit (row of U)
        for col in range(g * H):
            dst = col % H  # destination unit of the column
            if u_mask == "paper":
                U[i, col] = bool(keep_l[i]) and bool(keep_l[dst])
            else:
                U[i, col] = not ((not keep_l[i]) and (not keep_l[dst]))
    if u_mask == "paper" and keep_prev is not None:
        for i in range(D):  # out-edges of removed units of the layer below
            if not keep_prev[i]:
                K[i, :] = False
    return {"kernel": K, "recurrent_kernel": U, "bias": B}


def expected_masks(decomp, c, params, u_mask):
    cfg = decomp.config
    g, H, L = CELL_TABLE[cfg.cell].blocks, cfg.units, cfg.layers
    keep = np.asarray(decomp.keep[c])  # [L, H] or [L, T, H]
    unrolled = keep.ndim == 3
    steps = range(keep.shape[1]) if unrolled else [None]
    out = jax.tree_util.tree_map(lambda a: np.ones(np.shape(a), bool), params)
    per_step = []
    for t in steps:
        kt = keep[:, t] if unrolled else keep
        layers = {}
        for l in range(L):
            layers[f"rnn_{l}"] = expected_layer(kt[l], kt[l - 1] if l > 0 else None,
                                                params[f"rnn_{l}"], g, H, u_mask)
        dense = np.ones(np.shape(params["dense"]["kernel"]), bool)
        for j in range(H):
            if not kt[L - 1][j]:
                dense[j, :] = False  # out-edges of the last layer's removed units
        layers["dense_kernel"] = dense
        per_step.append(layers)
    for l in range(L):
        for leaf in ("kernel", "recurrent_kernel", "bias"):
            arrs = [s[f"rnn_{l}"][leaf] for s in per_step]
            out[f"rnn_{l}"][leaf] = np.stack(arrs) if unrolled else arrs[0]
    arrs = [s["dense_kernel"] for s in per_step]
    out["dense"]["kernel"] = np.stack(arrs) if unrolled else arrs[0]
    return out


def _assert_tree_equal(got, want):
    g_flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(got)}
    w_flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(want)}
    assert set(g_flat) == set(w_flat)
    for k in w_flat:
        g = np.asarray(g_flat[k])
        assert g.dtype == bool, k
        np.testing.assert_array_equal(g, w_flat[k], err_msg=k)


CASES = [("simple_m2o", "rolled"), ("lstm_o2m", "rolled"), ("gru_m2o", "rolled"),
         ("gru_m2o", "unrolled")]


@pytest.mark.parametrize("name,mode", CASES, ids=["-".join(c) for c in CASES])
@pytest.mark.parametrize("u_mask", ["code", "paper"])
def test_masks_follow_the_keep_vectors(name, mode, u_mask):
    config, params, _ = trained(name)
    decomp = _with_u_mask(decomposed(name, n_pos=100, max_remove=MAX_REMOVE, mode=mode), u_mask)
    keep = np.asarray(decomp.keep)
    assert (~keep).any()
    for c in range(decomp.num_modules):
        got = masks_for(decomp, c, params)
        _assert_tree_equal(got, expected_masks(decomp, c, params, u_mask))


@pytest.mark.parametrize("u_mask", ["code", "paper"])
def test_first_layer_kernel_loses_exactly_the_removed_gate_columns(u_mask):
    config, params, _ = trained("lstm_o2m")
    decomp = _with_u_mask(decomposed("lstm_o2m", n_pos=100, max_remove=MAX_REMOVE), u_mask)
    H, g = config.units, 4
    for c in range(decomp.num_modules):
        m = masks_for(decomp, c, params)
        removed = np.nonzero(~np.asarray(decomp.keep[c, 0]))[0]
        cols = sorted(b * H + j for j in removed for b in range(g))
        K = np.asarray(m["rnn_0"]["kernel"])
        np.testing.assert_array_equal(np.nonzero(~K.all(0))[0], cols)
        assert not K[:, cols].any() and K[:, [i for i in range(g * H) if i not in cols]].all()
        np.testing.assert_array_equal(np.nonzero(~np.asarray(m["rnn_0"]["bias"]))[0], cols)
        assert np.asarray(m["embedding"]["embedding"]).all()
        assert np.asarray(m["dense"]["bias"]).all()


def test_the_two_semantics_differ_on_the_recurrent_kernel_only_as_specified():
    config, params, _ = trained("simple_m2o")
    base = decomposed("simple_m2o", n_pos=100, max_remove=MAX_REMOVE)
    code, paper = _with_u_mask(base, "code"), _with_u_mask(base, "paper")
    for c in range(base.num_modules):
        mc, mp = masks_for(code, c, params), masks_for(paper, c, params)
        keep = np.asarray(base.keep[c, 0])
        Uc, Up = np.asarray(mc["rnn_0"]["recurrent_kernel"]), np.asarray(mp["rnn_0"]["recurrent_kernel"])
        # paper drops every edge touching a removed unit; code only removed -> removed edges.
        np.testing.assert_array_equal(Up, np.outer(keep, keep))
        np.testing.assert_array_equal(Uc, ~np.outer(~keep, ~keep))
        if (~keep).any() and keep.any():
            assert (Uc & ~Up).any()
        # Layer 0 kernel and bias agree; layer 1 kernel rows of layer-0 removals differ.
        np.testing.assert_array_equal(np.asarray(mc["rnn_0"]["kernel"]),
                                      np.asarray(mp["rnn_0"]["kernel"]))
        K1c, K1p = np.asarray(mc["rnn_1"]["kernel"]), np.asarray(mp["rnn_1"]["kernel"])
        keep1 = np.asarray(base.keep[c, 1])  # SimpleRNN: one gate block
        np.testing.assert_array_equal(K1c, np.broadcast_to(keep1[None, :], K1c.shape))
        np.testing.assert_array_equal(K1p, K1c & keep[:, None])


def test_unrolled_masks_have_a_leading_step_axis():
    config, params, _ = trained("gru_m2o")
    decomp = decomposed("gru_m2o", n_pos=100, max_remove=MAX_REMOVE, mode="unrolled")
    T = config.steps
    assert decomp.keep.shape == (config.num_classes, config.layers, T, config.units)
    m = masks_for(decomp, 0, params)
    for leaf in ("kernel", "recurrent_kernel", "bias"):
        assert m["rnn_0"][leaf].shape == (T,) + np.shape(params["rnn_0"][leaf])
    assert m["dense"]["kernel"].shape == (T,) + np.shape(params["dense"]["kernel"])
    assert m["embedding"]["embedding"].shape == np.shape(params["embedding"]["embedding"])
    assert m["dense"]["bias"].shape == np.shape(params["dense"]["bias"])
    # Steps differ somewhere (otherwise unrolled would be pointless on this model).
    k = np.asarray(decomp.keep)
    assert any((k[c, :, t] != k[c, :, 0]).any() for c in range(k.shape[0]) for t in range(T))


def test_masks_do_not_depend_on_the_params_container():
    config, params, _ = trained("simple_m2o")
    decomp = decomposed("simple_m2o", n_pos=100, max_remove=MAX_REMOVE)
    a = masks_for(decomp, 1, params)
    b = masks_for(decomp, 1, flax.core.freeze(params))
    _assert_tree_equal(b, jax.tree_util.tree_map(np.asarray, a))


@pytest.mark.parametrize("c", [-1, 6, 1.0, "0"])
def test_bad_module_index(c):
    config, params, _ = trained("simple_m2o")
    decomp = decomposed("simple_m2o", n_pos=100, max_remove=MAX_REMOVE)
    with pytest.raises(ValueError, match="c must be"):
        masks_for(decomp, c, params)
