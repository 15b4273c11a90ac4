"""experiments.layer_ablation: end to end on a small synthetic tagger, and its flags."""
import json

import numpy as np
import pytest

from tests.binaries import run_binary


def test_small_tagger_end_to_end(tmp_path):
    report = tmp_path / "results" / "ablation.md"
    p = run_binary("experiments.layer_ablation", [
        "--dataset=synthetic:many_to_many", "--cell=lstm", "--layers=2", "--mode=unrolled",
        "--epochs=2", f"--out={tmp_path / 'run'}", f"--report={report}",
        "--nocompilation_cache"], 600)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "results" / "ablation.json").read_text())
    got = [(r["u_mask"], r["variant"]) for r in doc["rows"]]
    want = [(m, v) for m in ("code", "paper") for v in (
        "all layers", "layer 1 only", "layer 2 only", "all layers, no head rows removed")]
    assert got == want
    for r in doc["rows"]:
        assert np.isfinite(r["delta"]) and np.isfinite(r["delta_nopad"])
        assert -100 <= r["delta"] <= 100
    assert 0 < doc["mono_acc"] <= 1 and doc["model"] == "LSTM-2"
    assert sorted(doc["removed_per_layer"]) == ["code", "paper"]
    for per_layer in doc["removed_per_layer"].values():  # removed units per layer, of H = 100
        assert len(per_layer) == 2 and all(0 <= x <= 100 for x in per_layer)
    md = report.read_text()
    assert "python -m experiments.layer_ablation --dataset=synthetic:many_to_many" in md
    assert "| layer 2 only |" in md and "δ no pad, u_mask=paper" in md
    assert "Units removed per module, layer and step (mean): `code`: " in md
    # the measurements are kept: rendering again reads them, computes nothing
    again = tmp_path / "again.md"
    p2 = run_binary("experiments.layer_ablation", [
        "--render_only", f"--out={tmp_path / 'run'}", f"--report={again}"], 120)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "training " not in p2.stderr
    assert again.read_text().split("| masks composed")[1] == md.split("| masks composed")[1]
    assert "rendered by `python -m experiments.layer_ablation --render_only" in again.read_text()


def test_variants_keep_one_layer_each():
    from experiments.layer_ablation import variants

    keep = np.random.default_rng(0).random((3, 2, 4, 5)) > 0.3  # [C, L, T, H]
    v = variants(keep, 2)
    assert list(v) == ["all layers", "layer 1 only", "layer 2 only"]
    np.testing.assert_array_equal(v["all layers"], keep)
    np.testing.assert_array_equal(v["layer 1 only"][:, 0], keep[:, 0])
    assert v["layer 1 only"][:, 1].all() and v["layer 2 only"][:, 0].all()
    np.testing.assert_array_equal(v["layer 2 only"][:, 1], keep[:, 1])


@pytest.mark.parametrize("args,msg", [(["--cell=transformer"], "--cell must be"),
                                      (["--u_masks=soft"], "--u_masks entries"),
                                      (["--dataset=mathqa", "--mode=unrolled"], "--mode=unrolled"),
                                      (["--epochs=0"], "--epochs must be >= 1")])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, msg):
    p = run_binary("experiments.layer_ablation",
                   args + [f"--out={tmp_path}", "--nocompilation_cache"], 120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert msg in p.stderr and "Traceback" not in p.stderr
