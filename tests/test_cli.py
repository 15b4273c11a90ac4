"""End-to-end tests of ``python -m modjax decompose`` (subprocesses, run concurrently)."""
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from modjax.checkpoint import save_model
from modjax.data.base import default_data_dir
from modjax.data.synthetic import load_synthetic
from modjax.decompose import decompose
from modjax.models import config_for
from modjax.persist import load_decomposition
from modjax.train import fit
from tests.ci import in_ci

N_TRAIN, N_TEST = 300, 120
KERAS = os.path.join(default_data_dir(), "keras_models", "gru_models", "one_to_one", "h5",
                     "model1_combined_scratch.h5")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    cache = os.environ.get("MODJAX_JAX_CACHE",
                           os.path.join(os.path.expanduser("~"), ".cache", "modjax", "jax"))
    env.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "modjax", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)


def _synth(io):
    return ["--data=synthetic:" + io, f"--synthetic_n_train={N_TRAIN}",
            f"--synthetic_n_test={N_TEST}"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train two tiny models, then run every CLI case at once; ``{case: (rc, out, err, ...)}``."""
    tmp = tmp_path_factory.mktemp("cli")
    models = {}
    for io in ("many_to_one", "many_to_many"):
        data = load_synthetic(io, n_train=N_TRAIN, n_test=N_TEST)
        config = config_for(data, cell="lstm", units=8, embed_dim=8)
        params, _ = fit(config, data, epochs=1, batch_size=32, learning_rate=1e-2,
                        progress=False, validate=False)
        save_model(str(tmp / io), config, params)
        models[io] = (config, params, data)
    bi_cfg = config_for(models["many_to_many"][2], cell="gru", units=4, embed_dim=8,
                        bidirectional=True, merge="sum")
    bi_params, _ = fit(bi_cfg, models["many_to_many"][2], epochs=1, batch_size=32,
                       learning_rate=1e-2, progress=False, validate=False)
    save_model(str(tmp / "bi"), bi_cfg, bi_params)
    models["bi"] = (bi_cfg, bi_params, models["many_to_many"][2])
    rng = np.random.default_rng(0)
    np.savez(tmp / "rand.npz", x_train=rng.integers(0, 7000, (150, 20)),
             y_train=rng.integers(0, 6, 150), x_test=rng.integers(0, 7000, (60, 20)),
             y_test=rng.integers(0, 6, 60))
    np.savez(tmp / "len15.npz", x_train=rng.integers(0, 7000, (50, 15)),
             y_train=rng.integers(0, 6, 50))
    np.savez(tmp / "bigvocab.npz", x_train=rng.integers(0, 500, (50, 15)),
             y_train=rng.integers(0, 6, 50))
    m2o, m2m = str(tmp / "many_to_one"), str(tmp / "many_to_many")
    cases = {
        "rolled": ["decompose", f"--model={m2o}", *_synth("many_to_one"), "--mode=rolled",
                   "--max_remove=0.1", f"--out={tmp / 'out_rolled'}"],
        "unrolled": ["decompose", f"--model={m2m}", *_synth("many_to_many"),
                     "--mode=unrolled", "--u_mask=paper", "--n_pos=100",
                     f"--out={tmp / 'out_unrolled'}"],
        "warm_times": ["decompose", f"--model={m2o}", *_synth("many_to_one"), "--mode=rolled",
                       "--max_remove=0.1", "--warm_times", f"--out={tmp / 'out_warm'}"],
        "no_model": ["decompose", f"--model={tmp / 'nope'}", *_synth("many_to_one"),
                     f"--out={tmp / 'x1'}"],
        "bad_spec": ["decompose", f"--model={m2o}", "--data=synthetic:no_such_io",
                     f"--out={tmp / 'x2'}"],
        "vocab_mismatch": ["decompose", f"--model={m2o}", f"--data={tmp / 'bigvocab.npz'}",
                           f"--out={tmp / 'x5'}"],
        "bidirectional": ["decompose", f"--model={tmp / 'bi'}", *_synth("many_to_many"),
                          "--mode=unrolled", "--n_pos=100", f"--out={tmp / 'out_bi'}"],
        "help": ["--help"],
        # user errors: one line, exit status 2, no traceback, before any work
        "bad_flag_value": ["decompose", f"--model={m2o}", *_synth("many_to_one"),
                           "--max_remove=abc", f"--out={tmp / 'x6'}"],
        "unknown_flag": ["decompose", f"--model={m2o}", *_synth("many_to_one"), "--nosuch=1",
                         f"--out={tmp / 'x7'}"],
        "corrupt_format": ["decompose", f"--model={tmp / 'corrupt_format'}",
                           *_synth("many_to_one"), f"--out={tmp / 'x8'}"],
        "corrupt_params": ["decompose", f"--model={tmp / 'corrupt_params'}",
                           *_synth("many_to_one"), f"--out={tmp / 'x9'}"],
        "out_under_file": ["decompose", f"--model={m2o}", *_synth("many_to_one"),
                           f"--out={tmp / 'rand.npz' / 'sub'}"],
        "out_unwritable": ["decompose", f"--model={m2o}", *_synth("many_to_one"),
                           "--out=/sys/modjax-cli-test-out"],
        "out_holds_user_files": ["decompose", f"--model={m2o}", *_synth("many_to_one"),
                                 f"--out={tmp / 'user_out'}"],
    }
    import shutil

    for name in ("corrupt_format", "corrupt_params"):
        shutil.copytree(m2o, tmp / name)
    (tmp / "corrupt_format" / "format.json").write_text("[1]")
    (tmp / "corrupt_params" / "params.msgpack").write_bytes(b"\x00garbage")
    (tmp / "user_out" / "decomposition").mkdir(parents=True)
    (tmp / "user_out" / "decomposition" / "thesis.tex").write_text("mine")
    if os.path.isfile(KERAS):
        cases["keras"] = ["decompose", f"--model={KERAS}", f"--data={tmp / 'rand.npz'}",
                          f"--out={tmp / 'out_keras'}", "--noprogress"]
        cases["keras_artifact"] = ["decompose", f"--model={KERAS}", f"--data={tmp / 'rand.npz'}",
                                   "--forward=artifact", "--preset=artifact",
                                   f"--out={tmp / 'out_keras_artifact'}", "--noprogress"]
    procs = {k: _start(*a) for k, a in cases.items()}
    # The in-process references run while the subprocesses do.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes without examples at some steps
        refs = {
            "rolled": decompose(models["many_to_one"][1], models["many_to_one"][2],
                                model=models["many_to_one"][0], mode="rolled",
                                max_remove=0.1),
            "unrolled": decompose(models["many_to_many"][1], models["many_to_many"][2],
                                  model=models["many_to_many"][0], mode="unrolled",
                                  u_mask="paper", n_pos=100),
            "bidirectional": decompose(bi_params, models["bi"][2], model=bi_cfg,
                                       mode="unrolled", n_pos=100),
        }
        if os.path.isfile(KERAS):
            from modjax.keras_import import from_keras_h5

            kc, kp = from_keras_h5(KERAS, forward="artifact")
            with np.load(tmp / "rand.npz") as z:
                kx, ky = z["x_train"], z["y_train"]
            refs["keras_artifact"] = (kp, decompose(kp, (kx, ky), model=kc, preset="artifact"))
    results = {}
    for k, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[k] = (p.returncode, out, err)
    return {"tmp": tmp, "models": models, "results": results, "refs": refs}


def _ok(runs, case):
    rc, out, err = runs["results"][case]
    assert rc == 0, f"{case}: exit {rc}\nstdout:\n{out}\nstderr:\n{err}"
    return out, err


def _check_outputs(out_dir, class_names, many_output):
    for png in ("keep_heatmap.png", "overlap.png"):
        with open(out_dir / png, "rb") as f:
            blob = f.read()
        assert blob[:8] == PNG_MAGIC, png
        assert len(blob) > 5000, (png, len(blob))
    md = (out_dir / "report.md").read_text()
    for name in class_names:
        assert f"`{name}`" in md, name
    assert "| composed accuracy (test" in md and "| monolithic accuracy (test" in md
    assert ("(no padding)" in md) == many_output
    assert "decomposition time (first call, compilation included)" in md
    assert "(warm)" not in md  # one decomposition per run unless --warm_times
    assert "![" in md and "keep_heatmap.png" in md
    assert not [f for f in os.listdir(out_dir) if f.startswith(".tmp-")]
    return md


@pytest.mark.parametrize("case,io", [("rolled", "many_to_one"), ("unrolled", "many_to_many")])
def test_decompose_end_to_end(runs, case, io):
    out, _ = _ok(runs, case)
    config, params, data = runs["models"][io]
    out_dir = runs["tmp"] / f"out_{case}"
    md = _check_outputs(out_dir, data.class_names, config.many_output)
    assert f"| mode | `{case}` |" in md
    for name in data.class_names:  # the printed table too
        assert name in out
    assert "composed accuracy" in out
    loaded = load_decomposition(str(out_dir / "decomposition"), params)
    ref = runs["refs"][case]
    np.testing.assert_array_equal(np.asarray(loaded.keep), np.asarray(ref.keep))
    assert loaded.keep.dtype == ref.keep.dtype
    assert loaded.options == ref.options
    assert loaded.class_names == ref.class_names


def test_one_decomposition_per_run_unless_warm_times_is_asked(runs):
    _, err = _ok(runs, "rolled")
    first = [l for l in err.splitlines() if "] decomposed in " in l]
    assert len(first) == 1 and "warm" not in first[0], first
    out, err = _ok(runs, "warm_times")
    line = [l for l in err.splitlines() if "] decomposed in " in l]
    assert len(line) == 1 and line[0].endswith("s warm"), line
    md = (runs["tmp"] / "out_warm" / "report.md").read_text()
    assert "| decomposition time (warm) |" in md and "| composed evaluation time (warm) |" in md
    # the warm run decomposes the same way
    a = load_decomposition(str(runs["tmp"] / "out_warm" / "decomposition"),
                           runs["models"]["many_to_one"][1])
    np.testing.assert_array_equal(np.asarray(a.keep), np.asarray(runs["refs"]["rolled"].keep))


def test_decompose_bidirectional_end_to_end(runs):
    """A bidirectional GRU tagger: report, figures and the saved [C, L, T, 2, H] keep vectors."""
    out, _ = _ok(runs, "bidirectional")
    config, params, data = runs["models"]["bi"]
    md = _check_outputs(runs["tmp"] / "out_bi", data.class_names, True)
    assert "BiGRU-1" in md
    loaded = load_decomposition(str(runs["tmp"] / "out_bi" / "decomposition"), params)
    ref = runs["refs"]["bidirectional"]
    assert loaded.keep.shape == (len(data.class_names), 1, config.steps, 2, 4)
    np.testing.assert_array_equal(np.asarray(loaded.keep), np.asarray(ref.keep))


def test_keras_h5_end_to_end(runs):
    if "keras" not in runs["results"]:
        if in_ci():
            pytest.fail(f"shared Keras model missing: {KERAS}")
        pytest.skip(f"shared Keras model missing: {KERAS}")
    out, err = _ok(runs, "keras")
    assert "Keras .h5" in out and "loading model" not in err  # --noprogress
    md = _check_outputs(runs["tmp"] / "out_keras", [str(i) for i in range(6)], False)
    assert "| cell | `gru` |" in md
    from modjax import cli

    config, _, kind = cli.load_model_arg(KERAS)
    assert kind == "Keras .h5" and config.in_len == 20 and config.vocab_size == 7000
    with pytest.raises(cli.CLIError, match="--data: inputs have length 15, but --model expects "
                       "in_len=20"):
        cli.check_fit(config, cli.load_data_arg(str(runs["tmp"] / "len15.npz"), config), "test")


@pytest.mark.parametrize("case,flag,words", [
    ("no_model", "--model", "no such file"),
    ("bad_spec", "--data", "unknown synthetic task"),
    ("vocab_mismatch", "--data", "vocabulary"),
])
def test_bad_input(runs, case, flag, words):
    rc, out, err = runs["results"][case]
    assert rc == 2, (case, out, err)
    assert "Traceback" not in err
    assert flag in err and words in err, err
    assert not os.path.exists(runs["tmp"] / "x1")


def test_bad_data_in_process(runs):
    """The checks behind the one-line errors, without a subprocess each."""
    from modjax import cli

    config, _, _ = runs["models"]["many_to_one"]
    with pytest.raises(cli.CLIError, match="--data: unknown data spec 'no_such_dataset'"):
        cli.load_data_arg("no_such_dataset", config)
    with pytest.raises(cli.CLIError, match="--data: no such file"):
        cli.load_data_arg(str(runs["tmp"] / "missing.npz"), config)
    other = load_synthetic("many_to_many", n_train=20, n_test=5)
    with pytest.raises(cli.CLIError, match="many_to_many task, but --model is a many_to_one"):
        cli.check_fit(config, other, "test")
    big = cli.load_data_arg(str(runs["tmp"] / "bigvocab.npz"), config)
    with pytest.raises(cli.CLIError, match="--data: train token ids reach .*vocabulary"):
        cli.check_fit(config, big, "test")
    with pytest.raises(cli.CLIError, match="--model: no such file"):
        cli.load_model_arg(str(runs["tmp"] / "nope"))
    with pytest.raises(cli.CLIError, match="not a modjax model checkpoint"):
        cli.load_model_arg(str(runs["tmp"]))


@pytest.mark.parametrize("case,words", [
    ("bad_flag_value", "flag --max_remove=abc"),
    ("unknown_flag", "Unknown command line flag 'nosuch'"),
    ("no_model", "--model: no such file"),
    ("corrupt_format", "--model: cannot load .*expected format modjax-model v1, got \\[1\\]"),
    ("corrupt_params", "--model: cannot load .*unreadable model checkpoint"),
    ("out_under_file", "--out: .* lies under .*rand.npz', which is a file"),
    ("out_unwritable", "--out: cannot write to '/sys'"),
    ("out_holds_user_files", "--out: path .*decomposition' holds files that are not a modjax "
     "artifact \\(thesis.tex\\)"),
])
def test_user_error_is_one_line_exit_2_before_any_work(runs, case, words):
    import re

    rc, out, err = runs["results"][case]
    assert rc == 2, (case, rc, out, err)
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and re.search(words, errors[0]), err
    assert errors[0].startswith("modjax decompose: error: ")
    assert "decomposing" not in err  # refused before the work
    assert (runs["tmp"] / "user_out" / "decomposition" / "thesis.tex").read_text() == "mine"


def test_help_lists_subcommand(runs):
    rc, out, _ = runs["results"]["help"]
    assert rc == 0
    assert "decompose" in out and "--model" in out and "--max_remove" in out
    assert "train" in out and "--epochs" in out


def test_forward_and_preset_flags(runs):
    """--forward=artifact --preset=artifact on the authors' GRU: the same decomposition as
    from Python (from_keras_h5(forward="artifact"), decompose(preset="artifact"))."""
    if "keras_artifact" not in runs["results"]:
        if in_ci():
            pytest.fail(f"shared Keras model missing: {KERAS}")
        pytest.skip(f"shared Keras model missing: {KERAS}")
    out, _ = _ok(runs, "keras_artifact")
    assert "forward artifact" in out and "preset=artifact" in out
    params, ref = runs["refs"]["keras_artifact"]
    loaded = load_decomposition(str(runs["tmp"] / "out_keras_artifact" / "decomposition"),
                                params)
    assert loaded.config.forward == "artifact" and loaded.options == ref.options
    assert (loaded.options.u_mask, loaded.options.head_rows) == ("code", "step")
    np.testing.assert_array_equal(np.asarray(loaded.keep), np.asarray(ref.keep))


def test_progress_lines_mark_every_phase_the_cli_benchmark_reports(runs):
    """``benchmarks/cli.py`` splits a run's time by these progress lines: each phase is there,
    in order, and ends with ``done``."""
    from benchmarks.cli import PHASES, phase_seconds

    _, err = _ok(runs, "rolled")
    stamps = [float(m.group(1)) for m in re.finditer(r"^\[\s*([0-9.]+)s\] ", err, re.M)]
    assert err.strip().splitlines()[-1].endswith("] done")
    got = phase_seconds(stamps[-1] + 2.0, err)
    assert set(got) == {"startup and exit (imports, flags)"} | {n for n, _ in PHASES if n}
    assert all(v >= 0 for v in got.values()), got
    assert got["startup and exit (imports, flags)"] == pytest.approx(2.0 + stamps[0])
    assert sum(got.values()) == pytest.approx(stamps[-1] + 2.0)  # the whole wall time
