"""``experiments/minimal_modules.py`` end to end on a small synthetic classifier."""
import json

from tests.binaries import run_binary

ARGS = ["--models=synthetic:many_to_one:lstm:1", "--extra_costs=0.005", "--reps=1",
        "--n_time=64", "--limit_test=200", "--max_val=200", "--candidates=negative,first_order"]


def test_small_classifier_end_to_end_and_resume(tmp_path):
    out = tmp_path / "mm"
    p = run_binary("experiments.minimal_modules",
                   ARGS + [f"--models_dir={tmp_path / 'models'}", f"--out={out}"], 600)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "mm.json").read_text())
    (model,) = doc["models"]
    assert model["model"] == "LSTM-1" and model["n_test"] == 200
    rows = model["rows"]
    got = [(r["kind"], r.get("candidates"), r.get("max_cost")) for r in rows]
    assert got == [("default", None, None), ("default", None, None),
                   ("minimal", "negative", 0.01), ("minimal", "negative", 0.005),
                   ("minimal", "first_order", 0.01), ("minimal", "first_order", 0.005)]
    default = rows[0]
    for r in rows[2:]:
        # the search's promise on the validation split, and fewer units than the default
        assert r["val_accuracy_original"] - r["val_accuracy"] <= r["max_cost"] + 1e-9
        assert 0 < r["kept_fraction_mean"] <= default["kept_fraction_mean"] + 1e-9
        assert -100 <= r["delta"] <= 100
    timed = [r for r in rows[2:] if r["max_cost"] == 0.01]
    assert all(r["max_score_diff"] < 1e-4 for r in timed)  # compacted = module, exactly enough
    md = (tmp_path / "mm.md").read_text()
    assert "| minimal, first_order, cost 1 pt |" in md
    assert "python -m experiments.minimal_modules --models=synthetic:many_to_one:lstm:1" in md
    # --resume keeps the model's rows and names both commands
    again = run_binary("experiments.minimal_modules",
                       ARGS + [f"--models_dir={tmp_path / 'models'}", f"--out={out}",
                               "--resume"], 300)
    assert again.returncode == 0, again.stderr[-3000:]
    doc2 = json.loads((tmp_path / "mm.json").read_text())
    assert doc2["models"] == doc["models"] and len(doc2["commands"]) == 2


def test_malformed_models_flag_is_a_usage_error(tmp_path):
    p = run_binary("experiments.minimal_modules",
                   ["--models=clinc:lstm", f"--out={tmp_path / 'mm'}"], 120)
    assert p.returncode != 0
    assert "--models entries must be dataset:cell:layers" in p.stderr


def test_holdout_trains_without_the_validation_split(tmp_path):
    """``--holdout`` trains the model on the training data minus the validation split that
    ``minimal_modules`` holds out (same fraction and seed), caches it under its own name and
    says so in the report; here with the ``iterative`` candidates."""
    from experiments import runner
    from modjax.minimal import split_validation

    out = tmp_path / "mm"
    args = [a for a in ARGS if not a.startswith("--candidates")]
    p = run_binary("experiments.minimal_modules",
                   args + ["--candidates=iterative", "--holdout", "--val_fraction=0.2",
                           f"--models_dir={tmp_path / 'models'}", f"--out={out}"], 600)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "mm.json").read_text())
    (model,) = doc["models"]
    data = runner.load_data(runner.parse_dataset("synthetic:many_to_one", "local"), 0,
                            limit_test=200)
    fit, val = split_validation(len(data.x_train), 0.2, 0)
    assert doc["holdout"] is True and model["holdout"] is True
    assert model["n_train"] == len(fit) == len(data.x_train) - len(val)
    assert model["model_dir"].endswith("_holdout0.2v0")
    assert [(r["kind"], r.get("candidates")) for r in model["rows"]][2:] == [
        ("minimal", "iterative"), ("minimal", "iterative")]
    md = (tmp_path / "mm.md").read_text()
    assert "trained without that split (`--holdout`)" in md
    assert f"trained on {len(fit)} examples (the validation split held out)" in md
