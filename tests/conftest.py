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

# the library's cache folder; only programs that take 0.5 s or more to compile; no stored
# exported programs, so that tests which count traces see every trace
_CACHE = compile_cache.enable(compile_cache.default_dir(), store_programs=False,
                              min_compile_secs=0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
