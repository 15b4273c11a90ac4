"""Tests of modjax.reuse: modules from different models composed into one problem.

Two trained many-to-one models of the same synthetic task (a 2-layer tanh RNN and a GRU) read
the same inputs, so their modules can be mixed. A many-to-many model with random weights over
the same vocabulary and length stands for a model of another I/O type.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

from modjax.compose import apply_masks, compose, module_scores, replace
from modjax.decompose import decompose
from modjax.metrics import accuracy
from modjax.models import ModelConfig, apply_model, init_params
from modjax.reuse import (ModuleRef, compose_modules, module_set_scores, modules_of,
                          replacement)
from tests.trained_models import decomposed, trained, trained_big


def _two_models():
    ca, pa, data = trained("simple_m2o")
    cb, pb, _ = trained("gru_m2o")
    return (decomposed("simple_m2o"), pa), (decomposed("gru_m2o"), pb), data


def _many_output_model(data, seed=0):
    cfg = ModelConfig(io="many_to_many", cell="lstm", num_classes=3,
                      vocab_size=data.vocab_size, in_len=data.in_len, layers=1, units=8,
                      embed_dim=8)
    params = init_params(cfg, seed)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=(400, data.in_len)).astype(np.int32)
    d = decompose(params, (data.x_train[:400], y), model=cfg, mode="unrolled", n_pos=20)
    return d, params


def _masked_weights_contrast(decomp, params, x, modules):
    """Each module's contrast ``z_p - z_q`` from an ordinary forward pass of its masked,
    channelled weights (apply_masks), in float64: independent of module_scores's masks on the
    matmuls. ``[len(modules), N]``."""
    out = []
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        for c in modules:
            z = np.asarray(apply_model(decomp.config, apply_masks(p64, decomp, c), x))
            p = int(decomp.head_class[c])
            out.append(z[..., p] - z[..., 1 if p == 0 else 0])
    return np.stack(out)


def test_all_modules_of_one_model_vote_as_their_masked_weights():
    (da, pa), _, data = _two_models()
    x = data.x_test
    pred, scores = compose_modules(modules_of(da, pa))(x)
    want = _masked_weights_contrast(da, pa, x, range(da.num_modules))
    np.testing.assert_allclose(np.asarray(scores), 1 / (1 + np.exp(-want)), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(pred), np.argmax(want, axis=0))


def test_mixed_sources_score_as_their_own_models_and_vote_by_label():
    (da, pa), (db, pb), data = _two_models()
    x = data.x_test
    refs = [ModuleRef(da, pa, 1, label=0), ModuleRef(db, pb, 2, label=1),
            ModuleRef(da, pa, 3, label=2)]
    pred, scores = compose_modules(refs)(x)
    sa = np.asarray(module_scores(da, pa, x))
    sb = np.asarray(module_scores(db, pb, x))
    want = np.stack([sa[1], sb[2], sa[3]])
    np.testing.assert_allclose(np.asarray(scores), want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(pred), np.argmax(np.asarray(scores), axis=0))
    # every label can win on this data (the vote is not stuck on one module)
    assert set(np.unique(np.asarray(pred))) == {0, 1, 2}


def test_replacement_within_one_model_equals_the_pytree_edit():
    (da, pa), _, data = _two_models()
    other = decomposed("simple_m2o", max_remove=0.3)
    refs = replacement(da, pa, 2, other, pa, 2)
    assert [r.vote_label for r in refs] == list(range(da.num_modules))
    pred, scores = compose_modules(refs)(data.x_test)
    want_pred, want_scores = compose(replace(da, 2, other, 2), pa)(data.x_test)
    np.testing.assert_allclose(np.asarray(scores), np.asarray(want_scores), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(pred), np.asarray(want_pred))


def test_replacement_across_models_keeps_the_class_and_the_accuracy():
    # Two models that learned the M:1 task well (LSTM-64, GRU-32). For every class c, the
    # GRU's module for c votes in place of the LSTM's (labels stay the LSTM's classes).
    # Thresholds fixed before running: class c keeps at least half its recall and the
    # composition stays within 5 pp of the weaker of the two composed models.
    ca, pa, data, _ = trained_big("many_to_one", "lstm", 64)
    cb, pb, _, _ = trained_big("many_to_one", "gru", 32)
    da = decompose(pa, (data.x_train, data.y_train), model=ca)
    db = decompose(pb, (data.x_train, data.y_train), model=cb)
    x, y = data.x_test, data.y_test
    sa = np.asarray(module_scores(da, pa, x))
    sb = np.asarray(module_scores(db, pb, x))
    acc_a = accuracy(np.argmax(sa, 0), y)
    acc_b = accuracy(np.argmax(sb, 0), y)
    lines = [f"composed LSTM {acc_a:.4f}, composed GRU {acc_b:.4f}"]
    for c in range(da.num_modules):
        pred, scores = compose_modules(replacement(da, pa, c, db, pb, c))(x)
        want = sa.copy()
        want[c] = sb[c]
        np.testing.assert_allclose(np.asarray(scores), want, rtol=0, atol=1e-6)
        pred = np.asarray(pred)
        acc = accuracy(pred, y)
        recall = float((pred[y == c] == c).mean())
        recall_a = float((np.argmax(sa, 0)[y == c] == c).mean())
        lines.append(f"class {c}: accuracy {acc:.4f}, recall {recall:.3f} (LSTM {recall_a:.3f})")
        assert recall >= 0.5 * recall_a, lines
        assert acc >= min(acc_a, acc_b) - 0.05, lines
    print("\n".join(lines))


def test_many_output_modules_vote_by_their_most_confident_step():
    (da, pa), _, data = _two_models()
    dm, pm = _many_output_model(data)
    x = data.x_test
    refs = [ModuleRef(dm, pm, 1, label=0), ModuleRef(da, pa, 2, label=1)]
    with pytest.raises(ValueError, match="reduce_steps"):
        module_set_scores(refs, x)
    pred, scores = compose_modules(refs, reduce_steps="max")(x)
    sm = np.asarray(module_scores(dm, pm, x))  # [3, N, T]
    sa = np.asarray(module_scores(da, pa, x))
    want = np.stack([sm[1].max(axis=1), sa[2]])
    np.testing.assert_allclose(np.asarray(scores), want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(pred), np.where(want[0] >= want[1], 0, 1))
    # many-output modules alone keep their step axis
    s = module_set_scores(modules_of(dm, pm, [0, 2]), x)
    assert s.shape == (2, x.shape[0], data.in_len)


def test_errors_name_the_argument():
    (da, pa), _, data = _two_models()
    x = data.x_test
    with pytest.raises(ValueError, match="refs"):
        compose_modules([])
    with pytest.raises(TypeError, match=r"refs\[0\]"):
        module_set_scores([(da, pa, 0)], x)
    with pytest.raises(ValueError, match="module"):
        ModuleRef(da, pa, da.num_modules)
    with pytest.raises(ValueError, match="label"):
        ModuleRef(da, pa, 0, label=-1)
    with pytest.raises(TypeError, match="decomp"):
        ModuleRef("not a decomposition", pa, 0)
    with pytest.raises(ValueError, match="reduce_steps"):
        module_set_scores(modules_of(da, pa), x, reduce_steps="mean")
    with pytest.raises(ValueError, match="in_len"):
        module_set_scores(modules_of(da, pa), x[:, :-1])
    bad = x.copy()
    bad[0, 0] = da.config.vocab_size
    with pytest.raises(ValueError, match="vocab"):
        module_set_scores(modules_of(da, pa), bad)
    with pytest.raises(ValueError, match="integer"):
        module_set_scores(modules_of(da, pa), x.astype(np.float32))
    with pytest.raises(ValueError, match="labels"):
        modules_of(da, pa, [0, 1], labels=[0])
    with pytest.raises(ValueError, match="c must"):
        replacement(da, pa, da.num_modules, da, pa, 0)


def test_select_subset_matches_masked_weights():
    (da, pa), _, data = _two_models()
    s = module_set_scores(modules_of(da, pa, [0, 2]), data.x_test, kind="contrast")
    want = _masked_weights_contrast(da, pa, data.x_test, [0, 2])
    np.testing.assert_allclose(np.asarray(s), want, rtol=0, atol=1e-4)


def test_compose_modules_and_replacement_vote_without_saturation():
    """Logits [19, 20, -10 x 8]: both leading modules' probabilities are 1.0 in float32; the
    vote compares contrasts and picks class 1, as the monolithic model does."""
    from tests.test_compose import _saturating_model

    cfg, params, decomp = _saturating_model()
    x = np.ones((3, cfg.in_len), np.int32)
    pred, scores = compose_modules(modules_of(decomp, params))(x)
    assert (np.asarray(scores)[:2] == 1.0).all()
    np.testing.assert_array_equal(np.asarray(pred), [1, 1, 1])
    pred, _ = compose_modules(replacement(decomp, params, 1, decomp, params, 1))(x)
    np.testing.assert_array_equal(np.asarray(pred), [1, 1, 1])
    pred, _ = compose_modules(modules_of(decomp, params, [0, 1], labels=[5, 6]))(x)
    np.testing.assert_array_equal(np.asarray(pred), [6, 6, 6])
