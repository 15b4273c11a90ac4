"""``source="hf"`` paths with a monkeypatched ``datasets.load_dataset`` (never the network)."""
import os

import datasets
import numpy as np
import pytest

from modjax.data import load_brown, load_clinc, load_mathqa, load_tatoeba, load_toxic


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def fake(repo, *args, **kwargs):
        calls.append((repo, args, kwargs))
        return TABLES[repo](*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls


def _mathqa(*a, **k):
    cats = ["gain", "general", "geometry", "other", "physics", "probability"]
    mk = lambda n: datasets.Dataset.from_dict({"Problem": [f"what is {i} plus {i}" for i in range(n)],
                                               "category": [cats[i % 6] for i in range(n)]})
    return datasets.DatasetDict(train=mk(12), test=mk(6))


def _toxic(*a, **k):
    d = {"comment_text": ["you are nice", "you are bad", "bad bad words", "hello there"],
         "toxic": [0, 1, 1, 0], "severe_toxic": [0, 0, 1, 0], "obscene": [0, 0, 0, 0], "threat": [0, 0, 0, 0],
         "insult": [0, 1, 0, 0], "identity_hate": [0, 0, 0, 0]}
    te = dict(d, toxic=[0, 1, -1, 0])
    return datasets.DatasetDict(train=datasets.Dataset.from_dict(d), test=datasets.Dataset.from_dict(te))


def _clinc(*a, **k):
    feats = datasets.Features({"text": datasets.Value("string"),
                               "intent": datasets.ClassLabel(names=["transfer", "oos", "recipe"])})
    mk = lambda: datasets.Dataset.from_dict({"text": ["Send $5 to Bob!", "what is love", "cook pasta, now."],
                                             "intent": [0, 1, 2]}, features=feats)
    return datasets.DatasetDict(train=mk(), test=mk())


def _brown(*a, **k):
    return datasets.Dataset.from_dict({"tokens": [["The", "dog", "ran", "."], ["A", "cat"]],
                                       "tags": [["at", "nn", "vbd", "."], ["DET", "NOUN"]]})


def _tatoeba(config, split=None):
    tgt = {"eng-fra": "Bonjour.", "deu-eng": "Hallo.", "eng-ita": "Ciao."}[config]
    rows = [{"sourceLang": "eng", "targetlang": "x", "sourceString": f"Hello {i}.", "targetString": tgt}
            for i in range(10)]
    if config == "deu-eng":
        rows = [{"sourceLang": "deu", "targetlang": "eng", "sourceString": tgt, "targetString": f"Hello {i}."}
                for i in range(10)]
    return rows


TABLES = {"allenai/math_qa": _mathqa, "thesofakillers/jigsaw-toxic-comment-classification-challenge": _toxic,
          "clinc/clinc_oos": _clinc, "nltk/brown": _brown, "Helsinki-NLP/tatoeba_mt": _tatoeba}


def test_hf_mathqa(fake_hub):
    d = load_mathqa(source="hf", max_len=5)
    assert d.x_train.shape == (12, 5) and d.y_test.tolist() == [0, 1, 2, 3, 4, 5]
    assert fake_hub[0][0] == "allenai/math_qa"


def test_hf_toxic_drops_unlabelled_test_rows(fake_hub):
    d = load_toxic(source="hf")
    assert d.x_test.shape == (3, 20)
    assert d.y_train[:, -2:].tolist() == [[0, 1], [2, 6], [2, 3], [0, 1]]


def test_hf_clinc_uses_domain_map(fake_hub):
    doms = {"banking": ["transfer"], "kitchen_and_dining": ["recipe"]}
    d = load_clinc(source="hf", domains=doms)
    assert d.y_train.tolist() == [0, 2]  # oos removed; TFDS domain ids
    assert set(d.vocab) == {"send", "to", "bob", "cook", "pasta", ",", "now", "."}


def test_hf_brown_maps_raw_and_universal_tags(fake_hub):
    d = load_brown(source="hf", test_size=0.5)
    assert d.class_names[0] == "pad" and set(d.class_names[1:]) == {"DET", "NOUN", "VERB", "."}
    assert len(d.x_train) + len(d.x_test) == 2


def test_hf_tatoeba_orients_pairs(fake_hub):
    d = load_tatoeba(source="hf")
    assert len(d.x_train) + len(d.x_test) == 30 - int(0.15 * 30)
    assert "hello" in d.vocab and "hallo" not in d.vocab
    assert np.all(d.decoder_input_train[:, 0] > 1)


def test_data_stats_describe(fake_hub):
    from experiments.data_stats import describe

    text = describe(load_mathqa(source="hf", max_len=5))
    assert "train 12  test 6" in text and "probability" in text and "input length" in text


@pytest.mark.parametrize("name,io", [("mathqa", "one_to_one"), ("clinc", "many_to_one"), ("toxic", "one_to_many"),
                                     ("brown", "many_to_many"), ("tatoeba", "encoder_decoder")])
def test_synthetic_source_delegates(name, io):
    from modjax.data import load_dataset

    d = load_dataset(name, source="synthetic", n_train=50, n_test=10)
    assert d.io == io and len(d.x_train) == 50


def _write_mathqa(folder):
    import json

    cats = ["gain", "general", "geometry", "other", "physics", "probability"]
    os.makedirs(folder / "mathqa", exist_ok=True)
    for name, n in (("dev.json", 18), ("test.json", 7)):
        recs = [{"Problem": f"a train of {i} meters runs at {i + 3} km , find NA", "Rationale": "",
                 "category": cats[(i * 5) % 6]} for i in range(n)]
        (folder / "mathqa" / name).write_text(json.dumps(recs))


def test_hub_path_reads_files_by_url_like_the_local_path(tmp_path):
    """``source="hf"`` with file URLs (what ``hf://datasets/<repo>/<file>`` is on the hub) goes
    through the same ``datasets`` code as ``source="local"`` and gives the same task."""
    _write_mathqa(tmp_path)
    local = load_mathqa(source="local", path=tmp_path)
    urls = {"train": (tmp_path / "mathqa" / "dev.json").as_uri(),
            "test": (tmp_path / "mathqa" / "test.json").as_uri()}
    assert urls["train"].startswith("file://")
    hub = load_mathqa(source="hf", hf_repo="json", hf_data_files=urls)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(hub, k), getattr(local, k))
    assert hub.vocab == local.vocab and local.x_train.shape == (18, 20)
    # the literal text "NA" stays a word (no NaN), as the json/csv modules would read it
    assert "na" in local.vocab

    rows = ["id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate"]
    rows += [f'{i},"line one {i}\nline NA two",{i % 2},0,{i % 3 == 0:d},0,0,0' for i in range(15)]
    os.makedirs(tmp_path / "toxicity")
    (tmp_path / "toxicity" / "jigsaw_train_sample.csv").write_text("\n".join(rows) + "\n")
    local = load_toxic(source="local", path=tmp_path)
    hub = load_toxic(source="hf", hf_repo="csv", hf_data_files={
        "train": (tmp_path / "toxicity" / "jigsaw_train_sample.csv").as_uri()})
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(hub, k), getattr(local, k))
    assert local.x_train.shape == (12, 20) and "na" in local.vocab
