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
