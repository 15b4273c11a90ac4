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


# -- forward pass choice ---------------------------------------------------------------------
def test_forward_field_round_trips_and_old_configs_load_as_keras():
    import json

    cfg = _cfg("many_to_one", "gru", forward="artifact")
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cfg.cell_config.forward == "artifact"
    old = json.loads(_cfg("many_to_one").to_json())
    del old["forward"]  # a config saved before the field existed
    assert ModelConfig.from_json(json.dumps(old)).forward == "keras"
    with pytest.raises(ValueError, match="forward"):
        _cfg("many_to_one", forward="numpy")


@pytest.mark.parametrize("cell,gate,reset_after,same", [
    ("lstm", "sigmoid", False, True),       # artifact == keras with sigmoid gates
    ("simple", "hard_sigmoid", False, True),  # no gates at all
    ("gru", "sigmoid", True, True),          # reset-after GRU: same candidate
    ("gru", "sigmoid", False, False),        # the artifact's GRU candidate differs
    ("lstm", "hard_sigmoid", False, False),  # logistic vs hard sigmoid gates
])
def test_function_key_says_when_the_forwards_compute_the_same_function(cell, gate, reset_after,
                                                                       same):
    keras = _cfg("many_to_one", cell, layers=1, gate_activation=gate, reset_after=reset_after)
    art = _cfg("many_to_one", cell, layers=1, gate_activation=gate, reset_after=reset_after,
               forward="artifact")
    assert (keras.function_key() == art.function_key()) == same
    p = jax.tree_util.tree_map(lambda a: a * 2.0, init_params(keras, seed=3))
    x = np.random.default_rng(0).integers(1, 20, size=(4, 6)).astype(np.int32)
    diff = np.abs(np.asarray(apply_model(keras, p, x)) - np.asarray(apply_model(art, p, x)))
    assert (diff.max() < 1e-6) == same, diff.max()


# -- decoding with a module ------------------------------------------------------------------
def _encdec_decomp(cfg, u_mask, seed=0):
    import jax.numpy as jnp

    from modjax.decomposition import Decomposition, DecomposeOptions

    rng = np.random.default_rng(seed)
    keep = rng.random((3, cfg.layers, cfg.units)) > 0.4
    return Decomposition(keep=jnp.asarray(keep), head_class=jnp.arange(3, dtype=jnp.int32),
                         has_positives=jnp.ones((3, 1), bool), config=cfg,
                         options=DecomposeOptions(u_mask=u_mask), class_names=("a", "b", "c"))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_greedy_decode_with_a_module_equals_the_masked_weights_model(cell):
    """Decoding with (decomposition, module) reads the semantics from the decomposition and
    equals greedy decoding of the module's masked weights (apply_masks), in both semantics."""
    from modjax.compose import apply_masks

    cfg = _cfg("encoder_decoder", cell, layers=2, num_classes=9, units=8, out_len=6)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a) * 3.0, init_params(cfg, seed=4))
    rng = np.random.default_rng(2)
    src = rng.integers(1, 20, size=(16, 6)).astype(np.int32)
    start = rng.integers(1, 9, size=16).astype(np.int32)
    outs = {}
    for u_mask in ("paper", "code"):
        d = _encdec_decomp(cfg, u_mask)
        for c in range(3):
            got = np.asarray(greedy_decode(cfg, p, src, start, decomp=d, module=c))
            want = np.asarray(greedy_decode(cfg, apply_masks(p, d, c), src, start))
            np.testing.assert_array_equal(got, want)
            outs[u_mask, c] = got
    # the semantics matter here: decoding "code" modules with "paper" masks would be wrong
    assert any((outs["paper", c] != outs["code", c]).any() for c in range(3))


def test_greedy_decode_module_arguments():
    cfg = _cfg("encoder_decoder", "lstm", layers=2, num_classes=9, units=8)
    p = init_params(cfg, seed=0)
    src = np.ones((2, 6), np.int32)
    start = np.ones(2, np.int32)
    d = _encdec_decomp(cfg, "code")
    with pytest.raises(ValueError, match="module"):
        greedy_decode(cfg, p, src, start, decomp=d)
    with pytest.raises(ValueError, match="module"):
        greedy_decode(cfg, p, src, start, decomp=d, module=3)
    with pytest.raises(ValueError, match="decomp"):
        greedy_decode(cfg, p, src, start, module=0)
    with pytest.raises(ValueError, match="decomp"):
        greedy_decode(_cfg("encoder_decoder", "lstm", layers=2, num_classes=9, units=7), p, src,
                      start, decomp=d, module=0)
