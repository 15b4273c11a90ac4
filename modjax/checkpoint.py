"""Save and load trained models as ``(config, params)``.

Format (a directory, version 1)::

    DIR/format.json     {"format": "modjax-model", "version": 1}
    DIR/config.json     ModelConfig.to_json()
    DIR/params.msgpack  flax.serialization.msgpack_serialize of the params (nested dict)

Writes are atomic: everything goes to a temporary sibling directory that is then renamed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import jax
import numpy as np
from flax import serialization

from modjax.models import ModelConfig

MODEL_FORMAT = "modjax-model"
MODEL_VERSION = 1


def to_plain_dict(tree):
    """A params tree (dict, FrozenDict, NNX state as a pure dict) as nested plain dicts."""
    if hasattr(tree, "unfreeze"):
        tree = tree.unfreeze()
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return {str(k): to_plain_dict(v) for k, v in tree.items()}
    return tree


def atomic_write_dir(path: str, write_fn) -> None:
    """Call ``write_fn(tmpdir)`` then rename ``tmpdir`` to ``path`` (replacing it)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        write_fn(tmp)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model(path: str, config: ModelConfig, params) -> None:
    """Write ``config`` and ``params`` to the directory ``path`` (atomically)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    state = jax.tree_util.tree_map(np.asarray, to_plain_dict(params))

    def write(d):
        with open(os.path.join(d, "format.json"), "w") as f:
            json.dump({"format": MODEL_FORMAT, "version": MODEL_VERSION}, f)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config.to_json())
        with open(os.path.join(d, "params.msgpack"), "wb") as f:
            f.write(serialization.msgpack_serialize(state))

    atomic_write_dir(path, write)


def load_model(path: str):
    """Read a directory written by :func:`save_model`; returns ``(config, params)``."""
    fmt_path = os.path.join(path, "format.json")
    if not os.path.isfile(fmt_path):
        raise ValueError(f"path {path!r} is not a modjax model directory (no format.json)")
    with open(fmt_path) as f:
        fmt = json.load(f)
    if fmt.get("format") != MODEL_FORMAT or fmt.get("version") != MODEL_VERSION:
        raise ValueError(f"path {path!r}: expected format {MODEL_FORMAT} v{MODEL_VERSION}, "
                         f"got {fmt}")
    with open(os.path.join(path, "config.json")) as f:
        config = ModelConfig.from_json(f.read())
    with open(os.path.join(path, "params.msgpack"), "rb") as f:
        params = serialization.msgpack_restore(f.read())
    params = jax.tree_util.tree_map(np.asarray, to_plain_dict(params))
    return config, params
