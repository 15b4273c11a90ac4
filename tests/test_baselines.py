"""Tests for modjax.baselines: the order-blind baselines stay clearly below the task rules."""
import numpy as np
import pytest

from modjax.baselines import (bag_of_words_baseline, corpus_bleu,
                              dictionary_translation_baseline, last_token_baseline)
from modjax.data.base import TaskData
from modjax.data.synthetic import load_synthetic, rule_predictions

N = dict(n_train=1500, n_test=600)


def _rule_acc(d):
    r = rule_predictions(d)
    m = d.y_test != 0 if d.io == "many_to_many" else np.ones(d.y_test.shape, bool)
    return float((r == d.y_test)[m].mean())


@pytest.mark.parametrize("io,gap", [("one_to_one", 0.3), ("many_to_one", 0.3),
                                    ("one_to_many", 0.08), ("many_to_many", 0.3)])
def test_bag_of_words_far_below_rule(io, gap):
    d = load_synthetic(io, **N)
    bow = bag_of_words_baseline(d)
    assert 0.0 < bow < _rule_acc(d) - gap
    assert bow > 1.0 / d.num_classes - 0.05   # it does learn something


@pytest.mark.parametrize("io,gap", [("one_to_one", 0.5), ("many_to_one", 0.5),
                                    ("one_to_many", 0.15), ("many_to_many", 0.08)])
def test_last_token_far_below_rule(io, gap):
    d = load_synthetic(io, **N)
    assert last_token_baseline(d) < _rule_acc(d) - gap


def test_bag_of_words_deterministic():
    d = load_synthetic("many_to_one", **N)
    assert bag_of_words_baseline(d, seed=1) == bag_of_words_baseline(d, seed=1)


def test_bag_of_words_solves_an_order_free_task():
    # Label = whether word 1 occurs: bag-of-words must get it exactly.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(400, 8)).astype(np.int32)
    y = (x == 1).any(axis=1).astype(np.int32)
    d = TaskData(name="t", io="many_to_one", x_train=x[:300], y_train=y[:300], x_test=x[300:],
                 y_test=y[300:], class_names=("no", "yes"), vocab_size=6, in_len=8,
                 out_len=1)
    assert bag_of_words_baseline(d) == 1.0


def test_last_token_and_unigram_on_hand_made_data():
    x = np.array([[0, 2, 3], [0, 0, 3], [1, 2, 4], [0, 1, 4]], np.int32)
    y = np.array([1, 1, 0, 0], np.int32)
    d = TaskData(name="t", io="many_to_one", x_train=x, y_train=y, x_test=x, y_test=y,
                 class_names=("a", "b"), vocab_size=5, in_len=3, out_len=1)
    assert last_token_baseline(d) == 1.0
    # Tagging: word 2 is tag 1 twice and tag 2 once -> unigram gets 2 of 3; padding ignored.
    xt = np.array([[0, 2, 2], [0, 0, 2]], np.int32)
    yt = np.array([[0, 1, 1], [0, 0, 2]], np.int32)
    dt = TaskData(name="t", io="many_to_many", x_train=xt, y_train=yt, x_test=xt, y_test=yt,
                  class_names=("<pad>", "A", "B"), vocab_size=3, in_len=3, out_len=3)
    assert last_token_baseline(dt) == pytest.approx(2 / 3)


def test_dictionary_translation_below_rule():
    d = load_synthetic("encoder_decoder", **N)
    dict_bleu = dictionary_translation_baseline(d)
    rule_bleu = corpus_bleu(rule_predictions(d), d.y_test, d)
    assert 0 < dict_bleu < rule_bleu - 25
    assert rule_bleu < 100           # synonyms: no model is exact
    assert corpus_bleu(d.y_test, d.y_test, d) == pytest.approx(100.0)


def test_wrong_io_raises():
    with pytest.raises(ValueError, match="encoder_decoder"):
        dictionary_translation_baseline(load_synthetic("many_to_one", n_train=50, n_test=10))
    ed = load_synthetic("encoder_decoder", n_train=50, n_test=10)
    with pytest.raises(ValueError, match="data.io"):
        bag_of_words_baseline(ed)
    with pytest.raises(ValueError, match="data.io"):
        last_token_baseline(ed)
