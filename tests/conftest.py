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

_CACHE = os.environ.get("MODJAX_JAX_CACHE",
                        os.path.join(os.path.expanduser("~"), ".cache", "modjax", "jax"))
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
