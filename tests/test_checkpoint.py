import json
import os
import subprocess
import sys

import flax
import jax
import numpy as np
import pytest

from modjax.checkpoint import load_model, save_model, to_plain_dict
from modjax.data.synthetic import load_synthetic
from modjax.models import config_for
from modjax.train import fit, predict

SCRIPT = """
import sys, numpy as np
from modjax.checkpoint import load_model
from modjax.train import predict
cfg, params = load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], predict(cfg, params, x))
"""


def test_save_load_in_new_process_gives_identical_outputs(tmp_path):
    d = load_synthetic("many_to_many", n_train=300, n_test=64, seed=2)
    cfg = config_for(d, cell="gru", units=8, embed_dim=4, layers=2)
    params, _ = fit(cfg, d, epochs=1, batch_size=32, progress=False, validate=False)
    path = tmp_path / "model"
    save_model(str(path), cfg, params)
    np.save(tmp_path / "x.npy", d.x_test)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(tmp_path / "x.npy"),
                    str(tmp_path / "out.npy")], check=True, env=env)
    other = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(other, predict(cfg, params, d.x_test))
    cfg2, p2 = load_model(str(path))
    assert cfg2 == cfg
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_overwrite_is_atomic_and_format_checked(tmp_path):
    d = load_synthetic("many_to_one", n_train=50, n_test=10)
    cfg = config_for(d, units=4, embed_dim=2)
    from modjax.models import init_params
    p = init_params(cfg)
    path = tmp_path / "m"
    save_model(str(path), cfg, p)
    save_model(str(path), cfg, flax.core.freeze(p), overwrite=True)  # FrozenDict accepted
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary leftovers
    with open(path / "format.json", "w") as f:
        json.dump({"format": "modjax-model", "version": 99}, f)
    with pytest.raises(ValueError, match="version|format"):
        load_model(str(path))
    with pytest.raises(ValueError, match="format.json"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="config"):
        save_model(str(tmp_path / "x"), {"io": "many_to_one"}, p)


def test_to_plain_dict_unfreezes():
    tree = flax.core.freeze({"a": {"b": np.ones(2)}})
    out = to_plain_dict(tree)
    assert type(out) is dict and type(out["a"]) is dict


def test_checkpoint_saved_before_the_forward_field_loads_as_keras(tmp_path):
    import json

    from modjax.models import ModelConfig, init_params

    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=3, vocab_size=9, in_len=4,
                      units=4, embed_dim=3)
    path = str(tmp_path / "m")
    save_model(path, cfg, init_params(cfg))
    with open(os.path.join(path, "config.json")) as f:
        raw = json.load(f)
    del raw["forward"]
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(raw, f)
    back, _ = load_model(path)
    assert back == cfg and back.forward == "keras"
    art = ModelConfig(**{**raw, "forward": "artifact"})
    assert back.function_key() == art.function_key()  # sigmoid LSTM: the same function


@pytest.mark.parametrize("fname,content,pattern", [
    ("format.json", "[1, 2]", r"expected format modjax-model v1, got \[1, 2\]"),
    ("format.json", "not json", "JSONDecodeError"),
    ("config.json", "[]", "config.json must hold an object"),
    ("config.json", None, "No such file or directory.*config.json"),
    ("params.msgpack", None, "No such file or directory.*params.msgpack"),
    ("params.msgpack", b"\x00garbage", "unreadable model checkpoint"),
])
def test_malformed_checkpoint_is_a_value_error_naming_the_path(tmp_path, fname, content,
                                                              pattern):
    from modjax.models import ModelConfig, init_params

    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=3, vocab_size=9, in_len=4,
                      units=4, embed_dim=2)
    path = tmp_path / "m"
    save_model(str(path), cfg, init_params(cfg))
    if content is None:
        os.remove(path / fname)
    else:
        (path / fname).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=pattern) as e:
        load_model(str(path))
    assert str(path) in str(e.value)


@pytest.mark.parametrize("edit,pattern", [
    ({"units": 5}, r"config.json does not fit params.msgpack: params\['dense'\]\['kernel'\] "
     r"has shape \(4, 3\), the model config needs \(5, 3\)"),
    ({"cell": "gru"}, "config.json does not fit params.msgpack"),
    ({"mask_zero": "yes"}, "mask_zero must be a bool, got 'yes'"),
    ({"dropout": "0.1"}, "dropout must be a real number"),
    ({"units": "4"}, "units must be a positive int, got '4'"),
    ({"bogus": 1}, "unexpected keyword argument 'bogus'"),
])
def test_config_checked_against_params(tmp_path, edit, pattern):
    from modjax.models import ModelConfig, init_params

    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=3, vocab_size=9, in_len=4,
                      units=4, embed_dim=2)
    path = tmp_path / "m"
    save_model(str(path), cfg, init_params(cfg))
    raw = json.loads((path / "config.json").read_text())
    raw.update(edit)
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=pattern) as e:
        load_model(str(path))
    assert str(path) in str(e.value)
