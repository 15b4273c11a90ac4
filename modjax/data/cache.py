"""A disk cache of processed datasets, so that a second run does not read and tokenise again.

:func:`modjax.data.load_dataset` keeps each :class:`~modjax.data.base.TaskData` it builds from
local files in one ``.npz`` file under :func:`default_cache_dir` (``$MODJAX_DATA_CACHE``, else
``~/.cache/modjax/data``; ``"none"`` turns the cache off). The file's name is a digest of

* the dataset name and the loader's keyword arguments,
* :data:`PREPROCESSING_VERSION` (raised whenever a loader's output changes), and
* the SHA-256 of every file in the dataset's source folder (its relative path and content),

so an edited, added or removed source file, another option or a new preprocessing gives a new
entry; nothing stale is ever returned. Entries are written atomically (a crash leaves no half
file) and an unreadable entry is rebuilt. Only ``source="local"`` loads are cached: hub loads
have ``datasets``' own cache, and synthetic data is generated in milliseconds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from modjax.data.base import TaskData

#: Raised whenever a loader's output for the same files and options changes.
PREPROCESSING_VERSION = 2

#: The source folder (under the data folder) each cached dataset is read from.
SOURCE_FOLDERS = {"mathqa": "mathqa", "clinc": "clinc", "toxic": "toxicity", "brown": "brown",
                  "tatoeba": "tatoeba"}

_ARRAY_FIELDS = tuple(f.name for f in dataclasses.fields(TaskData)
                      if f.name.startswith(("x_", "y_", "decoder_input_", "concern_")))
_DIGESTS: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def default_cache_dir() -> Optional[str]:
    """``$MODJAX_DATA_CACHE``, else ``~/.cache/modjax/data``; ``None`` when the variable is
    ``"none"`` (cache off)."""
    env = os.environ.get("MODJAX_DATA_CACHE")
    if env and env.lower() == "none":
        return None
    return env or os.path.join(os.path.expanduser("~"), ".cache", "modjax", "data")


def _file_digest(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def folder_digest(folder: str) -> str:
    """SHA-256 over every file under ``folder`` (sorted relative paths and their contents)."""
    if not os.path.isdir(folder):
        raise ValueError(f"folder: expected a dataset folder, got {folder!r} (not a folder)")
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(os.path.relpath(path, folder).encode() + b"\0")
            h.update(_file_digest(path).encode() + b"\n")
    return h.hexdigest()


def cache_key(name: str, source_folder: str, kwargs: dict) -> Optional[str]:
    """The entry's digest, or ``None`` when ``kwargs`` cannot be written as JSON (such a load
    is not cached)."""
    try:
        opts = json.dumps(kwargs, sort_keys=True)
    except TypeError:
        return None
    h = hashlib.sha256(json.dumps({"name": name, "options": opts,
                                   "version": PREPROCESSING_VERSION}).encode())
    h.update(folder_digest(source_folder).encode())
    return h.hexdigest()[:32]


def _to_bytes(data: TaskData) -> bytes:
    arrays = {k: getattr(data, k) for k in _ARRAY_FIELDS if getattr(data, k) is not None}
    meta = {f.name: getattr(data, f.name) for f in dataclasses.fields(TaskData)
            if f.name not in _ARRAY_FIELDS}
    meta["class_names"] = [str(c) for c in meta["class_names"]]
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def _from_file(path: str) -> TaskData:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in _ARRAY_FIELDS if k in z.files}
    meta["class_names"] = tuple(meta["class_names"])
    return TaskData(**meta, **arrays)


def _entry(name: str, path, kwargs: dict, cache_dir: Optional[str]) -> Optional[str]:
    """The cache file of this load, or ``None`` where it is not cached."""
    from modjax.data.text import data_folder

    folder = cache_dir if cache_dir is not None else default_cache_dir()
    if folder is None or folder.lower() == "none" or name not in SOURCE_FOLDERS:
        return None
    try:
        source = data_folder(path, SOURCE_FOLDERS[name])
    except ValueError:  # no such folder: the loader says so in its own words
        return None
    key = cache_key(name, source, kwargs)
    return None if key is None else os.path.join(folder, f"{name}-{key}.npz")


def lookup(name: str, path=None, kwargs: Optional[dict] = None, *,
           cache_dir: Optional[str] = None) -> Optional[str]:
    """The cache file that holds this load already, or ``None`` (not cached yet, or not
    cacheable): lets a caller say whether a load will tokenise."""
    entry = _entry(name, path, kwargs or {}, cache_dir)
    return entry if entry is not None and os.path.isfile(entry) else None


def cached_dataset(name: str, path, kwargs: dict, build: Callable[[], TaskData], *,
                   cache_dir: Optional[str] = None) -> TaskData:
    """``build()``, through the cache entry for (``name``, the files, ``kwargs``).

    Args:
      name: the dataset name (a key of :data:`SOURCE_FOLDERS`).
      path: the data folder the loader reads (``None``: :func:`default_data_dir`).
      kwargs: the loader's other keyword arguments (part of the key).
      build: makes the :class:`TaskData` on a miss.
      cache_dir: the cache folder (default :func:`default_cache_dir`); ``"none"``: no cache.
    """
    from modjax.atomic import write_bytes

    entry = _entry(name, path, kwargs, cache_dir)
    if entry is None:
        return build()
    folder = os.path.dirname(entry)
    if os.path.isfile(entry):
        try:
            data = _from_file(entry)
        except (OSError, ValueError, KeyError, TypeError) as e:
            logging.warning("data cache entry %s unreadable (%s): building it again", entry, e)
        else:
            logging.info("%s: processed data read from the cache %s", name, entry)
            return data
    logging.info("%s: reading and tokenising the source files (first time; the result is "
                 "cached in %s)", name, folder)
    t0 = time.perf_counter()
    data = build()
    try:
        os.makedirs(folder, exist_ok=True)
        write_bytes(entry, _to_bytes(data))
    except OSError as e:  # a read-only home must not stop the load
        logging.warning("cannot write the data cache %s (%s): not cached", entry, e)
    else:
        logging.info("%s: processed in %.1fs, cached as %s", name, time.perf_counter() - t0,
                     entry)
    return data


__all__ = ["PREPROCESSING_VERSION", "SOURCE_FOLDERS", "cache_key", "cached_dataset",
           "default_cache_dir", "folder_digest", "lookup"]
