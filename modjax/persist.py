"""Save and load a :class:`~modjax.decomposition.Decomposition` without copying the model.

A decomposition is small (boolean keep vectors); the model it came from is not. So a saved
decomposition holds the keep vectors and a *content hash* of the base params, and is loaded
against params the caller supplies; loading against different params is refused.

Format (a directory, written atomically with :func:`modjax.checkpoint.atomic_write_dir`)::

    DIR/format.json      {"format": "modjax-decomposition", "version": 1}
    DIR/meta.json        {"config": ModelConfig fields,
                          "options": DecomposeOptions fields,
                          "class_names": [...],
                          "params_hash": "sha256:<hex>",
                          "shapes": {"keep": [...], "head_class": [...], "has_positives": [...]},
                          "dtypes": {"keep": "bool", ...}}
    DIR/arrays.msgpack   flax.serialization.msgpack_serialize of
                         {"keep": bool [C, L, (T,) F], "head_class": int32 [C],
                          "has_positives": bool [C, M]}  (NumPy arrays, bit-exact)

``params_hash`` (:func:`params_hash`) is a SHA-256 over the params' leaves in sorted key-path
order; for every leaf it hashes the key path, the dtype (little-endian), the shape and the
raw little-endian bytes. It depends only on the content, not on the container: a plain dict,
a ``FrozenDict``, ``{"params": ...}`` and NumPy vs JAX arrays give the same hash.

A reader refuses a directory whose ``format.json`` names another format or version.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from modjax.checkpoint import atomic_write_dir, to_plain_dict
from modjax.decomposition import DecomposeOptions, Decomposition
from modjax.models import ModelConfig

DECOMP_FORMAT = "modjax-decomposition"
DECOMP_VERSION = 1
_HASH_PREFIX = "sha256:"
_ARRAYS = ("keep", "head_class", "has_positives")


def _unwrap(params):
    params = to_plain_dict(params)
    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    return params


def params_hash(params) -> str:
    """Content hash of a params tree: ``"sha256:<hex>"`` (see the module docstring).

    Container-independent: dict, ``FrozenDict`` and ``{"params": ...}`` wrappers of the same
    arrays hash alike; the dtype, shape and every bit of every leaf count.
    """
    leaves = jax.tree_util.tree_flatten_with_path(_unwrap(params))[0]
    items = sorted((jax.tree_util.keystr(p), leaf) for p, leaf in leaves)
    h = hashlib.sha256()
    for key, leaf in items:
        a = np.asarray(leaf)
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        header = json.dumps([key, a.dtype.name, a.dtype.str, list(a.shape)])
        h.update(len(header).to_bytes(8, "little"))
        h.update(header.encode("utf-8"))
        h.update(a.nbytes.to_bytes(8, "little"))
        h.update(a.tobytes())
    return _HASH_PREFIX + h.hexdigest()


def save_decomposition(path: str, decomp: Decomposition, params) -> None:
    """Write ``decomp`` to the directory ``path`` (atomically), bound to ``params``.

    Args:
      path: target directory (replaced if it exists).
      decomp: the :class:`~modjax.decomposition.Decomposition` to store.
      params: the base params ``decomp`` was computed from; only their hash is stored.
    """
    if not isinstance(decomp, Decomposition):
        raise TypeError(f"decomp must be a modjax Decomposition, got {type(decomp).__name__}")
    from modjax.decompose import check_params  # local: avoid a heavy import at module load
    check_params(decomp.config, params)
    arrays = {k: np.asarray(getattr(decomp, k)) for k in _ARRAYS}
    meta = {
        "config": dataclasses.asdict(decomp.config),
        "options": dataclasses.asdict(decomp.options),
        "class_names": [str(c) for c in decomp.class_names],
        "params_hash": params_hash(params),
        "shapes": {k: list(a.shape) for k, a in arrays.items()},
        "dtypes": {k: a.dtype.name for k, a in arrays.items()},
    }

    def write(d):
        with open(os.path.join(d, "format.json"), "w") as f:
            json.dump({"format": DECOMP_FORMAT, "version": DECOMP_VERSION}, f)
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        with open(os.path.join(d, "arrays.msgpack"), "wb") as f:
            f.write(serialization.msgpack_serialize(arrays))

    atomic_write_dir(path, write)


def load_decomposition(path: str, params) -> Decomposition:
    """Read a directory written by :func:`save_decomposition`, checking it against ``params``.

    Raises:
      ValueError: not a decomposition directory, another format version, a corrupt file, or
        ``params`` whose content hash differs from the one the decomposition came from.
    """
    fmt_path = os.path.join(path, "format.json")
    if not os.path.isfile(fmt_path):
        raise ValueError(f"path {path!r} is not a modjax decomposition directory "
                         "(no format.json)")
    try:
        with open(fmt_path) as f:
            fmt = json.load(f)
        if not _fmt_ok(fmt):
            raise ValueError(f"path {path!r}: expected format {DECOMP_FORMAT} "
                             f"v{DECOMP_VERSION}, got {fmt}")
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"path {path!r}: unreadable decomposition metadata: {e}") from None
    want = meta.get("params_hash")
    got = params_hash(params)
    if got != want:
        raise ValueError(f"path {path!r}: the params differ from those the decomposition came "
                         f"from (params hash {got}, decomposition was made from {want})")
    try:
        config = ModelConfig(**meta["config"])
        # files written before ``padded_steps`` existed were computed on real steps only
        options = DecomposeOptions(**{"padded_steps": "skip", **meta["options"]})
        with open(os.path.join(path, "arrays.msgpack"), "rb") as f:
            raw = serialization.msgpack_restore(f.read())
    except (OSError, KeyError, TypeError) as e:
        raise ValueError(f"path {path!r}: corrupt decomposition: {type(e).__name__}: {e}") \
            from None
    except ValueError as e:
        raise ValueError(f"path {path!r}: corrupt decomposition: {e}") from None
    arrays = {}
    for k in _ARRAYS:
        if k not in raw:
            raise ValueError(f"path {path!r}: corrupt decomposition: array {k!r} missing")
        a = np.asarray(raw[k])
        if list(a.shape) != meta["shapes"][k] or a.dtype.name != meta["dtypes"][k]:
            raise ValueError(f"path {path!r}: corrupt decomposition: array {k!r} has "
                             f"{a.dtype.name}{list(a.shape)}, meta.json says "
                             f"{meta['dtypes'][k]}{meta['shapes'][k]}")
        arrays[k] = jnp.asarray(a)
    return Decomposition(keep=arrays["keep"], head_class=arrays["head_class"],
                         has_positives=arrays["has_positives"], config=config,
                         options=options, class_names=tuple(meta["class_names"]))


def _fmt_ok(fmt) -> bool:
    return (isinstance(fmt, dict) and fmt.get("format") == DECOMP_FORMAT
            and fmt.get("version") == DECOMP_VERSION)
