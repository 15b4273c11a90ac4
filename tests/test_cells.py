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


# -- the artifact's forward pass -------------------------------------------------------------
def _artifact_gru_step(W, U, B, x, h):
    """The authors' NumPy GRU step, written out by hand (float64): logistic gates, and the
    candidate tanh(x W_h + b_h + r * (h U_h))."""
    H = U.shape[0]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    z = sig(x @ W[:, :H] + B[:H] + h @ U[:, :H])
    r = sig(x @ W[:, H:2 * H] + B[H:2 * H] + h @ U[:, H:2 * H])
    cand = np.tanh(x @ W[:, 2 * H:] + B[2 * H:] + r * (h @ U[:, 2 * H:]))
    return z * h + (1.0 - z) * cand


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_artifact_gru_candidate_matches_hand_written_formula(gate):
    """forward="artifact": logistic gates whatever the trained gate activation, and the reset
    gate applied after the recurrent matmul; differs from Keras's (r * h) U_h."""
    cfg = CellConfig("gru", 6, "tanh", gate, False, forward="artifact")
    p = _init(cfg, 5, seed=7)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    h = rng.normal(size=(4, 6)).astype(np.float32)
    new, _ = cell_step(cfg, p, jnp.asarray(h), jnp.asarray(x))
    W, U, B = (np.asarray(p[k], np.float64) for k in ("kernel", "recurrent_kernel", "bias"))
    want = _artifact_gru_step(W, U, B, np.float64(x), np.float64(h))
    np.testing.assert_allclose(np.asarray(new), want, rtol=0, atol=2e-6)
    keras = cell_step(CellConfig("gru", 6, "tanh", gate, False), p, jnp.asarray(h),
                      jnp.asarray(x))[0]
    assert np.abs(np.asarray(keras) - want).max() > 1e-2  # the two forwards really differ


def test_artifact_lstm_uses_logistic_gates():
    cfg = CellConfig("lstm", 6, "tanh", "hard_sigmoid", forward="artifact")
    p = _init(cfg, 5, seed=3)
    rng = np.random.default_rng(4)
    x, h, c = (rng.normal(size=s).astype(np.float32) for s in ((4, 5), (4, 6), (4, 6)))
    (h1, c1), _ = cell_step(cfg, p, (jnp.asarray(h), jnp.asarray(c)), jnp.asarray(x))
    want_h, want_c = ref.step("lstm", {k: np.asarray(v) for k, v in p.items()}, np.float64(h),
                              np.float64(c), np.float64(x), gate="sigmoid")
    np.testing.assert_allclose(np.asarray(h1), want_h, rtol=0, atol=2e-6)
    np.testing.assert_allclose(np.asarray(c1), want_c, rtol=0, atol=2e-6)


@pytest.mark.parametrize("u_mask", ["paper", "code"])
def test_artifact_gru_masked_step_matches_dense_masked_weights(u_mask):
    """A module's masks on the artifact GRU: masks on the matmuls == dense masked weights."""
    from modjax.cells import masked_cell_params

    cfg = CellConfig("gru", 6, "tanh", "hard_sigmoid", False, forward="artifact")
    p = _init(cfg, 5, seed=11)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    h = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    keep = jnp.asarray([1, 0, 1, 1, 0, 1], jnp.float32)
    got = cell_step(cfg, p, h, x, keep, u_mask)[0]
    dense = masked_cell_params(cfg, p, keep, u_mask)
    W, U, B = (np.asarray(dense[k], np.float64) for k in ("kernel", "recurrent_kernel", "bias"))
    want = _artifact_gru_step(W, U, B, np.float64(x), np.float64(h))
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=2e-6)


def test_forward_is_validated():
    with pytest.raises(ValueError, match="forward"):
        CellConfig("gru", 4, forward="numpy")
