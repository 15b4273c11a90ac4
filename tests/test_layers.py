import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modjax.cells import CellConfig
from modjax.layers import RNN, scan_layer
from tests import numpy_ref as ref
from tests.test_cells import VARIANTS, _init


@pytest.mark.parametrize("cell,activation,gate,reset_after", VARIANTS)
@pytest.mark.parametrize("padded,reverse", [(False, False), (True, False), (False, True),
                                            (True, True)])
def test_scan_layer_matches_float64_loop(cell, activation, gate, reset_after, padded, reverse):
    cfg = CellConfig(cell, 5, activation, gate, reset_after)
    p = _init(cfg, 4, seed=3)
    rng = np.random.default_rng(7)
    xs = rng.normal(size=(3, 6, 4)).astype(np.float32)
    pad = None
    if padded:  # pre-padding of different lengths, plus a hole in the middle
        pad = np.ones((3, 6), bool)
        pad[0, :2] = False
        pad[1, :4] = False
        pad[2, 3] = False
    h0 = rng.normal(size=(3, 5)).astype(np.float32)
    c0 = rng.normal(size=(3, 5)).astype(np.float32)
    init = (jnp.asarray(h0), jnp.asarray(c0)) if cell == "lstm" else jnp.asarray(h0)
    hs, final = scan_layer(cfg, p, jnp.asarray(xs), initial_carry=init, pad_mask=pad,
                           reverse=reverse)
    want, h_last, c_last = ref.run(cell, p, xs, h0, c0, pad=pad, reverse=reverse,
                                   activation=activation, gate=gate, reset_after=reset_after)
    np.testing.assert_allclose(np.asarray(hs), want, atol=1e-5, rtol=0)
    fh = final[0] if cell == "lstm" else final
    np.testing.assert_allclose(np.asarray(fh), h_last, atol=1e-5, rtol=0)
    if cell == "lstm":
        np.testing.assert_allclose(np.asarray(final[1]), c_last, atol=1e-5, rtol=0)


def test_rnn_module_return_sequences_and_gates():
    cfg = CellConfig("lstm", 4)
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 3)), jnp.float32)
    layer = RNN(cfg, return_sequences=False)
    v = layer.init(jax.random.PRNGKey(0), xs)
    assert set(v["params"]) == {"kernel", "recurrent_kernel", "bias"}
    last, final, gates = layer.apply(v, xs, return_gates=True)
    seq, _ = RNN(cfg).apply(v, xs)
    np.testing.assert_allclose(np.asarray(last), np.asarray(seq[:, -1]), atol=0)
    assert gates.shape == (2, 5, 16)
    # o gate * tanh(c) reproduces h
    o = gates[..., 12:]
    assert np.all((np.asarray(o) >= 0) & (np.asarray(o) <= 1))


def test_keep_shape_error():
    cfg = CellConfig("simple", 4)
    p = _init(cfg, 3, 0)
    with pytest.raises(ValueError, match="keep"):
        scan_layer(cfg, p, jnp.zeros((2, 5, 3)), keep=jnp.ones((3, 4)))


@pytest.mark.parametrize("cell,activation,gate,reset_after", VARIANTS)
@pytest.mark.parametrize("u_mask", ["paper", "code"])
@pytest.mark.parametrize("per_step,reverse", [(False, False), (True, False), (True, True)])
def test_premasked_weights_equal_masks_inside_the_step(cell, activation, gate, reset_after,
                                                       u_mask, per_step, reverse):
    # 24 examples > D + H: scan_layer masks a copy of the weights; one example at a time
    # (N = 1) masks the matmul inputs and outputs inside the step. Same numbers.
    cfg = CellConfig(cell, 5, activation, gate, reset_after)
    p = _init(cfg, 4, seed=5)
    rng = np.random.default_rng(3)
    xs = jnp.asarray(rng.normal(size=(24, 6, 4)), jnp.float32)
    keep = rng.random((6, 5) if per_step else (5,)) > 0.4
    keep[..., 0] = False
    keep = jnp.asarray(keep, jnp.float32)
    whole = jax.jit(lambda x: scan_layer(cfg, p, x, keep=keep, u_mask=u_mask,
                                         reverse=reverse)[0])(xs)
    # vmap over examples: inside, every call sees a batch of one
    one = jax.jit(jax.vmap(lambda x: scan_layer(cfg, p, x[None], keep=keep, u_mask=u_mask,
                                                reverse=reverse)[0][0]))(xs)
    np.testing.assert_allclose(np.asarray(whole), np.asarray(one), atol=1e-6, rtol=0)


def test_step_row_is_exact():
    # a one-hot contraction at HIGHEST precision returns the row bit for bit, tiny and huge
    # magnitudes included (no rounding through a lower-precision matmul)
    from modjax.layers import _step_row

    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 2, 5)).astype(np.float32)
    table[1, 0, 0] = np.float32(3.4e38)
    table[2, 1, 1] = np.float32(2e-38)  # smallest normal range (XLA flushes subnormals)
    table[3, 0, 4] = np.float32(1.0 + 2 ** -23)  # not representable in bfloat16 / TF32
    f = jax.jit(_step_row)
    for t in range(6):
        np.testing.assert_array_equal(np.asarray(f(jnp.asarray(table), t)), table[t])


@pytest.mark.parametrize("cell,activation,gate,reset_after", VARIANTS)
def test_scan_directions_matches_two_float64_loops(cell, activation, gate, reset_after):
    """Both directions in one vmapped scan: direction 0 reads positions 0..T-1, direction 1
    reads T-1..0 (outputs in input order), each with its own weights and initial carry,
    padded positions held; a per-step keep of direction 1 at position t masks its step t."""
    from modjax.cells import masked_cell_params
    from modjax.layers import scan_directions

    cfg = CellConfig(cell, 5, activation, gate, reset_after)
    ps = [_init(cfg, 4, seed=s) for s in (3, 4)]
    p2 = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), ps[0], ps[1])
    rng = np.random.default_rng(8)
    xs = rng.normal(size=(3, 6, 4)).astype(np.float32)
    pad = np.ones((3, 6), bool)
    pad[0, -2:] = False
    pad[1, :1] = False
    h0 = rng.normal(size=(2, 3, 5)).astype(np.float32)
    c0 = rng.normal(size=(2, 3, 5)).astype(np.float32)
    init = (jnp.asarray(h0), jnp.asarray(c0)) if cell == "lstm" else jnp.asarray(h0)
    hs, final = scan_directions(cfg, p2, jnp.asarray(xs), bidirectional=True,
                                initial_carry=init, pad_mask=pad)
    assert hs.shape == (3, 6, 2, 5)
    kw = dict(activation=activation, gate=gate, reset_after=reset_after)
    for d in range(2):
        want, h_last, _ = ref.run(cell, ps[d], xs, h0[d], c0[d], pad=pad, reverse=d == 1, **kw)
        np.testing.assert_allclose(np.asarray(hs[:, :, d]), want, atol=1e-5, rtol=0)
        fh = final[0][d] if cell == "lstm" else final[d]
        np.testing.assert_allclose(np.asarray(fh), h_last, atol=1e-5, rtol=0)
    # per-step keep: only position 1 of the backward direction removes unit 0
    keep = np.ones((6, 2, 5), np.float32)
    keep[1, 1, 0] = 0.0
    hk, _ = scan_directions(cfg, p2, jnp.asarray(xs), bidirectional=True, keep=keep,
                            u_mask="paper")
    np.testing.assert_allclose(np.asarray(hk[:, :, 0]), np.asarray(
        scan_directions(cfg, p2, jnp.asarray(xs), bidirectional=True)[0][:, :, 0]), atol=1e-6)
    h, c = np.zeros((3, 5)), np.zeros((3, 5))
    want = np.zeros((3, 6, 5))
    for t in range(5, -1, -1):  # the backward direction, dense masked weights at t = 1
        m = masked_cell_params(cfg, ps[1], jnp.asarray(keep[t, 1]), "paper")
        m = {k: np.asarray(v, np.float64) for k, v in m.items()}
        h, c2 = ref.step(cell, m, h, c, xs[:, t].astype(np.float64), **kw)
        c = c if c2 is None else c2
        want[:, t] = h
    np.testing.assert_allclose(np.asarray(hk[:, :, 1]), want, atol=1e-5, rtol=0)
    full = np.asarray(scan_directions(cfg, p2, jnp.asarray(xs), bidirectional=True)[0])
    assert np.abs(want[:, 1, 0] - full[:, 1, 1, 0]).max() > 1e-4  # the removal took effect
    np.testing.assert_allclose(want[:, 2:], full[:, 2:, 1], atol=1e-5)  # not before it ran
