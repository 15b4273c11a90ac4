"""experiments.translation: end to end on the synthetic task (--smoke), resume, flags, summary."""
import json

import pytest

from tests.binaries import run_binary


def _run(args, timeout=600):
    return run_binary("experiments.translation", args, timeout)


def test_smoke_end_to_end_and_resume(tmp_path):
    out, report = tmp_path / "run", tmp_path / "results" / "table2_translation.md"
    args = ["--smoke", f"--out={out}", f"--report={report}", "--nocompilation_cache"]
    p = _run(args)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "results" / "table2_translation.json").read_text())
    rows = doc["rows"]
    assert sorted((r["mode"], r["language"]) for r in rows) == sorted(
        (m, l) for m in ("rolled", "unrolled") for l in ("rev", "swap", "rot"))
    for r in rows:
        assert r["delta"] == pytest.approx(r["module_bleu1"] - r["mono_bleu1"])
        assert r["delta_all"] == pytest.approx(r["module_bleu1_all"] - r["mono_bleu1_all"])
        assert 0 < r["mono_bleu1"] <= 100 and 0 < r["ji"] <= 1
        assert r["n_test"] > 0 and r["n_first"] == min(500, r["n_test"])
        assert 0 <= r["n_unseen"] <= r["n_test"]
        assert 0 <= r["mono_bleu1_words_all"] <= 100 and 0 <= r["module_unk_all"] <= 1
    md = report.read_text()
    assert "BLEU-1 words mono / module (all)" in md and "How good the monolithic" in md
    assert "Coverage: 1 of 12 models" in md and "| rolled | LSTM-1 | rev |" in md
    assert "python -m experiments.translation --smoke" in md
    # a second run computes nothing: every row is fresh, the model is not retrained
    p2 = _run(args)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "training " not in p2.stderr and "== LSTM-1" not in p2.stderr
    rows2 = json.loads((tmp_path / "results" / "table2_translation.json").read_text())["rows"]
    assert [r["module_bleu1"] for r in rows2] == [r["module_bleu1"] for r in rows]


def test_bad_flags_exit_2_with_one_line(tmp_path):
    for args, msg in ((["--epochs=0"], "--epochs must be >= 1"),
                      (["--modes=sideways"], "--modes entries"),
                      (["--cells=transformer"], "--cells entries")):
        p = _run(args + [f"--out={tmp_path}", "--nocompilation_cache"], timeout=120)
        assert p.returncode == 2, p.stderr[-2000:]
        assert msg in p.stderr and "Traceback" not in p.stderr


def test_summary_by_hand():
    from experiments import translation as tx

    def row(mode, cell, k, lang, d, paper):
        return {"mode": mode, "cell": cell, "layers": k, "language": lang, "delta": d,
                "delta_all": 2 * d, "delta_sacrebleu_all": -d, "paper_delta": paper, "ji": 0.5}

    rows = [row("rolled", "lstm", 1, "fr", 1.0, 0.02), row("rolled", "lstm", 1, "de", -3.0, 0.05),
            row("rolled", "lstm", 1, "it", 0.5, 0.00), row("unrolled", "gru", 2, "fr", 0.0, None)]
    s = tx.summary(rows)
    assert s["rolled"]["delta"] == (pytest.approx(-0.5), pytest.approx(0.5), 3)
    assert s["rolled"]["delta_all"][0] == pytest.approx(-1.0)
    assert s["rolled"]["paper_delta_same_models"][0] == pytest.approx(0.07 / 3)
    assert s["unrolled"]["delta"] == (0.0, 0.0, 1)
    assert s["unrolled"]["paper_delta_same_models"] == (None, None, 0)


def test_subset_keeps_decoder_inputs_and_languages_aligned():
    import numpy as np

    from experiments import runner
    from modjax.data.synthetic import load_synthetic

    d = load_synthetic("encoder_decoder", n_train=50, n_test=20, seed=0)
    s = runner.subset(d, 10, 5, seed=3)
    idx = [int(np.nonzero((d.x_train == row).all(1) & (d.y_train == y).all(1))[0][0])
           for row, y in zip(s.x_train, s.y_train)]
    assert len(idx) == 10 and idx == sorted(idx)
    np.testing.assert_array_equal(s.decoder_input_train, d.decoder_input_train[idx])
    np.testing.assert_array_equal(s.concern_train, d.concern_train[idx])
    np.testing.assert_array_equal(s.concern_test, d.concern_test[:5])
    np.testing.assert_array_equal(s.decoder_input_test, d.decoder_input_test[:5])


def test_exit_on_value_error(capsys):
    from experiments import runner

    assert runner.exit_on_value_error(lambda a: a + 1, 1) == 2

    def bad():
        raise ValueError("--x must be 1, got 2")

    with pytest.raises(SystemExit) as e:
        runner.exit_on_value_error(bad)
    assert e.value.code == 2 and capsys.readouterr().err == "error: --x must be 1, got 2\n"


def test_unseen_sources_by_hand():
    import types

    import numpy as np

    from experiments import translation as tx

    data = types.SimpleNamespace(x_train=np.array([[1, 2, 0], [3, 4, 5]]),
                                 x_test=np.array([[1, 2, 0], [1, 2, 5], [3, 4, 5], [9, 9, 9]]))
    # language 0: test rows 0 (seen) and 3 (unseen); language 1: rows 2 (seen), 1 (unseen)
    assert tx.unseen_sources(data, [np.array([0, 3]), np.array([2, 1])]) == [[1], [1]]


def test_unknown_share_counts_words_not_tags():
    from experiments import translation as tx

    decoded = [["[UNK]", "a", "[endfr]"], ["[UNK]", "[UNK]", "b", "c"], []]
    assert tx.unknown_share(decoded) == pytest.approx(3 / 6)
    assert tx.unknown_share([[], ["[endfr]"]]) == 0.0
