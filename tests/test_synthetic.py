"""Tests for modjax.data.synthetic: determinism, shapes, padding conventions, label ranges."""
import time

import numpy as np
import pytest

from modjax.data.base import IO_TYPES, TaskData
from modjax.data.synthetic import load_synthetic, rule_predictions

SMALL = dict(n_train=600, n_test=200)
ARRAYS = ("x_train", "y_train", "x_test", "y_test", "decoder_input_train",
          "decoder_input_test", "concern_train", "concern_test")


def _arrays(d):
    return {k: getattr(d, k) for k in ARRAYS if getattr(d, k) is not None}


@pytest.mark.parametrize("io", IO_TYPES)
def test_same_seed_same_arrays_different_seed_different(io):
    a, b = load_synthetic(io, seed=3, **SMALL), load_synthetic(io, seed=3, **SMALL)
    c = load_synthetic(io, seed=4, **SMALL)
    for k, v in _arrays(a).items():
        np.testing.assert_array_equal(v, getattr(b, k), err_msg=k)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.vocab == c.vocab and a.class_names == c.class_names   # the task itself is fixed


@pytest.mark.parametrize("io", IO_TYPES)
def test_shapes_dtypes_and_vocab(io):
    d = load_synthetic(io, **SMALL)
    assert isinstance(d, TaskData) and d.io == io
    for k, v in _arrays(d).items():
        assert v.dtype == np.int32, k
    assert d.x_train.shape == (600, d.in_len) and d.x_test.shape == (200, d.in_len)
    want_y = (600,) if io in ("one_to_one", "many_to_one") else (600, d.out_len)
    assert d.y_train.shape == want_y
    assert d.x_train.min() >= 0 and d.x_train.max() < d.vocab_size
    assert sorted(d.vocab.values()) == list(range(1, len(d.vocab) + 1))   # 0 = padding only
    assert d.vocab_size == len(d.vocab) + 1


@pytest.mark.parametrize("io", ["one_to_one", "many_to_one", "one_to_many", "many_to_many"])
def test_inputs_are_pre_padded(io):
    d = load_synthetic(io, **SMALL)
    real = d.x_train != 0
    # Once a real token appears, no padding follows; the last step is always real.
    assert np.all(np.diff(real.astype(int), axis=1) >= 0)
    assert real[:, -1].all()
    assert (~real[:, 0]).any()   # variable lengths: some rows are padded


@pytest.mark.parametrize("io", ["one_to_one", "many_to_one"])
def test_one_output_labels(io):
    d = load_synthetic(io, n_train=3000, n_test=200)
    assert d.num_classes == 6 and d.y_train.min() >= 0 and d.y_train.max() < 6
    assert np.bincount(d.y_train, minlength=6).min() > 3000 / 6 * 0.8   # balanced


def test_one_to_many_labels_are_sorted_prepadded_or_clean():
    d = load_synthetic("one_to_many", **SMALL)
    y = d.y_train
    assert d.out_len == 6 and len(d.class_names) == 8 and y.max() <= 7
    clean = (y[:, -1] == 1)
    np.testing.assert_array_equal(y[clean, :-1], 0)
    assert (y[~clean, -1] >= 2).all() and not (y == 1)[:, :-1].any()
    nz = np.where(y == 0, -1, y)
    for row in nz[~clean]:
        vals = row[row >= 0]
        assert (row[:6 - len(vals)] == -1).all()            # zeros first
        assert (np.diff(vals) > 0).all()                   # strictly increasing ids
    assert 0.05 < clean.mean() < 0.6


def test_many_to_many_tags_zero_exactly_at_padding():
    d = load_synthetic("many_to_many", **SMALL)
    assert d.out_len == d.in_len == 15 and len(d.class_names) == 8
    np.testing.assert_array_equal(d.y_train == 0, d.x_train == 0)
    assert d.y_train.max() == 7


def test_encoder_decoder_conventions():
    d = load_synthetic("encoder_decoder", **SMALL)
    assert d.class_names == ("rev", "swap", "rot") and d.num_classes == 3
    # Source and targets are post-padded.
    real = d.x_train != 0
    assert np.all(np.diff(real.astype(int), axis=1) <= 0) and real[:, :3].all()
    np.testing.assert_array_equal(d.decoder_input_train[:, 1:], d.y_train[:, :-1])
    inv = {i: w for w, i in d.target_vocab.items()}
    assert d.target_vocab_size == len(d.target_vocab) + 1
    for src, dec, y, c in zip(d.x_train[:50], d.decoder_input_train[:50], d.y_train[:50],
                              d.concern_train[:50]):
        lang = d.class_names[c]
        assert inv[dec[0]] == f"[start{lang}]"
        k = int((src != 0).sum())
        assert inv[y[k]] == f"[end{lang}]" and (y[k + 1:] == 0).all() and (y[:k] != 0).all()
    assert set(np.unique(d.concern_train)) == {0, 1, 2}


def test_encoder_decoder_reorderings():
    d = load_synthetic("encoder_decoder", n_train=300, n_test=50, p_second_synonym=0.0)
    rule = rule_predictions(d, "train")
    np.testing.assert_array_equal(rule, d.y_train)   # without synonyms the rule is exact
    # Same source word -> same target word across positions: check the orders directly.
    lex = {}
    for src, y, c in zip(d.x_train, d.y_train, d.concern_train):
        k = int((src != 0).sum())
        s = list(src[:k])
        order = {0: s[::-1], 1: [s[i ^ 1] if (i ^ 1) < k else s[i] for i in range(k)],
                 2: s[1:] + s[:1]}[int(c)]
        for a, b in zip(order, y[:k]):
            assert lex.setdefault((int(c), int(a)), int(b)) == int(b)


@pytest.mark.parametrize("io", ["one_to_one", "many_to_one", "one_to_many"])
def test_rule_ceiling_matches_noise(io):
    d = load_synthetic(io, n_train=200, n_test=3000)
    acc = (rule_predictions(d) == d.y_test).mean()
    # 3% (intents) / 2% (toxic, one flip per example) noise: the rule is right on the rest.
    assert 0.95 < acc < 1.0


def test_pos_rule_is_below_100_percent():
    d = load_synthetic("many_to_many", n_train=200, n_test=3000)
    m = d.y_test != 0
    acc = (rule_predictions(d) == d.y_test)[m].mean()
    assert 0.85 < acc < 0.95


def test_bad_arguments():
    with pytest.raises(ValueError, match="io must be one of"):
        load_synthetic("seq2seq")
    with pytest.raises(ValueError, match="n_train"):
        load_synthetic("many_to_one", n_train=0)
    with pytest.raises(ValueError, match="noise"):
        load_synthetic("many_to_one", noise=1.5)
    with pytest.raises(TypeError):
        load_synthetic("many_to_one", no_such_option=1)


@pytest.mark.parametrize("io", IO_TYPES)
def test_generation_is_fast(io):
    t = time.perf_counter()
    load_synthetic(io, n_train=9000, n_test=1000)
    assert time.perf_counter() - t < 2.0
