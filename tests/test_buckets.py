"""Shape buckets, and that calls within one bucket do not compile again (chex trace counts)."""
import importlib

import chex
import jax
import numpy as np
import pytest

from modjax import buckets


def test_bucket_values_by_hand():
    assert [buckets.bucket(n) for n in (0, 1, 16, 17, 31, 32, 33, 100, 128, 129)] == \
        [16, 16, 16, 18, 32, 32, 36, 104, 128, 144]
    assert buckets.bucket(300) == 320 and buckets.bucket(4097) == 4608
    assert buckets.bucket(5, minimum=128) == 128
    with pytest.raises(ValueError, match="n must be"):
        buckets.bucket(-1)


@pytest.mark.parametrize("n", [1, 17, 100, 1000, 4096, 4097, 9999, 20000])
def test_bucket_padding_is_at_most_an_eighth(n):
    b = buckets.bucket(n)
    assert b >= n and (b <= 16 or b <= n * 1.125)


@pytest.mark.parametrize("n,bs", [(0, 8), (5, 8), (100, 32), (4100, 4096), (20000, 4096)])
def test_batch_plan_covers_every_row_once(n, bs):
    size, spans = buckets.batch_plan(n, bs)
    rows = np.concatenate([np.arange(s, e) for s, e in spans]) if spans else np.zeros(0)
    np.testing.assert_array_equal(rows, np.arange(n))
    assert all(e - s <= size for s, e in spans)
    if n:
        assert len(spans) == -(-n // bs)
        assert size == buckets.bucket(-(-n // len(spans)))
    with pytest.raises(ValueError, match="batch_size"):
        buckets.batch_plan(3, 0)


def test_pad_rows():
    a = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(buckets.pad_rows(a, 5), [[0, 1], [2, 3], [4, 5], [0, 0],
                                                           [0, 0]])
    assert buckets.pad_rows(None, 4) is None


# -- one compiled program per bucket -----------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    from modjax.data.synthetic import load_synthetic
    from modjax.models import config_for, init_params

    data = load_synthetic("many_to_one", n_train=700, n_test=320, seed=3)
    config = config_for(data, cell="gru", units=6, embed_dim=4)
    return config, init_params(config, 0), data


def _counted(monkeypatch, module, name, static):
    """Replace ``module.name`` (a jit-compiled function) by a jit of its Python function that
    chex counts: a second trace raises."""
    chex.clear_trace_counter()
    raw = getattr(module, name).__wrapped__
    monkeypatch.setattr(module, name, jax.jit(chex.assert_max_traces(raw, n=1),
                                              static_argnames=static))


def test_module_scores_traces_once_for_sizes_in_one_bucket(small, monkeypatch):
    compose = importlib.import_module("modjax.compose")  # the module, not modjax.compose()
    from modjax.decompose import decompose

    config, params, data = small
    d = decompose(params, data, model=config, n_pos=40)
    _counted(monkeypatch, compose, "_scores_jit",
             compose._STATIC)
    for n in (290, 300, 310, 320):  # all in the bucket of 320
        s = compose.module_scores(d, params, data.x_test[:n], kind="contrast")
        assert s.shape == (config.num_classes, n)
    with pytest.raises(AssertionError):  # another bucket would trace again: the counter works
        compose.module_scores(d, params, data.x_test[:100], kind="contrast")


def test_predict_traces_once_for_sizes_in_one_bucket(small, monkeypatch):
    train = importlib.import_module("modjax.train")

    config, params, data = small
    _counted(monkeypatch, train, "_predict_batch", ("config",))
    for n in (290, 300, 310):
        assert train.predict(config, params, data.x_test[:n]).shape == (n,)
    with pytest.raises(AssertionError):
        train.predict(config, params, data.x_test[:50])


def test_decompose_traces_once_for_data_sizes_in_one_bucket(small, monkeypatch):
    dec = importlib.import_module("modjax.decompose")

    config, params, data = small
    static = ("config", "options", "num_classes", "n_pos", "n_neg", "neg_per_class")
    _counted(monkeypatch, dec, "_decompose_core", static)
    # n_pos=500 (more than any class has): the union is every example, 580..620 -> bucket 640
    for n in (580, 600, 620):
        sub = (data.x_train[:n], data.y_train[:n])
        d = dec.decompose(params, sub, model=config, n_pos=500)
        assert d.keep.shape[0] == config.num_classes
    with pytest.raises(AssertionError):  # 300 examples: the bucket of 320, a new trace
        dec.decompose(params, (data.x_train[:300], data.y_train[:300]), model=config,
                      n_pos=500)
