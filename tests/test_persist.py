"""Saving and loading decompositions (keep vectors bound to a params hash)."""
import importlib
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict, freeze

from modjax.data.synthetic import load_synthetic
from modjax.decompose import decompose
from modjax.models import ModelConfig, init_params
from modjax.persist import (DECOMP_FORMAT, DECOMP_VERSION, load_decomposition, params_hash,
                            save_decomposition)


def _setup(io, mode, cell, seed):
    data = load_synthetic(io, n_train=300, n_test=10, seed=seed)
    config = ModelConfig(io=io, cell=cell, num_classes=data.num_classes,
                         vocab_size=data.vocab_size, in_len=data.in_len, out_len=data.out_len,
                         layers=2, units=8, embed_dim=4)
    params = init_params(config, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        d = decompose(params, data, model=config, n_pos=6, mode=mode, max_remove=0.25)
    return config, params, d


@pytest.fixture(scope="module")
def rolled():
    return _setup("many_to_one", "rolled", "lstm", 0)


@pytest.fixture(scope="module")
def unrolled():
    return _setup("one_to_many", "unrolled", "gru", 1)


def _assert_same(a, b):
    for k in ("keep", "head_class", "has_positives"):
        x, y = np.asarray(getattr(a, k)), np.asarray(getattr(b, k))
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), k  # bit-identical
    assert a.config == b.config
    assert a.options == b.options
    assert a.class_names == b.class_names
    assert type(a) is type(b)


@pytest.mark.parametrize("which", ["rolled", "unrolled"])
def test_save_load_round_trip(tmp_path, which, request):
    config, params, d = request.getfixturevalue(which)
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    assert sorted(os.listdir(path)) == ["arrays.msgpack", "format.json", "meta.json"]
    with open(os.path.join(path, "format.json")) as f:
        assert json.load(f) == {"format": DECOMP_FORMAT, "version": DECOMP_VERSION}
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    assert meta["params_hash"] == params_hash(params)
    assert ModelConfig(**meta["config"]) == config
    # no copy of the params: the directory is tiny compared with the model
    size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    assert size < sum(np.asarray(v).nbytes for v in jax.tree_util.tree_leaves(params))
    back = load_decomposition(path, params)
    _assert_same(d, back)
    # loading with a FrozenDict / {"params": ...} wrapper of the same params works too
    _assert_same(d, load_decomposition(path, freeze({"params": params})))
    # saving again over the same directory replaces it atomically
    save_decomposition(path, back, params, overwrite=True)
    _assert_same(d, load_decomposition(path, params))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_unrolled_shapes_survive(tmp_path, unrolled):
    config, params, d = unrolled
    assert d.keep.ndim == 4 and d.keep.shape[2] == config.steps
    path = str(tmp_path / "u")
    save_decomposition(path, d, params)
    back = load_decomposition(path, params)
    assert back.unrolled and back.keep.shape == d.keep.shape


def test_tampered_params_are_refused(tmp_path, rolled):
    config, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    bad = jax.tree_util.tree_map(np.array, params)
    bad["rnn_1"]["recurrent_kernel"][3, 2] += np.float32(1e-6)
    with pytest.raises(ValueError, match="params differ from those the decomposition came from"):
        load_decomposition(path, bad)
    other = init_params(config, seed=7)
    with pytest.raises(ValueError, match="params differ"):
        load_decomposition(path, other)


def test_params_hash_is_container_independent_and_content_sensitive(rolled):
    _, params, _ = rolled
    h = params_hash(params)
    assert h.startswith("sha256:") and len(h) == len("sha256:") + 64
    as_np = jax.tree_util.tree_map(np.asarray, params)
    assert params_hash(FrozenDict(params)) == h
    assert params_hash(freeze(as_np)) == h
    assert params_hash({"params": params}) == h
    assert params_hash(as_np) == h
    # key order of the dicts does not matter
    reordered = {k: params[k] for k in reversed(list(params))}
    assert params_hash(reordered) == h
    # dtype, shape and a single bit all count
    f64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    assert params_hash(f64) != h
    flipped = jax.tree_util.tree_map(np.array, params)
    b = flipped["dense"]["bias"].view(np.uint32)
    b[0] ^= 1
    assert params_hash(flipped) != h
    reshaped = jax.tree_util.tree_map(np.array, params)
    reshaped["dense"]["bias"] = reshaped["dense"]["bias"].reshape(1, -1)
    assert params_hash(reshaped) != h
    # a leaf moved to another key changes the hash
    swapped = jax.tree_util.tree_map(np.array, params)
    swapped["rnn_0"], swapped["rnn_1"] = swapped["rnn_1"], swapped["rnn_0"]
    if any(np.shape(a) != np.shape(b) or not np.array_equal(a, b) for a, b in
           zip(jax.tree_util.tree_leaves(params["rnn_0"]),
               jax.tree_util.tree_leaves(params["rnn_1"]))):
        assert params_hash(swapped) != h


def test_format_version_mismatch_is_refused(tmp_path, rolled):
    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    fmt = os.path.join(path, "format.json")
    with open(fmt, "w") as f:
        json.dump({"format": DECOMP_FORMAT, "version": DECOMP_VERSION + 1}, f)
    with pytest.raises(ValueError, match="expected format modjax-decomposition v2"):
        load_decomposition(path, params)
    with open(fmt, "w") as f:
        json.dump({"format": "modjax-model", "version": 1}, f)
    with pytest.raises(ValueError, match="expected format"):
        load_decomposition(path, params)


def test_not_a_decomposition_directory(tmp_path, rolled):
    _, params, _ = rolled
    with pytest.raises(ValueError, match="not a modjax decomposition directory"):
        load_decomposition(str(tmp_path), params)


def test_corrupt_arrays_are_refused(tmp_path, rolled):
    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    with open(os.path.join(path, "arrays.msgpack"), "wb") as f:
        f.write(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt decomposition"):
        load_decomposition(path, params)


def test_save_checks_arguments(tmp_path, rolled):
    config, params, d = rolled
    with pytest.raises(TypeError, match="Decomposition"):
        save_decomposition(str(tmp_path / "x"), {"keep": d.keep}, params)
    wrong = init_params(ModelConfig(**{**config.__dict__, "units": 9}))
    with pytest.raises(ValueError):
        save_decomposition(str(tmp_path / "y"), d, wrong)
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")


@pytest.mark.parametrize("which", ["rolled", "unrolled"])
def test_predictions_identical_after_reload(tmp_path, which, request):
    compose_mod = importlib.import_module("modjax.compose")
    config, params, d = request.getfixturevalue(which)
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    back = load_decomposition(path, params)
    data = load_synthetic(config.io, n_train=10, n_test=32, seed=0)
    x = jnp.asarray(data.x_test)
    before = jax.tree_util.tree_leaves(compose_mod.compose(d, params)(x))
    after = jax.tree_util.tree_leaves(compose_mod.compose(back, params)(x))
    assert len(before) == len(after) >= 1
    for a, b in zip(before, after):  # predictions (and scores, if returned): bit-identical
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def test_head_rows_and_forward_survive_and_old_saves_load_with_the_old_behaviour(tmp_path,
                                                                                unrolled):
    import dataclasses

    config, params, d = unrolled
    d2 = d.replace(options=dataclasses.replace(d.options, head_rows="first"),
                   config=dataclasses.replace(config, forward="artifact"))
    path = str(tmp_path / "decomp")
    save_decomposition(path, d2, params)
    back = load_decomposition(path, params)
    assert back.options.head_rows == "first" and back.config.forward == "artifact"
    _assert_same(d2, back)
    # a save written before head_rows and forward existed (format version 1, no field
    # hashes): per-step head rows, Keras forward
    meta_path = os.path.join(path, "meta.json")
    with open(meta_path) as f:
        meta = json.load(f)
    del meta["options"]["head_rows"]
    del meta["config"]["forward"]
    meta.pop("field_hashes")
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    with open(os.path.join(path, "format.json"), "w") as f:
        json.dump({"format": DECOMP_FORMAT, "version": 1}, f)
    old = load_decomposition(path, params)
    assert old.options.head_rows == "step" and old.config.forward == "keras"


def _edit_meta(path, fn):
    p = os.path.join(path, "meta.json")
    with open(p) as f:
        meta = json.load(f)
    fn(meta)
    with open(p, "w") as f:
        json.dump(meta, f)


@pytest.mark.parametrize("field,edit", [
    ("config", lambda m: m["config"].update(activation="relu")),
    ("config", lambda m: m["config"].update(gate_activation="hard_sigmoid")),
    ("options", lambda m: m["options"].update(u_mask="paper")),
    ("options", lambda m: m["options"].update(mode="unrolled")),
    ("class_names", lambda m: m["class_names"].reverse()),
    ("shapes", lambda m: m["shapes"].update(head_class=[99])),
    ("dtypes", lambda m: m["dtypes"].update(head_class="int64")),
])
def test_edited_meta_field_is_refused_by_name(tmp_path, rolled, field, edit):
    """An edit that would change results (activation, u_mask, class names, ...) is refused."""
    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    _edit_meta(path, edit)
    with pytest.raises(ValueError, match=f"meta.json field '{field}' differs from what was "
                       "saved"):
        load_decomposition(path, params)


def test_edited_keep_array_is_refused(tmp_path, rolled):
    from flax import serialization

    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    p = os.path.join(path, "arrays.msgpack")
    with open(p, "rb") as f:
        arrays = serialization.msgpack_restore(f.read())
    arrays["keep"] = np.array(arrays["keep"])
    arrays["keep"][0, 0, 0] = ~arrays["keep"][0, 0, 0]
    with open(p, "wb") as f:
        f.write(serialization.msgpack_serialize(arrays))
    with pytest.raises(ValueError, match="array 'keep' differs from what was saved"):
        load_decomposition(path, params)


@pytest.mark.parametrize("field,edit,pattern", [
    ("shapes", lambda m: m.pop("shapes"), "meta.json has no field 'shapes'"),
    ("options", lambda m: m.pop("options"), "meta.json has no field 'options'"),
    ("config", lambda m: m.pop("config"), "meta.json has no field 'config'"),
    ("params_hash", lambda m: m.pop("params_hash"), "meta.json has no field 'params_hash'"),
    ("field_hashes", lambda m: m.pop("field_hashes"), "meta.json has no field 'field_hashes'"),
    ("options", lambda m: m.update(options=[1, 2]), "field 'options' must be an object, got list"),
    ("class_names", lambda m: m.update(class_names="abc"),
     "field 'class_names' must be a list, got str"),
    ("params_hash", lambda m: m.update(params_hash=5),
     "field 'params_hash' must be a string, got int"),
])
def test_missing_or_ill_typed_meta_field_is_a_value_error(tmp_path, rolled, field, edit,
                                                         pattern):
    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    _edit_meta(path, edit)
    with pytest.raises(ValueError, match=pattern):
        load_decomposition(path, params)


def test_meta_json_that_is_not_an_object(tmp_path, rolled):
    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump([1, 2], f)
    with pytest.raises(ValueError, match="meta.json must hold an object, got list"):
        load_decomposition(path, params)


def test_version_1_files_are_read_and_validated(tmp_path, rolled):
    """A file written before field hashes (version 1) loads; its fields are still validated."""
    _, params, d = rolled
    path = str(tmp_path / "decomp")
    save_decomposition(path, d, params)
    with open(os.path.join(path, "format.json"), "w") as f:
        json.dump({"format": DECOMP_FORMAT, "version": 1}, f)
    _edit_meta(path, lambda m: m.pop("field_hashes"))
    _assert_same(d, load_decomposition(path, params))
    _edit_meta(path, lambda m: m["options"].update(max_remove="0.1"))
    with pytest.raises(ValueError, match="field 'options': max_remove must be a real number"):
        load_decomposition(path, params)
    _edit_meta(path, lambda m: m["options"].update(max_remove=0.25, bogus=1))
    with pytest.raises(ValueError, match="field 'options': .*bogus"):
        load_decomposition(path, params)
    _edit_meta(path, lambda m: (m["options"].pop("bogus"), m["config"].update(mask_zero="no")))
    with pytest.raises(ValueError, match="field 'config': mask_zero must be a bool"):
        load_decomposition(path, params)
    _edit_meta(path, lambda m: (m["config"].update(mask_zero=False),
                                m["class_names"].append("extra"),
                                m["shapes"].update(head_class=[len(d.class_names) + 1])))
    with pytest.raises(ValueError, match="array 'head_class' has int32"):
        load_decomposition(path, params)
