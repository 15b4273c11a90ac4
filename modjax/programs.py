"""Exported programs kept on disk, so that a new process does not trace them again.

JAX's persistent compilation cache (:mod:`modjax.compile_cache`) skips XLA's compilation in a
new process, but not the tracing and lowering of the Python function that comes before it: on
a CLINC-sized model the decomposition program takes about 0.8 s to trace and lower and 0.25 s
to run. :func:`call` runs a jit-compiled function through a :mod:`jax.export` artifact stored in
a folder (``<compilation cache>/exported`` once :func:`modjax.compile_cache.enable` has run):
the first process that needs a program traces it, exports it and writes it; the next ones read
it back and only lower a thin wrapper around it.

The key of a stored program names everything that shapes it: the function, its static
arguments, the tree structure, shapes and dtypes of its array arguments, the JAX and jaxlib
versions, the backend and the precision flags, and a digest of modjax's own source files (so
any change of the library retires every stored program). Anything else falls back to the plain
jit call: non-array arguments, more than one device (a stored program is single-device), a
program JAX cannot export, or an unreadable file.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Dict, Optional

from absl import logging

from modjax.atomic import write_bytes

_FOLDER: Optional[str] = None
_MEMO: Dict[str, Callable] = {}
_FAILED: set = set()
_SOURCE_DIGEST: Optional[str] = None


def enable(folder: Optional[str]) -> Optional[str]:
    """Keep exported programs in ``folder`` (``None`` turns it off). Returns the folder."""
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
        avals.append(f"{tuple(a.shape)}:{np.dtype(a.dtype).name}")
    parts = [getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", repr(fn)),
             repr(sorted(static.items())), str(treedef), ";".join(avals), jax.__version__,
             jaxlib.__version__, jax.default_backend(), str(jax.config.jax_enable_x64),
             str(jax.config.jax_default_matmul_precision), source_digest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def call(fn: Callable, args: tuple, static: Optional[Dict[str, Any]] = None):
    """``fn(*args, **static)`` for a ``jax.jit``-compiled ``fn`` whose keyword arguments are
    static, through a stored exported program when :func:`enable` has set a folder.

    Same results as the plain call (the stored program is the same lowered computation);
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
        run = _load_or_export(fn, args, static, key)
        if run is None:
            _FAILED.add(key)
            return fn(*args, **static)
        _MEMO[key] = run
    return run(*args)


def _load_or_export(fn, args, static, key) -> Optional[Callable]:
    import jax
    from jax import export

    path = os.path.join(_FOLDER, key + ".jaxexport")
    exp = None
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                exp = export.deserialize(bytearray(f.read()))
        except Exception as e:  # a damaged or foreign file: export again
            logging.warning("stored program %s unreadable (%s); exporting it again", path, e)
    if exp is None:
        try:
            exp = export.export(fn)(*args, **static)
            blob = exp.serialize()
        except Exception as e:  # not exportable (or no flatbuffers): the plain jit path
            logging.info("not storing %s: %s", getattr(fn, "__qualname__", fn), e)
            return None
        try:
            os.makedirs(_FOLDER, exist_ok=True)
            write_bytes(path, bytes(blob))
        except OSError as e:
            logging.warning("cannot store program in %s: %s", _FOLDER, e)
    return jax.jit(exp.call)


__all__ = ["call", "enable", "folder", "program_key", "source_digest"]
