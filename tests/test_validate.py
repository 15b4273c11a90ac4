"""Bad inputs at every public entry: each is refused with a ValueError naming the argument, the
value given and the expected range (``modjax.validate`` and its callers)."""
import warnings

import numpy as np
import pytest

from modjax import validate
from modjax.compose import compose, module_scores, select
from modjax.decompose import decompose
from modjax.decomposition import DecomposeOptions
from modjax.models import ModelConfig, greedy_decode, init_params
from modjax.reuse import ModuleRef, compose_modules, modules_of
from modjax.train import predict

V, L_IN, C = 20, 6, 3
TV, L_OUT = 9, 4  # encoder-decoder: target vocabulary, decoder length


@pytest.fixture(scope="module")
def m2o():
    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=C, vocab_size=V, in_len=L_IN,
                      units=5, embed_dim=3)
    params = init_params(cfg, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, V, (90, L_IN)), np.arange(90) % C
    d = decompose(params, (x, y), model=cfg, n_pos=20, max_remove=0.2)
    return cfg, params, d, x, y


@pytest.fixture(scope="module")
def encdec():
    cfg = ModelConfig(io="encoder_decoder", cell="gru", num_classes=TV, vocab_size=12,
                      in_len=5, out_len=L_OUT, units=5, embed_dim=3, mask_zero=True)
    params = init_params(cfg, seed=1)
    rng = np.random.default_rng(1)
    src, dec = rng.integers(1, 12, (40, 5)), rng.integers(1, TV, (40, L_OUT))
    concern = np.arange(40) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        d = decompose(params, ((src, dec), concern), model=cfg, class_names=("a", "b"),
                      n_pos=10, n_neg=10)
    return cfg, params, d, src, dec, concern


def _entries(m2o):
    cfg, params, d, x, y = m2o
    return {
        "compose": lambda a: compose(d, params)(a),
        "module_scores": lambda a: module_scores(d, params, a),
        "predict": lambda a: predict(cfg, params, a),
        "compose_modules": lambda a: compose_modules(modules_of(d, params))(a),
        "decompose": lambda a: decompose(params, (a, y[: len(a)]), model=cfg, n_pos=5),
    }


BAD_IDS = {
    # name: (make bad x from good x, message pattern)
    "id_eq_vocab": (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 7, V, x),
                    r"token id 20.*(\[0, 20\)|vocab_size=20)"),
    "negative_id": (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3, -2, x),
                    r"(token id -2.*\[0, 20\)|non-negative token ids, got -2)"),
    "float_ids": (lambda x: x.astype(np.float32) + 0.5, r"integer token ids, got dtype float32"),
    "wrong_length": (lambda x: np.concatenate([x, x[:, :1]], 1),
                     r"(\[N, 6\].*got shape \[\d+, 7\]|7 tokens per example.*in_len=6)"),
}


@pytest.mark.parametrize("bad", sorted(BAD_IDS))
@pytest.mark.parametrize("entry", ["compose", "module_scores", "predict", "compose_modules",
                                   "decompose"])
def test_bad_token_ids_are_refused(m2o, entry, bad):
    make, pattern = BAD_IDS[bad]
    x = m2o[3][:30]
    fn = _entries(m2o)[entry]
    fn(x)  # the good input passes
    with pytest.raises(ValueError, match=pattern) as e:
        fn(make(x))
    assert "x" in str(e.value) or "inputs" in str(e.value)


def test_greedy_decode_checks_src_start_and_end_ids(encdec):
    cfg, params, d, src, dec, _ = encdec
    start = np.full(len(src), 1)
    greedy_decode(cfg, params, src, start)
    with pytest.raises(ValueError, match=r"src holds token id 12.*\[0, 12\)"):
        greedy_decode(cfg, params, np.where(src == src[0, 0], 12, src), start)
    with pytest.raises(ValueError, match=r"src holds token id -6.*got range \[-11, -1\]"):
        greedy_decode(cfg, params, -src, start)
    with pytest.raises(ValueError, match=r"src must hold integer token ids, got dtype float64"):
        greedy_decode(cfg, params, src * 1.0, start)
    with pytest.raises(ValueError, match=r"src must have shape \[N, 5\].*got shape \[40, 4\]"):
        greedy_decode(cfg, params, src[:, :4], start)
    with pytest.raises(ValueError, match=r"start_ids holds token id 9.*target vocabulary"):
        greedy_decode(cfg, params, src, np.full(len(src), TV))
    with pytest.raises(ValueError, match=r"end_ids holds token id -1"):
        greedy_decode(cfg, params, src, start, end_ids=np.full(len(src), -1))
    with pytest.raises(ValueError, match=r"start_ids must have one entry per example of src"):
        greedy_decode(cfg, params, src, start[:3])


def test_bad_decoder_inputs_are_refused(encdec):
    cfg, params, d, src, dec, concern = encdec
    module_scores(d, params, src, dec)
    bad = np.where(dec == dec[0, 0], TV, dec)
    with pytest.raises(ValueError, match=r"dec_in holds token id 9; ids must lie in \[0, 9\) "
                       r"\(target vocabulary num_classes=9\)"):
        module_scores(d, params, src, bad)
    with pytest.raises(ValueError, match=r"dec_in .* is required for an encoder_decoder"):
        module_scores(d, params, src)
    with pytest.raises(ValueError, match=r"data decoder inputs holds token id 9"):
        decompose(params, ((src, bad), concern), model=cfg, class_names=("a", "b"))
    with pytest.raises(ValueError, match=r"data decoder inputs must have shape \[N, 4\]"):
        decompose(params, ((src, dec[:, :3]), concern), model=cfg, class_names=("a", "b"))
    with pytest.raises(ValueError, match=r"data concern must lie in \[0, 2\), got range"):
        decompose(params, ((src, dec), concern + 1), model=cfg, class_names=("a", "b"))


def test_dec_in_for_a_model_without_decoder_is_refused(m2o):
    cfg, params, d, x, _ = m2o
    with pytest.raises(ValueError, match="dec_in is only for encoder_decoder models"):
        module_scores(d, params, x, x)


@pytest.mark.parametrize("field,value,pattern", [
    ("max_remove", "0.1", r"max_remove must be a real number \[0.0, 1.0\].*got '0.1'"),
    ("max_remove", 1.5, r"max_remove must be a real number \[0.0, 1.0\].*got 1.5"),
    ("max_remove", float("nan"), r"max_remove .* got nan"),
    ("tie_ratio", 0.5, r"tie_ratio must be a real number >= 1.0, got 0.5"),
    ("tie_ratio", "1.1", r"tie_ratio must be a real number >= 1.0, got '1.1'"),
    ("tie_ratio", float("inf"), r"tie_ratio .* got inf"),
    ("relu_threshold", None, r"relu_threshold must be a real number finite, got None"),
    ("n_pos", 0, r"n_pos must be a positive int or None, got 0"),
    ("n_pos", 2.5, r"n_pos must be a positive int or None, got 2.5"),
    ("n_neg", True, r"n_neg must be a positive int or None, got True"),
])
def test_bad_options_are_refused(m2o, field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        DecomposeOptions(**{field: value})
    cfg, params, _, x, y = m2o
    with pytest.raises(ValueError, match=pattern):  # through decompose, before any work
        decompose(params, (x, y), model=cfg, **{field: value})


def test_numpy_integer_options_are_accepted(m2o):
    cfg, params, d, x, y = m2o
    o = DecomposeOptions(n_pos=np.int64(20), n_neg=np.int32(7), max_remove=np.float32(0.25))
    assert o.n_pos == 20 and type(o.n_pos) is int and type(o.n_neg) is int
    assert o == DecomposeOptions(n_pos=20, n_neg=7, max_remove=float(np.float32(0.25)))
    got = decompose(params, (x, y), model=cfg, n_pos=np.int64(20), max_remove=0.2)
    np.testing.assert_array_equal(np.asarray(got.keep), np.asarray(d.keep))
    assert got.options == d.options


@pytest.mark.parametrize("kind", ["soft", "all_zero", "two_ones"])
def test_non_one_hot_labels_are_refused(m2o, kind):
    cfg, params, d, x, y = m2o
    onehot = np.eye(C)[y]
    got = decompose(params, (x, onehot), model=cfg, n_pos=20, max_remove=0.2)
    np.testing.assert_array_equal(np.asarray(got.keep), np.asarray(d.keep))  # exact one-hot ok
    bad = onehot.copy()
    bad[5] = {"soft": [0.2, 0.7, 0.1], "all_zero": [0, 0, 0], "two_ones": [1, 1, 0]}[kind]
    with pytest.raises(ValueError, match=r"data labels looks one-hot \(\[90, 3\]\) but row \[5\]"
                       r".*exactly one 1"):
        decompose(params, (x, bad), model=cfg)


def test_labels_out_of_range_or_fractional(m2o):
    cfg, params, _, x, y = m2o
    with pytest.raises(ValueError, match=r"data labels must lie in \[0, 3\), got range \[0, 3\]"):
        decompose(params, (x, np.where(y == 2, 3, y)), model=cfg)
    with pytest.raises(ValueError, match="data labels must be integers, got non-integral"):
        decompose(params, (x, y + 0.5), model=cfg)


def test_module_indices_must_be_ints_in_range(m2o):
    cfg, params, d, _, _ = m2o
    assert select(d, [2, np.int64(0)]).class_names == ("2", "0")
    for bad, shown in (([1.7], "1.7"), ([True], "True"), ([3], "3"), ([-1], "-1"),
                       (["1"], "'1'")):
        with pytest.raises(ValueError, match=rf"classes\[0\] must be a module index in "
                           rf"\[0, 3\) \(an int\), got {shown}"):
            select(d, bad)
    with pytest.raises(ValueError, match="classes must name at least one module"):
        select(d, [])
    for bad in (1.0, True):
        with pytest.raises(ValueError, match=rf"ModuleRef.module must be a module index in "
                           rf"\[0, 3\) \(an int\), got {bad}"):
            ModuleRef(d, params, bad)


def test_zero_examples_are_refused_by_decompose_only(m2o):
    """A decomposition needs examples; scoring and prediction return empty results."""
    cfg, params, d, x, y = m2o
    with pytest.raises(ValueError, match=r"data inputs must hold at least one example, got "
                       r"shape \[0, 6\]"):
        decompose(params, (x[:0], y[:0]), model=cfg)
    assert module_scores(d, params, x[:0]).shape == (d.num_modules, 0)  # [C, N]
    assert predict(cfg, params, x[:0]).shape == (0,)


def test_tracers_pass_through_unchecked(m2o):
    import jax

    cfg, params, d, x, _ = m2o
    seen = []

    def f(a):
        seen.append(validate.is_tracer(a))
        return validate.token_ids("x", a, V, length=L_IN)

    out = jax.jit(f)(x.astype(np.int32))
    assert seen == [True]
    np.testing.assert_array_equal(np.asarray(out), x)


def test_real_and_index_helpers():
    assert validate.real("a", np.float64(0.5), lo=0, hi=1) == 0.5
    assert validate.index("i", np.int16(2), 3) == 2
    assert validate.positive_int("n", np.uint8(4)) == 4
    with pytest.raises(ValueError, match=r"i must be a module index in \[0, 3\) \(an int\), "
                       r"got 2.0"):
        validate.index("i", 2.0, 3)


def test_trace_checks_its_inputs(m2o):
    from modjax.decompose import trace

    cfg, params, _, x, _ = m2o
    assert trace(params, x[:4], model=cfg).shape == (1, 4, L_IN, 5)
    with pytest.raises(ValueError, match=r"inputs must hold integer token ids, got dtype float64"):
        trace(params, x * 1.0, model=cfg)
    with pytest.raises(ValueError, match=r"inputs holds token id 20"):
        trace(params, np.where(x == x[0, 0], V, x), model=cfg)
