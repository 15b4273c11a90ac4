"""experiments.reuse / experiments.replace (Tables III and IV): the pieces by hand, and each
binary's smoke preset end to end."""
import json

import numpy as np

from experiments import paper_results, replace, reuse_common
from experiments import reuse as reuse_bin
from modjax.data.base import TaskData
from modjax.reuse import compose_modules, modules_of, module_set_scores, replacement
from tests.binaries import run_binary
from tests.trained_models import decomposed, trained


def _task(io, y_train, y_test, num_classes):
    n_tr, n_te = len(y_train), len(y_test)
    return TaskData(name="t", io=io, x_train=np.arange(n_tr)[:, None].repeat(3, 1),
                    y_train=np.asarray(y_train, np.int32),
                    x_test=np.arange(n_te)[:, None].repeat(3, 1),
                    y_test=np.asarray(y_test, np.int32),
                    class_names=tuple(str(i) for i in range(num_classes)), vocab_size=100,
                    in_len=3, out_len=np.asarray(y_train).shape[1] if np.ndim(y_train) == 2 else 1)


def test_pair_tasks_follow_the_papers_formats():
    # 1:N: labels list active classes in order, pre-padded with 0
    y = [[0, 0, 1], [0, 2, 3], [0, 0, 3], [0, 1, 2], [0, 0, 2], [0, 0, 1]]
    d = _task("one_to_many", y, y, 4)
    idx, x, t = reuse_bin.pair_split(d, 2, 3, "test", False, 0)
    np.testing.assert_array_equal(idx, [1, 2, 3, 4])
    np.testing.assert_array_equal(t, [[2, 3], [0, 3], [0, 2], [0, 2]])
    np.testing.assert_array_equal(x[:, 0], idx)
    _, task = reuse_bin.pair_task(d, 2, 3, 0)
    assert task.out_len == 2 and task.y_train.shape == (4, 2)
    # M:N: sentences holding either tag, every other tag set to 0
    y = [[1, 2, 3], [4, 4, 4], [3, 1, 1], [2, 2, 0]]
    d = _task("many_to_many", y, y, 5)
    idx, _, t = reuse_bin.pair_split(d, 1, 2, "test", False, 0)
    np.testing.assert_array_equal(idx, [0, 2, 3])
    np.testing.assert_array_equal(t, [[1, 2, 0], [0, 1, 1], [2, 2, 0]])
    # M:1: relabelled 0/1 and, for training, under-sampled to the smaller class
    y = [0, 1, 1, 1, 2, 0, 1]
    d = _task("many_to_one", y, y, 3)
    _, _, t = reuse_bin.pair_split(d, 0, 1, "test", False, 0)
    np.testing.assert_array_equal(t, [0, 1, 1, 1, 0, 1])
    _, _, t = reuse_bin.pair_split(d, 0, 1, "train", True, 0)
    assert sorted(t.tolist()) == [0, 0, 1, 1]
    _, task = reuse_bin.pair_task(d, 0, 2, 0)
    assert task.class_names == ("0", "2")


def test_balanced_indices_caps_each_group():
    g = [np.arange(10), np.arange(10, 13), np.arange(13, 50), []]
    idx = reuse_common.balanced_indices(g, factor=2.0, floor=0, seed=1)
    assert len(idx) == 6 + 3 + 6 and len(set(idx)) == len(idx)
    assert (np.diff(idx) > 0).all()
    idx = reuse_common.balanced_indices(g, factor=1.0, floor=20, seed=1)
    assert len(idx) == 10 + 3 + 20
    assert reuse_common.pair_classes(_task("one_to_many", [[0, 1]], [[0, 1]], 4)) == [1, 2, 3]
    assert reuse_common.pair_classes(_task("one_to_one", [0], [0], 4)) == [0, 1, 2, 3]


def test_vote_with_scores_once_equals_composing_the_replacement():
    _, pa, data = trained("simple_m2o")
    _, pb, _ = trained("gru_m2o")
    da, db = decomposed("simple_m2o"), decomposed("gru_m2o")
    x = data.x_test
    s_a = np.asarray(module_set_scores(modules_of(da, pa), x, kind="contrast"))
    s_b = np.asarray(module_set_scores(modules_of(db, pb), x, kind="contrast"))
    for c in range(da.num_modules):
        want, _ = compose_modules(replacement(da, pa, c, db, pb, c))(x)
        got = replace.vote_with(s_a, np.asarray(da.head_class), c, s_b[c])
        np.testing.assert_array_equal(got, np.asarray(want))


def test_paper_tables_three_and_four():
    t3, t4 = paper_results.reuse_table("3"), paper_results.reuse_table("4")
    assert t3[("intra", "many_to_one", "lstm")] == (-0.82, -0.67)
    assert t3[("inter", "clinc+brown", "simple")] == (-3.55, -2.63)
    assert t4[("intra", "one_to_many", "gru")] == (-0.07, -0.24)
    assert t4[("inter", "mathqa+toxic", "lstm")] == (-4.75, -0.02)
    assert len(t3) == len(t4) == 21


def _run(module, args, timeout=400):
    return run_binary(module, args, timeout)


def test_reuse_smoke_end_to_end_and_resume(tmp_path):
    out, report = tmp_path / "run", tmp_path / "t3.md"
    args = ["--smoke", "--datasets=synthetic:one_to_one,synthetic:one_to_many",
            "--max_items=2", f"--out={out}", f"--report={report}"]
    p = _run("experiments.reuse", args)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "t3.json").read_text())
    rows = doc["rows"]
    assert len(rows) == 4
    for r in rows:
        assert 0 <= r["acc_modular"] <= 1 and 0 <= r["acc_a"] <= 1 and 0 <= r["acc_b"] <= 1
        assert abs(r["delta_a"] - 100 * (r["acc_modular"] - r["acc_a"])) < 1e-9
        assert 0 < r["kept"] <= 1 and r["train_s_a"] > 0 and r["modular_s"] > 0
    o2m = [r for r in rows if r["io"] == "one_to_many"]
    assert all(r["acc_a"] == r["acc_b"] for r in o2m)  # (a) is scratch for 1:N
    md = report.read_text()
    for part in ("Command (this report):", "Rows computed by:", "Hardware:", "paper mean",
                 "-0.07"):
        assert part in md, part
    p = _run("experiments.reuse", args)  # resumed: the stored rows stay, 2 more pairs each
    assert p.returncode == 0, p.stderr[-3000:]
    again = json.loads((tmp_path / "t3.json").read_text())["rows"]
    assert len(again) == 8
    key = lambda r: (r["problem"], r["c1"], r["c2"])
    old = {key(r): r["time"] for r in rows}
    assert all(r["time"] == old[key(r)] for r in again if key(r) in old)
    p = _run("experiments.reuse", ["--cells=nope", f"--out={out}"])
    assert p.returncode == 2 and "--cells" in p.stderr and "Traceback" not in p.stderr


def test_replace_smoke_end_to_end(tmp_path):
    out, report = tmp_path / "run", tmp_path / "t4.md"
    p = _run("experiments.replace", ["--smoke", "--datasets=synthetic:many_to_one",
                                     f"--out={out}", f"--report={report}"])
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "t4.json").read_text())
    rows = doc["rows"]
    cs = sorted(r["c"] for r in rows)
    assert cs == list(range(len(cs))) and len(cs) >= 2  # every class replaced once
    for r in rows:
        assert abs(r["delta"] - 100 * (r["acc_composed"] - r["mono_faulty"])) < 1e-9
        assert r["mono_faulty"] <= r["mono_best"]
    assert "faulty" in report.read_text()
