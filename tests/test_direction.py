"""modjax.direction: the merged and own-order views of a direction axis, against NumPy."""
import numpy as np
import pytest

from modjax import direction


def test_merge_concat_and_sum():
    h = np.random.default_rng(0).normal(size=(2, 3, 2, 4))  # [N, T, 2, H]
    np.testing.assert_array_equal(np.asarray(direction.merge(h, "concat", True)),
                                  np.concatenate([h[..., 0, :], h[..., 1, :]], -1))
    np.testing.assert_allclose(np.asarray(direction.merge(h, "sum", True)),
                               h[..., 0, :] + h[..., 1, :])
    assert direction.merge(h, "sum", False) is h  # unidirectional: no direction axis
    with pytest.raises(ValueError, match="merge must be one of"):
        direction.merge(h, "mul", True)


def test_merged_keep_follows_the_merged_rows():
    keep = np.array([[[True, False, False], [False, False, True]]])  # [1, 2, H]
    np.testing.assert_array_equal(np.asarray(direction.merged_keep(keep, "concat", True)),
                                  [[True, False, False, False, False, True]])
    # sum: row i carries both directions' unit i; dropped only where both are removed
    np.testing.assert_array_equal(np.asarray(direction.merged_keep(keep, "sum", True)),
                                  [[True, False, True]])
    assert direction.merged_keep(None, "sum", True) is None


def test_own_order_flips_the_backward_direction_only():
    a = np.arange(2 * 4 * 2 * 3).reshape(2, 4, 2, 3)  # [N, T, 2, H]
    got = np.asarray(direction.own_order(a, 1, True))
    np.testing.assert_array_equal(got[:, :, 0], a[:, :, 0])
    np.testing.assert_array_equal(got[:, :, 1], a[:, ::-1, 1])
    # the last step in own order: position T-1 forward, position 0 backward
    np.testing.assert_array_equal(got[:, -1, 1], a[:, 0, 1])
    k = np.arange(4 * 2 * 3).reshape(4, 2, 3)  # [T, 2, H], time axis 0
    np.testing.assert_array_equal(np.asarray(direction.own_order(k, 0, True))[0, 1], k[-1, 1])
    assert direction.own_order(a, 1, False) is a
