"""Save and load a :class:`~modjax.decomposition.Decomposition` without copying the model.

A decomposition is small (boolean keep vectors); the model it came from is not. So a saved
decomposition holds the keep vectors and a *content hash* of the base params, and is loaded
against params the caller supplies; loading against different params is refused.

Format (a directory, written safely with :func:`modjax.atomic.write_artifact_dir`: an existing
directory is replaced only if it holds a decomposition and the caller passes ``overwrite=True``)::

    DIR/format.json      {"format": "modjax-decomposition", "version": 2}
    DIR/meta.json        {"config": ModelConfig fields,
                          "options": DecomposeOptions fields,
                          "class_names": [...],
                          "params_hash": "sha256:<hex>",
                          "shapes": {"keep": [...], "head_class": [...], "has_positives": [...]},
                          "dtypes": {"keep": "bool", ...},
                          "field_hashes": {"config": "sha256:<hex>", "options": ...,
                                           "class_names": ..., "shapes": ..., "dtypes": ...,
                                           "arrays.keep": ..., "arrays.head_class": ...,
                                           "arrays.has_positives": ...}}
    DIR/arrays.msgpack   flax.serialization.msgpack_serialize of
                         {"keep": bool [C, L, (T,) F], "head_class": int32 [C],
                          "has_positives": bool [C, M]}  (NumPy arrays, bit-exact)

``field_hashes`` holds a SHA-256 of each meta.json field that changes results (its canonical
JSON: sorted keys, no spaces) and of each array (dtype str, shape, raw little-endian bytes): a
reader refuses a file whose field or array was edited after saving, naming it. Version 1 (no
``field_hashes``) is still read, its fields validated only.

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

from modjax.atomic import recover, write_artifact_dir
from modjax.checkpoint import to_plain_dict
from modjax.decomposition import DecomposeOptions, Decomposition
from modjax.models import ModelConfig

DECOMP_FORMAT = "modjax-decomposition"
DECOMP_VERSION = 2
_READABLE_VERSIONS = (1, 2)
DECOMP_FILES = ("format.json", "meta.json", "arrays.msgpack")
_HASH_PREFIX = "sha256:"
_ARRAYS = ("keep", "head_class", "has_positives")
#: The meta.json fields that change results, each covered by a hash in ``field_hashes``.
_HASHED_FIELDS = ("config", "options", "class_names", "shapes", "dtypes")


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


def _digest(value) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return _HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    h = hashlib.sha256(json.dumps([a.dtype.str, list(a.shape)]).encode("utf-8"))
    h.update(a.tobytes())
    return _HASH_PREFIX + h.hexdigest()


def save_decomposition(path: str, decomp: Decomposition, params, *,
                       overwrite: bool = False) -> None:
    """Write ``decomp`` to the directory ``path`` (safely: :mod:`modjax.atomic`), bound to
    ``params``.

    Args:
      path: target directory; it must not exist, be empty, or (with ``overwrite``) hold a
        decomposition.
      decomp: the :class:`~modjax.decomposition.Decomposition` to store.
      params: the base params ``decomp`` was computed from; only their hash is stored.
      overwrite: replace an existing decomposition at ``path``.

    Raises:
      TypeError: ``decomp`` is not a Decomposition.
      ValueError: ``params`` do not fit ``decomp.config``; ``path`` holds something else (a
        file, a model checkpoint, the user's files), or a decomposition and ``overwrite`` is
        False.
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
    meta["field_hashes"] = {**{k: _digest(meta[k]) for k in _HASHED_FIELDS},
                            **{f"arrays.{k}": _array_digest(a) for k, a in arrays.items()}}

    def write(d):
        with open(os.path.join(d, "format.json"), "w") as f:
            json.dump({"format": DECOMP_FORMAT, "version": DECOMP_VERSION}, f)
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        with open(os.path.join(d, "arrays.msgpack"), "wb") as f:
            f.write(serialization.msgpack_serialize(arrays))

    write_artifact_dir(path, DECOMP_FORMAT, DECOMP_FILES, write, overwrite=overwrite)


def _field(meta: dict, path: str, name: str, kind, kind_name: str):
    if name not in meta:
        raise ValueError(f"path {path!r}: corrupt decomposition: meta.json has no field "
                         f"{name!r}")
    v = meta[name]
    if not isinstance(v, kind):
        raise ValueError(f"path {path!r}: corrupt decomposition: meta.json field {name!r} must "
                         f"be {kind_name}, got {type(v).__name__}")
    return v


def load_decomposition(path: str, params) -> Decomposition:
    """Read a directory written by :func:`save_decomposition`, checking it against ``params``.

    A save interrupted between its two renames is recovered first
    (:func:`modjax.atomic.recover`). Every field of ``meta.json`` that changes results
    (config, options, class names, shapes, dtypes) and every array is covered by a hash stored
    at save time (``field_hashes``, version 2); an edited field is refused by name. Version 1
    files (no ``field_hashes``) are read with their fields validated only.

    Raises:
      ValueError (naming ``path`` and the field): not a decomposition directory, another format
        or version, a missing, ill-typed, edited or corrupt field or file, or ``params`` whose
        content hash differs from the one the decomposition came from.
    """
    read = recover(path)
    fmt_path = os.path.join(read, "format.json")
    if not os.path.isfile(fmt_path):
        raise ValueError(f"path {path!r} is not a modjax decomposition directory "
                         "(no format.json)")
    try:
        with open(fmt_path) as f:
            fmt = json.load(f)
        version = _fmt_version(fmt)
        if version is None:
            raise ValueError(f"path {path!r}: expected format {DECOMP_FORMAT} "
                             f"v{DECOMP_VERSION}, got {str(fmt)[:200]}")
        with open(os.path.join(read, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"path {path!r}: unreadable decomposition metadata: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"path {path!r}: corrupt decomposition: meta.json must hold an object, "
                         f"got {type(meta).__name__}")
    want = _field(meta, path, "params_hash", str, "a string")
    for name in _HASHED_FIELDS:
        _field(meta, path, name, list if name == "class_names" else dict,
               "a list" if name == "class_names" else "an object")
    hashes = None
    if version >= 2:
        hashes = _field(meta, path, "field_hashes", dict, "an object")
        for name in _HASHED_FIELDS:
            if hashes.get(name) != _digest(meta[name]):
                raise ValueError(f"path {path!r}: meta.json field {name!r} differs from what was "
                                 "saved (its hash does not match field_hashes): the file was "
                                 "edited or corrupted")
    got = params_hash(params)
    if got != want:
        raise ValueError(f"path {path!r}: the params differ from those the decomposition came "
                         f"from (params hash {got}, decomposition was made from {want})")
    try:
        config = ModelConfig(**meta["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"path {path!r}: corrupt decomposition: meta.json field 'config': "
                         f"{e}") from None
    try:
        # files written before ``padded_steps`` existed were computed on real steps only
        options = DecomposeOptions(**{"padded_steps": "skip", **meta["options"]})
    except (TypeError, ValueError) as e:
        raise ValueError(f"path {path!r}: corrupt decomposition: meta.json field 'options': "
                         f"{e}") from None
    names = meta["class_names"]
    if not all(isinstance(c, str) for c in names):
        raise ValueError(f"path {path!r}: corrupt decomposition: meta.json field 'class_names' "
                         "must hold strings")
    try:
        with open(os.path.join(read, "arrays.msgpack"), "rb") as f:
            raw = serialization.msgpack_restore(f.read())
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"path {path!r}: corrupt decomposition: arrays.msgpack: "
                         f"{type(e).__name__}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"path {path!r}: corrupt decomposition: arrays.msgpack must hold a "
                         "map of arrays")
    arrays = {}
    for k in _ARRAYS:
        if k not in raw:
            raise ValueError(f"path {path!r}: corrupt decomposition: array {k!r} missing")
        a = np.asarray(raw[k])
        if list(a.shape) != meta["shapes"].get(k) or a.dtype.name != meta["dtypes"].get(k):
            raise ValueError(f"path {path!r}: corrupt decomposition: array {k!r} has "
                             f"{a.dtype.name}{list(a.shape)}, meta.json says "
                             f"{meta['dtypes'].get(k)}{meta['shapes'].get(k)}")
        if hashes is not None and hashes.get(f"arrays.{k}") != _array_digest(a):
            raise ValueError(f"path {path!r}: array {k!r} differs from what was saved (its hash "
                             "does not match field_hashes): the file was edited or corrupted")
        arrays[k] = a
    _check_consistent(path, arrays, config, options, names)
    return Decomposition(keep=jnp.asarray(arrays["keep"]),
                         head_class=jnp.asarray(arrays["head_class"]),
                         has_positives=jnp.asarray(arrays["has_positives"]), config=config,
                         options=options, class_names=tuple(names))


def _check_consistent(path, arrays, config, options, names) -> None:
    """The arrays' shapes and values against the config, options and class names."""
    C = len(names)
    T = config.steps
    F = config.cell_config.gate_width if options.gate_mode == "per_gate" else config.units
    want = {"keep": (C,) + config.keep_shape(F, options.mode == "unrolled"),
            "head_class": (C,), "has_positives": (C, T if options.mode == "unrolled" else 1)}
    for k, shape in want.items():
        if arrays[k].shape != shape:
            raise ValueError(f"path {path!r}: corrupt decomposition: array {k!r} has shape "
                             f"{list(arrays[k].shape)}, but the config, options and class names "
                             f"need {list(shape)}")
    for k, dtype in (("keep", "bool"), ("head_class", "int32"), ("has_positives", "bool")):
        if arrays[k].dtype.name != dtype:
            raise ValueError(f"path {path!r}: corrupt decomposition: array {k!r} must be "
                             f"{dtype}, got {arrays[k].dtype.name}")
    hc = arrays["head_class"]
    n_out = config.num_classes if config.io != "encoder_decoder" else C
    if hc.size and (hc.min() < 0 or hc.max() >= n_out):
        raise ValueError(f"path {path!r}: corrupt decomposition: head_class must lie in "
                         f"[0, {n_out}), got range [{hc.min()}, {hc.max()}]")


def _fmt_version(fmt):
    """The format version a reader accepts (1 or 2), or ``None``."""
    if isinstance(fmt, dict) and fmt.get("format") == DECOMP_FORMAT and \
            fmt.get("version") in _READABLE_VERSIONS and \
            not isinstance(fmt.get("version"), bool):
        return fmt["version"]
    return None
