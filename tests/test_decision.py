"""Tests of modjax.decision against float64 NumPy statements of the rules, written per example."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from modjax import decision
from modjax.compose import apply_masks, module_scores, select
from modjax.models import apply_model
from modjax.reuse import compose_modules, modules_of
from tests.trained_models import decomposed, trained


def _np_channelled(z, p):
    """One example's channelled logits, by the definition (loop over classes)."""
    C = len(z)
    q = 1 if p == 0 else 0
    out = np.zeros(C)
    out[p] = z[p]
    out[q] = np.mean([z[c] for c in range(C) if c != p])
    return out


def _np_softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _np_pair(za, zb, c1, c2, score):
    """The pair rule for one example, from probabilities (float64)."""
    def prob_claim(z, p):
        ch = _np_channelled(z, p)
        q = 1 if p == 0 else 0
        if score == "softmax":
            s = _np_softmax(ch)
            return s[p], int(np.argmax(s)) == p
        two = _np_softmax(np.array([ch[q], ch[p]]) if q < p else np.array([ch[p], ch[q]]))
        pp = two[1] if q < p else two[0]
        first_wins = int(np.argmax(two)) == (1 if q < p else 0)
        return pp, first_wins
    pa, ca = prob_claim(za, c1)
    pb, cb = prob_claim(zb, c2)
    if ca and not cb:
        return 0
    if cb and not ca:
        return 1
    return 0 if pa >= pb else 1


def test_channelled_logits_and_scores_match_the_definition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5)) * 3
    for p in range(5):
        got = np.asarray(decision.channelled_logits(z.astype(np.float32), p))
        want = np.stack([_np_channelled(r, p) for r in z])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        lp = np.asarray(decision.own_class_log_probability(z.astype(np.float32), p, "softmax"))
        np.testing.assert_allclose(np.exp(lp), [_np_softmax(r)[p] for r in want], atol=1e-5)
        lp2 = np.asarray(decision.own_class_log_probability(z.astype(np.float32), p,
                                                            "pairwise"))
        q = 1 if p == 0 else 0
        np.testing.assert_allclose(np.exp(lp2), 1 / (1 + np.exp(-(want[:, p] - want[:, q]))),
                                   atol=1e-5)


@pytest.mark.parametrize("score", ["softmax", "pairwise"])
@pytest.mark.parametrize("classes", [(0, 3), (2, 4), (1, 0)])
def test_pair_decision_matches_the_rule_per_example(score, classes):
    rng = np.random.default_rng(1)
    za = (rng.normal(size=(400, 5)) * 2).astype(np.float32)
    zb = (rng.normal(size=(400, 5)) * 2).astype(np.float32)
    got = np.asarray(decision.pair_decision(za, zb, classes, score))
    want = [_np_pair(a.astype(np.float64), b.astype(np.float64), *classes, score)
            for a, b in zip(za, zb)]
    np.testing.assert_array_equal(got, want)
    # both branches of the rule occur: a claim decides some examples, probabilities others
    assert 0 < got.mean() < 1


def test_pair_decision_softmax_claim_needs_to_beat_the_zero_logits():
    # z_p > z_q but both below 0: the other (zero) logits are the arg-max, so the module does
    # not claim under the C-way softmax, yet does under the pairwise score
    z = np.array([[-3.0, -1.0, -5.0, -5.0]], np.float32)  # module p=1: z_q = mean(-3,-5,-5)
    assert not bool(decision.claims_own_class(z, 1, "softmax")[0])
    assert bool(decision.claims_own_class(z, 1, "pairwise")[0])
    other = np.array([[0.0, 0.0, 0.0, 2.0]], np.float32)  # module 3 claims clearly
    assert int(decision.pair_decision(z, other, (1, 3), "softmax")[0]) == 1


def test_restrict_and_collapse_match_per_example_statements():
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 6, size=(300, 6))
    s1, s2 = rng.normal(size=(2, 300, 6))
    c1, c2 = 2, 4
    r = np.asarray(decision.restrict_votes(pred, (c1, c2)))
    np.testing.assert_array_equal(r, np.where((pred == c1) | (pred == c2), pred, 0))
    got = np.asarray(decision.collapse_pair(r, s1, s2, c1, c2))
    for i in range(300):
        row = list(r[i])
        if c1 in row and c2 in row:
            want = [c1, c2]
        elif c1 in row:
            want = [0, c1]
        elif c2 in row:
            want = [0, c2]
        else:
            want = [0, c1 if s1[i].max() >= s2[i].max() else c2]
        assert list(got[i]) == want, i
    kinds = {tuple(g) for g in got}
    assert {(c1, c2), (0, c1), (0, c2)} <= kinds


def test_odds_decision_is_the_comparison_of_largest_odds():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 6)) * 2       # many-output module: contrasts per step
    b = rng.normal(size=(200,)) * 2          # one-output module
    pa = 1 / (1 + np.exp(-a))
    pb = 1 / (1 + np.exp(-b))
    odds_a = (pa / (1 - pa)).max(axis=1)
    odds_b = pb / (1 - pb)
    got = np.asarray(decision.odds_decision(a.astype(np.float32), b.astype(np.float32)))
    np.testing.assert_array_equal(got, np.where(odds_a >= odds_b, 0, 1))
    # the library's cross-model vote (reduce_steps="max") is this rule
    assert 0 < got.mean() < 1


def test_pair_decision_on_a_model_uses_the_channelled_heads_logits():
    """module_scores' raw logits channelled here equal an ordinary forward pass of the module's
    explicitly channelled weights (apply_masks), in float64."""
    cfg, params, data = trained("lstm_o2o")
    d = decomposed("lstm_o2o")
    x = data.x_test
    logits = np.asarray(module_scores(select(d, [0, 2]), params, x, kind="logits"))  # [2, N, C]
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        ref = [np.asarray(apply_model(cfg, apply_masks(p64, d, c), x)) for c in (0, 2)]
    for j, c in enumerate((0, 2)):
        np.testing.assert_allclose(np.asarray(decision.channelled_logits(logits[j], c)), ref[j],
                                   atol=1e-4)
    got = np.asarray(decision.pair_decision(logits[0], logits[1], (0, 2), "softmax"))
    want = []
    for i in range(len(x)):
        pa, pb = _np_softmax(ref[0][i]), _np_softmax(ref[1][i])
        ca, cb = int(np.argmax(pa)) == 0, int(np.argmax(pb)) == 2
        want.append(0 if (ca and not cb) else 1 if (cb and not ca) else
                    (0 if pa[0] >= pb[2] else 1))
    np.testing.assert_array_equal(got, want)


def test_compose_modules_with_max_steps_is_the_odds_rule():
    _, params, data = trained("lstm_o2m")
    d = decomposed("lstm_o2m")
    x = data.x_test
    refs = modules_of(d, params, [1, 2], labels=[0, 1])
    pred, _ = compose_modules(refs, reduce_steps="max")(x)
    contrast = np.asarray(module_scores(select(d, [1, 2]), params, x, kind="contrast"))
    np.testing.assert_array_equal(np.asarray(pred),
                                  np.asarray(decision.odds_decision(contrast[0], contrast[1])))


def test_errors_name_the_argument():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="score"):
        decision.pair_decision(z, z, (0, 1), "nope")
    with pytest.raises(ValueError, match="distinct"):
        decision.pair_decision(z, z, (1, 1))
    with pytest.raises(ValueError, match=r"classes\[1\]"):
        decision.pair_decision(z, z, (0, 9))
    with pytest.raises(ValueError, match="same shape"):
        decision.pair_decision(z, z[:2], (0, 1))
    with pytest.raises(ValueError, match="c1, c2"):
        decision.collapse_pair(np.zeros((2, 3), int), z[:2, :3], z[:2, :3], 3, 2)
    with pytest.raises(ValueError, match="score_c2"):
        decision.collapse_pair(np.zeros((2, 3), int), z[:2, :3], z[:2, :2], 1, 2)
    with pytest.raises(ValueError, match="log_odds_a"):
        decision.odds_decision(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="p must be an int"):
        decision.channelled_logits(z, 1.5)
