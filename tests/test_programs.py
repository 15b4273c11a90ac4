"""modjax.programs: compiled programs stored on disk and read back by a new process."""
import contextlib
import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modjax import programs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def empty_persistent_cache(folder):
    """JAX's persistent compilation cache in an empty ``folder`` for the block, then back to the
    test session's: a program is stored only when this process compiled it (not when the
    session's cache had it), so storing must not depend on what earlier runs left there."""
    from jax._src import compilation_cache

    old = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(folder))
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
        compilation_cache.reset_cache()


@pytest.fixture
def store(tmp_path):
    folder = str(tmp_path / "programs")
    with empty_persistent_cache(tmp_path / "jax"):
        programs.enable(folder)
        yield folder
        programs.enable(None)


TRACES = []


@jax.jit
def _plain(x, y):
    TRACES.append(1)
    return jnp.tanh(x) @ y


@functools.partial(jax.jit, static_argnames=("scale", "mode"))
def _affine(tree, x, *, scale, mode):
    TRACES.append(1)
    out = x @ tree["w"] * scale + tree["b"]
    return (out, jnp.maximum(out, 0)) if mode == "relu" else (out, out)


def _ref(tree, x, scale, mode):
    out = (np.asarray(x, np.float64) @ np.asarray(tree["w"], np.float64) * scale
           + np.asarray(tree["b"], np.float64))
    return out, (np.maximum(out, 0) if mode == "relu" else out)


def _data(seed=0, n=5):
    r = np.random.default_rng(seed)
    tree = {"w": r.normal(size=(3, 4)).astype(np.float32),
            "b": r.normal(size=(4,)).astype(np.float32)}
    return tree, r.normal(size=(n, 3)).astype(np.float32)


def test_off_by_default_calls_the_function():
    assert programs.folder() is None
    tree, x = _data()
    out = programs.call(_affine, (tree, x), dict(scale=2.0, mode="relu"))
    for got, want in zip(out, _ref(tree, x, 2.0, "relu")):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_stored_program_gives_the_reference_results_and_is_written_once(store):
    tree, x = _data()
    out = programs.call(_affine, (tree, x), dict(scale=0.5, mode="relu"))
    for got, want in zip(out, _ref(tree, x, 0.5, "relu")):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    files = os.listdir(store)
    assert len(files) == 1 and files[0].endswith(programs.SUFFIX)
    tree2, x2 = _data(seed=1)  # same shapes: the same program, other values
    out2 = programs.call(_affine, (tree2, x2), dict(scale=0.5, mode="relu"))
    np.testing.assert_allclose(np.asarray(out2[1]), _ref(tree2, x2, 0.5, "relu")[1],
                               rtol=1e-5, atol=1e-5)
    assert os.listdir(store) == files
    programs.call(_affine, (tree, x), dict(scale=0.5, mode="linear"))  # another static value
    programs.call(_affine, _data(n=7), dict(scale=0.5, mode="relu"))  # another shape
    assert len(os.listdir(store)) == 3


def test_keys_name_static_arguments_shapes_dtypes_and_structure():
    tree, x = _data()
    k = programs.program_key(_affine, (tree, x), dict(scale=1.0, mode="relu"))
    assert k == programs.program_key(_affine, (dict(tree), x.copy()), dict(mode="relu",
                                                                          scale=1.0))
    others = [programs.program_key(_affine, (tree, x), dict(scale=2.0, mode="relu")),
              programs.program_key(_affine, (tree, x[:2]), dict(scale=1.0, mode="relu")),
              programs.program_key(_affine, (tree, x.astype(np.float64)),
                                   dict(scale=1.0, mode="relu")),
              programs.program_key(_affine, ({**tree, "c": x}, x), dict(scale=1.0, mode="relu")),
              programs.program_key(_plain, (tree, x), dict(scale=1.0, mode="relu"))]
    assert k not in others and len(set(others)) == len(others)
    assert programs.program_key(_affine, (tree, 3.0), {}) is None  # not an array


def test_non_array_arguments_and_damaged_files_fall_back(store):
    x = np.ones((2, 3), np.float32)
    y = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(np.asarray(programs.call(_plain, (x, y))),
                               np.tanh(1.0) * 3 * np.ones((2, 2)), rtol=1e-6)
    (name,) = os.listdir(store)
    with open(os.path.join(store, name), "wb") as f:
        f.write(b"not a program")
    programs.enable(store)  # a new process: nothing in memory
    np.testing.assert_allclose(np.asarray(programs.call(_plain, (x, y))),
                               np.tanh(1.0) * 3 * np.ones((2, 2)), rtol=1e-6)
    with open(os.path.join(store, name), "rb") as f:
        assert f.read() != b"not a program"  # compiled and written again


def test_bad_folder_type_is_refused():
    with pytest.raises(TypeError, match="folder must be a path"):
        programs.enable(3)


CHILD = """
    import json
    import numpy as np, jax, jax.numpy as jnp
    from modjax import programs
    calls = []

    @jax.jit
    def f(x, w):
        calls.append(1)  # runs only when JAX traces f
        return jnp.tanh(x @ w).sum(0)

    programs.enable({folder!r})
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    w = np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)
    out = np.asarray(programs.call(f, (x, w))).tolist()
    print(json.dumps({{"traces": len(calls), "out": out}}))
"""


def test_a_new_process_runs_the_stored_program_without_tracing(tmp_path):
    folder = str(tmp_path / "programs")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = lambda: subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD.format(
        folder=folder))], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    first, second = run(), run()
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    x = np.arange(12, dtype=np.float64).reshape(4, 3) / 10
    w = np.linspace(-1, 1, 6).reshape(3, 2)
    want = np.tanh(x @ w).sum(0)
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["traces"] == 1  # traced once, to compile and store it
    assert b["traces"] == 0  # read back: not traced
    np.testing.assert_allclose(a["out"], want, rtol=1e-5)
    assert a["out"] == b["out"]


def test_decompose_and_scores_through_stored_programs_match_the_plain_path(tmp_path):
    from modjax.compose import module_scores
    from modjax.data.synthetic import load_synthetic
    from modjax.decompose import decompose
    from modjax.models import config_for, init_params
    from modjax.train import predict

    data = load_synthetic("many_to_many", n_train=120, n_test=40, seed=3)
    cfg = config_for(data, cell="lstm", units=6, embed_dim=4, layers=2)
    params = init_params(cfg, seed=1)
    plain = decompose(params, data, model=cfg, n_pos=20)
    s_plain = np.asarray(module_scores(plain, params, data.x_test))
    p_plain = predict(cfg, params, data.x_test)
    folder = str(tmp_path / "programs")
    with empty_persistent_cache(tmp_path / "jax"):
        programs.enable(folder)
        try:
            _three_passes(params, data, cfg, plain, s_plain, p_plain, folder)
        finally:
            programs.enable(None)


def _three_passes(params, data, cfg, plain, s_plain, p_plain, folder):
    from modjax.compose import module_scores
    from modjax.decompose import decompose
    from modjax.train import predict

    for _ in range(2):  # compiled and stored, then read back from memory
        d = decompose(params, data, model=cfg, n_pos=20)
        np.testing.assert_array_equal(np.asarray(d.keep), np.asarray(plain.keep))
        np.testing.assert_allclose(np.asarray(module_scores(d, params, data.x_test)),
                                   s_plain, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(predict(cfg, params, data.x_test), p_plain)
        assert len(os.listdir(folder)) == 3


CHILD_SHARED_CACHE = """
    import json
    import numpy as np, jax, jax.numpy as jnp
    from modjax import programs
    jax.config.update("jax_compilation_cache_dir", {cache!r})
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    calls = []

    @jax.jit
    def f(x, w):
        calls.append(1)
        h = jnp.zeros((x.shape[1], w.shape[1]))
        for t in range(x.shape[0]):  # a few fused kernels, not one
            h = jnp.tanh(x[t] @ w + h.T[: w.shape[1]].T)
        return jnp.where(h > 0, h, 0.5 * h).T @ x[0]

    programs.enable({folder!r})
    x = np.linspace(-1, 1, 60, dtype=np.float32).reshape(5, 4, 3)
    w = np.linspace(-1, 1, 9, dtype=np.float32).reshape(3, 3)
    out = np.asarray(programs.call(f, (x, w))).tolist()
    print(json.dumps({{"traces": len(calls), "out": out}}))
"""


def test_programs_read_from_the_persistent_cache_are_not_stored(tmp_path):
    """A process whose compile is a hit in JAX's persistent cache does not store the program
    (a cache-loaded XLA:CPU executable serializes without its kernels); the program stored by
    the process that compiled it runs in a third process, without tracing."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cache = str(tmp_path / "jax")

    def run(folder):
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD_SHARED_CACHE.format(
            cache=cache, folder=str(tmp_path / folder)))], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout)

    x = np.linspace(-1, 1, 60).reshape(5, 4, 3)
    w = np.linspace(-1, 1, 9).reshape(3, 3)
    h = np.zeros((4, 3))
    for t in range(5):
        h = np.tanh(x[t] @ w + h)
    want = np.where(h > 0, h, 0.5 * h).T @ x[0]
    first = run("a")  # compiles: stored in a
    second = run("b")  # a persistent-cache hit: not stored in b
    third = run("b")  # b still empty: traced again, correct
    fourth = run("a")  # the stored program: no trace
    assert len(os.listdir(tmp_path / "a")) == 1
    assert not os.path.exists(tmp_path / "b") or not os.listdir(tmp_path / "b")
    assert [r["traces"] for r in (first, second, third, fourth)] == [1, 1, 1, 0]
    for r in (first, second, third, fourth):
        np.testing.assert_allclose(r["out"], want, rtol=1e-5, atol=1e-5)


def test_a_stored_program_that_fails_is_removed_and_the_plain_path_used(store, monkeypatch):
    """A stored executable that cannot run (as one serialized from a cache-loaded executable:
    ``NOT_FOUND: Function ... not found``) is run to completion on its first use; it fails
    there, the file is removed and the plain jit call gives the result."""
    from jax.experimental import serialize_executable

    tree, x = _data()
    programs.call(_affine, (tree, x), dict(scale=0.5, mode="relu"))
    (name,) = os.listdir(store)

    def broken(*a, **k):
        def run(*args):
            raise jax.errors.JaxRuntimeError("NOT_FOUND: Function fusion not found (type id: 1)")
        return run

    monkeypatch.setattr(serialize_executable, "deserialize_and_load", broken)
    programs.enable(store)  # as a new process: nothing in memory
    out = programs.call(_affine, (tree, x), dict(scale=0.5, mode="relu"))
    for got, want in zip(out, _ref(tree, x, 0.5, "relu")):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    assert name not in os.listdir(store)
