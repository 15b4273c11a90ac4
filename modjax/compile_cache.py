"""JAX's persistent compilation cache, as modjax's command line and experiments use it.

One place decides where compiled programs are kept and which ones: :func:`enable` points JAX
at a folder (default :func:`default_dir`: ``$MODJAX_JAX_CACHE``, else ``~/.cache/modjax/jax``)
and keeps **every** compiled program, however fast it compiled. JAX's own default keeps only
programs that took a second or more to compile; a command-line run compiles dozens of small
programs (metrics, the vote, slicing of batches) that each take 20-100 ms, and on a warm cache
they added about 2.8 s to a 10 s run of ``python -m modjax decompose`` on CLINC. Setting
``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` in the environment overrides the threshold.
The same call keeps compiled programs in ``<folder>/programs`` (:mod:`modjax.programs`), so
that a new process does not trace and lower them again either.
"""
from __future__ import annotations

import os
from typing import Optional

#: Values of a cache-folder setting that turn the cache off.
OFF = ("", "none", "off")


def default_dir() -> str:
    """``$MODJAX_JAX_CACHE``, else ``~/.cache/modjax/jax``."""
    return os.environ.get("MODJAX_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "modjax", "jax")


def enable(path: Optional[str] = None, *, store_programs: bool = True,
           min_compile_secs: float = 0.0) -> Optional[str]:
    """Turn on the persistent compilation cache in ``path`` (default :func:`default_dir`;
    ``"none"``, ``"off"`` or ``""`` leave it off). Returns the folder in use, or ``None``.

    Args:
      path: the cache folder.
      store_programs: also keep compiled programs in ``<path>/programs``
        (:mod:`modjax.programs`).
      min_compile_secs: keep programs that took at least this long to compile (0: all);
        ``$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` overrides it.

    Raises ``TypeError`` when ``path`` is not a string or ``None``, ``ValueError`` for a
    negative ``min_compile_secs``.
    """
    if path is not None and not isinstance(path, str):
        raise TypeError(f"path must be a folder name (str) or None, got {type(path).__name__}")
    if not min_compile_secs >= 0:
        raise ValueError(f"min_compile_secs must be >= 0, got {min_compile_secs!r}")
    if path is None:
        path = default_dir()
    from modjax import programs

    if path.strip().lower() in OFF:
        programs.enable(None)
        return None
    import jax

    path = os.path.expanduser(path)
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
    programs.enable(os.path.join(path, "programs") if store_programs else None)
    return path


__all__ = ["OFF", "default_dir", "enable"]
