"""Sharded decomposition and composition (modjax.sharding) equal the one-device results.

The simulated device count of the CPU backend (``--xla_force_host_platform_device_count``) is
read when JAX starts, so each device count runs in its own process
(:mod:`tests.sharding_worker`): one with 1 device (the unsharded path), one with 8 (the
default mesh over all 8, and a ``2 x 4`` ``("modules", "examples")`` mesh). Keep vectors and
unit scores must be bit-identical; the composed scores equal to 1e-6 with identical votes.
The unsharded path itself is checked against float64 references in tests/test_decompose.py
and tests/test_compose.py.
"""
from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from modjax import sharding
from modjax.compose import memory_budget_bytes, module_chunk, module_scores, score_bytes
from modjax.data.synthetic import load_synthetic
from modjax.decompose import decompose
from modjax.models import ModelConfig
from modjax.train import fit

from tests.trained_models import trained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def lstm_m2o():
    """A small trained 2-layer LSTM, many-to-one (the synthetic intent task, 6 classes)."""
    data = load_synthetic("many_to_one", n_train=600, n_test=64, seed=1)
    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=data.num_classes,
                      vocab_size=data.vocab_size, in_len=data.in_len, out_len=data.out_len,
                      layers=2, units=8, embed_dim=8)
    params, _ = fit(cfg, data, epochs=2, batch_size=64, learning_rate=5e-3, seed=0,
                    progress=False, validate=False)
    params = jax.tree_util.tree_map(np.asarray, params)
    return cfg, params, data


def cases():
    """``{name: (config, params, x, y, mode)}``: M:1 LSTM and M:N GRU, rolled and unrolled."""
    out = {}
    gru_cfg, gru_params, gru_data = trained("gru_m2m")
    lstm_cfg, lstm_params, lstm_data = lstm_m2o()
    for mode in ("rolled", "unrolled"):
        out[f"lstm_m2o_{mode}"] = (lstm_cfg, lstm_params, lstm_data.x_train[:400],
                                   lstm_data.y_train[:400], mode)
        out[f"gru_m2m_{mode}"] = (gru_cfg, gru_params, gru_data.x_train[:400],
                                  gru_data.y_train[:400], mode)
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The worker's outputs with 1 and with 8 simulated devices (two processes in parallel)."""
    tmp = tmp_path_factory.mktemp("sharding")
    job = tmp / "job.pkl"
    with open(job, "wb") as f:
        pickle.dump({"cases": cases(), "mesh_2x4": ["lstm_m2o_rolled", "gru_m2m_unrolled"]}, f)
    procs = {}
    for n in (1, 8):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
                   JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
        # programs compiled with simulated devices in a cache of their own: the device count
        # is not part of JAX's cache key
        env["MODJAX_JAX_CACHE"] = os.path.join(
            os.path.dirname(jax.config.jax_compilation_cache_dir or str(tmp)),
            "jax-simulated-devices")
        procs[n] = subprocess.Popen(
            [sys.executable, "-m", "tests.sharding_worker", str(job), str(tmp / f"{n}.npz")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    for n, p in procs.items():
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"worker with {n} devices failed:\n{log[-4000:]}"
        out[n] = dict(np.load(tmp / f"{n}.npz"))
    return out


def test_device_counts_and_default_compose_mesh(results):
    assert int(results[1]["devices"]) == 1
    assert int(results[8]["devices"]) == 8
    # gcd(C, 8) devices along the modules, the rest along the examples
    for c, shape in ((6, (2, 4)), (150, (2, 4)), (5, (1, 8)), (16, (8, 1))):
        np.testing.assert_array_equal(results[8][f"compose_mesh/{c}"], shape)


@pytest.mark.parametrize("case", ["lstm_m2o_rolled", "lstm_m2o_unrolled", "gru_m2m_rolled",
                                  "gru_m2m_unrolled", "lstm_m2o_rolled@2x4",
                                  "gru_m2m_unrolled@2x4"])
def test_decomposition_bit_identical(results, case):
    base = case.split("@")[0]
    one, eight = results[1], results[8]
    keep1, keep8 = one[f"{base}/keep"], eight[f"{case}/keep"]
    assert keep1.dtype == keep8.dtype == bool
    assert keep1.shape == keep8.shape
    assert (~keep1).sum() > 0  # the models do remove units: the comparison is not vacuous
    np.testing.assert_array_equal(keep8, keep1)
    d_keys = sorted(k for k in one if k.startswith(base + "/d"))
    assert d_keys
    for k in d_keys:
        k8 = k.replace(base, case, 1)
        # the unit scores, bit for bit (NaN where a class has no samples, in both)
        assert one[k].tobytes() == eight[k8].tobytes(), k8


@pytest.mark.parametrize("case", ["lstm_m2o_rolled", "lstm_m2o_unrolled", "gru_m2m_rolled",
                                  "gru_m2m_unrolled", "lstm_m2o_rolled@2x4",
                                  "gru_m2m_unrolled@2x4"])
def test_composition_equal(results, case):
    base = case.split("@")[0]
    s1, s8 = results[1][f"{base}/scores"], results[8][f"{case}/scores"]
    assert s1.shape == s8.shape and s1.shape[1] == 100
    np.testing.assert_allclose(s8, s1, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(results[8][f"{case}/pred"], results[1][f"{base}/pred"])


# -- in-process checks (one device) ------------------------------------------------------
def test_resolve_mesh_default_and_false():
    assert sharding.resolve_mesh(False) is None
    assert sharding.resolve_mesh(None) is (None if jax.device_count() == 1 else
                                           sharding.resolve_mesh(None))
    one = Mesh(np.asarray(jax.devices()[:1]), ("examples",))
    assert sharding.resolve_mesh(one) is None  # one device: the unsharded path
    assert sharding.resolve_mesh(list(jax.devices()[:1])) is None


@pytest.mark.parametrize("bad, err, words", [
    (True, TypeError, "mesh must be None, False"),
    ("tpu", TypeError, "got str"),
    ([], ValueError, "at least one device"),
    ([0, 1], TypeError, "jax devices, got int"),
])
def test_bad_mesh_errors(bad, err, words):
    with pytest.raises(err, match=words):
        sharding.resolve_mesh(bad)


def test_duplicate_devices_rejected():
    d = jax.devices()[0]
    with pytest.raises(ValueError, match="mesh lists a device more than once"):
        sharding.resolve_mesh([d, d])


def test_bad_mesh_names_the_argument_in_decompose_and_module_scores():
    cfg, params, data = trained("gru_m2m")
    with pytest.raises(TypeError, match="mesh must be None"):
        decompose(params, (data.x_train[:50], data.y_train[:50]), model=cfg, mesh="all")
    decomp = decompose(params, (data.x_train[:200], data.y_train[:200]), model=cfg, n_pos=8,
                       mesh=False)
    wrong = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    with pytest.raises(ValueError, match=r"mesh axes must be named among \('modules', "
                                         r"'examples'\).*\('data',\)"):
        module_scores(decomp, params, data.x_test[:4], mesh=wrong)


def test_device_rows_and_compose_mesh_shapes():
    assert sharding.device_rows(128, 1) == 128
    assert sharding.device_rows(128, 8) == 512  # at least 64 rows per device
    assert sharding.device_rows(1000, 8) == 1000
    assert sharding.device_rows(1001, 6) == 1002
    assert sharding.round_up(10, 4) == 12


def test_memory_budget_chunks_modules_with_equal_scores():
    cfg, params, data = trained("gru_m2m")
    decomp = decompose(params, (data.x_train[:400], data.y_train[:400]), model=cfg, n_pos=24,
                       max_remove=0.2, mesh=False)
    x = data.x_test[:40]
    C = decomp.num_modules
    one_module = score_bytes(cfg, 1, 48)  # 40 rows are padded to a bucket of 48
    assert score_bytes(cfg, C, 48) == C * one_module
    budget = 3 * one_module
    assert module_chunk(cfg, C, 48, budget) == 3
    assert module_chunk(cfg, C, 48, 10 ** 12) == C
    assert module_chunk(cfg, C, 48, 1) == 1  # at least one module per call
    whole = np.asarray(module_scores(decomp, params, x, kind="contrast", mesh=False))
    chunked = np.asarray(module_scores(decomp, params, x, kind="contrast", mesh=False,
                                       memory_budget=budget))
    assert chunked.shape == whole.shape == (C, 40, cfg.steps)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.argmax(chunked, 0), np.argmax(whole, 0))
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
        module_scores(decomp, params, x, memory_budget=0)
    assert memory_budget_bytes(12345) == 12345
    assert memory_budget_bytes() >= 1 << 20  # half the device's (or host's) memory
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes, "
                                         "got True"):
        memory_budget_bytes(True)
