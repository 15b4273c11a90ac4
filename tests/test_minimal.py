"""Tests of :func:`modjax.minimal_modules`: fewer units within the stated validation cost.

The checks recompute what the search promises with the library's ordinary paths (``decompose``
at the chosen cap, ``module_scores`` and an arg-max vote, the monolithic ``predict``) rather
than with the search's own score tables.
"""
from __future__ import annotations

import numpy as np
import pytest

from modjax.compose import module_scores
from modjax.decompose import decompose
from modjax.minimal import (DEFAULT_LADDER, iterative_removal_order, minimal_modules,
                            removal_effect, split_validation)
from modjax.models import ModelConfig, apply_model, init_params
from modjax.train import predict
from tests.trained_models import trained_big

LADDER = tuple(round(0.1 * i, 1) for i in range(1, 11))


def _setup():
    cfg, params, data, _ = trained_big("many_to_one")
    return cfg, params, data


def _recall_with(decomp, params, x, y, c, keep_c):
    """Validation recall of class ``c`` with module ``c`` at ``keep_c`` and every other module
    keeping all units (the original model's channelled scores)."""
    k = np.ones(np.shape(decomp.keep), bool)
    k[c] = keep_c
    s = np.asarray(module_scores(decomp.replace(keep=k), params, x))
    return float((np.argmax(s, 0)[y == c] == c).mean())


@pytest.mark.parametrize("candidates", ["negative", "all", "first_order", "iterative"])
def test_fewer_units_within_the_stated_cost(candidates):
    cfg, params, data = _setup()
    max_cost = 0.02
    mm = minimal_modules(params, data, model=cfg, max_cost=max_cost, candidates=candidates,
                         ladder=LADDER)
    keep = np.asarray(mm.decomposition.keep)  # [C, L, H]
    default = decompose(params, data, model=cfg, u_mask="paper")
    assert keep.sum() < np.asarray(default.keep).sum()
    assert (mm.caps > 0.05).any()
    # composed validation accuracy within the cost of the original model's
    xv = data.x_train[mm.val_index]
    yv = data.y_train[mm.val_index]
    original = float((predict(cfg, params, xv) == yv).mean())
    composed = float((np.argmax(np.asarray(module_scores(mm.decomposition, params, xv)), 0)
                      == yv).mean())
    assert original - composed <= max_cost + 1e-9
    assert abs(composed - mm.val_accuracy) < 1e-9
    assert abs(original - mm.val_accuracy_original) < 1e-9
    # every class's recall (its module alone changed) within the cost of its recall at cap 0
    for c in range(cfg.num_classes):
        full_recall = float((predict(cfg, params, xv)[yv == c] == c).mean())
        assert full_recall - _recall_with(mm.decomposition, params, xv, yv, c, keep[c]) \
            <= max_cost + 1e-9


def test_negative_candidates_are_the_method_at_the_chosen_cap():
    """With the method's candidates, a module equals ``decompose(max_remove=cap)`` on the fit
    part of the training data."""
    cfg, params, data = _setup()
    mm = minimal_modules(params, data, model=cfg, max_cost=0.02, ladder=LADDER)
    fit, val = split_validation(len(data.x_train), 0.1, 0)
    np.testing.assert_array_equal(val, mm.val_index)
    for c in range(cfg.num_classes):
        if mm.caps[c] == 0:
            assert np.asarray(mm.decomposition.keep[c]).all()
            continue
        ref = decompose(params, (data.x_train[fit], data.y_train[fit]), model=cfg,
                        u_mask="paper", max_remove=float(mm.caps[c]))
        np.testing.assert_array_equal(np.asarray(mm.decomposition.keep[c]),
                                      np.asarray(ref.keep[c]))


def test_no_cost_limit_removes_every_candidate():
    cfg, params, data = _setup()
    mm_all = minimal_modules(params, data, model=cfg, max_cost=1.0, candidates="all",
                             ladder=LADDER)
    assert (mm_all.caps == 1.0).all() and not np.asarray(mm_all.decomposition.keep).any()
    mm_neg = minimal_modules(params, data, model=cfg, max_cost=1.0, candidates="negative",
                             ladder=LADDER)
    # the method's rule never removes a unit with d >= 0: its modules keep some units
    assert np.asarray(mm_neg.decomposition.keep).sum(-1).min() > 0
    assert mm_neg.units_kept[:, -1].min() > 0 and mm_all.units_kept[:, -1].max() == 0


def test_zero_cost_keeps_validation_accuracy():
    cfg, params, data = _setup()
    mm = minimal_modules(params, data, model=cfg, max_cost=0.0, ladder=LADDER)
    assert mm.val_accuracy >= mm.val_accuracy_original
    assert np.all(mm.recall[np.arange(len(mm.caps)), np.searchsorted(mm.ladder, mm.caps)]
                  >= mm.recall[:, 0])


def test_a_sequence_of_costs_shares_one_ladder():
    cfg, params, data = _setup()
    low, high = minimal_modules(params, data, model=cfg, max_cost=[0.0, 0.05], ladder=LADDER)
    single = minimal_modules(params, data, model=cfg, max_cost=0.05, ladder=LADDER)
    np.testing.assert_array_equal(np.asarray(high.decomposition.keep),
                                  np.asarray(single.decomposition.keep))
    assert (high.caps >= low.caps).all() and (high.caps > low.caps).any()


def test_split_validation():
    fit, val = split_validation(100, 0.1, 3)
    assert len(val) == 10 and len(fit) == 90
    assert np.all(np.diff(fit) > 0) and np.all(np.diff(val) > 0)
    assert not set(fit) & set(val)
    np.testing.assert_array_equal(split_validation(100, 0.1, 3)[1], val)
    assert not np.array_equal(split_validation(100, 0.1, 4)[1], val)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_validation(100, 1.0, 0)


def test_default_ladder():
    assert DEFAULT_LADDER[0] == 0.0 and DEFAULT_LADDER[-1] == 1.0 and len(DEFAULT_LADDER) == 21


def test_errors_name_the_argument():
    cfg, params, data = _setup()
    with pytest.raises(ValueError, match="max_cost must be"):
        minimal_modules(params, data, model=cfg, max_cost=1.5)
    with pytest.raises(ValueError, match="candidates must be one of"):
        minimal_modules(params, data, model=cfg, candidates="positive")
    with pytest.raises(ValueError, match="ladder must hold"):
        minimal_modules(params, data, model=cfg, ladder=(0.5, 2.0))
    with pytest.raises(ValueError, match="gate_mode must be 'unit'"):
        minimal_modules(params, data, model=cfg, gate_mode="per_gate")
    ed = ModelConfig(io="encoder_decoder", cell="lstm", num_classes=9, vocab_size=9, in_len=4,
                     out_len=3)
    with pytest.raises(ValueError, match="encoder_decoder"):
        minimal_modules(params, data, model=ed)


@pytest.mark.parametrize("io,unrolled", [("many_to_one", False), ("many_to_one", True),
                                         ("many_to_many", False)])
def test_removal_effect_matches_finite_differences(io, unrolled):
    """``removal_effect`` against central differences of the mean contrast ``z_c - z_q`` of
    the class's examples (many-output: its positions), with one unit's keep entry moved by
    ±eps, computed from the model's logits directly."""
    cfg = ModelConfig(io=io, cell="lstm", num_classes=3, vocab_size=20, in_len=5, layers=2,
                      units=4, embed_dim=3)
    params = init_params(cfg, 2)
    rng = np.random.default_rng(3)
    x = rng.integers(1, 20, (40, 5)).astype(np.int32)
    y = rng.integers(0, 3, (40, 5) if io == "many_to_many" else 40).astype(np.int32)
    n_pos = 12
    got = removal_effect(params, x, y, config=cfg, n_pos=n_pos, unrolled=unrolled)
    M = cfg.steps if unrolled else 1
    assert got.shape == (3, 2, M, 4)
    shape = (2, cfg.steps, 4) if unrolled else (2, 4)
    for c in range(3):
        hit = y == c
        rows = np.nonzero(hit.any(1) if y.ndim == 2 else hit)[0][:n_pos]
        w = hit[rows].astype(np.float64)

        def contrast(keep):
            z = np.asarray(apply_model(cfg, params, x[rows], keep=keep, u_mask="paper"),
                           np.float64)
            zc = z[..., c]
            return float(((zc - (z.sum(-1) - zc) / 2) * w).sum() / w.sum())

        eps = 1e-2
        for idx in [(0, 0), (0, 3), (1, 2)] if not unrolled else [(0, 0, 1), (1, 4, 2)]:
            up, down = np.ones(shape, np.float32), np.ones(shape, np.float32)
            up[idx] += eps
            down[idx] -= eps
            want = abs(contrast(up) - contrast(down)) / (2 * eps)
            have = got[(c, idx[0]) + ((idx[1],) if unrolled else (0,)) + (idx[-1],)]
            assert have == pytest.approx(want, rel=1e-2, abs=2e-5), (c, idx)


def test_removal_effect_of_a_class_without_examples_is_zero():
    cfg = ModelConfig(io="many_to_one", cell="gru", num_classes=3, vocab_size=20, in_len=5,
                      layers=1, units=4, embed_dim=3)
    params = init_params(cfg, 0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (30, 5)).astype(np.int32)
    y = rng.integers(0, 2, 30).astype(np.int32)  # class 2 never occurs
    got = removal_effect(params, x, y, config=cfg, n_pos=8)
    assert got.shape == (3, 1, 1, 4)
    assert (got[2] == 0).all() and (got[:2] > 0).any()


def test_iterative_order_removes_the_weakest_kept_units_round_by_round():
    """Each round of ``iterative_removal_order`` removes, per layer, the still-kept units with
    the smallest effect measured at the previous round's module: checked against central
    differences of the class's mean contrast computed from the model's logits, round by round
    (rows whose boundary effects are within 5% of each other are not decisive and skipped)."""
    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=3, vocab_size=20, in_len=5,
                      layers=2, units=6, embed_dim=3)
    params = init_params(cfg, 5)
    rng = np.random.default_rng(6)
    x = rng.integers(1, 20, (60, 5)).astype(np.int32)
    y = rng.integers(0, 3, 60).astype(np.int32)
    n_pos, counts = 15, (2, 4)
    pos = iterative_removal_order(params, x, y, counts, config=cfg, n_pos=n_pos)
    assert pos.shape == (3, 2, 1, 6)
    assert (np.sort(pos, -1) == np.arange(6)).all()  # a permutation per row
    checked = 0
    for c in range(3):
        rows = np.nonzero(y == c)[0][:n_pos]

        def contrast(keep):
            z = np.asarray(apply_model(cfg, params, x[rows], keep=keep, u_mask="paper"),
                           np.float64)
            return float(np.mean(z[:, c] - (z.sum(-1) - z[:, c]) / 2))

        keep = np.ones((2, 6), np.float32)
        done = 0
        for k in counts:
            removed = []
            for layer in range(2):
                eff = {}
                for u in np.nonzero(keep[layer] > 0)[0]:
                    up, down = keep.copy(), keep.copy()
                    up[layer, u] += 1e-2
                    down[layer, u] -= 1e-2
                    eff[u] = abs(contrast(up) - contrast(down)) / 2e-2
                ranked = sorted(eff, key=eff.get)
                want = set(ranked[: k - done])
                have = set(np.nonzero((pos[c, layer, 0] >= done) & (pos[c, layer, 0] < k))[0])
                gap = eff[ranked[k - done]] - eff[ranked[k - done - 1]]
                if gap > 0.05 * eff[ranked[k - done]]:
                    assert have == want, (c, layer, k, eff)
                    checked += 1
                removed.append((layer, sorted(have)))
            for layer, units in removed:  # every layer measured at the same module
                keep[layer, units] = 0.0
            done = k
    assert checked >= 8


def test_iterative_order_checks_counts():
    cfg = ModelConfig(io="many_to_one", cell="gru", num_classes=2, vocab_size=20, in_len=4,
                      layers=1, units=4, embed_dim=3)
    params = init_params(cfg, 0)
    x = np.ones((6, 4), np.int32)
    y = np.array([0, 1] * 3, np.int32)
    for bad in ([2, 1], [0, 5]):
        with pytest.raises(ValueError, match="counts must be increasing"):
            iterative_removal_order(params, x, y, bad, config=cfg)
