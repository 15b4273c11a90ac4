"""modjax.compile_cache: where compiled programs are kept, and that small ones are kept too."""
import os
import subprocess
import sys
import textwrap

import pytest

from modjax import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MODJAX_JAX_CACHE", str(tmp_path / "x"))
    assert compile_cache.default_dir() == str(tmp_path / "x")
    monkeypatch.delenv("MODJAX_JAX_CACHE")
    assert compile_cache.default_dir() == os.path.join(
        os.path.expanduser("~"), ".cache", "modjax", "jax")


@pytest.mark.parametrize("off", ["none", "OFF", "", "  "])
def test_off_values_leave_the_cache_off(off):
    assert compile_cache.enable(off) is None


def test_a_path_that_is_not_a_string_is_refused():
    with pytest.raises(TypeError, match="path must be a folder name"):
        compile_cache.enable(3)


def _run(code: str, env: dict) -> str:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k != "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PROGRAM = """
    import jax, jax.numpy as jnp
    from modjax import compile_cache
    hits = []
    jax.monitoring.register_event_listener(
        lambda name, **kw: hits.append(1) if name == "/jax/compilation_cache/cache_hits" else None)
    print(compile_cache.enable({path!r}))
    print(jax.config.jax_persistent_cache_min_compile_time_secs)
    print(float(jax.jit(lambda x: jnp.tanh(x) * 3 + 1)(jnp.arange(5.0)).sum()))
    print(len(hits))
"""


def test_programs_that_compile_fast_are_cached_and_reused_by_a_new_process(tmp_path):
    path = str(tmp_path / "cc")
    out = _run(PROGRAM.format(path=path), _env()).split()
    assert out[0] == path and float(out[1]) == 0.0
    assert out[3] == "0"  # an empty cache: compiled here
    entries = sorted(os.listdir(path))
    # a tiny program compiles in milliseconds: JAX's default threshold (1 s) would not keep it
    assert entries, "nothing was written to the compilation cache"
    again = _run(PROGRAM.format(path=path), _env()).split()
    assert again[2] == out[2]
    assert int(again[3]) >= 1  # read back from the cache, not compiled again
    assert sorted(os.listdir(path)) == entries


def test_the_environment_overrides_the_threshold(tmp_path):
    path = str(tmp_path / "cc")
    out = _run(PROGRAM.format(path=path),
               _env(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="30")).split()
    assert float(out[1]) == 30.0
    assert not os.path.isdir(path) or not os.listdir(path)


def test_options_keep_programs_and_threshold_as_asked(tmp_path):
    import jax

    from modjax import programs

    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs, programs.folder())
    try:
        assert compile_cache.enable(str(tmp_path), store_programs=False,
                                    min_compile_secs=0.5) == str(tmp_path)
        assert programs.folder() is None
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.5
        compile_cache.enable(str(tmp_path))
        assert programs.folder() == str(tmp_path / "programs")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
        with pytest.raises(ValueError, match="min_compile_secs must be >= 0"):
            compile_cache.enable(str(tmp_path), min_compile_secs=-1)
    finally:
        jax.config.update("jax_compilation_cache_dir", old[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
        programs.enable(old[2])
