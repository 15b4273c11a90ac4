"""Test-wide settings: offline hub, a persistent JAX compilation cache, shared fixtures."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if "MODJAX_DATA_CACHE" not in os.environ:  # the processed-data cache: one per test session
    import atexit
    import shutil
    import tempfile

    _DATA_CACHE = tempfile.mkdtemp(prefix="modjax-data-cache-")
    os.environ["MODJAX_DATA_CACHE"] = _DATA_CACHE
    atexit.register(shutil.rmtree, _DATA_CACHE, True)

import jax  # noqa: E402

from modjax import compile_cache  # noqa: E402

# a folder of its own per test worker, inside the library's cache folder (inherited by the
# subprocesses tests start): JAX writes a cache entry in place, not atomically, so two
# processes compiling the same program into one folder, or a reader meeting a half-written
# entry, are avoided. A pytest-xdist worker's processes run one at a time. Only programs that
# take 0.5 s or more to compile; no stored programs, so that tests which count traces see
# every trace.
# (the root is taken once, by the first process: workers and subprocesses inherit it)
_ROOT = os.environ.setdefault("MODJAX_TEST_CACHE_ROOT", compile_cache.default_dir())
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ["MODJAX_JAX_CACHE"] = os.path.join(_ROOT, f"tests-{_WORKER}")
_CACHE = compile_cache.enable(compile_cache.default_dir(), store_programs=False,
                              min_compile_secs=0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
