"""Save and load trained models as ``(config, params)``.

Format (a directory, version 1)::

    DIR/format.json     {"format": "modjax-model", "version": 1}
    DIR/config.json     ModelConfig.to_json()
    DIR/params.msgpack  flax.serialization.msgpack_serialize of the params (nested dict)

Writes are safe (:mod:`modjax.atomic`): an existing directory is replaced only if it holds a
model checkpoint and the caller asks to overwrite, and a crash at any instant leaves the old or
the new checkpoint (or one that :func:`load_model` recovers).
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
from flax import serialization

from modjax.atomic import recover, write_artifact_dir
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


MODEL_FILES = ("format.json", "config.json", "params.msgpack")


def save_model(path: str, config: ModelConfig, params, *, overwrite: bool = False) -> None:
    """Write ``config`` and ``params`` to the directory ``path`` (safely: :mod:`modjax.atomic`).

    Args:
      path: target directory; it must not exist, be empty, or (with ``overwrite``) hold a
        model checkpoint.
      config: the model's :class:`~modjax.models.ModelConfig`.
      params: the params tree (dict, ``FrozenDict``, NNX pure dict).
      overwrite: replace an existing model checkpoint at ``path``.

    Raises:
      TypeError: ``config`` is not a ModelConfig.
      ValueError: ``path`` holds something else (a file, another artifact, the user's files),
        or a checkpoint and ``overwrite`` is False.
    """
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

    write_artifact_dir(path, MODEL_FORMAT, MODEL_FILES, write, overwrite=overwrite)


def load_model(path: str):
    """Read a directory written by :func:`save_model`; returns ``(config, params)``.

    A save interrupted between its two renames is recovered first
    (:func:`modjax.atomic.recover`).

    Raises:
      ValueError (naming ``path``): not a model directory, another format or version, a missing
        or corrupt file, a malformed config, or params whose tree or shapes do not fit the
        config.
    """
    read = recover(path)
    fmt_path = os.path.join(read, "format.json")
    if not os.path.isfile(fmt_path):
        raise ValueError(f"path {path!r} is not a modjax model directory (no format.json)")
    try:
        with open(fmt_path) as f:
            fmt = json.load(f)
        if not (isinstance(fmt, dict) and fmt.get("format") == MODEL_FORMAT
                and fmt.get("version") == MODEL_VERSION):
            raise ValueError(f"expected format {MODEL_FORMAT} v{MODEL_VERSION}, got "
                             f"{str(fmt)[:200]}")
        with open(os.path.join(read, "config.json")) as f:
            raw = json.load(f)
        if not isinstance(raw, dict):
            raise ValueError(f"config.json must hold an object of ModelConfig fields, got "
                             f"{type(raw).__name__}")
        config = ModelConfig(**raw)
        with open(os.path.join(read, "params.msgpack"), "rb") as f:
            params = serialization.msgpack_restore(f.read())
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"path {path!r}: unreadable model checkpoint: {type(e).__name__}: "
                         f"{e}") from None
    params = jax.tree_util.tree_map(np.asarray, to_plain_dict(params))
    from modjax.decompose import check_params  # local: decompose imports this module

    try:
        check_params(config, params)
    except ValueError as e:
        raise ValueError(f"path {path!r}: config.json does not fit params.msgpack: {e}") \
            from None
    return config, params
