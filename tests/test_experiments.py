"""experiments.paper_results (Table II parser) and experiments.reproduce (end to end, resume)."""
import json
import os
import subprocess
import sys
import time

import pytest

from experiments import paper_results, reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Skip without the shared paper table, except in CI, where a missing table is a failure.
needs_table = pytest.mark.skipif(
    not os.path.isfile(paper_results.default_path()) and not os.environ.get("CI"),
    reason="paper table2_delta.csv not available")


@needs_table
def test_paper_table_values():
    assert paper_results.paper_delta("clinc", "lstm", 1, "unrolled") == pytest.approx(0.96)
    assert paper_results.paper_delta("brown", "lstm", 1, "rolled") == pytest.approx(-77.07)
    assert paper_results.paper_delta("clinc", "simple", 2, "rolled") == pytest.approx(-5.51)
    assert paper_results.paper_delta("toxic", "lstm", 3, "rolled") == pytest.approx(-94.59)
    assert paper_results.paper_delta("mathqa", "lstm", 1, "unrolled") is None  # N/A
    assert paper_results.paper_avg_ji("mathqa", "unrolled") is None
    assert paper_results.paper_avg_ji("clinc", "rolled") == pytest.approx(0.85)
    assert paper_results.paper_avg_ji("brown", "unrolled") == pytest.approx(0.83)
    assert paper_results.paper_delta("nope", "lstm", 1, "rolled") is None


@needs_table
def test_paper_table_shape():
    rows = paper_results.table2()
    assert len(rows) == 14
    assert {r.io for r in rows} == {"one_to_one", "many_to_one", "one_to_many", "many_to_many",
                                    "encoder_decoder"}
    assert all(len(r.delta) == 12 for r in rows)
    row = paper_results.find_row("tatoeba_de", "rolled")
    assert row.io == "encoder_decoder" and row.delta["gru-4"] == pytest.approx(2.01)


def test_paper_table_env_and_parse(tmp_path, monkeypatch):
    csv = tmp_path / "table2_delta.csv"
    csv.write_text("io,dataset,mode,lstm-1,avg_ji\nM:1,Clinc OOS,Rolled,\u22121.50,0.9\n"
                   "1:1,Math QA,Unrolled,N/A,N/A\n")
    monkeypatch.setenv("MODJAX_PAPER_RESULTS", str(tmp_path))
    assert paper_results.default_path() == str(csv)
    rows = paper_results.parse_table2()
    assert rows[0].dataset == "clinc" and rows[0].delta["lstm-1"] == -1.5
    assert rows[1].delta["lstm-1"] is None and rows[1].avg_ji is None
    assert paper_results.model_key("simple", 3) == "vanilla-3"
    assert paper_results.model_label("gru", 2) == "GRU-2"


def test_flag_parsing():
    assert reproduce.parse_dataset("clinc", "local").io == "many_to_one"
    s = reproduce.parse_dataset("synthetic:many_to_many", "local")
    assert s.source == "synthetic" and s.paper_name is None
    assert reproduce.parse_dataset("brown", "synthetic").id == "synthetic:brown"
    with pytest.raises(ValueError, match="out of scope"):
        reproduce.parse_dataset("tatoeba", "local")
    with pytest.raises(ValueError, match="--dataset"):
        reproduce.parse_dataset("mnist", "local")
    assert reproduce.parse_max_remove("paper_script") == "paper_script"
    assert reproduce.parse_max_remove(None) is None
    assert reproduce.parse_max_remove("0.1") == 0.1
    with pytest.raises(ValueError):
        reproduce.parse_max_remove("2")
    assert reproduce.modes_for("one_to_one", ["rolled", "unrolled"]) == (["rolled"], ["unrolled"])
    assert reproduce.paper_dropout("lstm", 4, "many_to_one") == 0.2
    assert reproduce.paper_dropout("gru", 4, "many_to_one") == 0.0
    assert reproduce.paper_dropout("gru", 4, "one_to_many") == 0.2
    assert reproduce.paper_embed_dim("many_to_many") == 100
    assert reproduce.PAPER_TRAINING["many_to_one"] == (15, 128)
    from modjax.data import IO_OF
    assert all(IO_OF[d] == reproduce.IO_OF[d] for d in reproduce.REAL_DATASETS)


def _run(args, timeout=120):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "experiments.reproduce"] + args, cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    return p, time.perf_counter() - t0


def test_tatoeba_rejected(tmp_path):
    p, _ = _run(["--dataset=tatoeba", f"--out={tmp_path}"])
    assert p.returncode != 0
    assert "out of scope" in p.stderr + p.stdout


def test_reproduce_end_to_end_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["--source=synthetic", "--dataset=synthetic:many_to_one", "--cells=lstm", "--layers=1",
            "--modes=rolled,unrolled", "--epochs=1", "--limit_train=500", "--limit_test=300",
            "--noprogress", f"--out={out}"]
    p, t_first = _run(args)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    rows = {(r["dataset"], r["cell"], r["layers"], r["mode"]): r for r in doc["rows"]}
    assert set(rows) == {("synthetic:many_to_one", "lstm", 1, "rolled"),
                         ("synthetic:many_to_one", "lstm", 1, "unrolled")}
    for r in rows.values():
        assert r["epochs"] == 1 and r["batch_size"] == 128 and r["n_train"] == 500
        assert r["n_test"] == 300 and r["gate_activation"] == "sigmoid"
        assert r["delta"] == pytest.approx(100 * (r["comp_acc"] - r["mono_acc"]))
        assert 0.0 < r["ji"] <= 1.0 and r["decompose_s"] > 0
        # the artifact preset: M:1 rolled aliases the weights ("paper"), unrolled zeroes the
        # head rows of the last step's removed units
        want = {"rolled": ("paper", "step"), "unrolled": ("code", "last")}[r["mode"]]
        assert r["max_remove"] == 0.05 and (r["u_mask"], r["head_rows"]) == want
        assert r["forward"] == "artifact" and r["preset"] == "artifact"
        assert r["paper_delta"] is None  # synthetic data has no paper row
    assert "LSTM-1" in p.stdout and "δ paper" in p.stdout
    assert (out / "results.md").is_file()
    assert (out / "models" / "synthetic-many_to_one_lstm-1_e1_b128_s0_n500" /
            "params.msgpack").is_file()
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]

    before = (out / "results.json").read_text()
    p2, t_second = _run(args)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "skip" in p2.stderr and "training" not in p2.stderr
    assert (out / "results.json").read_text() == before  # nothing recomputed or rewritten
    assert t_second < t_first
    assert "LSTM-1" in p2.stdout  # the table is printed from the stored rows


@pytest.mark.parametrize("cell,reused", [("lstm", True), ("simple", True), ("gru", False)])
def test_cached_checkpoints_are_reused_when_the_forward_computes_the_same_function(
        tmp_path, cell, reused):
    """A checkpoint trained before the forward option (sigmoid gates, Keras forward) is reused
    under the artifact forward for LSTM and vanilla models; a GRU is trained again (the
    artifact's candidate is another function)."""
    import dataclasses

    import numpy as np

    from modjax.checkpoint import save_model
    from modjax.data.synthetic import load_synthetic
    from modjax.models import config_for, init_params

    data = load_synthetic("many_to_one", n_train=64, n_test=8, seed=0)
    cfg = config_for(data, cell=cell, units=4, embed_dim=3, forward=reproduce.FORWARD)
    old = dataclasses.replace(cfg, forward="keras")  # as the earlier binary saved it
    params = init_params(old, seed=5)
    path = str(tmp_path / "m")
    save_model(path, old, params)
    got, _, cached = reproduce.train_or_load(cfg, data, path, epochs=1, batch_size=32, seed=0,
                                             retrain=False, progress=False)
    assert cached == reused
    same = np.array_equal(np.asarray(got["rnn_0"]["kernel"]), params["rnn_0"]["kernel"])
    assert same == reused
