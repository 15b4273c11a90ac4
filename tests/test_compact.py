"""Tests of :func:`modjax.compact`: exactness against float64 NumPy, saving, and refusals.

The reference runs the FULL-size module in float64 NumPy with dense masked matrices built here
(``W * col``, ``b * col``, ``U * keep ⊗ col``, the next layer's rows and the head's rows of
removed units zeroed) and the channelled score ``sigmoid(z_p - mean_{c != p} z_c)``. The
compacted model is run by the same NumPy forward *without* masks and by the library's
``apply_model``; its score is ``softmax(logits)[..., 1]``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modjax.checkpoint import load_model, save_model
from modjax.compact import compact, compacted_units
from modjax.compose import module_scores
from modjax.decomposition import Decomposition, DecomposeOptions
from modjax.models import ModelConfig, apply_model, init_params
from tests import numpy_ref
from tests.trained_models import decomposed, trained

C, T, H = 4, 5, 4

# [C, L=2, H=4]: layers keep different numbers of units (padding units in the compacted
# model), one module keeps everything in layer 0, one removes all but one unit of layer 1.
KEEP = np.array([
    [[1, 0, 1, 1], [1, 1, 0, 0]],
    [[0, 1, 1, 0], [1, 1, 1, 1]],
    [[1, 1, 1, 1], [0, 0, 1, 0]],
    [[1, 1, 0, 1], [1, 0, 1, 1]],
], bool)

CASES = [("simple", False), ("lstm", False), ("gru", False), ("gru", True)]
IOS = ["many_to_one", "many_to_many", "one_to_many", "one_to_one"]


def tiny_config(cell, io, reset_after=False, mask_zero=False):
    return ModelConfig(io=io, cell=cell, num_classes=C, vocab_size=11, in_len=T,
                       out_len=3 if io == "one_to_many" else 1, layers=2, units=H, embed_dim=3,
                       reset_after=reset_after, mask_zero=mask_zero)


tiny_params = numpy_ref.float64_params


def numpy_forward(cfg, P, x, keep=None):
    """Float64 logits ``[N, steps, C']`` of ``(cfg, P)``; with ``keep [L, H]`` the paper's
    dense masks are applied (the full-size module), without it the model runs as it is."""
    g = {"simple": 1, "lstm": 4, "gru": 3}[cfg.cell]
    emb = np.asarray(P["embedding"]["embedding"], np.float64)[x]  # [N, in_len, E]
    pad = None
    if cfg.io in ("one_to_one", "one_to_many"):
        inp = np.repeat(emb.reshape(len(x), 1, -1), cfg.steps, axis=1)
    else:
        inp = emb
        pad = (x != 0) if cfg.mask_zero else None
    for l in range(cfg.layers):
        p = P[f"rnn_{l}"]
        W = np.asarray(p["kernel"], np.float64)
        U = np.asarray(p["recurrent_kernel"], np.float64)
        B = np.asarray(p["bias"], np.float64)
        if keep is not None:
            k = keep[l].astype(np.float64)
            col = np.tile(k, g)
            W = W * col
            if l > 0:
                W = W * keep[l - 1][:, None]
            B = B * col
            U = U * np.outer(k, col)
        inp, _, _ = numpy_ref.run(cfg.cell, p, inp, pad=pad, reset_after=cfg.reset_after,
                                  W=W, U=U, B=B)
    Wd = np.asarray(P["dense"]["kernel"], np.float64)
    if keep is not None:
        Wd = Wd * keep[cfg.layers - 1][:, None]
    logits = inp @ Wd + np.asarray(P["dense"]["bias"], np.float64)
    return logits


def channelled(logits, p):
    z_p = logits[..., p]
    z_q = (logits.sum(-1) - z_p) / (logits.shape[-1] - 1)
    return 1.0 / (1.0 + np.exp(-(z_p - z_q)))


def two_class_score(logits):
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e[..., 1] / e.sum(-1)


def make_decomp(cfg, keep, u_mask="paper", mode="rolled", gate_mode="unit"):
    keep = jnp.asarray(keep, bool)
    M = keep.shape[2] if mode == "unrolled" else 1
    return Decomposition(keep=keep, head_class=jnp.arange(keep.shape[0], dtype=jnp.int32),
                         has_positives=jnp.ones((keep.shape[0], M), bool), config=cfg,
                         options=DecomposeOptions(mode=mode, u_mask=u_mask, gate_mode=gate_mode),
                         class_names=tuple(f"c{i}" for i in range(keep.shape[0])))


def _last(cfg, a):
    return a[:, -1] if cfg.io in ("one_to_one", "many_to_one") else a


@pytest.mark.parametrize("io", IOS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}{'_ra' if c[1] else ''}")
def test_compacted_model_computes_the_module_exactly(case, io):
    cell, ra = case
    cfg = tiny_config(cell, io, ra)
    P = tiny_params(cfg)
    x = np.random.default_rng(1).integers(1, cfg.vocab_size, (7, cfg.in_len)).astype(np.int32)
    decomp = make_decomp(cfg, KEEP)
    np.testing.assert_array_equal(compacted_units(decomp), [3, 4, 4, 3])
    for c in range(C):
        ref = _last(cfg, channelled(numpy_forward(cfg, P, x, KEEP[c].astype(float)), c))
        ccfg, cp = compact(P, decomp, c)
        assert ccfg == dataclasses.replace(cfg, units=int(KEEP[c].sum(-1).max()), num_classes=2)
        g = {"simple": 1, "lstm": 4, "gru": 3}[cell]
        assert cp["rnn_1"]["recurrent_kernel"].shape == (ccfg.units, g * ccfg.units)
        assert cp["dense"]["kernel"].shape == (ccfg.units, 2)
        # the same float64 forward, no masks: equal up to float64 rounding
        got = _last(cfg, two_class_score(numpy_forward(ccfg, cp, x)))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
        # the library's forward of the compacted model (float64)
        with jax.enable_x64(True):
            lib = np.asarray(jax.nn.softmax(apply_model(ccfg, cp, x), -1)[..., 1])
        np.testing.assert_allclose(lib, ref, rtol=0, atol=1e-6)
    # the module itself on the full-size weights agrees with the reference too
    with jax.enable_x64(True):
        fast = np.asarray(module_scores(decomp, P, x))
    for c in range(C):
        ref = _last(cfg, channelled(numpy_forward(cfg, P, x, KEEP[c].astype(float)), c))
        np.testing.assert_allclose(fast[c], ref, rtol=0, atol=1e-6)


def test_held_state_at_padded_steps_stays_exact():
    """mask_zero: padded steps hold the carry; a dropped unit's zero state is held too."""
    cfg = tiny_config("lstm", "many_to_one", mask_zero=True)
    P = tiny_params(cfg)
    x = np.random.default_rng(2).integers(1, cfg.vocab_size, (6, T)).astype(np.int32)
    x[:, :2] = 0  # pre-padding
    x[0, :4] = 0
    decomp = make_decomp(cfg, KEEP)
    for c in range(C):
        ref = channelled(numpy_forward(cfg, P, x, KEEP[c].astype(float)), c)[:, -1]
        ccfg, cp = compact(P, decomp, c)
        got = two_class_score(numpy_forward(ccfg, cp, x))[:, -1]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_the_reference_sees_removed_units():
    """Guard: the masks in the reference matter (a module differs from the full model)."""
    cfg = tiny_config("lstm", "many_to_many")
    P = tiny_params(cfg)
    x = np.random.default_rng(1).integers(1, cfg.vocab_size, (7, T)).astype(np.int32)
    full = channelled(numpy_forward(cfg, P, x), 0)
    module = channelled(numpy_forward(cfg, P, x, KEEP[0].astype(float)), 0)
    assert np.abs(full - module).max() > 1e-3


@pytest.mark.parametrize("name", ["lstm_o2m", "gru_m2m", "simple_m2o"])
def test_trained_modules_compact_to_their_scores(name):
    """A real decomposition (float32): compacted forward == module_scores to 1e-6, smaller."""
    config, params, data = trained(name)
    decomp = decomposed(name, n_pos=100, max_remove=0.3, u_mask="paper")
    x = data.x_test[:32]
    fast = np.asarray(module_scores(decomp, params, x))
    keep = np.asarray(decomp.keep)
    assert (keep.sum(-1).max(-1) < config.units).any()
    for c in range(decomp.num_modules):
        ccfg, cp = compact(params, decomp, c)
        assert ccfg.units == keep[c].sum(-1).max()
        got = np.asarray(jax.nn.softmax(apply_model(ccfg, cp, x), -1)[..., 1])
        np.testing.assert_allclose(got, fast[c], rtol=0, atol=1e-6)


def test_compacted_module_saves_and_loads(tmp_path):
    config, params, data = trained("lstm_o2m")
    decomp = decomposed("lstm_o2m", n_pos=100, max_remove=0.3, u_mask="paper")
    ccfg, cp = compact(params, decomp, 2)
    save_model(str(tmp_path / "module"), ccfg, cp)
    lcfg, lp = load_model(str(tmp_path / "module"))
    assert lcfg == ccfg
    x = data.x_test[:16]
    np.testing.assert_array_equal(np.asarray(apply_model(lcfg, lp, x)),
                                  np.asarray(apply_model(ccfg, cp, x)))


def test_unrolled_with_the_same_keep_at_every_step_is_accepted():
    cfg = tiny_config("gru", "many_to_many")
    P = tiny_params(cfg)
    per_step = np.repeat(KEEP[:, :, None, :], T, axis=2)
    a = compact(P, make_decomp(cfg, per_step, mode="unrolled"), 1)
    b = compact(P, make_decomp(cfg, KEEP), 1)
    assert a[0] == b[0]
    jax.tree_util.tree_map(np.testing.assert_array_equal, a[1], b[1])


def test_code_semantics_single_step_is_accepted_and_exact():
    """one_to_one: the zero initial state never reaches the recurrent kernel, so "code" and
    "paper" compute the same module."""
    cfg = tiny_config("lstm", "one_to_one")
    P = tiny_params(cfg)
    x = np.random.default_rng(3).integers(1, cfg.vocab_size, (5, T)).astype(np.int32)
    decomp = make_decomp(cfg, KEEP, u_mask="code")
    with jax.enable_x64(True):
        fast = np.asarray(module_scores(decomp, P, x))
    for c in range(C):
        ccfg, cp = compact(P, decomp, c)
        got = two_class_score(numpy_forward(ccfg, cp, x))[:, -1]
        np.testing.assert_allclose(got, fast[c], rtol=0, atol=1e-6)


def test_refuses_code_semantics():
    cfg = tiny_config("lstm", "many_to_one")
    P = tiny_params(cfg)
    with pytest.raises(ValueError, match="u_mask='paper'.*recurrent input"):
        compact(P, make_decomp(cfg, KEEP, u_mask="code"), 0)
    # a module that removes nothing is the same in both semantics
    ccfg, _ = compact(P, make_decomp(cfg, np.ones_like(KEEP), u_mask="code"), 0)
    assert ccfg.units == H


def test_refuses_unrolled_keep_that_changes_between_steps():
    cfg = tiny_config("lstm", "many_to_many")
    P = tiny_params(cfg)
    per_step = np.repeat(KEEP[:, :, None, :], T, axis=2)
    per_step[0, 0, 3, 0] = False
    with pytest.raises(ValueError, match="one keep vector per layer"):
        compact(P, make_decomp(cfg, per_step, mode="unrolled"), 0)


def test_refuses_encoder_decoder():
    cfg = ModelConfig(io="encoder_decoder", cell="lstm", num_classes=9, vocab_size=9, in_len=4,
                      out_len=3, layers=2, units=H, embed_dim=3, mask_zero=True)
    with pytest.raises(ValueError, match="encoder's final state"):
        compact(init_params(cfg), make_decomp(cfg, KEEP[:2]), 0)


def test_refuses_per_gate_and_bad_index():
    cfg = tiny_config("lstm", "many_to_one")
    P = tiny_params(cfg)
    gate_keep = np.ones((C, 2, 4 * H), bool)
    gate_keep[:, :, 5] = False
    with pytest.raises(ValueError, match="gate_mode='unit'"):
        compact(P, make_decomp(cfg, gate_keep, gate_mode="per_gate"), 0)
    with pytest.raises(ValueError, match=r"c must be a module index in \[0, 4\)"):
        compact(P, make_decomp(cfg, KEEP), 4)
