"""Import a trained Keras 2 ``.h5`` model as ``(ModelConfig, params)``, with h5py only.

No TensorFlow is needed: the architecture is read from the root attribute ``model_config``
(JSON) and the weights from ``model_weights/<layer>/<weight name>``, in the order given by the
layer group's ``weight_names`` attribute. Keras's recurrent layout is the one
:mod:`modjax.cells` uses (``kernel [D, gH]``, ``recurrent_kernel [H, gH]``, ``bias [gH]`` or
``[2, gH]`` for a GRU with ``reset_after=True``; gate order LSTM ``i, f, c, o``, GRU ``z, r, h``),
so every weight is copied as it is (cast to float32).

Supported ``Sequential`` models (the grammar; ``?`` optional, ``*`` any number)::

    InputLayer? → Embedding → (Flatten → RepeatVector(n))? → Dropout* →
    (SimpleRNN | LSTM | GRU)+ (Dropout* between them) → Dropout* →
    (Dense | TimeDistributed(Dense)) [softmax, or linear + Activation("softmax")]

Every recurrent layer may instead be ``Bidirectional(SimpleRNN | LSTM | GRU)`` with
``merge_mode`` ``"concat"`` or ``"sum"`` (all layers alike): the forward and backward layers'
weights are stacked on a leading direction axis (``rnn_l/kernel [2, D, gH]``, forward first)
and the config gets ``bidirectional=True`` (``docs/method.md#bidirectional``). The two halves
are told apart by ``forward``/``backward`` in the weight names, else by their order.

The I/O type is inferred:

* ``Flatten`` + ``RepeatVector(1)`` → ``one_to_one``;
* ``Flatten`` + ``RepeatVector(n > 1)`` → ``one_to_many`` (``out_len = n``);
* no ``RepeatVector``, last recurrent layer ``return_sequences=False`` → ``many_to_one``;
* no ``RepeatVector``, ``return_sequences=True`` and a (TimeDistributed) Dense → ``many_to_many``.

The head's softmax is dropped: modjax's ``dense`` holds the logits (softmax at predict time is
argmax-equivalent, and ``jax.nn.softmax(logits)`` gives Keras's probabilities). The rate of a
``Dropout`` right before the head becomes ``config.dropout``; other ``Dropout`` layers and an
RNN's ``dropout``/``recurrent_dropout`` do nothing at inference and are dropped with a warning.
All recurrent layers must share cell type, units, activations and ``reset_after`` (a
:class:`~modjax.models.ModelConfig` describes one uniform stack).

Anything else — other ``Bidirectional`` merge modes, ``Conv1D``, ``go_backwards=True``,
``stateful=True``,
``return_state=True``, ``use_bias=False``, an activation other than tanh/relu (sigmoid /
hard_sigmoid for gates), a non-softmax output, hidden Dense layers, functional (non-Sequential)
models — raises ``ValueError`` naming the layer, its class and the setting. An unreadable
(truncated, corrupt, non-HDF5) file raises ``ValueError`` too.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Optional

import numpy as np

from modjax.models import ModelConfig

RECURRENT = {"SimpleRNN": "simple", "LSTM": "lstm", "GRU": "gru"}
_CELL_BLOCKS = {"simple": 1, "lstm": 4, "gru": 3}


class _Layer:
    """One layer of the model config: class, config dict and (for errors) a description."""

    def __init__(self, spec: dict):
        if not isinstance(spec, dict) or "class_name" not in spec:
            raise ValueError(f"malformed layer entry in model_config: {str(spec)[:200]}")
        self.cls = spec["class_name"]
        self.cfg = spec.get("config", {}) or {}
        self.name = self.cfg.get("name", "?")

    def err(self, setting: str) -> ValueError:
        return ValueError(f"Keras layer {self.name!r} ({self.cls}): unsupported {setting}")


def _as_str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _act_name(layer: _Layer, key: str) -> str:
    v = layer.cfg.get(key)
    if isinstance(v, dict):  # a serialised activation object
        v = v.get("config", {}).get("name", v.get("class_name"))
    return v if isinstance(v, str) else repr(v)


def _weights(mw, layer_name: str, part: Optional[int] = None) -> dict:
    """``{short name: array}`` of one layer group (short name: ``kernel``, ``bias``, ...).

    ``part`` (a ``Bidirectional`` layer): 0 for the forward layer's weights, 1 for the
    backward's: the names holding ``forward``/``backward``, else the first/second half.
    """
    if layer_name not in mw:
        raise ValueError(f"weights of Keras layer {layer_name!r} are missing from model_weights")
    g = mw[layer_name]
    names = [_as_str(n) for n in np.asarray(g.attrs.get("weight_names", [])).ravel()]
    if part is not None:
        tag = ("forward", "backward")[part]
        tagged = [n for n in names if tag in n.lower()]
        half = len(names) // 2
        names = tagged if tagged else (names[:half] if part == 0 else names[half:])
    out = {}
    for n in names:
        short = n.rsplit("/", 1)[-1].split(":", 1)[0]
        if short in out:
            raise ValueError(f"Keras layer {layer_name!r} has two weights named {short!r}")
        out[short] = np.asarray(g[n][()], dtype=np.float32)
    return out


def _need(w: dict, layer: _Layer, key: str, shape) -> np.ndarray:
    if key not in w:
        raise ValueError(f"Keras layer {layer.name!r} ({layer.cls}): weight {key!r} missing "
                         f"(found {sorted(w)})")
    a = w[key]
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"Keras layer {layer.name!r} ({layer.cls}): weight {key!r} has shape "
                         f"{tuple(a.shape)}, expected {tuple(shape)}")
    return a


def _sequence_layers(model_config: dict) -> list:
    cls = model_config.get("class_name")
    if cls != "Sequential":
        raise ValueError(f"only Keras Sequential models are supported, this file holds a "
                         f"{cls!r} model (functional models such as encoder-decoders cannot be "
                         "imported)")
    cfg = model_config.get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else cfg  # Keras <= 2.2: a bare list
    if not isinstance(layers, list) or not layers:
        raise ValueError("model_config has no layers")
    return [_Layer(s) for s in layers]


def _in_len_of(layer: _Layer) -> Optional[int]:
    for key in ("batch_input_shape", "batch_shape"):
        shp = layer.cfg.get(key)
        if isinstance(shp, (list, tuple)) and len(shp) >= 2 and isinstance(shp[1], int):
            return shp[1]
    return None


def _check_recurrent(layer: _Layer, cell: str):
    c = layer.cfg
    for key, bad in (("go_backwards", True), ("stateful", True), ("return_state", True),
                     ("time_major", True), ("use_bias", False)):
        if bool(c.get(key, not bad)) == bad:
            raise layer.err(f"setting {key}={bad}")
    act = _act_name(layer, "activation")
    if act not in ("tanh", "relu"):
        raise layer.err(f"activation {act!r} (need 'tanh' or 'relu')")
    gate = None
    if cell != "simple":
        gate = _act_name(layer, "recurrent_activation")
        if gate not in ("sigmoid", "hard_sigmoid"):
            raise layer.err(f"recurrent_activation {gate!r} (need 'sigmoid' or 'hard_sigmoid')")
    reset_after = bool(c.get("reset_after", False)) if cell == "gru" else False
    if c.get("dropout", 0.0) or c.get("recurrent_dropout", 0.0):
        warnings.warn(f"Keras layer {layer.name!r}: dropout/recurrent_dropout are ignored "
                      "(no effect at inference)", UserWarning, stacklevel=4)
    units = c.get("units")
    if not isinstance(units, int) or units < 1:
        raise layer.err(f"units {units!r}")
    return {"cell": cell, "units": units, "activation": act,
            "gate_activation": gate or "sigmoid", "reset_after": reset_after}


def _parse(layers: list, in_len_override: Optional[int]):
    """Walk the layer list; returns a dict describing the architecture and its layers."""
    i = 0
    in_len = None
    if layers[0].cls == "InputLayer":
        in_len = _in_len_of(layers[0])
        i = 1
    if i >= len(layers) or layers[i].cls != "Embedding":
        got = layers[i] if i < len(layers) else None
        raise (got.err("position: the model must start with an Embedding layer") if got
               else ValueError("model has no Embedding layer"))
    emb = layers[i]
    i += 1
    if emb.cfg.get("input_length") is not None:
        il = emb.cfg["input_length"]
        in_len = il[0] if isinstance(il, list) else il
    in_len = in_len or _in_len_of(emb)
    if in_len_override is not None:
        in_len = in_len_override
    if not isinstance(in_len, int) or in_len < 1:
        raise emb.err("input length: unknown (pass in_len=... to from_keras_h5)")
    repeat = None
    if i < len(layers) and layers[i].cls == "Flatten":
        if i + 1 >= len(layers) or layers[i + 1].cls != "RepeatVector":
            raise layers[i].err("position: Flatten must be followed by RepeatVector")
        repeat = layers[i + 1].cfg.get("n")
        if not isinstance(repeat, int) or repeat < 1:
            raise layers[i + 1].err(f"n={repeat!r}")
        i += 2
    rnns, drop_before_head, head, softmax_layer = [], 0.0, None, None
    for layer in layers[i:]:
        if layer.cls == "Dropout":
            if head is not None:
                raise layer.err("position: Dropout after the output layer")
            rate = float(layer.cfg.get("rate", 0.0))
            if rnns:
                drop_before_head = rate  # reset below if another RNN follows
            elif rate:
                warnings.warn(f"Keras layer {layer.name!r} (Dropout before the recurrent "
                              "layers) is ignored (no effect at inference)", UserWarning,
                              stacklevel=3)
            continue
        if layer.cls == "Bidirectional" or layer.cls in RECURRENT:
            if layer.cls == "Bidirectional":
                inner = _Layer(layer.cfg.get("layer", {}))
                if inner.cls not in RECURRENT:
                    raise layer.err(f"wrapped layer class {inner.cls!r} (only SimpleRNN, LSTM, "
                                    "GRU)")
                merge = layer.cfg.get("merge_mode", "concat")
                if merge not in ("concat", "sum"):
                    raise layer.err(f"merge_mode {merge!r} (need 'concat' or 'sum')")
                inner.name = layer.name  # weights live in the wrapper's group
                spec = dict(_check_recurrent(inner, RECURRENT[inner.cls]), bidirectional=True,
                            merge=merge)
                layer = inner
            else:
                spec = dict(_check_recurrent(layer, RECURRENT[layer.cls]), bidirectional=False,
                            merge="concat")
            if head is not None:
                raise layer.err("position: recurrent layer after the output layer")
            if drop_before_head:
                warnings.warn("a Dropout between recurrent layers is ignored (no effect at "
                              "inference)", UserWarning, stacklevel=3)
                drop_before_head = 0.0
            if rnns and not rnns[-1][0].cfg.get("return_sequences", False):
                raise rnns[-1][0].err("setting return_sequences=False below another recurrent "
                                      "layer")
            rnns.append((layer, spec))
            continue
        if layer.cls in ("Dense", "TimeDistributed"):
            if head is not None:
                raise layer.err("position: a second Dense layer (hidden Dense layers are not "
                                "supported; the model must end in one Dense head)")
            if not rnns:
                raise layer.err("position: Dense before any recurrent layer")
            dense_cfg = layer.cfg
            if layer.cls == "TimeDistributed":
                inner = _Layer(layer.cfg.get("layer", {}))
                if inner.cls != "Dense":
                    raise layer.err(f"wrapped layer class {inner.cls!r} (only Dense)")
                dense_cfg = inner.cfg
            if not dense_cfg.get("use_bias", True):
                raise layer.err("setting use_bias=False")
            act = dense_cfg.get("activation")
            if act not in ("softmax", "linear"):
                raise layer.err(f"output activation {act!r} (need 'softmax')")
            head = (layer, dense_cfg, act)
            continue
        if layer.cls == "Activation" and head is not None and head[2] == "linear" \
                and softmax_layer is None:
            if layer.cfg.get("activation") != "softmax":
                raise layer.err(f"output activation {layer.cfg.get('activation')!r} "
                                "(need 'softmax')")
            softmax_layer = layer
            continue
        settings = ""
        if layer.cls in ("Flatten", "RepeatVector", "Embedding", "InputLayer"):
            settings = " at this position"
        raise layer.err(f"layer class{settings} (supported: InputLayer, Embedding, Flatten, "
                        "RepeatVector, SimpleRNN, LSTM, GRU, Bidirectional, Dropout, Dense, "
                        "TimeDistributed(Dense))")
    if not rnns:
        raise ValueError("model has no recurrent (SimpleRNN/LSTM/GRU) layer")
    if head is None:
        raise ValueError("model has no Dense output layer after its recurrent layers")
    if head[2] == "linear" and softmax_layer is None:
        raise head[0].err("output activation 'linear' (need 'softmax': a non-softmax output)")
    first = rnns[0][1]
    for layer, c in rnns[1:]:
        for key in ("cell", "units", "activation", "gate_activation", "reset_after",
                    "bidirectional", "merge"):
            if c[key] != first[key]:
                raise layer.err(f"setting {key}={c[key]!r} (differs from the first recurrent "
                                f"layer's {first[key]!r}; the stack must be uniform)")
    last_seq = bool(rnns[-1][0].cfg.get("return_sequences", False))
    if repeat is not None:
        if repeat == 1:
            io = "one_to_one"
        else:
            io = "one_to_many"
            if not last_seq:
                raise rnns[-1][0].err("setting return_sequences=False after RepeatVector(n>1) "
                                      "(one-to-many models predict at every step)")
    else:
        io = "many_to_many" if last_seq else "many_to_one"
    return {"io": io, "in_len": in_len, "repeat": repeat, "emb": emb, "rnns": rnns,
            "head": head, "dropout": drop_before_head}


def _read_model_config(f) -> dict:
    if "model_config" not in f.attrs:
        raise ValueError("the file has no 'model_config' attribute: it holds weights only "
                         "(model.save_weights); save the whole model with model.save(...)")
    text = _as_str(f.attrs["model_config"])
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the file's model_config is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"the file's model_config must be a JSON object, got "
                         f"{type(cfg).__name__}: {text[:100]}")
    return cfg


def from_keras_h5(path: str, *, in_len: Optional[int] = None, forward: str = "keras"):
    """Read a Keras 2 ``.h5`` model (see the module docstring for what is supported).

    Args:
      path: the ``.h5`` file written by ``model.save(path)``.
      in_len: the input length, when the file does not record it (``Embedding.input_length``
        and the input shape both ``None``).
      forward: ``"keras"`` (the equations Keras runs: the saved gate activation, Keras's GRU)
        or ``"artifact"`` (the authors' NumPy forward pass that computed every published
        number: logistic-sigmoid gates and the GRU candidate ``tanh(x W_h + b_h + r ⊙ (h U_h))``;
        :attr:`ModelConfig.forward`). ``config.gate_activation`` records the saved activation
        either way.

    Returns:
      ``(config, params)``: a :class:`~modjax.models.ModelConfig` and a nested dict of float32
      NumPy arrays in modjax's layout (``embedding/embedding``, ``rnn_{l}/...``,
      ``dense/{kernel,bias}``, the latter holding logits).

    Raises:
      ValueError: unsupported layer or setting (naming the layer and its class), a file that is
        not a readable Keras HDF5 model, or weights whose shapes do not fit the config.
    """
    import h5py  # optional dependency: only needed here

    from modjax.cells import FORWARDS

    if forward not in FORWARDS:
        raise ValueError(f"forward must be one of {FORWARDS}, got {forward!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r}: no such file")
    try:
        with h5py.File(path, "r") as f:
            layers = _sequence_layers(_read_model_config(f))
            arch = _parse(layers, in_len)
            if "model_weights" not in f:
                raise ValueError(f"{path!r}: no 'model_weights' group (not a Keras model file)")
            mw = f["model_weights"]
            return _build(arch, mw, forward)
    except ValueError as e:
        if isinstance(e, json.JSONDecodeError):
            raise ValueError(f"{path!r}: corrupt model_config: {e}") from None
        raise ValueError(f"{path!r}: {e}") from None
    except (OSError, KeyError, RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path!r}: cannot read the Keras HDF5 file (truncated, corrupt or not "
                         f"HDF5?): {type(e).__name__}: {e}") from None


def _build(arch: dict, mw, forward: str = "keras"):
    emb = arch["emb"]
    ew = _weights(mw, emb.name)
    vocab = emb.cfg.get("input_dim")
    E = emb.cfg.get("output_dim")
    if not isinstance(vocab, int) or not isinstance(E, int):
        raise emb.err(f"input_dim/output_dim {vocab!r}/{E!r}")
    embedding = _need(ew, emb, "embeddings", (vocab, E))
    rnn_cfg = arch["rnns"][0][1]
    H, cell = rnn_cfg["units"], rnn_cfg["cell"]
    gH = _CELL_BLOCKS[cell] * H
    D = E * arch["in_len"] if arch["repeat"] is not None else E
    params = {"embedding": {"embedding": embedding}}
    bi = rnn_cfg["bidirectional"]
    merged = 2 * H if bi and rnn_cfg["merge"] == "concat" else H  # width the next layer reads
    for l, (layer, _) in enumerate(arch["rnns"]):
        bias_shape = (2, gH) if rnn_cfg["reset_after"] else (gH,)
        parts = []
        for part in ((0, 1) if bi else (None,)):
            w = _weights(mw, layer.name, part)
            parts.append({
                "kernel": _need(w, layer, "kernel", (D if l == 0 else merged, gH)),
                "recurrent_kernel": _need(w, layer, "recurrent_kernel", (H, gH)),
                "bias": _need(w, layer, "bias", bias_shape),
            })
        params[f"rnn_{l}"] = parts[0] if not bi else {
            k: np.stack([parts[0][k], parts[1][k]]) for k in parts[0]}
    head_layer, dense_cfg, _ = arch["head"]
    C = dense_cfg.get("units")
    if not isinstance(C, int) or C < 2:
        raise head_layer.err(f"output units {C!r} (need >= 2 softmax classes)")
    dw = _weights(mw, head_layer.name)
    params["dense"] = {"kernel": _need(dw, head_layer, "kernel", (merged, C)),
                       "bias": _need(dw, head_layer, "bias", (C,))}
    io = arch["io"]
    out_len = {"one_to_many": arch["repeat"], "many_to_many": arch["in_len"]}.get(io, 1)
    config = ModelConfig(
        io=io, cell=cell, num_classes=C, vocab_size=vocab, in_len=arch["in_len"],
        out_len=out_len, layers=len(arch["rnns"]), units=H, embed_dim=E,
        activation=rnn_cfg["activation"], gate_activation=rnn_cfg["gate_activation"],
        reset_after=rnn_cfg["reset_after"], dropout=arch["dropout"],
        mask_zero=bool(emb.cfg.get("mask_zero", False)), forward=forward, bidirectional=bi,
        merge=rnn_cfg["merge"])
    return config, params
