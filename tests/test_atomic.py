"""Safe saving: ownership of the target, crash safety at every step, umask, recovery."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from modjax import atomic
from modjax.checkpoint import MODEL_FILES, MODEL_FORMAT, load_model, save_model
from modjax.compose import select
from modjax.decompose import decompose
from modjax.models import ModelConfig, init_params
from modjax.persist import load_decomposition, save_decomposition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRASH = 17

# The child saves the "new" artifact over the "old" one and dies (os._exit) right after the
# step named by argv[1]; argv: step, kind, target, model source, decomposition source.
CHILD = """
import os, sys
from modjax import atomic
from modjax.checkpoint import load_model, save_model
from modjax.persist import load_decomposition, save_decomposition
step, kind, target, model_src, decomp_src = sys.argv[1:]
atomic._after_step = lambda s: os._exit(%d) if s == step else None
cfg, params = load_model(model_src)
if kind == "model":
    save_model(target, cfg, params, overwrite=True)
else:
    save_decomposition(target, load_decomposition(decomp_src, params), params, overwrite=True)
os._exit(0)
""" % CRASH


def _config(embed_dim=3):
    return ModelConfig(io="many_to_one", cell="gru", num_classes=3, vocab_size=11, in_len=5,
                       units=6, embed_dim=embed_dim)


def _leaves_equal(a, b):
    import jax
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """An old and a new model (different configs) and an old and a new decomposition."""
    tmp = tmp_path_factory.mktemp("atomic")
    old_cfg, new_cfg = _config(3), _config(4)
    old_p, new_p = init_params(old_cfg, seed=1), init_params(new_cfg, seed=2)
    save_model(str(tmp / "old_model"), old_cfg, old_p)
    save_model(str(tmp / "new_model"), new_cfg, new_p)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (60, 5)), np.arange(60) % 3
    d = decompose(old_p, (x, y), model=old_cfg, n_pos=10, max_remove=0.3)
    old_d, new_d = d, select(d, [2, 0])
    save_decomposition(str(tmp / "old_decomp"), old_d, old_p)
    save_decomposition(str(tmp / "new_decomp"), new_d, old_p)
    return {"tmp": tmp, "old_cfg": old_cfg, "new_cfg": new_cfg, "old_p": old_p, "new_p": new_p,
            "old_d": old_d, "new_d": new_d}


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.parametrize("kind", ["model", "decomposition"])
def test_crash_at_every_step_leaves_old_or_new(artifacts, kind):
    """A child process is killed (os._exit) after each step of the save; the parent then loads
    the path and must get the old or the new artifact, complete; the next save cleans up."""
    tmp = artifacts["tmp"]
    model_src = str(tmp / ("new_model" if kind == "model" else "old_model"))
    decomp_src = str(tmp / "new_decomp")
    # fresh (nothing at the path before): the steps that move the old copy never happen
    cases = [(step, fresh) for step in atomic.STEPS
             for fresh in ((False, True) if kind == "model" else (False,))
             if not (fresh and step in ("old_moved_aside", "old_removed"))]
    procs = {}
    for step, fresh in cases:
        d = tmp / f"crash_{kind}_{step}_{'fresh' if fresh else 'over'}"
        d.mkdir()
        target = d / "target"
        if not fresh:
            if kind == "model":
                save_model(str(target), artifacts["old_cfg"], artifacts["old_p"])
            else:
                save_decomposition(str(target), artifacts["old_d"], artifacts["old_p"])
        procs[(step, fresh)] = (target, subprocess.Popen(
            [sys.executable, "-c", CHILD, step, kind, str(target), model_src, decomp_src],
            env=_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True))
    for (step, fresh), (target, p) in procs.items():
        _, err = p.communicate(timeout=300)
        assert p.returncode == CRASH, (step, fresh, p.returncode, err)
        new_expected = atomic.STEPS.index(step) >= atomic.STEPS.index("new_in_place")
        if fresh and not new_expected:
            assert not os.path.exists(target), step  # nothing was there, nothing is
            continue
        if kind == "model":
            cfg, params = load_model(str(target))
            want_cfg, want_p = ((artifacts["new_cfg"], artifacts["new_p"]) if new_expected else
                                (artifacts["old_cfg"], artifacts["old_p"]))
            assert cfg == want_cfg, step
            assert _leaves_equal(params, want_p), step
        else:
            got = load_decomposition(str(target), artifacts["old_p"])
            want = artifacts["new_d"] if new_expected else artifacts["old_d"]
            assert got.class_names == want.class_names, step
            np.testing.assert_array_equal(np.asarray(got.keep), np.asarray(want.keep))
        assert sorted(os.listdir(target)) == sorted(
            MODEL_FILES if kind == "model" else ("format.json", "meta.json", "arrays.msgpack"))
        # the next save succeeds and leaves nothing but the artifact behind
        if kind == "model":
            save_model(str(target), artifacts["old_cfg"], artifacts["old_p"], overwrite=True)
        else:
            save_decomposition(str(target), artifacts["old_d"], artifacts["old_p"],
                               overwrite=True)
        assert os.listdir(target.parent) == ["target"], (step, os.listdir(target.parent))


def test_refuses_what_is_not_ours(artifacts, tmp_path, monkeypatch):
    cfg, p = artifacts["old_cfg"], artifacts["old_p"]
    # a working directory with the user's files: save_model(".") must not touch it
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(ValueError, match="not a modjax artifact.*notes.txt"):
        save_model(".", cfg, p)
    assert os.listdir(work) == ["notes.txt"] and (work / "notes.txt").read_text() == "mine"
    # a decomposition onto a model checkpoint: refused, the checkpoint intact
    ckpt = tmp_path / "ckpt"
    save_model(str(ckpt), cfg, p)
    with pytest.raises(ValueError, match="holds a modjax-model artifact"):
        save_decomposition(str(ckpt), artifacts["old_d"], p, overwrite=True)
    assert _leaves_equal(load_model(str(ckpt))[1], p)
    # a model onto a decomposition, likewise
    dec = tmp_path / "dec"
    save_decomposition(str(dec), artifacts["old_d"], p)
    with pytest.raises(ValueError, match="holds a modjax-decomposition artifact"):
        save_model(str(dec), cfg, p, overwrite=True)
    # a file
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        save_model(str(f), cfg, p, overwrite=True)
    assert f.read_text() == "x"
    # the same kind: only with overwrite=True
    with pytest.raises(ValueError, match="already holds a modjax-model artifact; pass "
                       "overwrite=True"):
        save_model(str(ckpt), cfg, p)
    save_model(str(ckpt), artifacts["new_cfg"], artifacts["new_p"], overwrite=True)
    assert load_model(str(ckpt))[0] == artifacts["new_cfg"]
    # the same kind with a file of the user's inside: refused even with overwrite
    (ckpt / "README").write_text("mine")
    with pytest.raises(ValueError, match="also other files .*README"):
        save_model(str(ckpt), cfg, p, overwrite=True)
    assert (ckpt / "README").read_text() == "mine"
    # an empty directory may be written into
    empty = tmp_path / "empty"
    empty.mkdir()
    save_model(str(empty), cfg, p)
    assert load_model(str(empty))[0] == cfg


@pytest.mark.parametrize("umask,dmode,fmode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_modes_follow_the_umask(artifacts, tmp_path, umask, dmode, fmode):
    old = os.umask(umask)
    try:
        save_model(str(tmp_path / "m"), artifacts["old_cfg"], artifacts["old_p"])
        save_decomposition(str(tmp_path / "d"), artifacts["old_d"], artifacts["old_p"])
    finally:
        os.umask(old)
    for d in ("m", "d"):
        assert stat.S_IMODE(os.stat(tmp_path / d).st_mode) == dmode, d
        for f in os.listdir(tmp_path / d):
            assert stat.S_IMODE(os.stat(tmp_path / d / f).st_mode) == fmode, (d, f)


def test_error_between_renames_puts_the_old_back(artifacts, tmp_path, monkeypatch):
    cfg, p = artifacts["old_cfg"], artifacts["old_p"]
    path = tmp_path / "m"
    save_model(str(path), cfg, p)

    def boom(step):
        if step == "old_moved_aside":
            raise RuntimeError("disk full")

    monkeypatch.setattr(atomic, "_after_step", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(str(path), artifacts["new_cfg"], artifacts["new_p"], overwrite=True)
    assert os.listdir(tmp_path) == ["m"]
    assert load_model(str(path))[0] == cfg


def test_recover_and_dead_staging_cleanup(artifacts, tmp_path):
    cfg, p = artifacts["old_cfg"], artifacts["old_p"]
    path = tmp_path / "m"
    save_model(str(path), cfg, p)
    os.replace(path, tmp_path / ".m.old")  # as after a crash between the two renames
    assert atomic.recover(str(path)) == str(path)
    assert os.listdir(tmp_path) == ["m"] and load_model(str(path))[0] == cfg
    # both present: the new one is in place, the stale old copy goes
    (tmp_path / ".m.old").mkdir()
    atomic.recover(str(path))
    assert os.listdir(tmp_path) == ["m"]
    # a staging directory of a process that no longer exists is removed by the next save
    dead = tmp_path / ".m.tmp-999999999-abcd"
    dead.mkdir()
    (dead / "format.json").write_text("{}")
    save_model(str(path), cfg, p, overwrite=True)
    assert os.listdir(tmp_path) == ["m"]
    assert atomic.artifact_kind(str(path)) == MODEL_FORMAT


def test_load_reads_the_old_copy_where_the_parent_is_read_only(artifacts, tmp_path,
                                                              monkeypatch):
    """After a crash between the renames, a reader that cannot rename (read-only parent)
    still loads the old artifact, from ``.NAME.old`` where it is."""
    cfg, p = artifacts["old_cfg"], artifacts["old_p"]
    path = tmp_path / "m"
    save_model(str(path), cfg, p)
    os.replace(path, tmp_path / ".m.old")

    def read_only(*a, **k):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    got_cfg, got_p = load_model(str(path))
    assert got_cfg == cfg and _leaves_equal(got_p, p)
    assert sorted(os.listdir(tmp_path)) == [".m.old"]  # nothing was changed
