"""experiments.motivating (Table V): the smoke preset end to end on the real motivating-example
corpora, the averages from the rows, resume, and flag errors."""
import json
import os
import statistics

import pytest

from tests.binaries import run_binary
from tests.ci import in_ci


def _run(args, timeout=600):
    return run_binary("experiments.motivating", args, timeout)


@pytest.fixture(scope="module")
def corpora():
    from modjax.data.base import default_data_dir

    d = os.path.join(default_data_dir(), "tatoeba", "motivating", "problem2")
    if not os.path.isdir(d):
        if in_ci():
            pytest.fail(f"the motivating-example corpora are missing: {d}")
        pytest.skip(f"the motivating-example corpora are not present: {d}")
    return d


def test_smoke_end_to_end_averages_and_resume(corpora, tmp_path):
    out, report = tmp_path / "run", tmp_path / "results" / "table5.md"
    args = ["--preset=smoke", "--scenarios=update_et_en", "--limit_test=30", "--first=20",
            f"--out={out}", f"--report={report}", "--nocompilation_cache"]
    p = _run(args)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(report.with_suffix(".json").read_text())
    rows = {(r["role"], r["language"]): r for r in doc["rows"]}
    assert sorted(rows) == sorted([("original", "en"), ("original", "de"), ("original", "it"),
                                   ("solution1", "en"), ("solution1", "it"),
                                   ("solution2", "en")])
    for r in rows.values():
        assert 0 <= r["mono_bleu1"] <= 100 and 0 <= r["module_bleu1"] <= 100
        assert r["n_test"] == 30 and r["n_first"] == 20
    # the one-language model's only module keeps every unit: the model itself
    solo = rows[("solution2", "en")]
    assert solo["units_kept_per_layer"] == [float(solo["units"])]
    assert solo["module_bleu1"] == pytest.approx(solo["mono_bleu1"])
    # the averages, recomputed from the rows by their definitions
    kept = ("de", "it")
    want = {"TMA": statistics.fmean([rows[("original", l)]["mono_bleu1"] for l in kept]
                                    + [rows[("solution1", "en")]["mono_bleu1"]]),
            "MA1": statistics.fmean([rows[("original", l)]["module_bleu1"] for l in kept]
                                    + [rows[("solution1", "en")]["module_bleu1"]]),
            "MA2": statistics.fmean([rows[("original", l)]["module_bleu1"] for l in kept]
                                    + [rows[("solution2", "en")]["module_bleu1"]])}
    got = doc["averages"]["update_et_en"]
    for k, v in want.items():
        assert got[k] == pytest.approx(v)
    md = report.read_text()
    assert "| Update Estonian-English Translation |" in md and "| 20.80 |" in md
    assert "| Add Ukrainian Language | – | 32.12 |" in md  # not run: the paper's side only
    assert "python -m experiments.motivating --preset=smoke" in md
    # a second run computes nothing
    p2 = _run(args)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "training " not in p2.stderr and "== update_et_en" not in p2.stderr
    doc2 = json.loads(report.with_suffix(".json").read_text())
    assert doc2["averages"] == doc["averages"]


def test_bad_flags_exit_2_with_one_line(tmp_path):
    for args, msg in ((["--epochs=0"], "--epochs must be >= 1"),
                      (["--scenarios=add_klingon"], "--scenarios entries"),
                      (["--first=0"], "--first must be >= 1")):
        p = _run(args + [f"--out={tmp_path}", "--nocompilation_cache"], timeout=120)
        assert p.returncode == 2, p.stderr[-2000:]
        assert msg in p.stderr and "Traceback" not in p.stderr
