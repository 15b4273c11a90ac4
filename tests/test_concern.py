"""Tests of :mod:`modjax.concern`: robust statistics and the removal rules, worked by hand."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modjax import concern

from tests.trained_models import k_of


def _keep(d, k, tie_ratio=1.1):
    return np.asarray(concern.select_logistic(jnp.asarray(d, jnp.float32), k, tie_ratio))


def _all(n):
    return jnp.ones((n,), bool)


# ---------------------------------------------------------------------------------------------
# select_logistic (docs/method.md#removal), by hand.
# ---------------------------------------------------------------------------------------------

def test_select_tie_rule_removes_beyond_the_cap():
    #            0     1     2      3     4     5     6    7
    d = [-0.5, 0.3, -1.0, -0.95, -0.2, -0.92, 0.0, -0.1]
    # ascending: 2 (-1.0), 3 (-0.95), 5 (-0.92), 0 (-0.5), 4, 7, 6 (0.0), 1
    # cap k=2 removes 2 and 3; after the cap 5 goes too: -1.0 / -0.92 = 1.087 < 1.1;
    # 0 stays: -1.0 / -0.5 = 2.
    np.testing.assert_array_equal(_keep(d, 2), [1, 1, 0, 0, 1, 0, 1, 1])
    # With a stricter ratio the near-tie survives.
    np.testing.assert_array_equal(_keep(d, 2, tie_ratio=1.05), [1, 1, 0, 0, 1, 1, 1, 1])


def test_select_fewer_negatives_than_the_cap():
    d = [0.1, -0.2, 0.3, 0.0, 0.5, -0.05]
    # k=4 but only units 1 and 5 have d < 0; d == 0 is kept.
    np.testing.assert_array_equal(_keep(d, 4), [1, 0, 1, 1, 1, 0])


def test_select_ties_follow_the_stable_order():
    # Three units tie at -0.2 behind the minimum; the cap (k=2) takes the minimum and the
    # *first* tied unit in index order; the others are not within 10% of -1.0 and stay.
    np.testing.assert_array_equal(_keep([-0.2, -1.0, -0.2, -0.2, 0.4], 2), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(_keep([0.4, -0.2, -0.2, -1.0, -0.2], 2), [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(_keep([0.4, -0.2, -0.2, -1.0, -0.2], 3), [1, 0, 0, 0, 1])


def test_select_exact_ties_with_the_minimum_all_go():
    # k=1 removes unit 0; units 1 and 2 tie with it (ratio 1.0 < 1.1), so the tie rule
    # removes them as well.
    np.testing.assert_array_equal(_keep([-0.5, -0.5, -0.5, 0.1], 1), [0, 0, 0, 1])


def test_select_zero_cap_still_applies_the_tie_rule_but_not_to_the_minimum():
    # k=0: nothing is removed under the cap; the tie rule skips position 0 of the order
    # (idx > 0) but removes -0.99 (ratio 1.0101); -0.5 has ratio 2.
    np.testing.assert_array_equal(_keep([-1.0, -0.99, -0.5], 0), [1, 0, 1])


def test_select_nothing_negative():
    np.testing.assert_array_equal(_keep([0.0, 0.1, 0.2], 3), [1, 1, 1])


def _walk(d, k, tie_ratio):
    """The removal rule of docs/method.md#removal, as a loop."""
    order = np.argsort(d, kind="stable")
    removed = []
    for idx, j in enumerate(order):
        if len(removed) < k:
            if d[j] < 0:
                removed.append(j)
        elif d[j] < 0 and d[order[0]] / d[j] < tie_ratio and idx > 0:
            removed.append(j)
    keep = np.ones(len(d), bool)
    keep[removed] = False
    return keep


def test_select_matches_the_walk_on_many_tied_vectors():
    rng = np.random.default_rng(0)
    H = 10
    sel = jax.jit(jax.vmap(concern.select_logistic, in_axes=(0, None, None)),
                  static_argnums=(1, 2))
    for k, ratio in itertools.product([0, 2, 5], [1.0, 1.1]):
        d = rng.integers(-16, 9, size=(100, H)) / 8.0  # dyadic: many exact ties, exact ratios
        got = np.asarray(sel(jnp.asarray(d, jnp.float32), k, ratio))
        for row, g in zip(d, got):
            np.testing.assert_array_equal(g, _walk(row, k, ratio),
                                          err_msg=f"d={row} k={k} ratio={ratio}")


def test_select_is_jittable_and_vmappable():
    d = jnp.asarray([[-0.5, 0.3, -1.0, -0.95], [0.1, -0.2, 0.3, 0.0]])
    out = jax.jit(jax.vmap(lambda v: concern.select_logistic(v, 1)))(d)
    np.testing.assert_array_equal(np.asarray(out), [[1, 1, 0, 0], [1, 0, 1, 1]])


# ---------------------------------------------------------------------------------------------
# The cap.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("max_remove,H,k", [
    (0.2, 12, 3), (0.2, 16, 4), (0.2, 10, 2), (0.05, 100, 5), (0.07, 100, 7),
    (0.10, 100, 10), (0.05, 1024, 52), (0.05, 256, 13), (0.0, 10, 0), (1.0, 10, 10),
    (0.05, 12, 1)])
def test_removal_count_hand_worked(max_remove, H, k):
    # docs/method.md#removal: usually exactly 5 units per layer at 5% of 100; the authors' logs: 52 of 1024 or 13 of 256.
    assert concern.removal_count(max_remove, H) == k


def test_removal_count_is_the_artifacts_walk():
    # The artifact stops once removed / H >= maxRemove (float division).
    for mr, H in itertools.product(np.round(np.arange(0, 101) / 100, 2), range(1, 130)):
        assert concern.removal_count(float(mr), H) == k_of(float(mr), H), (mr, H)


# ---------------------------------------------------------------------------------------------
# robust_mean / masked_median (docs/method.md#statistics).
# ---------------------------------------------------------------------------------------------

def _rm(a, valid=None):
    a = jnp.asarray(a)
    a = a[:, None] if a.ndim == 1 else a
    v = _all(a.shape[0]) if valid is None else jnp.asarray(valid)
    return np.asarray(concern.robust_mean(a, v))


def test_robust_mean_drops_the_outlier():
    # med 5, dev [1, 1, 2, 0, 35], MAD 1: dev/MAD < 2 keeps 4, 6, 5 (3 sits exactly at 2 and
    # goes, as does 40) -> 5.0
    assert _rm([4.0, 6.0, 3.0, 5.0, 40.0])[0] == 5.0


def test_robust_mean_even_count():
    # med 3.5, dev [2.5, 1.5, .5, .5, 1.5, 96.5], MAD 1.5 -> keeps 1..5 -> 3.0
    assert _rm([1.0, 2.0, 3.0, 4.0, 5.0, 100.0])[0] == 3.0


def test_robust_mean_mad_zero_uses_every_observation():
    # med 2, dev [0, 0, 0, 5, 0], MAD 0 -> plain mean 15 / 5
    assert _rm([2.0, 2.0, 2.0, 7.0, 2.0])[0] == 3.0


def test_robust_mean_ratio_exactly_two_is_excluded():
    # med 1.5, dev [.5, .5, .5, .5, 1, 7.5], MAD .5: 2.5 has dev/MAD == 2 exactly -> out.
    assert _rm([1.0, 1.0, 1.0, 2.0, 2.5, 9.0])[0] == 1.25


def test_robust_mean_half_the_observations_identical_float64():
    """Regression: when half the observations share one value (pre-padded steps give identical
    hidden states), MAD is half the next deviation, whose ratio is exactly 2. XLA's division
    is not correctly rounded, so ``dev / mad < 2`` once admitted that observation."""
    v = 0.05498245860183464
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        for e in [0.01426315100158051] + list(rng.uniform(1e-3, 0.05, size=20)):
            a = np.array([v - 0.3 - 0.01 * i for i in range(10)] + [v] * 20 + [v + e]
                         + [v + 0.5 + 0.01 * i for i in range(9)])
            med = np.median(a)
            dev = np.abs(a - med)
            mad = np.median(dev)
            assert med == v and np.sum(dev / mad < 2) == 20  # the boundary element is out
            want = np.mean(a[dev / mad < 2])
            got = _rm(a)
            assert got.dtype == np.float64
            assert got[0] == want, e


def test_robust_mean_columns_and_validity():
    a = np.array([[4.0, 2.0], [6.0, 2.0], [3.0, 2.0], [5.0, 7.0], [40.0, 2.0],
                  [1e6, -1e6], [np.nan, np.nan]], np.float32)
    valid = np.array([1, 1, 1, 1, 1, 0, 0], bool)
    np.testing.assert_array_equal(_rm(a, valid), [5.0, 3.0])
    # No valid row: NaN.
    assert np.isnan(_rm(a, np.zeros(7, bool))).all()


def test_masked_median_matches_numpy_float64():
    rng = np.random.default_rng(2)
    n = 11
    with jax.enable_x64(True):
        med_fn = jax.jit(concern.masked_median)
        rm_fn = jax.jit(concern.robust_mean)
        for trial in range(40):
            a = rng.normal(size=(n, 3))
            a[rng.random((n, 3)) < 0.3] = 0.5  # ties
            valid = rng.random(n) < rng.uniform(0.05, 1.0)  # every count from 0 to n
            got = np.asarray(med_fn(jnp.asarray(a), jnp.asarray(valid)))
            if not valid.any():
                assert np.isnan(got).all()
                continue
            np.testing.assert_array_equal(got, np.median(a[valid], axis=0))
            rm = np.asarray(rm_fn(jnp.asarray(a), jnp.asarray(valid)))
            ref = []
            for j in range(3):
                col = a[valid, j]
                med = np.median(col)
                dev = np.abs(col - med)
                mad = np.median(dev)
                ref.append(np.mean(col[dev / mad < 2]) if mad > 0 else np.mean(col))
            np.testing.assert_allclose(rm, ref, rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------------------------
# ReLU rule (docs/method.md#removal) and active rates.
# ---------------------------------------------------------------------------------------------

def test_active_rate_hand_worked():
    a = jnp.asarray([[0.0, 1.0, -0.6], [2.0, 0.0, 0.5], [3.0, 0.0, 0.1], [9.0, 9.0, 9.0]])
    valid = jnp.asarray([True, True, True, False])
    np.testing.assert_allclose(np.asarray(concern.active_rate(a, valid)), [2 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(np.asarray(concern.active_rate(a, valid, 0.5, absolute=True)),
                               [2 / 3, 1 / 3, 2 / 3])


def test_select_relu_hand_worked():
    #     0      1     2      3     4     5
    d = [-0.75, -0.5, -0.49, -1.0, 0.2, -0.5]
    # d <= -0.5: 3 (-1.0), 0 (-0.75), 1 (-0.5), 5 (-0.5) in stable ascending order; no tie rule.
    def keep(k, thr=-0.5):
        return np.asarray(concern.select_relu(jnp.asarray(d), k, thr))
    np.testing.assert_array_equal(keep(2), [0, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(keep(3), [0, 0, 1, 0, 1, 1])
    np.testing.assert_array_equal(keep(10), [0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(keep(10, -0.8), [1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(keep(0), [1, 1, 1, 1, 1, 1])


def test_unit_scores_relu_and_logistic():
    pos = jnp.asarray([[1.0, -0.5], [0.0, 0.5], [2.0, 0.5]])
    neg = jnp.asarray([[0.0, 0.25], [0.0, -0.25]])
    d_relu = concern.unit_scores(pos, _all(3), neg, _all(2), True)
    np.testing.assert_allclose(np.asarray(d_relu), [2 / 3 - 0.0, 2 / 3 - 0.5], rtol=1e-6)
    d_log = concern.unit_scores(pos, _all(3), neg, _all(2), False)
    # |pos| col0 [1, 0, 2]: med 1, dev [0, 1, 1], MAD 1 -> all -> 1.0; col1 [.5]*3 -> .5
    # |neg| col0 0.0; col1 .25
    np.testing.assert_allclose(np.asarray(d_log), [1.0, 0.25])


# ---------------------------------------------------------------------------------------------
# Per-gate scores and selection (approach 1).
# ---------------------------------------------------------------------------------------------

def test_gate_scores_hand_worked():
    # H = 2, blocks (gate, candidate).
    pos = jnp.asarray([[0.6, 0.1, -0.5, 0.25],
                       [0.4, 0.9, 0.5, 0.75]])
    neg = jnp.asarray([[0.5, 0.2, 0.25, 0.5],
                       [0.7, 0.1, 0.25, 0.5]])
    d = concern.gate_scores(pos, _all(2), neg, _all(2), ("gate", "candidate"), 2)
    # gate block: active rate |v| >= 0.5: pos [.5, .5], neg [1, 0] -> [-.5, .5]
    # candidate block: robust mean of |v|: pos [.5, .5], neg [.25, .5] -> [.25, 0]
    np.testing.assert_allclose(np.asarray(d), [-0.5, 0.5, 0.25, 0.0])


def test_select_gates_caps_each_block():
    d = jnp.asarray([-0.3, -0.1, -0.2, 0.5,     # block 0
                     -0.9, -0.8, -0.1, -0.05])  # block 1
    keep = np.asarray(concern.select_gates(d, 1, 2))
    # block 0: k=1 -> remove unit 0 (-0.3); -0.3 / -0.2 = 1.5 -> no tie.
    # block 1: k=1 -> remove -0.9; -0.9 / -0.8 = 1.125 -> no tie.
    np.testing.assert_array_equal(keep, [0, 1, 1, 1, 0, 1, 1, 1])


def test_select_gates_has_no_tie_rule():
    # -1.0 / -0.95 = 1.05 < 1.1: the unit rule removes the near-tie, the per-gate rule does not
    d = jnp.asarray([-1.0, -0.95, 0.2])
    np.testing.assert_array_equal(np.asarray(concern.select_logistic(d, 1)), [0, 0, 1])
    np.testing.assert_array_equal(np.asarray(concern.select_gates(d, 1, 1)), [0, 1, 1])


def test_masked_median_matches_numpy_float32_with_ties():
    # float32 keys: numpy's median is the reference
    rng = np.random.default_rng(5)
    med_fn = jax.jit(concern.masked_median)
    for trial in range(30):
        n = int(rng.integers(1, 60))
        a = rng.normal(size=(n, 4)).astype(np.float32)
        a[rng.random((n, 4)) < 0.3] = np.float32(0.25)  # ties
        a[:, 1] = np.abs(a[:, 1])
        a[rng.random((n, 4)) < 0.1] = np.float32(-0.0)
        a[0, 2] = np.float32(65535.0 * 2 ** -20)  # a low half of all ones in its bit pattern
        valid = rng.random(n) < rng.uniform(0.1, 1.0)
        got = np.asarray(med_fn(jnp.asarray(a), jnp.asarray(valid)))
        if not valid.any():
            assert np.isnan(got).all()
            continue
        np.testing.assert_array_equal(got, np.median(a[valid], axis=0))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 129, 500, 1001, 7500])
def test_count_rows_equals_the_sum_at_every_size(n):
    # the halving sum pads odd row counts; trailing dims ride along
    rng = np.random.default_rng(n)
    hit = rng.random((n, 3, 5)) < 0.37
    got = np.asarray(jax.jit(concern._count_rows)(jnp.asarray(hit)))
    np.testing.assert_array_equal(got, hit.sum(axis=0))


@pytest.mark.parametrize("n", [65, 500, 1001, 7500])
def test_masked_median_matches_numpy_on_long_columns(n):
    # sizes that take the padded, halving counting path (> 64 rows)
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 6)).astype(np.float32)
    a[rng.random((n, 6)) < 0.2] = np.float32(0.25)  # ties
    a[:, 1] = np.abs(a[:, 1])
    a[:, 5] = np.float32(1.5)  # a constant column
    valid = rng.random(n) < 0.7
    got = np.asarray(jax.jit(concern.masked_median)(jnp.asarray(a), jnp.asarray(valid)))
    np.testing.assert_array_equal(got, np.median(a[valid], axis=0))
    rm = np.asarray(jax.jit(concern.robust_mean)(jnp.asarray(a), jnp.asarray(valid)))
    col = a[valid].astype(np.float64)
    med = np.median(a[valid], axis=0)
    dev = np.abs(a[valid] - med)  # float32, as the library computes it
    mad = np.median(dev, axis=0)
    inl = np.where(mad > 0, dev < 2 * mad, True)
    np.testing.assert_allclose(rm, (col * inl).sum(0) / inl.sum(0), rtol=1e-6, atol=0)


def test_relu_rule_decides_exact_rational_ties_exactly():
    """Unit 0 is active on 1 of 3 positives and 5 of 6 negatives: d = 1/3 - 5/6 = -1/2
    exactly, so d <= -0.5 removes it. In float32 the difference of the two rates is
    -0.49999997 and the unit would be kept."""
    pos = jnp.asarray([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    neg = jnp.asarray([[1.0, 0.0]] * 5 + [[0.0, 0.0]])
    float_d = np.float32(1) / np.float32(3) - np.float32(5) / np.float32(6)
    assert float_d > np.float32(-0.5)  # the float comparison would keep unit 0
    num, den = concern.relu_score_parts(pos, _all(3), neg, _all(6))
    np.testing.assert_array_equal(np.asarray(num), [1 * 6 - 5 * 3, 2 * 6 - 0])
    assert int(den) == 18
    keep = np.asarray(concern.select_relu(num, 5, -0.5, den=den))
    np.testing.assert_array_equal(keep, [False, True])
    # a threshold written as a decimal is read as that decimal: -0.3 = -3/10
    assert concern.threshold_fraction(-0.3) == (-3, 10)
    assert concern.threshold_fraction(-0.5) == (-1, 2)


@pytest.mark.parametrize("H", [1, 7, 100, 600])
def test_stable_rank_is_the_position_in_numpys_stable_sort(H):
    """``stable_rank`` against NumPy's stable argsort: ties (index order), NaN (last), -0.0
    (equal to 0.0) and integer scores; ``H = 600`` takes the sorting branch."""
    from modjax.concern import stable_rank

    rng = np.random.default_rng(H)
    d = rng.integers(-4, 4, H).astype(np.float32) / 2  # many ties
    d[rng.random(H) < 0.1] = np.nan
    d[rng.random(H) < 0.1] = -0.0
    for a in (d, rng.integers(-3, 3, H).astype(np.int32)):
        want = np.empty(H, np.int64)
        want[np.argsort(a, kind="stable")] = np.arange(H)
        got = np.asarray(jax.jit(stable_rank)(jnp.asarray(a)))
        np.testing.assert_array_equal(got, want)


def test_median_and_robust_mean_of_no_rows_are_nan():
    a = jnp.zeros((0, 5), jnp.float32)
    v = jnp.zeros((0,), bool)
    assert np.isnan(np.asarray(concern.masked_median(a, v))).all()
    assert np.asarray(concern.masked_median(a, v)).shape == (5,)
    assert np.isnan(np.asarray(concern.robust_mean(a, v))).all()
