import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modjax.cells import CELL_TABLE, CellConfig, RNNCell, cell_step, hard_sigmoid, zero_carry
from tests import numpy_ref as ref

VARIANTS = [
    ("simple", "tanh", "sigmoid", False),
    ("simple", "relu", "sigmoid", False),
    ("lstm", "tanh", "sigmoid", False),
    ("lstm", "tanh", "hard_sigmoid", False),
    ("gru", "tanh", "sigmoid", False),
    ("gru", "tanh", "hard_sigmoid", False),
    ("gru", "tanh", "sigmoid", True),
    ("gru", "tanh", "hard_sigmoid", True),
]


def _init(cfg, D, seed):
    cell = RNNCell(cfg)
    carry = zero_carry(cfg, 2)
    params = cell.init(jax.random.PRNGKey(seed), carry, jnp.zeros((2, D)))["params"]
    # Fresh random values everywhere (biases too), not just the initialisers.
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(rng.normal(0, 0.5, v.shape), jnp.float32) for k, v in params.items()}


@pytest.mark.parametrize("cell,activation,gate,reset_after", VARIANTS)
def test_cell_step_matches_float64_reference(cell, activation, gate, reset_after):
    cfg = CellConfig(cell, 6, activation, gate, reset_after)
    D = 5
    p = _init(cfg, D, seed=hash((cell, activation, gate, reset_after)) % 1000)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, D)).astype(np.float32)
    h = rng.normal(size=(4, 6)).astype(np.float32)
    c = rng.normal(size=(4, 6)).astype(np.float32)
    carry = (jnp.asarray(h), jnp.asarray(c)) if cell == "lstm" else jnp.asarray(h)
    new, gates = cell_step(cfg, p, carry, jnp.asarray(x))
    h_new = new[0] if cell == "lstm" else new
    want_h, want_c = ref.step(cell, p, h.astype(np.float64), c.astype(np.float64),
                              x.astype(np.float64), activation, gate, reset_after)
    np.testing.assert_allclose(np.asarray(h_new), want_h, atol=1e-5, rtol=0)
    if cell == "lstm":
        np.testing.assert_allclose(np.asarray(new[1]), want_c, atol=1e-5, rtol=0)
    assert gates.shape == (4, cfg.gate_width)


def test_param_layout_and_keras_initialisation():
    for cell, blocks in (("simple", 1), ("lstm", 4), ("gru", 3)):
        cfg = CellConfig(cell, 7)
        p = RNNCell(cfg).init(jax.random.PRNGKey(0), zero_carry(cfg, 1), jnp.zeros((1, 3)))["params"]
        assert p["kernel"].shape == (3, blocks * 7)
        assert p["recurrent_kernel"].shape == (7, blocks * 7)
        assert p["bias"].shape == (blocks * 7,)
        assert CELL_TABLE[cell].blocks == blocks
        if cell == "lstm":  # unit_forget_bias
            np.testing.assert_array_equal(np.asarray(p["bias"][7:14]), 1.0)
            np.testing.assert_array_equal(np.asarray(p["bias"][:7]), 0.0)
        # orthogonal recurrent kernel blocks
        u = np.asarray(p["recurrent_kernel"])
        np.testing.assert_allclose(u @ u.T, np.eye(7), atol=1e-5)
    cfg = CellConfig("gru", 4, reset_after=True)
    p = RNNCell(cfg).init(jax.random.PRNGKey(0), zero_carry(cfg, 1), jnp.zeros((1, 3)))["params"]
    assert p["bias"].shape == (2, 12)


def test_gate_table_kinds():
    assert CELL_TABLE["lstm"].gate_names == ("i", "f", "c", "o")
    assert CELL_TABLE["lstm"].gate_kinds == ("gate", "gate", "candidate", "gate")
    assert CELL_TABLE["gru"].gate_names == ("z", "r", "h")
    assert CELL_TABLE["gru"].gate_kinds == ("gate", "gate", "candidate")


def test_hard_sigmoid_is_keras2_form():
    x = jnp.array([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])
    np.testing.assert_allclose(np.asarray(hard_sigmoid(x)), [0.0, 0.0, 0.5, 0.7, 1.0, 1.0])


@pytest.mark.parametrize("bad", [dict(cell="tcn"), dict(activation="gelu"),
                                 dict(gate_activation="softsign"), dict(units=0)])
def test_config_errors_name_the_argument(bad):
    kw = dict(cell="lstm", units=3)
    kw.update(bad)
    with pytest.raises(ValueError, match=list(bad)[0]):
        CellConfig(**kw)


@pytest.mark.parametrize("cell,activation,gate,reset_after", VARIANTS)
@pytest.mark.parametrize("u_mask", ["paper", "code"])
@pytest.mark.parametrize("n", [3, 40])  # 3: masks on activations; 40 > D + H: on weights
def test_masked_step_matches_dense_masked_reference(cell, activation, gate, reset_after,
                                                    u_mask, n):
    cfg = CellConfig(cell, 6, activation, gate, reset_after)
    D, H, g = 5, 6, CELL_TABLE[cell].blocks
    p = _init(cfg, D, seed=11)
    rng = np.random.default_rng(n)
    keep = np.array([1, 0, 1, 1, 0, 1], np.float64)
    col = np.tile(keep, g)
    x = rng.normal(size=(n, D)).astype(np.float32)
    h = rng.normal(size=(n, H)).astype(np.float32)
    c = rng.normal(size=(n, H)).astype(np.float32)
    W = np.asarray(p["kernel"], np.float64) * col
    B = np.asarray(p["bias"], np.float64) * col
    if u_mask == "paper":
        M = keep[:, None] * col[None, :]
    else:
        M = 1.0 - (1.0 - keep)[:, None] * (1.0 - col)[None, :]
    U = np.asarray(p["recurrent_kernel"], np.float64) * M
    carry = (jnp.asarray(h), jnp.asarray(c)) if cell == "lstm" else jnp.asarray(h)
    for bound in (None, 2):
        new, _ = cell_step(cfg, p, carry, jnp.asarray(x), jnp.asarray(keep, jnp.float32),
                           u_mask, bound)
        got = new[0] if cell == "lstm" else new
        want, _ = ref.step(cell, p, h.astype(np.float64), c.astype(np.float64),
                           x.astype(np.float64), activation, gate, reset_after, W=W, U=U, B=B)
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)
