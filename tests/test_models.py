import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modjax.layers import scan_layer
from modjax.models import ModelConfig, apply_model, greedy_decode, init_params

IOS = ["one_to_one", "many_to_one", "one_to_many", "many_to_many", "encoder_decoder"]


def _cfg(io, cell="lstm", layers=3, **kw):
    base = dict(io=io, cell=cell, num_classes=7, vocab_size=20, in_len=6, out_len=4,
                layers=layers, units=5, embed_dim=3, mask_zero=(io == "encoder_decoder"))
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("io", IOS)
@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_hidden_states_equal_layer_by_layer(io, cell):
    cfg = _cfg(io, cell)
    p = init_params(cfg, seed=1)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(3, 6)).astype(np.int32)
    x[0, :2] = 0
    dec = rng.integers(1, 7, size=(3, 4)).astype(np.int32) if io == "encoder_decoder" else None
    logits, aux = apply_model(cfg, p, x, dec, return_hidden=True)
    cc = cfg.cell_config
    if io == "encoder_decoder":
        e = p["encoder_embedding"]["embedding"][x]
        h = e
        for l in range(cfg.layers):
            h, fin = scan_layer(cc, p[f"encoder_rnn_{l}"], h, pad_mask=x != 0)
        h = p["decoder_embedding"]["embedding"][dec]
        init = fin
        want = []
        for l in range(cfg.layers):
            h, _ = scan_layer(cc, p[f"decoder_rnn_{l}"], h, pad_mask=dec != 0,
                              initial_carry=init if l == 0 else None)
            want.append(h)
    else:
        e = p["embedding"]["embedding"][x]
        if io in ("one_to_one", "one_to_many"):
            e = jnp.repeat(e.reshape(3, -1)[:, None], cfg.steps, axis=1)
        h, want = e, []
        for l in range(cfg.layers):
            h, _ = scan_layer(cc, p[f"rnn_{l}"], h)
            want.append(h)
    assert aux["hidden"].shape == (cfg.layers, 3, cfg.steps, cfg.units)
    for l in range(cfg.layers):
        np.testing.assert_allclose(np.asarray(aux["hidden"][l]), np.asarray(want[l]), atol=1e-6)
    top = want[-1] @ p["dense"]["kernel"] + p["dense"]["bias"]
    if io in ("one_to_one", "many_to_one"):
        top = top[:, -1]
    np.testing.assert_allclose(np.asarray(logits), np.asarray(top), atol=1e-5)


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_greedy_decode_equals_rerunning_prefix(cell):
    cfg = _cfg("encoder_decoder", cell, layers=2, num_classes=9, units=8)
    p = init_params(cfg, seed=4)
    # make the decoder less uniform so the argmax is informative
    p = jax.tree_util.tree_map(lambda a: a * 3.0, p)
    rng = np.random.default_rng(2)
    src = rng.integers(1, 20, size=(5, 6)).astype(np.int32)
    src[:, :2] = 0
    start = np.array([1, 2, 3, 1, 2], np.int32)
    fast = np.asarray(greedy_decode(cfg, p, src, start))
    # slow: re-run the whole decoder on the growing prefix, post-padded with zeros
    prefix = np.zeros((5, cfg.out_len), np.int32)
    prefix[:, 0] = start
    slow = np.zeros((5, cfg.out_len), np.int32)
    for i in range(cfg.out_len):
        logits = apply_model(cfg, p, src, prefix)
        tok = np.asarray(jnp.argmax(logits[:, i], -1))
        slow[:, i] = tok
        if i + 1 < cfg.out_len:
            prefix[:, i + 1] = tok
    np.testing.assert_array_equal(fast, slow)


def test_config_validation_names_argument():
    with pytest.raises(ValueError, match="io"):
        _cfg("many_to_some")
    with pytest.raises(ValueError, match="units"):
        _cfg("many_to_one", units=0)
    with pytest.raises(ValueError, match="dropout"):
        _cfg("many_to_one", dropout=1.5)
    cfg = _cfg("many_to_one")
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_bad_keep_shape():
    cfg = _cfg("many_to_one")
    p = init_params(cfg)
    with pytest.raises(ValueError, match="keep"):
        apply_model(cfg, p, np.ones((2, 6), np.int32), keep=np.ones((2, 5)))
