"""Keras-compatible Tokenizer / pad_sequences / TextVectorization, on hand-worked cases.

Expected values are worked out by hand from Keras 2's documented algorithm (stable sort by count,
ties in first-seen order, ids from 1, OOV = 1, only ids < num_words emitted).
"""
import os

import numpy as np
import pytest

from modjax.data.text import clean_clinc, word_tokenize
from tests.ci import in_ci
from modjax.data.tokenizer import (TextVectorization, Tokenizer, pad_sequences, standardize_keep_brackets,
                                   text_to_word_sequence)


def test_text_to_word_sequence_filters_and_lower():
    assert text_to_word_sequence("Hello, World!  It's\tme--you\n") == ["hello", "world", "it's", "me", "you"]
    # '\r' is not a default filter, so it stays inside the token (as in Keras)
    assert text_to_word_sequence("a\rb c") == ["a\rb", "c"]
    assert text_to_word_sequence("A-B", filters="", lower=False) == ["A-B"]


def test_frequency_order_with_first_seen_ties():
    tok = Tokenizer().fit_on_texts(["b a c", "c a d", "e"])
    # counts: b1 a2 c2 d1 e1 -> a, c (tie: a seen first), then b, d, e (first-seen order)
    assert tok.word_index == {"a": 1, "c": 2, "b": 3, "d": 4, "e": 5}
    assert tok.texts_to_sequences(["e d c b a", "zzz a"]) == [[5, 4, 2, 3, 1], [1]]
    assert tok.vocab_size == 6
    assert tok.document_count == 3 and tok.word_docs["a"] == 2


def test_fit_twice_accumulates_in_first_seen_order():
    tok = Tokenizer()
    tok.fit_on_texts(["x y"])
    tok.fit_on_texts(["y z"])
    assert tok.word_index == {"y": 1, "x": 2, "z": 3}


def test_oov_and_num_words():
    tok = Tokenizer(num_words=3, oov_token="<OOV>").fit_on_texts(["the cat the dog the cat fish"])
    # the3 cat2 dog1 fish1 ; OOV=1 -> the2 cat3 dog4 fish5
    assert tok.word_index == {"<OOV>": 1, "the": 2, "cat": 3, "dog": 4, "fish": 5}
    # only ids < 3 kept: the(2); cat(3), dog, unknown -> OOV(1)
    assert tok.texts_to_sequences(["the cat dog bird"]) == [[2, 1, 1, 1]]
    assert tok.vocab_size == 3
    tok2 = Tokenizer(num_words=3).fit_on_texts(["the cat the dog the cat fish"])
    assert tok2.texts_to_sequences(["the cat dog bird the"]) == [[1, 2, 1]]  # ids >= 3 and unknowns dropped


def test_pretokenised_lists_are_lowercased_not_filtered():
    tok = Tokenizer().fit_on_texts([["The", "U.S.", "the", "--"], ["u.s."]])
    assert tok.word_index == {"the": 1, "u.s.": 2, "--": 3}
    assert tok.texts_to_sequences([["THE", "--", "U.S."]]) == [[1, 3, 2]]
    assert Tokenizer(lower=False).fit_on_texts([["A", "a"]]).word_index == {"A": 1, "a": 2}


def test_tokenizer_errors():
    with pytest.raises(TypeError, match="texts"):
        Tokenizer().fit_on_texts("a single string")
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer(num_words=-1)


def test_pad_sequences():
    seqs = [[1, 2, 3, 4], [5], []]
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=3, truncating="post"),
                                  [[1, 2, 3], [0, 0, 5], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=3), [[2, 3, 4], [0, 0, 5], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 2, 3, 4], [5, 0, 0, 0], [0, 0, 0, 0]])
    assert pad_sequences(seqs, maxlen=2).dtype == np.int32
    with pytest.raises(ValueError, match="padding"):
        pad_sequences(seqs, padding="middle")


def test_text_vectorization_order_and_padding():
    tv = TextVectorization(max_tokens=5, output_sequence_length=4).adapt(["b a", "a c", "d b!"])
    # counts a2 b2 c1 d1 -> ties by token descending: b, a, then d, c; max_tokens=5 keeps 3 words
    assert tv.get_vocabulary() == ["", "[UNK]", "b", "a", "d"]
    np.testing.assert_array_equal(tv(["A b c d e", "d"]), [[3, 2, 1, 4], [4, 0, 0, 0]])


def test_text_vectorization_ascii_lower_and_brackets():
    tv = TextVectorization()
    assert tv.tokens("Élan, ÉLAN? l'été\u00a0!") == ["Élan", "Élan", "lété\u00a0"]  # only A-Z lowered; ASCII split
    assert standardize_keep_brackets("[startfr] Où? ¿Sí! [endfr]") == "[startfr] où sí [endfr]"


def test_word_tokenize_treebank_cases():
    assert word_tokenize("i can't pay, it's late.") == ["i", "ca", "n't", "pay", ",", "it", "'s", "late", "."]
    assert word_tokenize("say 'hola' , in spanish") == ["say", "'hola", "'", ",", "in", "spanish"]
    assert word_tokenize("i cannot wanna go") == ["i", "can", "not", "wan", "na", "go"]
    assert word_tokenize('"Hi" (you)...') == ["``", "Hi", "''", "(", "you", ")", "..."]


def test_clean_clinc():
    assert clean_clinc("Call me at 555-1234 http://x.y/z NOW!! it's 3.5 stars, ok?") == "call me at now it's . stars, ok"


def _naive_word_tokenize(text):
    """Every rule of modjax.data.text applied unconditionally, in order (no skipping)."""
    from modjax.data import text as T

    for rx, rep in T._OPENING + T._PUNCT + [T._BRACKETS, T._DASHES]:
        text = rx.sub(rep, text)
    text = " " + text + " "
    for rx, rep in T._CLOSING:
        text = rx.sub(rep, text)
    for rx in T._SPLIT_WORDS:
        text = rx.sub(r" \1 \2 ", text)
    return text.split()


def test_skipping_rules_that_cannot_match_changes_no_token():
    """word_tokenize skips a rule when no character its pattern needs is in the text: the
    tokens equal applying every rule, on crafted cases and on every CLINC utterance."""
    cases = ['"Hi" (you)... «x» ‘y’ „z“ ``q`` a--b', "I CANNOT, d'ye GIMME gonna gotta",
             "lemme more'n WANNA go 'Tis 'twas", "ſ 'tiſ 'twaſ", "it's 1,000: x; @#$%&*?! ' y'",
             "can't won't they'll I'M we'RE", "end.", "end.'", "a .. b ... c", "[x] {y} <z>",
             "", " ", "''quoted''", "'hola' , ok", "ok :", "x,y 3,5"]
    for c in cases:
        assert word_tokenize(c) == _naive_word_tokenize(c), c
    from modjax.data.base import default_data_dir
    from modjax.data.clinc import clinc_texts

    if not os.path.isdir(os.path.join(default_data_dir(), "clinc")):
        if in_ci():
            pytest.fail("the shared CLINC data is missing (CI is set, so this is an error)")
        pytest.skip("the shared CLINC data is not present")
    xtr, _, xte, _ = clinc_texts()[:4]
    assert len(xtr) + len(xte) == 19500
    for t in list(xtr) + list(xte):
        c = clean_clinc(t)
        assert word_tokenize(c) == _naive_word_tokenize(c), c


def test_named_standardizations_and_their_errors():
    from modjax.data.tokenizer import STANDARDIZATIONS, standardization

    assert standardization("keep_brackets") is standardize_keep_brackets
    assert set(STANDARDIZATIONS) == {"lower_and_strip_punctuation", "lower", "strip_punctuation",
                                     "keep_brackets"}
    assert TextVectorization(standardize="keep_brackets").tokens("[endfr] A, b") == [
        "[endfr]", "a", "b"]
    assert TextVectorization(standardize=None).tokens("A, b") == ["A,", "b"]
    for bad in ("upper", 3, ["lower"]):
        with pytest.raises(ValueError, match="standardize must be one of"):
            TextVectorization(standardize=bad)


def test_task_data_checks_its_target_standardization():
    import numpy as np

    from modjax.data.base import TaskData

    z = np.zeros((2, 3), np.int32)
    kw = dict(name="t", io="encoder_decoder", x_train=z, y_train=z, x_test=z, y_test=z,
              class_names=("fr",), vocab_size=4, in_len=3, out_len=3)
    assert TaskData(**kw, target_standardize="keep_brackets").target_standardize == "keep_brackets"
    assert TaskData(**kw).target_standardize is None
    with pytest.raises(ValueError, match="target_standardize must be None or one of"):
        TaskData(**kw, target_standardize="brackets")
