"""Keras 2 ``.h5`` import: the authors' three models and synthetic files, against a float64
NumPy implementation of the *Keras* equations written here."""
import dataclasses
import json
import os
import shutil
import warnings

import h5py
import jax
import numpy as np
import pytest

from modjax.data.base import default_data_dir
from modjax.decompose import decompose
from modjax.keras_import import from_keras_h5
from modjax.models import apply_model
from tests.ci import in_ci

REAL = {
    "vanilla_rnn_models/one_to_many/h5/model1.h5":
        dict(io="one_to_many", cell="simple", num_classes=8, vocab_size=2000, out_len=6,
             gate_activation="sigmoid"),
    "lstm_models/one_to_many/h5/model1_scratch.h5":
        dict(io="one_to_many", cell="lstm", num_classes=2, vocab_size=7000, out_len=6,
             gate_activation="hard_sigmoid"),
    "gru_models/one_to_one/h5/model1_combined_scratch.h5":
        dict(io="one_to_one", cell="gru", num_classes=6, vocab_size=7000, out_len=1,
             gate_activation="hard_sigmoid"),
}


def _real_path(rel):
    path = os.path.join(default_data_dir(), "keras_models", rel)
    if not os.path.isfile(path):
        if in_ci():
            pytest.fail(f"shared Keras model {path} is missing")
        pytest.skip(f"shared Keras model {path} is missing")
    return path


# ---------------------------------------------------------------- NumPy Keras reference --
def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _hard_sigmoid(v):  # Keras 2 form
    return np.clip(0.2 * v + 0.5, 0.0, 1.0)


_ACT = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "sigmoid": _sigmoid,
        "hard_sigmoid": _hard_sigmoid}


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _keras_rnn(kind, cfg, w, xs, mask, artifact=False):
    """Keras 2 SimpleRNN / LSTM / GRU over ``xs [N, T, D]`` in float64.

    ``mask [N, T]`` (or None): masked steps keep the previous state and output.
    With ``artifact`` the authors' NumPy forward instead: logistic-sigmoid gates whatever the
    config says, and the GRU (reset_after=False) candidate ``tanh(x W_h + b_h + r * (h U_h))``.
    Returns ``[N, T, H]`` outputs (all steps).
    """
    W = np.float64(w["kernel"])
    U = np.float64(w["recurrent_kernel"])
    B = np.float64(w["bias"])
    H = U.shape[0]
    act = _ACT[cfg.get("activation", "tanh")]
    rec = _sigmoid if artifact else _ACT[cfg.get("recurrent_activation", "hard_sigmoid")]
    N, T, _ = xs.shape
    h = np.zeros((N, H))
    c = np.zeros((N, H))
    outs = []
    for t in range(T):
        x = xs[:, t]
        if kind == "SimpleRNN":
            h_new, c_new = act(x @ W + B + h @ U), c
        elif kind == "LSTM":
            z = x @ W + h @ U + B
            i = rec(z[:, :H])
            f = rec(z[:, H:2 * H])
            c_new = f * c + i * act(z[:, 2 * H:3 * H])
            o = rec(z[:, 3 * H:])
            h_new = o * act(c_new)
        elif kind == "GRU" and not cfg.get("reset_after", False):
            x_z = x @ W[:, :H] + B[:H]
            x_r = x @ W[:, H:2 * H] + B[H:2 * H]
            x_h = x @ W[:, 2 * H:] + B[2 * H:]
            zg = rec(x_z + h @ U[:, :H])
            r = rec(x_r + h @ U[:, H:2 * H])
            hh = act(x_h + (r * (h @ U[:, 2 * H:]) if artifact else (r * h) @ U[:, 2 * H:]))
            h_new, c_new = zg * h + (1 - zg) * hh, c
        else:  # GRU reset_after=True, bias = (input bias, recurrent bias)
            mx = x @ W + B[0]
            mi = h @ U + B[1]
            zg = rec(mx[:, :H] + mi[:, :H])
            r = rec(mx[:, H:2 * H] + mi[:, H:2 * H])
            hh = act(mx[:, 2 * H:] + r * mi[:, 2 * H:])
            h_new, c_new = zg * h + (1 - zg) * hh, c
        if mask is not None:
            m = mask[:, t:t + 1]
            h_new = np.where(m, h_new, h)
            c_new = np.where(m, c_new, c)
        h, c = h_new, c_new
        outs.append(h)
    return np.stack(outs, 1)


def keras_reference(h5_path, x, logits=False, artifact=False, repeat=None):
    """Keras's output probabilities for ids ``x``, read straight from the h5 in float64.

    With ``logits`` the output softmax is left out (the pre-softmax Dense output). With
    ``artifact`` the recurrent layers follow the authors' NumPy forward (:func:`_keras_rnn`).
    ``repeat`` overrides ``RepeatVector``'s count (the same weights run for more steps).
    """
    with h5py.File(h5_path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        mw = f["model_weights"]

        def weights(name, part=None):  # part: "forward" / "backward" of a Bidirectional
            g = mw[name]
            out = {}
            for n in g.attrs["weight_names"]:
                n = n.decode() if isinstance(n, bytes) else n
                if part is None or part in n:
                    out[n.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(g[n][()], np.float64)
            return out

        v, mask, seq = None, None, True
        for spec in layers:
            cls, cfg = spec["class_name"], spec["config"]
            if cls == "InputLayer" or cls == "Dropout":
                continue
            if cls == "Embedding":
                v = weights(cfg["name"])["embeddings"][x]
                mask = (x != 0) if cfg.get("mask_zero") else None
            elif cls == "Flatten":
                v, mask = v.reshape(v.shape[0], -1), None
            elif cls == "RepeatVector":
                v = np.repeat(v[:, None, :], repeat or cfg["n"], axis=1)
            elif cls in ("SimpleRNN", "LSTM", "GRU"):
                v = _keras_rnn(cls, cfg, weights(cfg["name"]), v, mask, artifact)
                if repeat:
                    cfg = dict(cfg, return_sequences=True)
                seq = cfg["return_sequences"]
                if not seq:
                    v = v[:, -1]
            elif cls == "Bidirectional":  # the backward layer reads the reversed sequence
                kind, icfg = cfg["layer"]["class_name"], cfg["layer"]["config"]
                fw = _keras_rnn(kind, icfg, weights(cfg["name"], "forward"), v, mask, artifact)
                bw = _keras_rnn(kind, icfg, weights(cfg["name"], "backward"), v[:, ::-1],
                                None if mask is None else mask[:, ::-1], artifact)
                if icfg["return_sequences"]:
                    fw, bw = fw, bw[:, ::-1]  # outputs back in input order
                else:
                    fw, bw = fw[:, -1], bw[:, -1]  # each direction's final output
                v = np.concatenate([fw, bw], -1) if cfg["merge_mode"] == "concat" else fw + bw
            elif cls in ("Dense", "TimeDistributed"):
                w = weights(cfg["name"])
                act = (cfg["layer"]["config"] if cls == "TimeDistributed" else cfg)["activation"]
                v = v @ w["kernel"] + w["bias"]
                if act == "softmax" and not logits:
                    v = _softmax(v)
            elif cls == "Activation":
                assert cfg["activation"] == "softmax"
                v = v if logits else _softmax(v)
            else:
                raise AssertionError(cls)
    return v


def _probs(config, params, x):
    logits = apply_model(config, params, x)
    return np.asarray(jax.nn.softmax(np.asarray(logits, np.float64), axis=-1))


# ------------------------------------------------------------------- the real models --
@pytest.mark.parametrize("rel", sorted(REAL))
def test_real_model_imports_and_matches_keras(rel):
    path = _real_path(rel)
    config, params = from_keras_h5(path)
    want = REAL[rel]
    for k, v in want.items():
        assert getattr(config, k) == v, k
    assert (config.in_len, config.embed_dim, config.units, config.layers) == (20, 50, 100, 1)
    assert config.activation == "tanh" and not config.reset_after and not config.mask_zero
    rng = np.random.default_rng(0)
    x = rng.integers(0, config.vocab_size, size=(16, config.in_len)).astype(np.int32)
    got = _probs(config, params, x)
    ref = keras_reference(path, x)
    shape = (16, config.out_len, config.num_classes) if config.io == "one_to_many" else \
        (16, config.num_classes)
    assert got.shape == ref.shape == shape
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # The two scratch models are barely trained (near-uniform softmax), so also compare the
    # logits, which tell e.g. sigmoid from hard_sigmoid gates apart far above the tolerance.
    logits = np.asarray(apply_model(config, params, x), np.float64)
    np.testing.assert_allclose(logits, keras_reference(path, x, logits=True), atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("rel", sorted(REAL))
def test_real_model_artifact_forward_matches_the_authors_formulas(rel):
    """forward="artifact": logistic gates (the LSTM and GRU were saved with hard_sigmoid) and
    the authors' GRU candidate, against the float64 formulas on the file's own weights."""
    path = _real_path(rel)
    config, params = from_keras_h5(path, forward="artifact")
    assert config.forward == "artifact" and config.gate_activation == REAL[rel]["gate_activation"]
    x = np.random.default_rng(3).integers(0, config.vocab_size, (16, config.in_len)).astype(
        np.int32)
    got = np.asarray(apply_model(config, params, x), np.float64)
    np.testing.assert_allclose(got, keras_reference(path, x, logits=True, artifact=True),
                               atol=1e-5, rtol=1e-5)
    keras = keras_reference(path, x, logits=True)
    if config.cell == "simple":  # no gates: the two forwards are one function
        np.testing.assert_allclose(got, keras, atol=1e-5, rtol=1e-5)
    else:  # hard_sigmoid vs logistic gates: measured 2.7e-4 (GRU scratch), 10x the tolerance
        assert np.abs(got - keras).max() > 1e-4
    if config.cell == "gru":
        # The file's GRU runs one step from h = 0, where the two candidates agree; run the same
        # weights over 4 steps (RepeatVector(4)) to tell r * (h U_h) from (r * h) U_h.
        long = dataclasses.replace(config, io="one_to_many", out_len=4)
        got4 = np.asarray(apply_model(long, params, x), np.float64)
        np.testing.assert_allclose(
            got4, keras_reference(path, x, logits=True, artifact=True, repeat=4),
            atol=1e-5, rtol=1e-5)
        keras_long = dataclasses.replace(long, forward="keras")
        sig_gates = dataclasses.replace(keras_long, gate_activation="sigmoid")
        # same gates, only the candidate differs: the difference is the candidate's
        assert np.abs(got4 - np.asarray(apply_model(sig_gates, params, x))).max() > 1e-4


@pytest.mark.parametrize("rel", sorted(REAL))
def test_real_model_decomposes_with_the_artifact_preset(rel):
    """Import with the artifact forward, decompose with the artifact preset: the options are
    the authors' script's for this model, and the traced hidden states the decomposition reads
    are the authors' formulas."""
    from modjax.decompose import trace

    path = _real_path(rel)
    config, params = from_keras_h5(path, forward="artifact")
    rng = np.random.default_rng(1)
    N = 64
    x = rng.integers(1, config.vocab_size, size=(N, config.in_len)).astype(np.int32)
    C = config.num_classes
    y = rng.integers(0, C, size=(N, config.steps) if config.many_output else (N,))
    mode = "unrolled" if config.many_output else "rolled"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes without random positives
        d = decompose(params, (x, y), model=config, n_pos=8, preset="artifact", mode=mode)
    want = {("lstm", "one_to_many"): (0.20, "code", "first"),  # LSTM-1 1:N unrolled script
            ("simple", "one_to_many"): (0.05, "code", "first"),
            ("gru", "one_to_one"): (0.05, "code", "step")}[config.cell, config.io]
    assert (d.options.max_remove, d.options.u_mask, d.options.head_rows) == want
    assert (~np.asarray(d.keep)).any()
    hidden = np.asarray(trace(params, x[:8], model=config), np.float64)[0]  # [8, T, H]
    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    rnn = next(s for s in layers if s["class_name"] in ("SimpleRNN", "LSTM", "GRU"))
    w = {k: np.float64(v) for k, v in params["rnn_0"].items()}
    e = np.float64(params["embedding"]["embedding"])[x[:8]].reshape(8, -1)
    xs = np.repeat(e[:, None, :], config.steps, axis=1)
    np.testing.assert_allclose(hidden, _keras_rnn(rnn["class_name"], rnn["config"], w, xs,
                                                  None, artifact=True), atol=1e-5, rtol=0)


@pytest.mark.parametrize("rel", sorted(REAL))
def test_real_model_decomposes(rel):
    path = _real_path(rel)
    config, params = from_keras_h5(path)
    rng = np.random.default_rng(1)
    N = 64
    x = rng.integers(1, config.vocab_size, size=(N, config.in_len)).astype(np.int32)
    C = config.num_classes
    y = rng.integers(0, C, size=(N, config.steps) if config.many_output else (N,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes without random positives
        d = decompose(params, (x, y), model=config, n_pos=4, max_remove=0.1)
    assert d.keep.shape == (C, 1, 100)
    assert d.keep.dtype == bool
    assert np.asarray(d.keep).any()


def test_truncated_real_file_is_a_clear_error(tmp_path):
    src = _real_path("gru_models/one_to_one/h5/model1_combined_scratch.h5")
    dst = tmp_path / "trunc.h5"
    with open(src, "rb") as f:
        dst.write_bytes(f.read(10_000))
    with pytest.raises(ValueError, match=r"trunc\.h5.*(truncated|corrupt|model_config)"):
        from_keras_h5(str(dst))


def test_not_a_file_and_not_hdf5(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        from_keras_h5(str(tmp_path / "missing.h5"))
    p = tmp_path / "text.h5"
    p.write_text("hello")
    with pytest.raises(ValueError, match="cannot read the Keras HDF5 file"):
        from_keras_h5(str(p))


# ------------------------------------------------------------- synthetic Keras files --
def _layer(cls, name, **cfg):
    return {"class_name": cls, "config": {"name": name, "trainable": True, "dtype": "float32",
                                          **cfg}}


def _rnn(cls, name, units, **kw):
    cfg = dict(units=units, activation="tanh", use_bias=True, return_sequences=False,
               return_state=False, go_backwards=False, stateful=False, unroll=False,
               time_major=False, dropout=0.0, recurrent_dropout=0.0)
    if cls != "SimpleRNN":
        cfg["recurrent_activation"] = "sigmoid"
    if cls == "GRU":
        cfg["reset_after"] = False
    cfg.update(kw)
    return _layer(cls, name, **cfg)


def _dense(name, units, activation="softmax", **kw):
    return _layer("Dense", name, units=units, activation=activation, use_bias=True, **kw)


def write_keras_h5(path, layers, weights, model_class="Sequential"):
    """A file in the Keras 2 ``model.save`` HDF5 layout.

    ``weights``: ``{layer name: [(weight name, array), ...]}`` in Keras order.
    """
    names = [l["config"]["name"] for l in layers if l["class_name"] != "InputLayer"]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.8.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(
            {"class_name": model_class, "config": {"name": "sequential", "layers": layers}})
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([n.encode() for n in names])
        mw.attrs["backend"] = "tensorflow"
        mw.attrs["keras_version"] = "2.8.0"
        for n in names:
            g = mw.create_group(n)
            ws = weights.get(n, [])
            g.attrs["weight_names"] = (np.array([w.encode() for w, _ in ws]) if ws
                                       else np.zeros((0,), np.float64))
            for wname, arr in ws:
                g.create_dataset(wname, data=np.asarray(arr, np.float32))


def _rand(rng, *shape, scale=0.4):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _rnn_weights(rng, cls, name, cell_name, D, H, reset_after=False):
    g = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls]
    bias = _rand(rng, 2, g * H) if reset_after else _rand(rng, g * H)
    return [(f"{name}/{cell_name}/kernel:0", _rand(rng, D, g * H)),
            (f"{name}/{cell_name}/recurrent_kernel:0", _rand(rng, H, g * H)),
            (f"{name}/{cell_name}/bias:0", bias)]


def test_synthetic_gru_reset_after_many_to_one_masked(tmp_path):
    rng = np.random.default_rng(2)
    V, E, T, H, C = 30, 6, 7, 5, 4
    layers = [_layer("InputLayer", "inp", batch_input_shape=[None, T]),
              _layer("Embedding", "embedding", input_dim=V, output_dim=E, mask_zero=True,
                     input_length=T),
              _rnn("GRU", "gru", H, reset_after=True, recurrent_activation="hard_sigmoid"),
              _layer("Dropout", "dropout", rate=0.5),
              _dense("dense", C)]
    weights = {"embedding": [("embedding/embeddings:0", _rand(rng, V, E))],
               "gru": _rnn_weights(rng, "GRU", "gru", "gru_cell", E, H, reset_after=True),
               "dense": [("dense/kernel:0", _rand(rng, H, C)), ("dense/bias:0", _rand(rng, C))]}
    path = str(tmp_path / "gru.h5")
    write_keras_h5(path, layers, weights)
    config, params = from_keras_h5(path)
    assert (config.io, config.cell, config.reset_after, config.mask_zero) == \
        ("many_to_one", "gru", True, True)
    assert config.gate_activation == "hard_sigmoid" and config.dropout == 0.5
    assert params["rnn_0"]["bias"].shape == (2, 3 * H)
    x = rng.integers(1, V, size=(9, T)).astype(np.int32)
    x[0, :3] = 0  # pre-padding
    x[1, -2:] = 0  # post-padding: the state is held over the padded steps
    np.testing.assert_allclose(_probs(config, params, x), keras_reference(path, x), atol=1e-5,
                               rtol=0)


def test_synthetic_stacked_lstm_many_to_many(tmp_path):
    rng = np.random.default_rng(3)
    V, E, T, H, C = 25, 4, 6, 5, 3
    layers = [_layer("Embedding", "embedding", input_dim=V, output_dim=E, mask_zero=False,
                     batch_input_shape=[None, T], input_length=T),
              _rnn("LSTM", "lstm", H, return_sequences=True, unit_forget_bias=True),
              _rnn("LSTM", "lstm_1", H, return_sequences=True),
              _layer("TimeDistributed", "time_distributed",
                     layer={"class_name": "Dense",
                            "config": {"name": "dense", "units": C, "activation": "linear",
                                       "use_bias": True}}),
              _layer("Activation", "activation", activation="softmax")]
    weights = {"embedding": [("embedding/embeddings:0", _rand(rng, V, E))],
               "lstm": _rnn_weights(rng, "LSTM", "lstm", "lstm_cell", E, H),
               "lstm_1": _rnn_weights(rng, "LSTM", "lstm_1", "lstm_cell_1", H, H),
               "time_distributed": [("time_distributed/kernel:0", _rand(rng, H, C)),
                                    ("time_distributed/bias:0", _rand(rng, C))]}
    path = str(tmp_path / "lstm2.h5")
    write_keras_h5(path, layers, weights)
    config, params = from_keras_h5(path)
    assert (config.io, config.cell, config.layers, config.out_len, config.num_classes) == \
        ("many_to_many", "lstm", 2, T, C)
    assert config.gate_activation == "sigmoid"
    assert sorted(params) == ["dense", "embedding", "rnn_0", "rnn_1"]
    x = rng.integers(0, V, size=(8, T)).astype(np.int32)
    got = _probs(config, params, x)
    assert got.shape == (8, T, C)
    np.testing.assert_allclose(got, keras_reference(path, x), atol=1e-5, rtol=0)


def _bidirectional(name, inner, merge_mode="concat"):
    return _layer("Bidirectional", name, layer=inner, merge_mode=merge_mode)


def _bi_weights(rng, cls, name, cell_name, D, H, reset_after=False):
    """Keras's Bidirectional layout: the forward layer's weights, then the backward's."""
    return (_rnn_weights(rng, cls, f"{name}/forward_{cell_name}", cell_name, D, H, reset_after)
            + _rnn_weights(rng, cls, f"{name}/backward_{cell_name}", cell_name, D, H,
                           reset_after))


@pytest.mark.parametrize("cls,merge,io", [("LSTM", "concat", "many_to_many"),
                                          ("GRU", "sum", "many_to_one"),
                                          ("SimpleRNN", "concat", "many_to_one")])
def test_synthetic_bidirectional(tmp_path, cls, merge, io):
    """Bidirectional(LSTM / GRU / SimpleRNN), two stacked, each merge, masked inputs: the
    import matches Keras's equations (backward layer on the reversed sequence)."""
    rng = np.random.default_rng(7)
    V, E, T, H, C = 20, 4, 6, 3, 4
    seq = io == "many_to_many"
    ra = cls == "GRU"
    kw = dict(reset_after=True) if ra else {}
    layers = [_layer("Embedding", "embedding", input_dim=V, output_dim=E, mask_zero=True,
                     batch_input_shape=[None, T], input_length=T),
              _bidirectional("bidi", _rnn(cls, "rnn", H, return_sequences=True, **kw), merge),
              _bidirectional("bidi_1", _rnn(cls, "rnn_1", H, return_sequences=seq, **kw), merge),
              (_layer("TimeDistributed", "td", layer=_dense("dense", C)) if seq
               else _dense("dense", C))]
    D2 = 2 * H if merge == "concat" else H
    cell = cls.lower() + "_cell"
    weights = {"embedding": [("embedding/embeddings:0", _rand(rng, V, E))],
               "bidi": _bi_weights(rng, cls, "bidi", cell, E, H, ra),
               "bidi_1": _bi_weights(rng, cls, "bidi_1", cell, D2, H, ra),
               "td" if seq else "dense": [("head/kernel:0", _rand(rng, D2, C)),
                                          ("head/bias:0", _rand(rng, C))]}
    path = str(tmp_path / "bi.h5")
    write_keras_h5(path, layers, weights)
    config, params = from_keras_h5(path)
    assert (config.io, config.bidirectional, config.merge, config.layers) == (io, True, merge, 2)
    assert params["rnn_1"]["kernel"].shape == (2, D2, {"LSTM": 4, "GRU": 3}.get(cls, 1) * H)
    x = rng.integers(1, V, size=(7, T)).astype(np.int32)
    x[0, -2:] = 0  # post-padding: the backward layer starts on padding and holds zeros
    x[1, :2] = 0
    np.testing.assert_allclose(_probs(config, params, x), keras_reference(path, x), atol=1e-5,
                               rtol=0)
    # the directions really differ: swapping them changes the output
    swapped = {k: ({n: a[::-1] for n, a in v.items()} if k.startswith("rnn_") else v)
               for k, v in params.items()}
    assert np.abs(_probs(config, swapped, x) - _probs(config, params, x)).max() > 1e-4


def test_synthetic_relu_simple_rnn_one_to_one(tmp_path):
    rng = np.random.default_rng(4)
    V, E, T, H, C = 12, 3, 4, 6, 3
    layers = [_layer("Embedding", "embedding", input_dim=V, output_dim=E, input_length=T),
              _layer("Flatten", "flatten"), _layer("RepeatVector", "repeat_vector", n=1),
              _rnn("SimpleRNN", "simple_rnn", H, activation="relu"),
              _dense("dense", C)]
    weights = {"embedding": [("embedding/embeddings:0", _rand(rng, V, E))],
               "simple_rnn": _rnn_weights(rng, "SimpleRNN", "simple_rnn", "simple_rnn_cell",
                                          T * E, H),
               "dense": [("dense/kernel:0", _rand(rng, H, C)), ("dense/bias:0", _rand(rng, C))]}
    path = str(tmp_path / "relu.h5")
    write_keras_h5(path, layers, weights)
    config, params = from_keras_h5(path)
    assert (config.io, config.activation, config.steps) == ("one_to_one", "relu", 1)
    x = rng.integers(0, V, size=(6, T)).astype(np.int32)
    np.testing.assert_allclose(_probs(config, params, x), keras_reference(path, x), atol=1e-5,
                               rtol=0)


def _base(T=5, H=4, C=3, rnn=None, head=None, extra=()):
    return ([_layer("Embedding", "embedding", input_dim=10, output_dim=3, input_length=T)]
            + list(extra)
            + [rnn if rnn is not None else _rnn("LSTM", "lstm", H)]
            + [head if head is not None else _dense("dense", C)])


BAD = {
    "bidirectional": (_base(rnn=_layer("Bidirectional", "bidi", layer=_rnn("LSTM", "lstm", 4),
                                       merge_mode="mul")),
                      r"'bidi' \(Bidirectional\).*merge_mode 'mul'"),
    "bidirectional_dense": (_base(rnn=_layer("Bidirectional", "bidi",
                                             layer=_dense("dense_in", 4), merge_mode="concat")),
                            r"'bidi' \(Bidirectional\).*wrapped layer class 'Dense'"),
    "conv1d": (_base(extra=[_layer("Conv1D", "conv1d", filters=4, kernel_size=3)]),
               r"'conv1d' \(Conv1D\)"),
    "go_backwards": (_base(rnn=_rnn("LSTM", "lstm", 4, go_backwards=True)),
                     r"'lstm' \(LSTM\).*go_backwards"),
    "stateful": (_base(rnn=_rnn("GRU", "gru", 4, stateful=True)), r"'gru' \(GRU\).*stateful"),
    "no_bias": (_base(rnn=_rnn("SimpleRNN", "rnn", 4, use_bias=False)),
                r"'rnn' \(SimpleRNN\).*use_bias"),
    "selu": (_base(rnn=_rnn("SimpleRNN", "rnn", 4, activation="selu")),
             r"'rnn' \(SimpleRNN\).*activation 'selu'"),
    "gate_act": (_base(rnn=_rnn("LSTM", "lstm", 4, recurrent_activation="tanh")),
                 r"'lstm' \(LSTM\).*recurrent_activation 'tanh'"),
    "sigmoid_head": (_base(head=_dense("out", 3, activation="sigmoid")),
                     r"'out' \(Dense\).*activation 'sigmoid'"),
    "linear_head": (_base(head=_dense("out", 3, activation="linear")),
                    r"'out' \(Dense\).*linear"),
    "hidden_dense": (_base() + [_dense("dense_2", 3)], r"'dense_2' \(Dense\).*hidden Dense"),
    "return_state": (_base(rnn=_rnn("LSTM", "lstm", 4, return_state=True)),
                     r"'lstm' \(LSTM\).*return_state"),
    "mixed_stack": (_base(extra=[_rnn("LSTM", "lstm_0", 4, return_sequences=True)],
                          rnn=_rnn("GRU", "gru_1", 4)), r"'gru_1' \(GRU\).*cell"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unsupported_layers_and_settings_name_the_layer(tmp_path, case):
    layers, pattern = BAD[case]
    path = str(tmp_path / f"{case}.h5")
    write_keras_h5(path, layers, {})
    with pytest.raises(ValueError, match=pattern):
        from_keras_h5(path)


def test_functional_model_is_refused(tmp_path):
    path = str(tmp_path / "functional.h5")
    write_keras_h5(path, _base(), {}, model_class="Functional")
    with pytest.raises(ValueError, match="only Keras Sequential"):
        from_keras_h5(path)


def test_weights_only_file_is_refused(tmp_path):
    path = str(tmp_path / "weights.h5")
    with h5py.File(path, "w") as f:
        f.create_group("embedding")
    with pytest.raises(ValueError, match="save_weights"):
        from_keras_h5(path)


def test_wrong_weight_shape_names_the_layer(tmp_path):
    rng = np.random.default_rng(5)
    layers = _base(T=5, H=4, C=3)
    weights = {"embedding": [("embedding/embeddings:0", _rand(rng, 10, 3))],
               "lstm": _rnn_weights(rng, "LSTM", "lstm", "lstm_cell", 3, 5),  # H=5, not 4
               "dense": [("dense/kernel:0", _rand(rng, 4, 3)), ("dense/bias:0", _rand(rng, 3))]}
    path = str(tmp_path / "shape.h5")
    write_keras_h5(path, layers, weights)
    with pytest.raises(ValueError, match=r"'lstm' \(LSTM\).*'kernel' has shape"):
        from_keras_h5(path)


def test_real_file_copy_with_corrupt_config(tmp_path):
    src = _real_path("vanilla_rnn_models/one_to_many/h5/model1.h5")
    dst = str(tmp_path / "bad_config.h5")
    shutil.copy(src, dst)
    os.chmod(dst, 0o644)
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = "{not json"
    with pytest.raises(ValueError, match="model_config"):
        from_keras_h5(dst)


@pytest.mark.parametrize("model_config,pattern", [
    ("[1, 2]", "model_config must be a JSON object, got list"),
    ('{"class_name": "Sequential", "config": {"layers": [{"class_name": "Embedding", '
     '"config": [1]}]}}', "cannot read the Keras HDF5 file.*AttributeError"),
    ('{"class_name": "Sequential", "config": 5}', "model_config has no layers"),
])
def test_malformed_model_config_is_a_value_error(tmp_path, model_config, pattern):
    path = str(tmp_path / "bad.h5")
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = model_config
        f.create_group("model_weights")
    with pytest.raises(ValueError, match=pattern) as e:
        from_keras_h5(path)
    assert path in str(e.value)
