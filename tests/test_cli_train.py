"""``python -m modjax train``, ``--help`` per subcommand, and the shared CLI helpers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from modjax import cli_common
from modjax.checkpoint import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start(args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "modjax", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    # random labels: nothing to learn, so the test accuracy must sit at chance
    np.savez(tmp / "tags.npz", x_train=rng.integers(1, 30, (120, 7)),
             y_train=rng.integers(0, 3, (120, 7)), x_test=rng.integers(1, 30, (40, 7)),
             y_test=rng.integers(0, 3, (40, 7)))
    cases = {
        "npz": ["train", f"--data={tmp / 'tags.npz'}", "--io=many_to_many", "--cell=simple",
                "--units=4", "--embed_dim=4", "--epochs=1", f"--out={tmp / 'ckpt'}",
                "--noprogress", f"--compilation_cache={tmp / 'cache'}"],
        "no_out": ["train", "--data=synthetic:many_to_one"],
        "help_train": ["train", "--help"],
        "help_decompose": ["decompose", "--help"],
    }
    procs = {k: _start(a, tmp) for k, a in cases.items()}
    out = {k: (p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for k, p in procs.items()}
    return tmp, out


def test_train_writes_a_checkpoint_decompose_reads(runs):
    tmp, out = runs
    rc, stdout, stderr = out["npz"]
    assert rc == 0, stderr
    config, params = load_model(str(tmp / "ckpt"))
    assert (config.io, config.cell, config.units, config.in_len, config.num_classes) == (
        "many_to_many", "simple", 4, 7, 3)
    info = json.loads((tmp / "ckpt" / "train.json").read_text())
    assert len(info["loss"]) == 1 and info["epochs"] == 1
    y = np.load(tmp / "tags.npz")["y_test"]
    share = np.bincount(y.ravel()).max() / y.size
    assert info["chance_accuracy"] == pytest.approx(max(1 / 3, share))
    assert "RNN-1 (vanilla tanh, 4 units)" in stdout  # how users name the model
    assert "near chance" in stderr and stderr.count("near chance") == 1
    assert os.path.isdir(tmp / "cache")  # --compilation_cache is where compiled code goes


def test_train_needs_out(runs):
    rc, _, stderr = runs[1]["no_out"]
    assert rc == 2 and "--out is required" in stderr and "Traceback" not in stderr


def test_help_per_subcommand_exits_0(runs):
    _, out = runs
    rc, text, _ = out["help_train"]
    assert rc == 0
    flags_part = text.split("Flags of 'python -m modjax train':")[1]
    assert "--epochs" in flags_part and "--cell" in flags_part and "--data" in flags_part
    assert "--model" not in flags_part and "--max_remove" not in flags_part
    rc, text, _ = out["help_decompose"]
    assert rc == 0
    flags_part = text.split("Flags of 'python -m modjax decompose':")[1]
    assert "--model" in flags_part and "--epochs" not in flags_part
    # unset option flags show the value decompose uses, not "none"
    n_pos = " ".join(flags_part.split("--n_pos")[1].split("--n_neg")[0].split())
    assert "500; 1000 for an encoder-decoder" in n_pos
    assert "(default: 0.05)" in " ".join(flags_part.split("--max_remove")[1].split())


def test_untrained_warning():
    assert cli_common.untrained_warning("runs/m", 0.90, 0.2) is None
    msg = cli_common.untrained_warning("runs/m", 0.21, 0.2)
    assert "near chance" in msg and "_scratch" not in msg
    msg = cli_common.untrained_warning("x/model1_combined_scratch.h5", 0.17, 1 / 6)
    assert "untrained '_scratch' baselines" in msg


def test_prepare_runtime_quiets_backend_probing_and_sets_the_cache(tmp_path):
    import logging

    import jax
    from absl import flags

    from modjax import cli

    cli.define_flags()
    F = flags.FLAGS
    if not F.is_parsed():
        F.mark_as_parsed()
    root = logging.getLogger()
    before = list(root.filters)
    old_cache, old_dir = F.compilation_cache, jax.config.jax_compilation_cache_dir
    bridge = logging.getLogger("jax._src.xla_bridge")
    old_level = bridge.level
    try:
        F.compilation_cache = str(tmp_path / "cc")
        assert cli_common.prepare_runtime() == str(tmp_path / "cc")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cc")
        # the "TPU may be present ... libtpu is not installed" warning is not shown
        assert not bridge.isEnabledFor(logging.WARNING)
        F.compilation_cache = "none"
        assert cli_common.prepare_runtime() is None
    finally:
        F.compilation_cache = old_cache
        jax.config.update("jax_compilation_cache_dir", old_dir)
        bridge.setLevel(old_level)
        root.filters[:] = before


def test_runs_print_no_backend_probing(runs):
    _, out = runs
    for case in ("npz", "help_train"):
        assert "tpu" not in out[case][2].lower(), out[case][2]
