"""Every matmul modjax traces runs at full float32 precision, whatever the caller's default.

On GPUs XLA's default float32 matmul uses TF32 inputs; an H200 run of the suite with the
default failed the float64-reference tests by up to ~4e-3 (see modjax/precision.py). CPUs
ignore the setting, so these tests read the precision off the traced programs instead of
comparing numbers.
"""
import jax
import numpy as np
import pytest

from modjax.baselines import _fit_softmax
from modjax.decompose import _trace
from modjax.models import ModelConfig, apply_model, greedy_decode, init_params
from modjax.precision import MATMUL_PRECISION, matmul
from modjax.train import _loss_fn


def _sub_jaxprs(value):
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax.extend.core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def dot_precisions(jaxpr) -> list:
    """The ``precision`` of every ``dot_general`` in a (closed) jaxpr, sub-programs included
    (scan bodies, jit calls, cond branches)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for v in eqn.params.values():
            for sub in _sub_jaxprs(v):
                found.extend(dot_precisions(sub))
    return found


def assert_all_highest(closed, min_dots=1):
    precs = dot_precisions(closed)
    assert len(precs) >= min_dots, f"expected at least {min_dots} matmuls, found {len(precs)}"
    want = (MATMUL_PRECISION, MATMUL_PRECISION)
    bad = [p for p in precs if p != want]
    assert not bad, f"{len(bad)} of {len(precs)} matmuls not at {MATMUL_PRECISION}: {bad[:3]}"


def _cfg(io, cell, **kw):
    base = dict(io=io, cell=cell, num_classes=5, vocab_size=30, in_len=6, out_len=4, layers=2,
                units=6, embed_dim=4, mask_zero=(io == "encoder_decoder"))
    base.update(kw)
    return ModelConfig(**base)


def test_dot_precisions_sees_a_default_matmul():
    """The checker itself: a plain ``@`` is found and reported as not at full precision."""
    a = np.ones((2, 3), np.float32)
    plain = jax.make_jaxpr(lambda x: jax.lax.scan(lambda c, r: (c, r @ x.T), 0.0, x)[1])(a)
    assert dot_precisions(plain) == [None]
    with pytest.raises(AssertionError, match="not at"):
        assert_all_highest(plain)
    assert_all_highest(jax.make_jaxpr(lambda x: matmul(x, x.T))(a))


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
@pytest.mark.parametrize("io", ["many_to_one", "many_to_many", "encoder_decoder"])
@pytest.mark.parametrize("u_mask", ["paper", "code"])
def test_forward_and_module_forward_use_full_precision(cell, io, u_mask):
    cfg = _cfg(io, cell)
    p = init_params(cfg, seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(3, 6)).astype(np.int32)
    dec = rng.integers(1, 5, size=(3, 4)).astype(np.int32) if io == "encoder_decoder" else None
    keep = (rng.random((cfg.layers, cfg.steps, cfg.units)) > 0.3).astype(np.float32)
    with jax.default_matmul_precision("bfloat16"):  # the caller's default must not leak in
        assert_all_highest(jax.make_jaxpr(lambda xx: apply_model(cfg, p, xx, dec))(x),
                           min_dots=cfg.layers + 1)
        for share in (False, True):
            fn = lambda xx: apply_model(cfg, p, xx, dec, keep=keep, u_mask=u_mask,  # noqa: E731
                                        share_projection=share)
            assert_all_highest(jax.make_jaxpr(fn)(x), min_dots=cfg.layers + 1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_loss_and_decoding_use_full_precision(cell):
    cfg = _cfg("encoder_decoder", cell)
    p = init_params(cfg, seed=0)
    rng = np.random.default_rng(1)
    x = rng.integers(1, 30, size=(3, 6)).astype(np.int32)
    dec = rng.integers(1, 5, size=(3, 4)).astype(np.int32)
    with jax.default_matmul_precision("bfloat16"):
        w = np.ones(3, np.float32)
        grad = jax.grad(lambda q: _loss_fn(cfg, q, x, dec, dec, w, jax.random.PRNGKey(0), True))
        assert_all_highest(jax.make_jaxpr(grad)(p), min_dots=2 * (cfg.layers + 1))
        start = np.ones(3, np.int32)
        assert_all_highest(jax.make_jaxpr(lambda s: greedy_decode(cfg, p, s, start))(x))


def test_decomposition_trace_and_baseline_use_full_precision():
    cfg = _cfg("many_to_one", "lstm")
    p = init_params(cfg, seed=0)
    rng = np.random.default_rng(2)
    x = rng.integers(1, 30, size=(40, 6)).astype(np.int32)
    with jax.default_matmul_precision("bfloat16"):
        assert_all_highest(jax.make_jaxpr(
            lambda xx: _trace(p, xx, None, config=cfg, gates=True))(x), min_dots=cfg.layers)
        feats = rng.random((8, 30)).astype(np.float32)
        assert_all_highest(jax.make_jaxpr(
            lambda f: _fit_softmax(f, np.zeros((8, 1), np.int32), np.ones((8, 1), np.float32),
                                   num_classes=5, steps=2, learning_rate=0.1, l2=0.0,
                                   seed=0))(feats))
