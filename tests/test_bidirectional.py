"""Bidirectional recurrent layers end to end: the forward pass, the composed modules and the
decomposition of a trained BiLSTM tagger, against float64 NumPy references written here with
loops (docs/method.md#bidirectional)."""
from __future__ import annotations

import numpy as np
import pytest

from modjax import metrics
from modjax.compose import apply_masks, compose, module_scores
from modjax.decompose import decompose, trace
from modjax.decomposition import Decomposition, DecomposeOptions
from modjax.models import ModelConfig, apply_model, greedy_decode, init_params
from tests import numpy_ref
from tests.numpy_ref import float64_params

C, T, H = 3, 4, 3
G = {"simple": 1, "lstm": 4, "gru": 3}


def bi_config(cell, io, merge="concat", *, reset_after=False, activation="tanh", layers=2,
              mask_zero=False):
    return ModelConfig(io=io, cell=cell, num_classes=C, vocab_size=11, in_len=T,
                       out_len=3 if io in ("one_to_many", "encoder_decoder") else 1,
                       layers=layers, units=H, embed_dim=4, reset_after=reset_after,
                       activation=activation, bidirectional=True, merge=merge,
                       mask_zero=mask_zero)


def inputs(cfg, n=5, seed=1, pad=False):
    x = np.random.default_rng(seed).integers(1, cfg.vocab_size, (n, cfg.in_len)).astype(np.int32)
    if pad:  # trailing and leading padding (token 0), held over by mask_zero
        x[0, -2:] = 0
        x[1, :1] = 0
    return x


# ---------------------------------------------------------------------------------------------
# The float64 reference: two loops over positions per layer, dense masked matrices.
# ---------------------------------------------------------------------------------------------

def _merge(a, b, merge):
    return np.concatenate([a, b], -1) if merge == "concat" else a + b


def _merge_keep(a, b, merge):
    return np.concatenate([a, b], -1) if merge == "concat" else np.maximum(a, b)


def ref_forward(cfg, P, x, keep=None, u_mask="code", head_rows="step", prefix="rnn_",
                xs=None, pad=None, init=None, head=True):
    """Float64 logits (and every layer's states ``[L, N, T, 2, H]``) of a bidirectional stack.

    ``keep`` ``[L, T, 2, H]`` (0/1, ``None`` = all kept) is applied as dense masked matrices:
    at position ``t`` both directions use their own keep vector of that position; the backward
    direction walks positions ``T-1 .. 0``. The head's rows follow the merged layout; a
    one-output model reads each direction's last step (position ``T-1`` forward, 0 backward).
    """
    L, g = cfg.layers, G[cfg.cell]
    if xs is None:
        e = np.asarray(P["embedding"]["embedding"], np.float64)[x]
        if cfg.io in ("one_to_one", "one_to_many"):
            xs = np.repeat(e.reshape(len(x), 1, -1), cfg.steps, axis=1)
        else:
            xs = e
            pad = (x != 0) if cfg.mask_zero else None
    N, Tn = xs.shape[:2]
    keep = np.ones((L, Tn, 2, H)) if keep is None else np.asarray(keep, np.float64)
    kw = dict(activation=cfg.activation, gate=cfg.gate_activation, reset_after=cfg.reset_after)
    hidden = np.zeros((L, N, Tn, 2, H))
    finals = []
    inp = xs
    for l in range(L):
        p = {k: np.asarray(v, np.float64) for k, v in P[f"{prefix}{l}"].items()}
        fin = []
        for d in range(2):
            h, c = np.zeros((N, H)), np.zeros((N, H))
            if init is not None and l == 0:
                h, c = init
            order = range(Tn) if d == 0 else range(Tn - 1, -1, -1)
            for t in order:
                k = keep[l, t, d]
                col = np.tile(k, g)
                W = p["kernel"][d] * col[None, :]
                if u_mask == "paper" and l > 0:
                    W = W * _merge_keep(keep[l - 1, t, 0], keep[l - 1, t, 1], cfg.merge)[:, None]
                B = p["bias"][d] * col
                M = np.outer(k, col) if u_mask == "paper" else 1 - np.outer(1 - k, 1 - col)
                U = p["recurrent_kernel"][d] * M
                hn, cn = numpy_ref.step(cfg.cell, None, h, c, inp[:, t], W=W, U=U, B=B, **kw)
                cn = c if cn is None else cn
                if pad is not None:
                    hn = np.where(pad[:, t:t + 1], hn, h)
                    cn = np.where(pad[:, t:t + 1], cn, c)
                h, c = hn, cn
                hidden[l, :, t, d] = h
            fin.append((h, c))
        finals.append(fin)
        inp = _merge(hidden[l, :, :, 0], hidden[l, :, :, 1], cfg.merge)
    if not head:
        return None, hidden, finals
    top = keep[L - 1]  # [T, 2, H]
    own_last = np.stack([top[-1, 0], top[0, 1]])
    own_first = np.stack([top[0, 0], top[-1, 1]])
    rows = {"step": top, "last": np.broadcast_to(own_last, top.shape),
            "first": np.broadcast_to(own_first, top.shape), "none": np.ones_like(top)}[head_rows]
    K = np.asarray(P["dense"]["kernel"], np.float64)
    b = np.asarray(P["dense"]["bias"], np.float64)
    if cfg.io in ("one_to_one", "many_to_one"):
        r = own_last if head_rows in ("step", "last") else rows[0]
        v = _merge(hidden[-1, :, -1, 0], hidden[-1, :, 0, 1], cfg.merge)
        logits = v @ (K * _merge_keep(r[0], r[1], cfg.merge)[:, None]) + b
    else:
        logits = np.stack([_merge(hidden[-1, :, t, 0], hidden[-1, :, t, 1], cfg.merge)
                           @ (K * _merge_keep(rows[t, 0], rows[t, 1], cfg.merge)[:, None]) + b
                           for t in range(Tn)], axis=1)
    return logits, hidden, finals


def contrast(logits, p):
    z_p = logits[..., p]
    return z_p - (logits.sum(-1) - z_p) / (logits.shape[-1] - 1)


# ---------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------

CELLS = [("simple", False, "tanh"), ("simple", False, "relu"), ("lstm", False, "tanh"),
         ("gru", False, "tanh"), ("gru", True, "tanh")]
IOS = [("many_to_one", True), ("many_to_many", False), ("one_to_many", False),
       ("one_to_one", False)]


@pytest.mark.parametrize("merge", ["concat", "sum"])
@pytest.mark.parametrize("cell,ra,act", CELLS, ids=lambda v: str(v))
def test_forward_matches_float64_reference(cell, ra, act, merge):
    """Every cell, both merges, M:1 with padding held by mask_zero and M:N (LSTM: also 1:N and
    1:1): logits and every layer's states of both directions."""
    for i, (io, masked) in enumerate(IOS if cell == "lstm" else IOS[:2]):
        cfg = bi_config(cell, io, merge, reset_after=ra, activation=act, mask_zero=masked)
        P = float64_params(cfg, seed=i)
        x = inputs(cfg, pad=masked)
        got, aux = apply_model(cfg, P, x, return_hidden=True)
        want, hidden, _ = ref_forward(cfg, P, x)
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=1e-5, err_msg=io)
        np.testing.assert_allclose(np.asarray(aux["hidden"]), hidden, atol=2e-5, rtol=1e-5)
        if io == "many_to_many":
            np.testing.assert_allclose(np.asarray(trace(P, x, model=cfg)), hidden, atol=2e-5,
                                       rtol=1e-5)


def test_directions_are_not_interchangeable():
    """The backward direction reads the sequence reversed: swapping the directions' weights
    changes the output (the reference would not notice a forward-only run otherwise)."""
    cfg = bi_config("lstm", "many_to_many")
    P = float64_params(cfg)
    x = inputs(cfg)
    swapped = {k: dict(v) for k, v in P.items()}
    for name in ("rnn_0", "rnn_1"):
        swapped[name] = {k: v[::-1] for k, v in P[name].items()}
    assert np.abs(np.asarray(apply_model(cfg, P, x))
                  - np.asarray(apply_model(cfg, swapped, x))).max() > 1e-3


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_encoder_decoder_bidirectional_encoder(merge):
    """Only the encoder is bidirectional; the decoder's first layer starts from the sum of the
    encoder's two final carries (h and c); greedy decoding agrees with the teacher-forced run."""
    cfg = bi_config("lstm", "encoder_decoder", merge, mask_zero=True)
    P = float64_params(cfg)
    src = inputs(cfg, pad=True)
    dec = np.random.default_rng(2).integers(1, C, (len(src), cfg.out_len)).astype(np.int32)
    got = np.asarray(apply_model(cfg, P, src, dec))
    enc_cfg = bi_config("lstm", "many_to_many", merge, mask_zero=True)
    e = np.asarray(P["encoder_embedding"]["embedding"], np.float64)[src]
    _, _, finals = ref_forward(enc_cfg, P, None, prefix="encoder_rnn_", xs=e, pad=src != 0,
                               head=False)
    (hf, cf), (hb, cb) = finals[-1]
    # the unidirectional decoder from that state, in float64
    kw = dict(activation="tanh", gate="sigmoid")
    inp = np.asarray(P["decoder_embedding"]["embedding"], np.float64)[dec]
    for l in range(cfg.layers):
        p = P[f"decoder_rnn_{l}"]
        h0 = (hf + hb, cf + cb) if l == 0 else (None, None)
        hs, _, _ = numpy_ref.run("lstm", p, inp, h0=h0[0], c0=h0[1], pad=dec != 0, **kw)
        inp = hs
    want = inp @ P["dense"]["kernel"] + P["dense"]["bias"]
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    start = dec[:, 0]
    out = np.asarray(greedy_decode(cfg, P, src, start))
    assert out.shape == (len(src), cfg.out_len)


def test_config_validation_and_json_round_trip():
    cfg = bi_config("gru", "many_to_many", "sum")
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cfg.directions == 2 and cfg.keep_shape(H, True) == (2, T, 2, H)
    assert bi_config("gru", "encoder_decoder").directions == 1
    with pytest.raises(ValueError, match="merge must be one of"):
        bi_config("lstm", "many_to_one", "mul")
    with pytest.raises(ValueError, match="bidirectional must be a bool"):
        ModelConfig(io="many_to_one", cell="lstm", num_classes=2, vocab_size=5, in_len=3,
                    bidirectional="yes")
    P = init_params(cfg)
    with pytest.raises(ValueError, match=r"keep must have shape \[2, 2, F\] or \[2, 4, 2, F\]"):
        apply_model(cfg, P, inputs(cfg), keep=np.ones((2, H)))


# ---------------------------------------------------------------------------------------------
# Composition against the dense masked reference
# ---------------------------------------------------------------------------------------------

def random_decomp(cfg, mode, u_mask, head_rows, seed=0):
    rng = np.random.default_rng(seed)
    shape = (C,) + cfg.keep_shape(H, mode == "unrolled")
    keep = rng.random(shape) > 0.35
    return Decomposition(keep=keep, head_class=np.arange(C, dtype=np.int32),
                         has_positives=np.ones((C, T if mode == "unrolled" else 1), bool),
                         config=cfg, options=DecomposeOptions(mode=mode, u_mask=u_mask,
                                                              head_rows=head_rows),
                         class_names=tuple(map(str, range(C))))


COMPOSE_CASES = [(cell, ra, io, merge, mode, hr)
                 for cell, ra in (("lstm", False), ("gru", True), ("simple", False))
                 for io, merge, mode, hr in (("many_to_one", "concat", "rolled", "step"),
                                             ("many_to_one", "sum", "unrolled", "step"),
                                             ("many_to_many", "sum", "rolled", "step"),
                                             ("many_to_many", "concat", "unrolled", "first"))]


@pytest.mark.parametrize("u_mask", ["code", "paper"])
@pytest.mark.parametrize("cell,ra,io,merge,mode,head_rows", COMPOSE_CASES, ids=lambda v: str(v))
def test_composition_matches_dense_reference(cell, ra, io, merge, mode, head_rows, u_mask):
    cfg = bi_config(cell, io, merge, reset_after=ra)
    P = float64_params(cfg, seed=3)
    x = inputs(cfg, n=6)
    decomp = random_decomp(cfg, mode, u_mask, head_rows)
    got = np.asarray(module_scores(decomp, P, x, kind="contrast"))
    for c in range(C):
        k = np.asarray(decomp.keep[c], np.float64)
        if mode == "rolled":
            k = np.repeat(k[:, None], T, axis=1)
        want = contrast(ref_forward(cfg, P, x, k, u_mask, head_rows)[0], c)
        np.testing.assert_allclose(got[c], want, atol=3e-5, rtol=1e-5, err_msg=f"module {c}")
        if mode == "rolled":  # the module as ordinary (masked, channelled) params
            q = 1 if c == 0 else 0
            logits = np.asarray(apply_model(cfg, apply_masks(P, decomp, c), x))
            np.testing.assert_allclose(logits[..., c] - logits[..., q], want, atol=3e-5,
                                       rtol=1e-5)
    pred, _ = compose(decomp, P)(x)
    assert np.asarray(pred).shape == ((6,) if io == "many_to_one" else (6, T))


def test_head_rows_last_and_first_are_each_directions_own():
    """Unrolled many-to-one, head_rows="last": the backward direction's last step is position
    0, so its head rows come from keep[:, 0, backward]."""
    cfg = bi_config("lstm", "many_to_one")
    P = float64_params(cfg, seed=4)
    x = inputs(cfg)
    for hr in ("last", "first", "none"):
        decomp = random_decomp(cfg, "unrolled", "code", hr, seed=5)
        got = np.asarray(module_scores(decomp, P, x, kind="contrast"))
        for c in range(C):
            want = contrast(ref_forward(cfg, P, x, np.asarray(decomp.keep[c], float), "code",
                                        hr)[0], c)
            np.testing.assert_allclose(got[c], want, atol=3e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# A trained BiLSTM tagger on the synthetic many-to-many task
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tagger():
    from modjax.data.synthetic import load_synthetic
    from modjax.models import config_for
    from modjax.train import fit, predict

    data = load_synthetic("many_to_many", n_train=1500, n_test=400, seed=0)
    cfg = config_for(data, cell="lstm", layers=1, units=24, embed_dim=16, bidirectional=True)
    params, _ = fit(cfg, data, epochs=6, batch_size=32, learning_rate=5e-3, seed=0,
                    progress=False, validate=False)
    return cfg, params, data, np.asarray(predict(cfg, params, data.x_test))


@pytest.mark.parametrize("mode", ["rolled", "unrolled"])
def test_trained_bilstm_tagger_decomposes_and_composes(tagger, mode, capsys):
    cfg, params, data, mono = tagger
    y = np.asarray(data.y_test)
    mono_acc = metrics.accuracy(mono, y)
    assert mono_acc > metrics.chance_accuracy(y, cfg.num_classes) + 0.2  # it learned the task
    decomp = decompose(params, data, model=cfg, mode=mode, max_remove=0.1, n_pos=200)
    keep = np.asarray(decomp.keep)
    assert keep.shape == (cfg.num_classes,) + cfg.keep_shape(cfg.units, mode == "unrolled")
    removed = (~keep).sum(-1)  # per direction: the cap ceil(0.1 * 24) = 3 (ties may add)
    assert (removed[..., 0] >= 1).any() and (removed[..., 1] >= 1).any()
    pred, _ = compose(decomp, params)(data.x_test)
    comp_acc = metrics.accuracy(np.asarray(pred), y)
    delta = 100 * (comp_acc - mono_acc)
    ji = float(metrics.jaccard_paper(decomp, params).mean())
    with capsys.disabled():
        print(f"\nBiLSTM-1 tagger ({mode}): monolithic {100 * mono_acc:.2f}%, composed "
              f"{100 * comp_acc:.2f}%, delta {delta:+.2f} pp, JI {ji:.3f}")
    assert abs(delta) < 5.0
    assert 0.0 < ji < 1.0


def test_persisted_bidirectional_decomposition_round_trips(tagger, tmp_path):
    from modjax.persist import load_decomposition, save_decomposition

    cfg, params, data, _ = tagger
    decomp = decompose(params, data, model=cfg, mode="unrolled", n_pos=50)
    save_decomposition(str(tmp_path / "d"), decomp, params)
    back = load_decomposition(str(tmp_path / "d"), params)
    assert back.config == cfg and back.keep.shape == decomp.keep.shape
    np.testing.assert_array_equal(np.asarray(back.keep), np.asarray(decomp.keep))


def test_compact_and_minimal_refuse_bidirectional(tagger):
    from modjax.compact import compact
    from modjax.minimal import minimal_modules

    cfg, params, data, _ = tagger
    decomp = decompose(params, data, model=cfg, n_pos=50)
    with pytest.raises(ValueError, match="compact supports unidirectional models only"):
        compact(params, decomp, 0)
    with pytest.raises(ValueError, match="minimal_modules supports unidirectional models only"):
        minimal_modules(params, data, model=cfg)
