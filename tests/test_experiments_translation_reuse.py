"""experiments.translation_reuse: end to end on the synthetic task (--smoke), resume, the pair
data and the summary."""
import json

import numpy as np
import pytest

from tests.binaries import run_binary


def _run(args, timeout=600):
    return run_binary("experiments.translation_reuse", args, timeout)


def test_smoke_end_to_end_and_resume(tmp_path):
    out, report = tmp_path / "run", tmp_path / "results" / "table3_translation_reuse.md"
    args = ["--smoke", f"--out={out}", f"--report={report}", "--nocompilation_cache"]
    p = _run(args)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "results" / "table3_translation_reuse.json").read_text())
    rows = doc["rows"]
    # three pairs of the three synthetic languages, two languages each
    assert sorted((r["pair"], r["language"]) for r in rows) == sorted(
        [("rev-swap", "rev"), ("rev-swap", "swap"), ("rev-rot", "rev"), ("rev-rot", "rot"),
         ("swap-rot", "swap"), ("swap-rot", "rot")])
    for r in rows:
        assert r["delta"] == pytest.approx(r["module_bleu1"] - r["scratch_bleu1"])
        assert 0 <= r["module_bleu1"] <= 100 and 0 <= r["scratch_bleu1"] <= 100
        assert r["n_train_scratch"] < r["n_train_model"]  # the third language is left out
        assert 0 < r["kept_fraction"] <= 1
    # a language's module is the same in every pair; its scratch models differ
    by_lang = {}
    for r in rows:
        by_lang.setdefault(r["language"], []).append(r)
    for rs in by_lang.values():
        assert len({r["module_bleu1"] for r in rs}) == 1
        assert len({r["scratch_dir"] for r in rs}) == 2
    (s,) = doc["summary"]
    deltas = [r["delta"] for r in rows]
    assert s["n"] == 6 and s["mean"] == pytest.approx(np.mean(deltas))
    assert s["median"] == pytest.approx(np.median(deltas))
    assert (s["paper_mean"], s["paper_median"]) == (5.20, 3.49)  # Table III, LSTM
    md = report.read_text()
    assert "| smoke | LSTM-1 | rolled | 6 |" in md
    assert "python -m experiments.translation_reuse --smoke" in md
    # a second run computes nothing and trains nothing
    p2 = _run(args)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "training " not in p2.stderr
    rows2 = json.loads((tmp_path / "results" / "table3_translation_reuse.json").read_text())
    assert [r["delta"] for r in rows2["rows"]] == [r["delta"] for r in rows]


def test_two_languages_keeps_the_pairs_training_rows_only():
    from experiments.translation_reuse import language_pairs, two_languages
    from modjax.data.synthetic import load_synthetic

    data = load_synthetic("encoder_decoder", n_train=90, n_test=9, seed=0)
    assert language_pairs(data.class_names) == [(0, 1), (0, 2), (1, 2)]
    sub = two_languages(data, (0, 2))
    keep = np.isin(data.concern_train, [0, 2])
    assert 0 < keep.sum() < len(keep)
    np.testing.assert_array_equal(sub.concern_train, data.concern_train[keep])
    np.testing.assert_array_equal(sub.x_train, data.x_train[keep])
    np.testing.assert_array_equal(sub.decoder_input_train, data.decoder_input_train[keep])
    np.testing.assert_array_equal(sub.y_train, data.y_train[keep])
    np.testing.assert_array_equal(sub.x_test, data.x_test)  # the test split is untouched
    assert sub.class_names == data.class_names


def test_summary_sets_failed_baselines_apart():
    from experiments import translation_reuse as tr

    def row(d, scratch, mono=30.0):
        return {"preset": "cpu", "cell": "lstm", "layers": 4, "mode": "rolled", "model": "LSTM-4",
                "delta": d, "scratch_bleu1": scratch, "mono_bleu1": mono,
                "delta_sacrebleu": 0.0, "kept_fraction": 0.95}

    rows = [row(1.0, 29.0), row(-3.0, 25.0), row(20.0, 5.0)]  # the last baseline did not learn
    assert [tr.failed_baseline(r) for r in rows] == [False, False, True]
    (s,) = tr.summary(rows)
    assert s["n"] == 3 and s["mean"] == pytest.approx(6.0) and s["median"] == pytest.approx(1.0)
    assert s["n_failed_baseline"] == 1
    assert s["mean_learned"] == pytest.approx(-1.0) and s["median_learned"] == pytest.approx(-1.0)
