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

import gc  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from modjax import compile_cache  # noqa: E402

# the library's cache folder; only programs that take 0.5 s or more to compile; no stored
# exported programs, so that tests which count traces see every trace
_CACHE = compile_cache.enable(compile_cache.default_dir(), store_programs=False,
                              min_compile_secs=0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _memory_maps() -> int:
    """How many memory mappings this process holds (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _max_memory_maps() -> int:
    """Linux's per-process limit on memory mappings (``vm.max_map_count``; 0 if unknown)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module.

    Each XLA:CPU executable holds a few memory mappings for its machine code until it is freed,
    and JAX keeps every program it compiled. A test worker that ran a few hundred test modules'
    programs reached Linux's limit of 65,530 mappings per process (``vm.max_map_count``); the
    next compilation then failed inside XLA and killed the worker with a segmentation fault,
    in whichever test happened to compile at that moment. Programs used again by a later
    module are read back from the persistent compilation cache.

    After clearing, the process must be well below the limit: a module that leaves half the
    mappings behind fails here, by name, instead of a later test crashing at random.
    """
    yield
    jax.clear_caches()
    gc.collect()
    limit = _max_memory_maps()
    if limit:
        held = _memory_maps()
        assert held < limit // 2, (
            f"{held} memory mappings still held after this module's programs were released "
            f"(limit vm.max_map_count = {limit}): something keeps compiled programs alive")
