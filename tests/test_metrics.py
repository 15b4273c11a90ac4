"""Tests of modjax.metrics on hand-made examples whose values are computed by hand.

The example: a 1-layer SimpleRNN, ``E = 2``, ``H = 3``, ``C = 3``, ``V = 4``, every weight a
distinct non-zero float (so a masked 0 or a channelled mean never equals a model value).
Leaves: embedding 8, kernel 6, recurrent_kernel 9, bias 3, dense kernel 9, dense bias 3.
Modules (class p, removed units R): 0 ({1}), 1 ({}), 2 ({0, 1}).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from modjax.decomposition import Decomposition, DecomposeOptions
from modjax.metrics import (accuracy, corpus_bleu, jaccard_paper, jaccard_positional, overlap,
                            retention, units_kept)
from modjax.models import ModelConfig

CFG = ModelConfig(io="many_to_one", cell="simple", num_classes=3, vocab_size=4, in_len=3,
                  layers=1, units=3, embed_dim=2)
KEEP = np.array([[[1, 0, 1]], [[1, 1, 1]], [[0, 0, 1]]], bool)  # [C, L, H]


def params():
    rng = np.random.default_rng(0)
    shapes = {"embedding": {"embedding": (4, 2)},
              "rnn_0": {"kernel": (2, 3), "recurrent_kernel": (3, 3), "bias": (3,)},
              "dense": {"kernel": (3, 3), "bias": (3,)}}
    # float32, as trained params are (apply_masks returns jnp arrays: float32 without x64).
    return {k: {n: rng.uniform(1.0, 2.0, s).astype(np.float32) for n, s in d.items()}
            for k, d in shapes.items()}


def decomp(keep=KEEP, u_mask="code", mode="rolled", head_rows="step"):
    keep = jnp.asarray(keep, bool)
    M = keep.shape[2] if mode == "unrolled" else 1
    return Decomposition(keep=keep, head_class=jnp.arange(keep.shape[0], dtype=jnp.int32),
                         has_positives=jnp.ones((keep.shape[0], M), bool), config=CFG,
                         options=DecomposeOptions(mode=mode, u_mask=u_mask,
                                                  head_rows=head_rows),
                         class_names=("a", "b", "c"))


def ji(k):
    return k / (2 - k)


def test_accuracy_with_and_without_padding():
    y = np.array([[0, 0, 1, 2], [0, 3, 3, 1]])
    pred = np.array([[0, 1, 1, 2], [2, 3, 1, 1]])
    # all 8 positions: 5 equal; non-pad (label != 0): 5 positions, 4 equal
    assert accuracy(pred, y) == pytest.approx(5 / 8)
    assert accuracy(pred, y, ignore_padding=True) == pytest.approx(4 / 5)
    assert accuracy(np.array([1, 2, 3]), np.array([1, 0, 3])) == pytest.approx(2 / 3)
    assert np.isnan(accuracy(np.zeros((2, 2)), np.zeros((2, 2)), ignore_padding=True))
    with pytest.raises(ValueError, match="pred and labels"):
        accuracy(np.zeros(3), np.zeros(4))


def test_jaccard_paper_by_hand():
    # A = rnn kernel (6) + dense kernel (9) = 15 values.
    # Module 0 (p=0, q=1, R={1}): kernel keeps 4; dense column 0 keeps rows 0, 2 (row 1 is a
    #   removed unit's out-edge), column q is a mean, column 2 is 0 -> 6 of 15 unchanged.
    # Module 1 (p=1, nothing removed): 6 + column 1's 3 -> 9 of 15.
    # Module 2 (p=2, R={0,1}): kernel column 2 (2) + dense [2, 2] (1) -> 3 of 15.
    got = jaccard_paper(decomp(), params())
    np.testing.assert_allclose(got, [ji(6 / 15), ji(9 / 15), ji(3 / 15)], atol=1e-12)
    np.testing.assert_allclose(got, [0.25, 3 / 7, 1 / 9], atol=1e-12)
    # The input kernels do not depend on the recurrent semantics in a 1-layer model.
    np.testing.assert_allclose(jaccard_paper(decomp(u_mask="paper"), params()), got)


def test_jaccard_paper_unrolled_averages_steps():
    keep = np.ones((3, 1, 3, 3), bool)  # [C, L, T, H]
    keep[0, 0, 0] = [1, 0, 1]  # module 0 removes unit 1 at step 0 only
    got = jaccard_paper(decomp(keep, mode="unrolled"), params())
    # module 0: steps give 6/15, 9/15, 9/15; modules 1, 2 keep everything: 9/15 each step
    np.testing.assert_allclose(got, [(ji(6 / 15) + 2 * ji(9 / 15)) / 3, ji(9 / 15), ji(9 / 15)],
                               atol=1e-12)


@pytest.mark.parametrize("u_mask,unchanged", [("code", [25, 30, 18]), ("paper", [21, 30, 14])])
def test_jaccard_positional_by_hand(u_mask, unchanged):
    # 38 weights. Unchanged per leaf (emb, kernel, U, bias, dense kernel, dense bias):
    #   code:  m0 8+4+8+2+2+1, m1 8+6+9+3+3+1, m2 8+2+5+1+1+1
    #   paper: U keeps only kept x kept entries: m0 U 4, m2 U 1.
    # The dense bias keeps entry p only (q is a mean, the rest 0).
    got = jaccard_positional(decomp(u_mask=u_mask), params())
    np.testing.assert_allclose(got, [ji(u / 38) for u in unchanged], atol=1e-12)


@pytest.mark.parametrize("u_mask,kept", [("code", [20, 27, 11]), ("paper", [16, 27, 7])])
def test_retention_by_hand(u_mask, kept):
    # Masked leaves: kernel 6, U 9, bias 3, dense kernel 9 -> 27 weights.
    #   code:  m0 4+8+2+6, m2 2+5+1+3.   paper: m0 4+4+2+6, m2 2+1+1+3.
    np.testing.assert_allclose(retention(decomp(u_mask=u_mask), params()),
                               np.array(kept) / 27, atol=1e-12)


def test_retention_two_layers_paper_masks_next_layer_rows():
    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=2, vocab_size=4, in_len=3,
                      layers=2, units=2, embed_dim=3)
    from modjax.models import init_params
    p = init_params(cfg)
    keep = jnp.asarray([[[1, 0], [1, 1]], [[1, 1], [1, 1]]], bool)
    mk = lambda u: Decomposition(keep=keep, head_class=jnp.arange(2, dtype=jnp.int32),
                                 has_positives=jnp.ones((2, 1), bool), config=cfg,
                                 options=DecomposeOptions(u_mask=u), class_names=("a", "b"))
    # weights: l0 kernel 3x8, U 2x8, b 8; l1 kernel 2x8, U 2x8, b 8; dense 2x2 -> 92
    # module 0 removes unit 1 of layer 0 (4 gate columns):
    #   code : l0 kernel 12, U 16-4 = 12 (source 1 x its 4 columns), b 4; l1 all 40; dense 4 -> 72
    #   paper: l0 kernel 12, U 4 (row 0 x kept columns), b 4; l1 kernel row 1 lost (8) -> 32;
    #          dense 4 -> 56
    np.testing.assert_allclose(retention(mk("code"), p), [72 / 92, 1.0])
    np.testing.assert_allclose(retention(mk("paper"), p), [56 / 92, 1.0])


def test_overlap_and_units_kept():
    o = overlap(decomp())
    # kept sets {0,2}, {0,1,2}, {2}
    want = np.array([[1, 2 / 3, 1 / 2], [2 / 3, 1, 1 / 3], [1 / 2, 1 / 3, 1]])
    np.testing.assert_allclose(o, want, atol=1e-12)
    np.testing.assert_allclose(o, o.T)
    np.testing.assert_array_equal(np.diag(o), 1.0)
    np.testing.assert_array_equal(units_kept(decomp()), [[2], [3], [1]])
    rnd = np.random.default_rng(1).random((5, 2, 4, 7)) > 0.3
    d = Decomposition(keep=jnp.asarray(rnd), head_class=jnp.arange(5, dtype=jnp.int32),
                      has_positives=jnp.ones((5, 4), bool), config=CFG,
                      options=DecomposeOptions(mode="unrolled"), class_names=tuple("abcde"))
    o = overlap(d)
    np.testing.assert_allclose(o, o.T)
    np.testing.assert_array_equal(np.diag(o), 1.0)
    assert np.all((o >= 0) & (o <= 1))


def test_corpus_bleu_sanity():
    refs = ["the cat sat on the mat", "a dog ran in the park today"]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu(refs, refs, max_ngram_order=1) == pytest.approx(100.0)
    # BLEU-1: 2 of 3 unigrams match, same length (no brevity penalty) -> 66.67
    assert corpus_bleu(["a b c"], ["a b d"], max_ngram_order=1) == pytest.approx(200 / 3)
    assert corpus_bleu(["x y z"], ["a b c"]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same length"):
        corpus_bleu(["a"], ["a", "b"])


def test_chance_accuracy_and_padding_class():
    from modjax.metrics import chance_accuracy, has_padding_class

    y = np.array([[0, 0, 0, 2], [0, 0, 1, 2]])  # label 0 holds 5 of 8 positions
    assert chance_accuracy(y, 3) == 5 / 8
    assert chance_accuracy(np.array([0, 1, 2, 3, 4, 5]), 6) == pytest.approx(1 / 6)
    assert chance_accuracy(np.array([1, 1]), 10) == 1.0
    with pytest.raises(ValueError, match="num_classes"):
        chance_accuracy(y, 0)
    assert has_padding_class(("<pad>", "NOUN")) and has_padding_class(["pad", "clean"])
    assert not has_padding_class(("no", "yes")) and not has_padding_class(("0", "1"))


def test_jaccard_paper_counts_distinct_shared_values():
    """Weights with a repeated value: the intersection counts distinct values,
    ``len(set(A) & set(B))``, as the artifact computes it; |A| and |B| count every entry.

    The recurrent kernel holds one value six times (1.25); the dense kernel 9 distinct values.
    A = 15 entries, 10 distinct values. Module 1 (nothing removed): B keeps the six 1.25s and
    dense column 1 -> shared distinct values {1.25, 3 dense} = 4: JI = 4 / (15 + 15 - 4).
    Module 0 (unit 1 removed): four 1.25s, dense [0, 0] and [2, 0] -> 3: JI = 3 / 27.
    Module 2 (units 0, 1 removed): two 1.25s, dense [2, 2] -> 2: JI = 2 / 28.
    (Counting B's entries with multiplicity would give 9/21, 6/24 and 3/27.)
    """
    p = params()
    p["rnn_0"]["kernel"] = np.full((2, 3), 1.25, np.float32)
    got = jaccard_paper(decomp(), p)
    np.testing.assert_allclose(got, [3 / 27, 4 / 26, 2 / 28], atol=1e-12)


def test_jaccard_paper_unrolled_follows_the_head_rows_option():
    keep = np.ones((3, 1, 3, 3), bool)  # [C, L, T, H]
    keep[0, 0, 2] = [1, 0, 1]  # module 0 removes unit 1 at the last step only
    # "step": steps 0, 1 keep 9 of 15 (kernel 6 + column 0's 3 rows), step 2 keeps 6.
    step = jaccard_paper(decomp(keep, mode="unrolled"), params())
    np.testing.assert_allclose(step[0], (2 * ji(9 / 15) + ji(6 / 15)) / 3, atol=1e-12)
    # "last": the head drops row 1 at every step -> steps 0, 1 keep 8 of 15.
    last = jaccard_paper(decomp(keep, mode="unrolled", head_rows="last"), params())
    np.testing.assert_allclose(last[0], (2 * ji(8 / 15) + ji(6 / 15)) / 3, atol=1e-12)
    # "first": nothing is removed at step 0 -> every head row kept; step 2 keeps 7.
    first = jaccard_paper(decomp(keep, mode="unrolled", head_rows="first"), params())
    np.testing.assert_allclose(first[0], (2 * ji(9 / 15) + ji(7 / 15)) / 3, atol=1e-12)


# -- the vectorised metrics against their literal definitions, module by module -------------
def _literal_jaccard_paper(d, p):
    """The definition, one module and step at a time: value sets of the input kernels of the
    model and of ``apply_masks``' module, ``I = |distinct shared values|``."""
    from modjax.compose import apply_masks

    rnn = "decoder_rnn" if d.config.io == "encoder_decoder" else "rnn"

    def kernels(tree):
        return np.concatenate([np.asarray(tree[f"{rnn}_{l}"]["kernel"]).ravel()
                               for l in range(d.config.layers)]
                              + [np.asarray(tree["dense"]["kernel"]).ravel()])

    a = kernels(p)
    steps = range(d.keep.shape[2]) if d.unrolled else [None]
    out = []
    for c in range(d.num_modules):
        vals = []
        for t in steps:
            b = kernels(apply_masks(p, d, c, t))
            inter = len(set(a.astype(b.dtype).tolist()) & set(b.tolist()))
            vals.append(inter / (a.size + b.size - inter))
        out.append(np.mean(vals))
    return np.array(out)


def _literal_positional_and_retention(d, p):
    import jax

    from modjax.compose import apply_masks
    from modjax.masks import masks_for

    steps = range(d.keep.shape[2]) if d.unrolled else [None]
    base = np.concatenate([np.asarray(v).ravel() for v in jax.tree_util.tree_leaves(p)])
    pos, ret = [], []
    for c in range(d.num_modules):
        ks = []
        for t in steps:
            mod = np.concatenate([np.asarray(v).ravel() for v in
                                  jax.tree_util.tree_leaves(apply_masks(p, d, c, t))])
            k = float(np.mean(mod == base.astype(mod.dtype)))
            ks.append(k / (2 - k))
        pos.append(np.mean(ks))
        m = masks_for(d, c, p)
        leaves = [np.asarray(m[f"rnn_{l}"][n]) for l in range(d.config.layers)
                  for n in ("kernel", "recurrent_kernel", "bias")] + [np.asarray(m["dense"]["kernel"])]
        ret.append(sum(x.sum() for x in leaves) / sum(x.size for x in leaves))
    return np.array(pos), np.array(ret)


@pytest.mark.parametrize("cell,mode,u_mask,head_rows,bi", [
    ("lstm", "rolled", "code", "step", False), ("gru", "unrolled", "paper", "step", False),
    ("simple", "unrolled", "code", "last", False), ("lstm", "unrolled", "paper", "first", False),
    ("gru", "rolled", "paper", "none", False), ("lstm", "unrolled", "paper", "step", True),
    ("gru", "rolled", "code", "step", True)])
def test_vectorised_metrics_equal_their_literal_definitions(cell, mode, u_mask, head_rows, bi):
    """Two layers, 5 classes, random keeps; weights rounded to a coarse grid so that many
    values repeat and zeros occur (the distinct-value count matters)."""
    from modjax.models import init_params

    cfg = ModelConfig(io="many_to_many", cell=cell, num_classes=5, vocab_size=20, in_len=4,
                      layers=2, units=6, embed_dim=3, bidirectional=bi)
    rng = np.random.default_rng(1)
    p = {k: {n: (np.round(np.asarray(v) * 8) / 8).astype(np.float32) for n, v in d.items()}
         for k, d in init_params(cfg, 0).items()}
    shape = ((5, 2, 4) if mode == "unrolled" else (5, 2)) + ((2,) if bi else ()) + (6,)
    keep = rng.random(shape) > 0.3
    d = Decomposition(keep=jnp.asarray(keep), head_class=jnp.arange(5, dtype=jnp.int32),
                      has_positives=jnp.ones((5, 4 if mode == "unrolled" else 1), bool),
                      config=cfg, options=DecomposeOptions(mode=mode, u_mask=u_mask,
                                                           head_rows=head_rows),
                      class_names=tuple("abcde"))
    np.testing.assert_allclose(jaccard_paper(d, p), _literal_jaccard_paper(d, p), rtol=1e-12)
    pos, ret = _literal_positional_and_retention(d, p)
    np.testing.assert_allclose(jaccard_positional(d, p), pos, rtol=1e-12)
    np.testing.assert_allclose(retention(d, p), ret, rtol=1e-12)


@pytest.mark.parametrize("mode", ["rolled", "unrolled"])
def test_jaccard_paper_of_translator_modules_equals_the_definition(mode):
    """Encoder-decoder modules keep their head masked, not channelled (``apply_masks``): the
    paper's JI over the decoder's input kernels and the head, against the literal definition;
    a module that keeps every unit has JI 1."""
    from modjax.data.synthetic import load_synthetic
    from modjax.decompose import decompose
    from modjax.models import config_for, init_params

    data = load_synthetic("encoder_decoder", n_train=240, n_test=8, seed=0)
    config = config_for(data, cell="lstm", layers=2, units=8, embed_dim=6)
    p = init_params(config, 3)
    d = decompose(p, data, model=config, n_pos=30, max_remove=0.3, mode=mode)
    assert (~np.asarray(d.keep)).any()
    np.testing.assert_allclose(jaccard_paper(d, p), _literal_jaccard_paper(d, p), rtol=1e-12)
    full = d.replace(keep=jnp.ones_like(d.keep))
    np.testing.assert_allclose(jaccard_paper(full, p), 1.0)
