"""BLEU-1 (the paper's) and sacreBLEU against values computed by hand on toy sentences."""
import math

import numpy as np
import pytest

from modjax import bleu


def test_paper_bleu1_one_pair_by_hand():
    # matches: [startfr], chat, est, [endfr] ("le" != "Le"): 4 of 5; c=5 < r=6
    h = "[startfr] le chat est [endfr]"
    r = "[startfr] Le chat est là. [endfr]"
    assert bleu.paper_bleu1([h], [r]) == pytest.approx(100 * 0.8 * math.exp(1 - 6 / 5), abs=1e-12)


def test_paper_bleu1_corpus_pools_counts_and_clips():
    hyps = ["[startfr] le chat est [endfr]", ["[startde]", "ich", "ich", "ich", "[endde]"]]
    refs = ["[startfr] Le chat est là. [endfr]", "[startde] ich bin hier [endde]"]
    # 4 + 3 clipped matches ("ich" counts once) over 5 + 5 words; c = 10, r = 11
    want = 100 * 0.7 * math.exp(1 - 11 / 10)
    assert bleu.paper_bleu1(hyps, refs) == pytest.approx(want, abs=1e-12)
    # an empty hypothesis still adds 1 to the precision's denominator and its reference to r
    want = 100 * (7 / 11) * math.exp(1 - 13 / 10)
    assert bleu.paper_bleu1(hyps + [""], refs + ["a b"]) == pytest.approx(want, abs=1e-12)


def test_paper_bleu1_no_penalty_when_longer_and_zero_without_matches():
    assert bleu.paper_bleu1(["a b c x"], ["a b c"]) == pytest.approx(75.0, abs=1e-12)
    assert bleu.paper_bleu1(["x y"], ["a b"]) == 0.0
    assert bleu.paper_bleu1([""], ["a b"]) == 0.0


def test_sacre_bleu_by_hand():
    # precisions 4/5, 3/4, 2/3, 1/2; equal lengths, BP = 1
    want = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu.sacre_bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(want, abs=1e-9)
    assert bleu.sacre_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == \
        pytest.approx(100.0)


def test_bleu_scores_tags_in_bleu1_only():
    s = bleu.bleu_scores([["a", "b", "c", "d", "e", "[endx]"]], ["[startx] a b c d f [endx]"],
                         ["[startx]"])
    assert s["bleu1"] == pytest.approx(100 * 6 / 7, abs=1e-12)  # 7 words each, 6 match
    assert s["sacrebleu"] == pytest.approx(100 * 0.2 ** 0.25, abs=1e-9)


def test_bleu_scores_standardizes_sacrebleu_references_only():
    from modjax.data.tokenizer import standardize_keep_brackets

    dec = [["a", "b", "c", "d", "e", "[endx]"]]
    ref = ["[startx] A b, c d F. [endx]"]
    s = bleu.bleu_scores(dec, ref, ["[startx]"], standardize=standardize_keep_brackets)
    # sacreBLEU sees "a b c d f": precisions 4/5, 3/4, 2/3, 1/2, equal lengths
    assert s["sacrebleu"] == pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25,
                                           abs=1e-9)
    # BLEU-1 stays the paper's, on the raw words: [startx], c, d, [endx] match; 7 words each
    assert s["bleu1"] == pytest.approx(100 * 4 / 7, abs=1e-12)
    # the words alone: 4 of 5 match "a b c d f", equal lengths
    assert s["bleu1_words"] == pytest.approx(80.0, abs=1e-12)
    raw = bleu.bleu_scores(dec, ref, ["[startx]"])
    assert raw["bleu1"] == s["bleu1"] and raw["sacrebleu"] < 20
    # raw words "A", "b,", "c", "d", "F.": only c and d match
    assert raw["bleu1_words"] == pytest.approx(40.0, abs=1e-12)
    with pytest.raises(TypeError, match="standardize"):
        bleu.bleu_scores(dec, ref, ["[startx]"], standardize="lower")


def test_decoded_words_stops_at_end_and_drops_padding():
    vocab = {"": 0, "[UNK]": 1, "[startx]": 2, "[endx]": 3, "a": 4, "b": 5}
    words = bleu.id_words(vocab, 6)
    ids = np.array([[4, 0, 5, 3, 4, 4], [5, 5, 5, 5, 5, 5]])
    out = bleu.decoded_words(ids, words, np.array([3, 3]))
    assert out == [["a", "b", "[endx]"], ["b"] * 6]
    assert bleu.strip_tags("[startx] a  b [endx]") == "a b"
    assert bleu.is_tag("[endfr]") and not bleu.is_tag("[x]") and not bleu.is_tag("a")


@pytest.mark.parametrize("fn", [bleu.paper_bleu1, bleu.sacre_bleu])
def test_bad_inputs_name_the_argument(fn):
    with pytest.raises(ValueError, match="same length"):
        fn(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        fn([], [])
    with pytest.raises(TypeError, match="sequences of sentences"):
        fn("a b", "a b")
    with pytest.raises(ValueError, match="end_ids"):
        bleu.decoded_words(np.zeros((2, 3), int), np.array(["", "a"], object), np.array([1]))
