"""Compiled programs kept on disk, so that a new process neither traces nor lowers them again.

JAX's persistent compilation cache (:mod:`modjax.compile_cache`) skips XLA's compilation in a
new process, but not the tracing and lowering of the Python function that come before it (the
cache is keyed by the lowered program): on a CLINC-sized model the decomposition program takes
about 0.8 s to trace and lower and 0.25 s to run. :func:`call` runs a jit-compiled function
through a serialized executable stored in a folder (``<compilation cache>/programs`` once
:func:`modjax.compile_cache.enable` has run): the first process that needs a program compiles
it and writes it; the next ones read it back (about 10 ms) and run it.

The key of a stored program names everything that shapes it: the function, its static
arguments, the tree structure, shapes, dtypes and weak types of its array arguments, the JAX
and jaxlib versions, the backend, the device kind and platform version, the host CPU's
feature flags (an executable compiled for one CPU may use instructions another lacks), the
precision flags, and a digest of modjax's own source files (so any change of the library
retires every stored program). Anything else falls back to the plain jit call: non-array
arguments, more than one device (a stored program is single-device), a program JAX cannot
serialize, or an unreadable file.

Reading a stored program loads machine code, as JAX's own compilation cache does: keep the
folder as private as the code you run.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from typing import Any, Callable, Dict, Optional

from absl import logging

from modjax.atomic import write_bytes

#: file name suffix of a stored program
SUFFIX = ".jaxexec"

_FOLDER: Optional[str] = None
_MEMO: Dict[str, Callable] = {}
_FAILED: set = set()
_SOURCE_DIGEST: Optional[str] = None
_HOST_DIGEST: Optional[str] = None


def enable(folder: Optional[str]) -> Optional[str]:
    """Keep compiled programs in ``folder`` (``None`` turns it off). Returns the folder."""
    global _FOLDER
    if folder is not None and not isinstance(folder, str):
        raise TypeError(f"folder must be a path (str) or None, got {type(folder).__name__}")
    _FOLDER = None if folder is None else os.path.expanduser(folder)
    _MEMO.clear()
    return _FOLDER


def folder() -> Optional[str]:
    """The folder of stored programs, or ``None`` when off."""
    return _FOLDER


def source_digest() -> str:
    """SHA-256 of modjax's Python sources (every ``.py`` file of the package, by path)."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        root = os.path.dirname(os.path.abspath(__file__))
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    h.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(f.read())
                    h.update(b"\0")
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def host_digest() -> str:
    """What the stored executables depend on beyond JAX's versions: the first device's kind and
    platform version and, for CPU devices, the processor's feature flags (``/proc/cpuinfo``;
    the machine type where that file is missing)."""
    global _HOST_DIGEST
    if _HOST_DIGEST is None:
        import platform

        import jax

        dev = jax.devices()[0]
        parts = [dev.platform, getattr(dev, "device_kind", ""),
                 getattr(dev.client, "platform_version", "")]
        if dev.platform == "cpu":
            flags = platform.machine()
            try:
                with open("/proc/cpuinfo") as f:
                    flags = next((line for line in f if line.startswith(("flags", "Features"))),
                                 flags)
            except OSError:
                pass
            parts.append(flags)
        _HOST_DIGEST = hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()
    return _HOST_DIGEST


def program_key(fn: Callable, args: tuple, static: Dict[str, Any]) -> Optional[str]:
    """The stored program's name for ``fn(*args, **static)``, or ``None`` when an argument is
    not an array (or ``None``), which stored programs do not take."""
    import jax
    import jaxlib
    import numpy as np

    leaves, treedef = jax.tree_util.tree_flatten(args)
    avals = []
    for a in leaves:
        if not isinstance(a, (np.ndarray, jax.Array)):
            return None
        weak = bool(getattr(a, "weak_type", False))
        avals.append(f"{tuple(a.shape)}:{np.dtype(a.dtype).name}:{'weak' if weak else ''}")
    parts = [getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", repr(fn)),
             repr(sorted(static.items())), str(treedef), ";".join(avals), jax.__version__,
             jaxlib.__version__, jax.default_backend(), str(jax.config.jax_enable_x64),
             str(jax.config.jax_default_matmul_precision), host_digest(), source_digest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def call(fn: Callable, args: tuple, static: Optional[Dict[str, Any]] = None):
    """``fn(*args, **static)`` for a ``jax.jit``-compiled ``fn`` whose keyword arguments are
    static, through a stored compiled program when :func:`enable` has set a folder.

    Same results as the plain call (the stored program is the same compiled computation);
    arguments are pytrees of arrays (``None`` allowed).
    """
    static = dict(static or {})
    if _FOLDER is None:
        return fn(*args, **static)
    import jax

    if jax.device_count() > 1:
        return fn(*args, **static)
    key = program_key(fn, args, static)
    if key is None or key in _FAILED:
        return fn(*args, **static)
    run = _MEMO.get(key)
    if run is None:
        run, loaded = _load_or_compile(fn, args, static, key)
        if run is None:
            _FAILED.add(key)
            return fn(*args, **static)
        if loaded:  # first use of a program read from disk: run it to completion once
            try:
                out = jax.block_until_ready(run(*args))
            except (TypeError, jax.errors.JaxRuntimeError) as e:
                logging.warning("stored program %s failed (%s); removed, using the plain path",
                                key, e)
                _FAILED.add(key)
                try:
                    os.remove(os.path.join(_FOLDER, key + SUFFIX))
                except OSError:
                    pass
                return fn(*args, **static)
            _MEMO[key] = run
            return out
        _MEMO[key] = run
    try:
        return run(*args)
    except TypeError as e:  # arguments the stored program does not take: the plain path
        logging.info("stored program %s refused its arguments (%s)", key, e)
        _FAILED.add(key)
        _MEMO.pop(key, None)
        return fn(*args, **static)


_HITS = [0]  # persistent-cache hits seen by _count_hits
_LISTENING = [False]


def _count_hits(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _HITS[0] += 1


def _compile(lowered):
    """``(compiled, storable)``: ``lowered.compile()``, and whether XLA compiled it in this
    process. An XLA:CPU executable read from JAX's persistent compilation cache serializes
    without its compiled kernels (running the stored copy fails with ``NOT_FOUND: Function ...
    not found``), so only a program compiled here is stored; one read from that cache is used
    in this process only. (An executable JAX kept in memory from an earlier cache hit escapes
    this check: :func:`call` runs a program read from disk to completion on its first use, and
    removes it if it fails.)"""
    import jax

    if not _LISTENING[0]:
        jax.monitoring.register_event_listener(_count_hits)
        _LISTENING[0] = True
    before = _HITS[0]
    compiled = lowered.compile()
    return compiled, _HITS[0] == before


def _load_or_compile(fn, args, static, key):
    """``(program, read_from_disk)``; ``(None, False)`` when only the plain path will do."""
    from jax.experimental import serialize_executable

    path = os.path.join(_FOLDER, key + SUFFIX)
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                blob, in_tree, out_tree = pickle.load(f)
            return serialize_executable.deserialize_and_load(blob, in_tree, out_tree), True
        except Exception as e:  # a damaged or foreign file: compile again
            logging.warning("stored program %s unreadable (%s); compiling it again", path, e)
    try:
        compiled, storable = _compile(fn.lower(*args, **static))
    except Exception as e:  # the plain jit path will raise it where the caller expects
        logging.info("not storing %s: %s", getattr(fn, "__qualname__", fn), e)
        return None, False
    if not storable:
        return compiled, False
    try:
        blob = pickle.dumps(serialize_executable.serialize(compiled))
    except Exception as e:  # not serializable: used in this process only
        logging.info("not storing %s: %s", getattr(fn, "__qualname__", fn), e)
        return compiled, False
    try:
        os.makedirs(_FOLDER, exist_ok=True)
        write_bytes(path, blob)
    except OSError as e:
        logging.warning("cannot store program in %s: %s", _FOLDER, e)
    return compiled, False


__all__ = ["SUFFIX", "call", "enable", "folder", "host_digest", "program_key", "source_digest"]
