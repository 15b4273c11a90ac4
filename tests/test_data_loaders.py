"""The five dataset loaders on the real data (skipped without ../shared/data unless $CI is set)."""
import collections
import os
import re

import numpy as np
import pytest

from modjax.data import (IO_OF, TaskData, default_data_dir, load_brown, load_clinc, load_clinc_brown_shared,
                         load_dataset, load_mathqa, load_mathqa_toxic_shared, load_tatoeba, load_tatoeba_motivating,
                         load_toxic)
from modjax.data.brown import read_brown
from modjax.data.clinc import clinc_texts
from modjax.data.text import clean_clinc, clinc_tokens, shuffle_split_indices
from modjax.data.tokenizer import standardization
from modjax.data.universal_tagset import UNIVERSAL_TAGS, map_brown_tag
from tests.ci import in_ci


@pytest.fixture(scope="module")
def data_dir():
    d = default_data_dir()
    if not os.path.isdir(d):
        if in_ci():
            pytest.fail(f"real data folder {d!r} is missing (CI is set, so this is an error)")
        pytest.skip(f"real data folder {d!r} not present")
    return d


def _check_task(d: TaskData, io):
    assert d.io == io
    for a in (d.x_train, d.x_test, d.y_train, d.y_test):
        assert a.dtype == np.int32
    assert d.x_train.shape[1] == d.in_len == d.x_test.shape[1]
    assert d.x_train.min() >= 0 and max(d.x_train.max(), d.x_test.max()) < d.vocab_size
    assert len(d.x_train) == len(d.y_train) and len(d.x_test) == len(d.y_test)


# ----------------------------------------------------------------------------------------- CLINC
@pytest.fixture(scope="module")
def clinc(data_dir):
    return load_clinc(path=data_dir)


def test_clinc_counts_vocab_and_tfds_order(clinc, data_dir):
    _check_task(clinc, "many_to_one")
    assert clinc.x_train.shape == (15000, 15) and clinc.x_test.shape == (4500, 15)
    assert clinc.num_classes == 10 and set(np.unique(clinc.y_train)) == set(range(10))
    assert np.bincount(clinc.y_train).tolist() == [1500] * 10
    assert len(clinc.vocab) == 5530 and clinc.vocab_size == 5531
    xtr, ytr, xte, _, _, _ = clinc_texts(path=data_dir)
    assert xtr[:3] == ["please inform me when my flight scheduled to board",
                       "what time is it in the alaska standard timezone",
                       "give tim my current location from the gps"]
    assert ytr[:3].tolist() == clinc.y_train[:3].tolist()
    # Punkt sentence splitting (skipped by our word_tokenize) could only act at ". " -- never present
    assert not any(re.search(r"\.\s", clean_clinc(t)) for t in xtr + xte)
    # the first example encodes its own tokens, pre-padded
    toks = clinc_tokens(xtr[0])
    assert clinc.x_train[0, -len(toks):].tolist() == [clinc.vocab[w] for w in toks]
    assert (clinc.x_train[0, :15 - len(toks)] == 0).all()


def test_clinc_150_intents_and_json_layout(data_dir):
    d150 = load_clinc(path=data_dir, num_classes=150)
    assert d150.num_classes == 150 and np.bincount(d150.y_train).tolist() == [100] * 150
    dj = load_clinc(path=data_dir, layout="json")
    assert dj.x_train.shape == (15000, 15) and dj.x_test.shape == (4500, 15)
    assert np.bincount(dj.y_test).tolist() == [450] * 10


# ----------------------------------------------------------------------------------------- Brown
@pytest.fixture(scope="module")
def brown_raw(data_dir):
    return read_brown(data_dir, raw_tags=True)


def test_brown_tags_all_mapped_and_nltk_counts(brown_raw):
    words, tags = brown_raw
    assert len(words) == 57340 and sum(map(len, words)) == 1161192
    c = collections.Counter(t for s in tags for t in s)
    assert len(c) == 472
    uni = collections.Counter()
    for t, n in c.items():
        u = map_brown_tag(t)
        assert u in UNIVERSAL_TAGS
        uni[u] += n
    assert dict(uni) == {"NOUN": 275558, "VERB": 182750, ".": 147565, "ADP": 144766, "DET": 137019,
                         "ADJ": 83721, "ADV": 56239, "PRON": 49334, "CONJ": 38151, "PRT": 29829,
                         "NUM": 14874, "X": 1386}


@pytest.mark.parametrize("tag,expected", [
    ("nn-tl", "NOUN"), ("np-tl-hl", "NOUN"), ("vbd-hl", "VERB"), ("in-nc", "ADP"), ("at-tl", "DET"),
    ("np$", "NOUN"), ("pp$", "DET"), ("pp$$", "PRON"), ("ap$", "PRT"), ("jj$-tl", "PRT"), ("wp$", "DET"),
    ("ppss+md", "PRT"), ("pps+bez", "PRT"), ("md+ppss", "VERB"), ("vb+ppo", "VERB"), ("in+ppo", "ADP"),
    ("bedz*", "VERB"), ("*", "ADV"), ("--", "."), ("fw-nn-tl", "X"), ("nil", "X"), ("NR-TL", "NOUN"),
])
def test_brown_compound_tags(tag, expected):
    assert map_brown_tag(tag) == expected


def test_brown_loader(data_dir, brown_raw):
    d = load_brown(path=data_dir)
    _check_task(d, "many_to_many")
    assert d.x_train.shape == (43005, 15) and d.x_test.shape == (14335, 15)
    assert d.class_names == ("pad", "NOUN", "VERB", ".", "ADP", "DET", "ADJ", "ADV", "PRON", "CONJ", "PRT",
                             "NUM", "X")
    assert len(d.vocab) + 1 == d.vocab_size
    assert ((d.x_train == 0) == (d.y_train == 0)).all()  # words and tags padded alike
    tr, te = shuffle_split_indices(57340, 0.25, 4)
    words = brown_raw[0][te[0]][:15]
    assert d.x_test[0, -len(words):].tolist() == [d.vocab[w.lower()] for w in words]


def test_shuffle_split_matches_sklearn_semantics():
    tr, te = shuffle_split_indices(10, 0.25, 4)
    perm = np.random.RandomState(4).permutation(10)
    assert te.tolist() == perm[:3].tolist() and tr.tolist() == perm[3:].tolist()


# --------------------------------------------------------------------------------- MathQA / toxic
def test_mathqa(data_dir):
    d = load_mathqa(path=data_dir)
    _check_task(d, "one_to_one")
    assert d.x_train.shape == (4475, 20) and d.x_test.shape == (2985, 20)
    assert np.bincount(d.y_train).tolist() == [743, 2006, 308, 288, 1056, 74]
    assert np.bincount(d.y_test).tolist() == [558, 1301, 200, 172, 702, 52]
    assert d.vocab_size == 5000 and d.vocab["<OOV>"] == 1 and d.x_train.max() == 4999


def test_toxic(data_dir):
    d = load_toxic(path=data_dir)
    _check_task(d, "one_to_many")
    assert len(d.x_train) + len(d.x_test) == 40184 and len(d.x_test) == 8037
    assert d.y_train.shape[1] == 6 and d.num_classes == 8
    y = np.concatenate([d.y_train, d.y_test])
    assert (y[:, -1] > 0).all()  # last step always holds a label
    assert int((y == 1).any(1).sum()) == 30593  # clean comments -> [0,0,0,0,0,1]
    assert np.bincount(y.ravel(), minlength=8)[2:].tolist() == [9044, 938, 4984, 275, 4624, 820]
    rows = y[(y > 0).sum(1) > 1]
    assert (np.diff(np.where(rows > 0, rows, -1), axis=1)[:, -1] > 0).all()  # sorted ascending


# --------------------------------------------------------------------------------------- Tatoeba
def test_tatoeba(data_dir):
    for lang in ("en", "fr", "de", "it"):
        with open(os.path.join(data_dir, "tatoeba", f"{lang}_train.txt"), encoding="utf-8") as f:
            assert sum(1 for _ in f) == 50744
    d = load_tatoeba(path=data_dir)
    _check_task(d, "encoder_decoder")
    dv = load_tatoeba(path=data_dir, eval_split="val")
    assert len(d.x_train) + len(d.x_test) + len(dv.x_test) == 152232
    assert d.x_train.shape == (106563, 20) and d.decoder_input_train.shape == (106563, 20)
    assert d.y_train.shape == (106563, 20)
    np.testing.assert_array_equal(d.decoder_input_train[:, 1:], d.y_train[:, :-1])
    assert d.class_names == ("fr", "de", "it") and np.bincount(d.concern_train).min() > 35000
    tv = d.target_vocab
    starts = np.array([tv["[start" + l + "]"] for l in d.class_names])
    np.testing.assert_array_equal(d.decoder_input_train[:, 0], starts[d.concern_train])
    assert d.vocab_size <= 30000 and d.target_vocab_size == 30000
    # the data says how its targets were standardised: every target-vocabulary word is in that
    # form, and a raw reference put through it gives the words the model was trained on
    assert d.target_standardize == "keep_brackets"
    std = standardization(d.target_standardize)
    assert all(std(w) == w for w in list(tv)[2:200])
    assert std("[startfr] Où est-il ? [endfr]").split() == ["[startfr]", "où", "estil", "[endfr]"]


def test_tatoeba_motivating(data_dir):
    d = load_tatoeba_motivating(2, path=data_dir)
    assert d.class_names == ("en", "de", "it") and len(d.x_train) + len(d.x_test) < 3 * 1153
    d2 = load_tatoeba_motivating(2, path=data_dir, s2=True)
    assert d2.class_names == ("en",)
    with pytest.raises(ValueError, match="problem"):
        load_tatoeba_motivating(3, path=data_dir)


# ---------------------------------------------------------------------------------- shared vocab
def test_shared_vocab_mathqa_toxic(data_dir):
    m, t = load_mathqa_toxic_shared(path=data_dir)
    assert m.vocab == t.vocab and m.vocab_size == t.vocab_size == 7000
    assert m.x_train.shape == (4475, 20) and t.y_train.shape[1] == 6


def test_shared_vocab_clinc_brown(data_dir):
    c, b = load_clinc_brown_shared(path=data_dir)
    assert c.vocab == b.vocab and c.vocab_size == b.vocab_size == len(c.vocab) + 1
    assert c.vocab_size > 49816 - 1  # Brown vocabulary plus CLINC-only words


# ------------------------------------------------------------------------------ dispatch, errors
def test_load_dataset_dispatch_and_errors(data_dir):
    assert load_dataset("mathqa", path=data_dir).name == "mathqa"
    assert IO_OF["tatoeba"] == "encoder_decoder"
    with pytest.raises(ValueError, match="name"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="source"):
        load_mathqa(source="web")
    with pytest.raises(ValueError, match="path"):
        load_mathqa(path=os.path.join(data_dir, "no_such_folder"))
    with pytest.raises(ValueError, match="num_classes"):
        load_clinc(path=data_dir, num_classes=7)
