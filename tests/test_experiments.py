"""experiments.paper_results (Table II parser) and experiments.reproduce (end to end, resume)."""
import json
import os
import time

import pytest

from experiments import paper_results, runner, table2_report
from tests.binaries import run_binary
from tests.ci import in_ci

# Skip without the shared paper table, except in CI, where a missing table is a failure.
needs_table = pytest.mark.skipif(
    not os.path.isfile(paper_results.default_path()) and not in_ci(),
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


def test_dataset_parsing_and_paper_architecture():
    assert runner.parse_dataset("clinc", "local").io == "many_to_one"
    s = runner.parse_dataset("synthetic:many_to_many", "local")
    assert s.source == "synthetic" and s.paper_name is None
    assert runner.parse_dataset("brown", "synthetic").id == "synthetic:brown"
    with pytest.raises(ValueError, match="--dataset: encoder-decoder"):
        runner.parse_dataset("tatoeba", "local")
    with pytest.raises(ValueError, match="--dataset"):
        runner.parse_dataset("mnist", "local")
    assert runner.paper_dropout("lstm", 4, "many_to_one") == 0.2
    assert runner.paper_dropout("gru", 4, "many_to_one") == 0.0
    assert runner.paper_dropout("gru", 4, "one_to_many") == 0.2
    assert runner.paper_embed_dim("many_to_many") == 100
    assert runner.PAPER_TRAINING["many_to_one"] == (15, 128)
    assert runner.model_label("simple", 3) == "RNN-3"
    from modjax.data import IO_OF
    assert all(IO_OF[d] == runner.IO_OF[d] for d in runner.REAL_DATASETS)


def test_result_store_recomputes_rows_made_with_other_settings(tmp_path):
    store = runner.ResultStore(str(tmp_path), "fmt-x", ("a", "b"))
    settings = {"epochs": 5, "options": {"max_remove": 0.05, "u_mask": "code"}}
    store.put({"a": "clinc", "b": 1, "value": 0.5}, settings)
    store.save()
    again = runner.ResultStore(str(tmp_path), "fmt-x", ("a", "b"))
    assert again.fresh(("clinc", 1), settings)["value"] == 0.5
    for changed in ({"epochs": 6, "options": settings["options"]},
                    {"epochs": 5, "options": {"max_remove": 0.2, "u_mask": "code"}},
                    {"epochs": 5, "options": settings["options"], "limit_test": 100}):
        assert again.fresh(("clinc", 1), changed) is None
    assert again.fresh(("clinc", 2), settings) is None
    with pytest.raises(ValueError, match="--out: .* is not a fmt-y results file"):
        runner.ResultStore(str(tmp_path), "fmt-y", ("a", "b"))


def test_write_atomic_honours_umask_and_leaves_no_temporary(tmp_path):
    old = os.umask(0o022)
    try:
        runner.write_atomic(str(tmp_path / "sub" / "x.json"), "{}")
        runner.write_atomic(str(tmp_path / "sub" / "x.json"), b"[1]")
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "x.json").read_text() == "[1]"
    assert (os.stat(tmp_path / "sub" / "x.json").st_mode & 0o777) == 0o644
    assert os.listdir(tmp_path / "sub") == ["x.json"]


def _row(dataset, io, mode, cell, k, delta, paper, nopad=None, config="artifact"):
    return {"dataset": dataset, "io": io, "mode": mode, "cell": cell, "layers": k,
            "config": config, "delta": delta, "paper_delta": paper, "delta_nopad": nopad,
            "ji": 0.8, "paper_avg_ji": 0.85}


def test_report_statistics_by_hand():
    rows = [_row("clinc", "many_to_one", "rolled", "lstm", 1, 0.2, -0.13),
            _row("clinc", "many_to_one", "rolled", "lstm", 2, -0.6, -0.44),
            _row("mathqa", "one_to_one", "rolled", "lstm", 1, 0.0, 0.13),
            _row("brown", "many_to_many", "unrolled", "lstm", 1, -0.4, -0.52, nopad=-1.0),
            _row("brown", "many_to_many", "unrolled", "lstm", 2, -2.0, -0.22, nopad=-3.0),
            _row("brown", "many_to_many", "unrolled", "lstm", 3, 1.0, -2.04, config="paper")]
    st = table2_report.headline(rows)
    one = st["artifact"]["rolled one-output"]
    assert one["n"] == 3
    assert one["mean"] == pytest.approx((0.2 - 0.6 + 0.0) / 3)
    assert one["median"] == pytest.approx(0.0)
    assert one["same_or_better"] == pytest.approx(2 / 3)
    assert one["paper_mean"] == pytest.approx((-0.13 - 0.44 + 0.13) / 3)
    assert one["paper_same_or_better"] == pytest.approx(1 / 3)
    many = st["artifact"]["unrolled many-output"]
    assert many["mean_nopad"] == pytest.approx(-2.0) and many["min"] == -2.0
    assert st["artifact"]["headline"]["n"] == 3  # 1:1 rolled + the two M:N unrolled
    assert st["paper"]["unrolled"]["n"] == 1
    tg = {t["target"]: t for t in table2_report.targets(rows)}
    assert tg["mean δ, one-output rolled"]["met"] is True            # -0.13 >= -0.3
    assert tg["mean δ, many-output unrolled"]["value"] == pytest.approx(-1.2)
    assert tg["mean δ, many-output unrolled"]["met"] is False        # -1.2 < -0.5
    assert tg["worst δ, one-output rolled"]["met"] is True           # -0.6 >= -1.5
    assert tg["worst δ, many-output unrolled"]["met"] is False       # -2.0 < -1.5
    assert tg["mean δ without padding, many-output unrolled"]["met"] is False


def _run(args, timeout=300):
    t0 = time.perf_counter()
    p = run_binary("experiments.reproduce", args, timeout)
    return p, time.perf_counter() - t0


def test_bad_flags_exit_2_with_one_line(tmp_path):
    for args, msg in ((["--epochs=0"], "--epochs must be >= 1"),
                      (["--datasets=tatoeba"], "--dataset: encoder-decoder"),
                      (["--configs=artifact,nope"], "--configs entries")):
        p, _ = _run(args + [f"--out={tmp_path}", "--nocompilation_cache"])
        assert p.returncode == 2, p.stderr[-2000:]
        assert msg in p.stderr and "Traceback" not in p.stderr


def test_smoke_end_to_end_resume_and_stale_rows(tmp_path):
    out, report = tmp_path / "run", tmp_path / "results" / "table2.md"
    args = ["--smoke", "--cells=gru", "--layers=1", "--configs=artifact,paper,per_gate",
            f"--out={out}", f"--report={report}"]
    p, _ = _run(args)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    keys = {(r["dataset"], r["cell"], r["layers"], r["mode"], r["config"]) for r in doc["rows"]}
    # 4 I/O types, GRU-1 (the artifact forward differs from Keras's for GRUs); 1:1 has no
    # unrolled mode; per-gate only on M:1 and M:N
    expected = set()
    for io in ("one_to_one", "many_to_one", "one_to_many", "many_to_many"):
        for cell in ("gru",):
            for k in (1,):
                for mode in ("rolled",) if io == "one_to_one" else ("rolled", "unrolled"):
                    cfgs = ["artifact", "paper"]
                    if io in ("many_to_one", "many_to_many"):
                        cfgs.append("per_gate")
                    expected |= {(f"synthetic:{io}", cell, k, mode, c) for c in cfgs}
    assert keys == expected
    for r in doc["rows"]:
        assert r["delta"] == pytest.approx(100 * (r["comp_acc"] - r["mono_acc"]))
        assert 0.0 < r["ji"] <= 1.0 and 0.0 < r["retention"] <= 1.0
        assert len(r["units_kept_per_layer"]) == r["layers"]
        assert r["decompose_s"] > 0 and r["decompose_compile_s"] >= 0
        opts = r["settings"]["options"]
        if r["config"] == "paper":
            assert (opts["max_remove"], opts["u_mask"], opts["rolled_obs"]) == \
                (0.2, "paper", "all_steps")
        else:
            assert opts["u_mask"] == ("paper" if (r["io"] == "many_to_one"
                                                  and r["mode"] == "rolled") else "code")
            assert opts["gate_mode"] == ("per_gate" if r["config"] == "per_gate" else "unit")
            head = {"rolled": "step", "unrolled": "last" if r["io"] == "many_to_one" else "first"}
            assert opts["head_rows"] == head[r["mode"]]  # no Dropout before the head here
        assert r["settings"]["forward"] == "artifact"
        assert (r["delta_nopad"] is None) == (r["io"] in ("one_to_one", "many_to_one"))
    md = report.read_text()
    assert "Headline statistics" in md and "Targets (artifact configuration)" in md
    assert (tmp_path / "results" / "table2.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results" / "table2.json").read_text())["rows"]

    # resume: nothing recomputed, nothing trained
    before = (out / "results.json").read_text()
    p2, _ = _run(args)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "training" not in p2.stderr and "recomputing" not in p2.stderr
    assert (out / "results.json").read_text() == before

    # a fresh --out resumes from the generated report's JSON: nothing recomputed
    fresh = tmp_path / "fresh"
    p4, _ = _run(args[:-2] + [f"--out={fresh}",
                              f"--resume_from={tmp_path / 'results' / 'table2.json'}"])
    assert p4.returncode == 0, p4.stderr[-3000:]
    assert "adopted 18 stored rows" in p4.stderr and "recomputing" not in p4.stderr
    assert len(json.loads((fresh / "results.json").read_text())["rows"]) == 18

    # other settings: the stored rows are stale and are recomputed, not shown as new
    p3, _ = _run(["--smoke", "--datasets=synthetic:many_to_one", "--cells=gru", "--layers=1",
                  "--configs=artifact", "--limit_test=50", f"--out={out}"])
    assert p3.returncode == 0, p3.stderr[-3000:]
    assert "recomputing" in p3.stderr


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
    cfg = config_for(data, cell=cell, units=4, embed_dim=3, forward="artifact")
    old = dataclasses.replace(cfg, forward="keras")  # as the earlier binary saved it
    params = init_params(old, seed=5)
    path = str(tmp_path / "m")
    save_model(path, old, params)
    got, _, cached = runner.train_or_load(cfg, data, path, epochs=1, batch_size=32, seed=0,
                                             retrain=False, progress=False)
    assert cached == reused
    same = np.array_equal(np.asarray(got["rnn_0"]["kernel"]), params["rnn_0"]["kernel"])
    assert same == reused


def test_report_coverage_counts_the_full_grid():
    rows = [_row("clinc", "many_to_one", "rolled", "lstm", 1, 0.0, 0.0),
            _row("clinc", "many_to_one", "unrolled", "lstm", 1, 0.0, 0.0, config="per_gate")]
    cov = {(d, c): (n, st) for d, c, n, st in table2_report.coverage(rows)}
    assert cov[("mathqa", "artifact")] == ("0 / 12", "**incomplete**")  # 1:1: rolled only
    assert cov[("clinc", "artifact")] == ("1 / 24", "**incomplete**")
    assert cov[("clinc", "per_gate")] == ("1 / 16", "**incomplete**")
    assert ("toxic", "per_gate") not in cov
    assert cov[("brown", "artifact_paper_mask")] == ("0 / 24", "**incomplete**")
    assert ("clinc", "artifact_paper_mask") not in cov and len(cov) == 12


def test_mask_ablation_pairs_each_artifact_row_with_its_paper_mask_row():
    rows = [_row("brown", "many_to_many", "unrolled", "lstm", 4, -26.5, -2.84, nopad=-18.4),
            _row("brown", "many_to_many", "unrolled", "lstm", 4, -2.0, -2.84, nopad=-2.5,
                 config="artifact_paper_mask"),
            _row("brown", "many_to_many", "rolled", "lstm", 4, -22.0, -84.63),  # no pair
            _row("toxic", "one_to_many", "unrolled", "gru", 1, 0.5, 0.1, nopad=-1.25),
            _row("toxic", "one_to_many", "unrolled", "gru", 1, 0.25, 0.1, nopad=-0.5,
                 config="artifact_paper_mask")]
    for r in rows:
        r["model"] = runner.model_label(r["cell"], r["layers"])
    got = table2_report.mask_ablation(rows)
    assert [g[:3] for g in got] == [["toxic", "GRU-1", "unrolled"],
                                    ["brown", "LSTM-4", "unrolled"]]
    assert got[1][3:] == ["-26.50", "-2.00", "+24.50", "-18.40", "-2.50", "-2.84"]
    assert got[0][5] == "-0.25" and got[0][7] == "-0.50"


def test_smoke_paper_mask_configuration_runs_on_many_output_models_only(tmp_path):
    out, report = tmp_path / "run", tmp_path / "t2.md"
    p, _ = _run(["--smoke", "--datasets=synthetic:many_to_one,synthetic:many_to_many",
                 "--cells=lstm", "--layers=1", "--configs=artifact,artifact_paper_mask",
                 f"--out={out}", f"--report={report}"])
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    pm = [r for r in rows if r["config"] == "artifact_paper_mask"]
    assert {(r["io"], r["mode"]) for r in pm} == {("many_to_many", "rolled"),
                                                  ("many_to_many", "unrolled")}
    for r in pm:
        art = next(a for a in rows if a["config"] == "artifact" and a["io"] == r["io"]
                   and a["mode"] == r["mode"])
        o, a = r["settings"]["options"], art["settings"]["options"]
        assert o["u_mask"] == "paper" and a["u_mask"] == "code"
        assert {k: v for k, v in o.items() if k != "u_mask"} == \
            {k: v for k, v in a.items() if k != "u_mask"}
    md = report.read_text()
    assert "## Mask semantics on the many-output models" in md
    assert "## Per model: `artifact_paper_mask`" in md


def test_bidirectional_cells_and_read_only_model_caches(tmp_path):
    """``bilstm`` names a bidirectional LSTM (its own cache entry and label); a model found in
    a read-only cache is loaded from there and nothing is written to it."""
    from modjax.checkpoint import save_model
    from modjax.data.synthetic import load_synthetic
    from modjax.models import init_params

    assert runner.split_cell("bilstm") == ("lstm", True)
    assert runner.split_cell("gru") == ("gru", False)
    assert runner.model_label("bilstm", 2) == "BiLSTM-2"
    data = load_synthetic("many_to_many", n_train=64, n_test=8, seed=0)
    spec = runner.parse_dataset("synthetic:many_to_many")
    cfg = runner.paper_config(data, spec, "bilstm", 1, units=4)
    assert cfg.bidirectional and cfg.cell == "lstm" and cfg.merge == "concat"
    assert runner.model_name(spec, "bilstm", 1, 1, 32, 0, None, 4) != \
        runner.model_name(spec, "lstm", 1, 1, 32, 0, None, 4)
    ro = tmp_path / "readonly"
    params = init_params(cfg, seed=3)
    save_model(str(ro / "m"), cfg, params)
    before = sorted(os.listdir(ro))
    got, _, cached = runner.train_or_load(cfg, data, str(tmp_path / "own" / "m"), epochs=1,
                                          batch_size=32, seed=0,
                                          read_only_dirs=[str(ro / "m")])
    assert cached and sorted(os.listdir(ro)) == before
    assert not os.path.exists(tmp_path / "own")
    assert (got["rnn_0"]["kernel"] == params["rnn_0"]["kernel"]).all()


def test_phase_totals_count_training_once_and_say_which_models_recorded_cpu_time():
    row = lambda m, cpu: {"model_dir": m, "train_s": 10.0, "train_cpu_s": cpu,  # noqa: E731
                          "mono_eval_s": 1.0, "decompose_s": 2.0, "decompose_compile_s": 0.5,
                          "compose_s": 3.0, "metrics_s": 0.25}
    rows = [row("a", 15.0), row("a", 15.0), row("b", None), row("c", 5.0)]
    got = table2_report.phase_totals(rows)
    assert got["train"] == 30.0 and got["monolithic evaluation"] == 3.0
    assert got["training CPU time (2 of 3 models recorded it)"] == 20.0
    assert got["decompose"] == 8.0 and got["compose"] == 12.0
    full = table2_report.phase_totals([row("a", 15.0), row("c", 5.0)])
    assert full["training CPU time"] == 20.0
