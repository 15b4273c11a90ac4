"""modjax.translation and greedy decoding with modules: the batched scan gives the tokens of
re-running the whole model on the growing prefix (the authors' O(T²) way), for the monolithic
model and for every module; a small trained translator scores above a BLEU floor and its modules
stay within 1 BLEU-1 of it on their own language."""
import functools

import jax
import numpy as np
import pytest

from modjax import bleu, translation
from modjax.data.synthetic import load_synthetic
from modjax.decompose import decompose
from modjax.models import apply_model, config_for, greedy_decode, init_params
from modjax.train import fit


@functools.lru_cache(maxsize=None)
def _random_setup(cell: str):
    data = load_synthetic("encoder_decoder", n_train=240, n_test=24, seed=1)
    cfg = config_for(data, cell=cell, layers=2, units=10, embed_dim=6)
    # scaled weights: sharper argmax, hidden states that differ between languages
    params = jax.tree_util.tree_map(lambda a: np.asarray(a) * 3.0, init_params(cfg, seed=3))
    return data, cfg, params


@functools.lru_cache(maxsize=None)
def _full_pass(cfg, u_mask: str, head_rows: str):
    """One jit-compiled full encoder-decoder pass per configuration, built once per process
    (not one new jit object, and one more compilation of the same program, per call)."""
    return jax.jit(functools.partial(apply_model, cfg, u_mask=u_mask, head_rows=head_rows))


def _rerun_prefix(cfg, params, src, start, end, keep=None, u_mask="paper", head_rows="step"):
    """Independent O(T²) reference: at step i run encoder and decoder on the prefix, post-padded
    with zeros, take the argmax at position i; after the end token only padding."""
    n, T = src.shape[0], cfg.out_len
    prefix = np.zeros((n, T), np.int32)
    prefix[:, 0] = start
    out = np.zeros((n, T), np.int64)
    finished = np.zeros(n, bool)
    run = _full_pass(cfg, u_mask, head_rows)
    for i in range(T):
        logits = np.asarray(run(params, src, prefix, keep=keep), np.float64)
        tok = logits[:, i].argmax(-1)
        tok[finished] = 0
        finished |= tok == end
        out[:, i] = tok
        if i + 1 < T:
            prefix[:, i + 1] = tok
    return out


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("mode", ["rolled", "unrolled"])
def test_scan_decoding_equals_rerunning_the_prefix_for_every_module(cell, mode):
    data, cfg, params = _random_setup(cell)
    decomp = decompose(params, data, model=cfg, preset="artifact", mode=mode, max_remove=0.3)
    assert decomp.options.u_mask == "code" and (~np.asarray(decomp.keep)).any()
    src = np.asarray(data.x_test)
    start_ids, end_ids = translation.tag_ids(data)
    lang = np.arange(len(src)) % 3
    start, end = start_ids[lang], end_ids[lang]
    mono = np.asarray(greedy_decode(cfg, params, src, start, end_ids=end))
    np.testing.assert_array_equal(mono, _rerun_prefix(cfg, params, src, start, end))
    differs = False
    for c in range(3):
        got = np.asarray(greedy_decode(cfg, params, src, start, end_ids=end, decomp=decomp,
                                       module=c))
        want = _rerun_prefix(cfg, params, src, start, end, keep=np.asarray(decomp.keep[c]),
                             u_mask=decomp.options.u_mask, head_rows=decomp.options.head_rows)
        np.testing.assert_array_equal(got, want)
        # the batched helper and the library's prefix decoder give the same tokens
        if c == 1:
            np.testing.assert_array_equal(translation.decode_ids(
                cfg, params, src, start, end, decomp=decomp, module=c, batch_size=7), want)
            np.testing.assert_array_equal(translation.prefix_decode(
                cfg, params, src, start, end, decomp=decomp, module=c), want)
        differs |= bool((got != mono).any())
    assert differs  # the masks change what is decoded, so the comparison has teeth


def test_tag_ids_and_language_rows():
    data, _, _ = _random_setup("lstm")
    start, end = translation.tag_ids(data)
    inv = {i: w for w, i in data.target_vocab.items()}
    assert [inv[i] for i in start] == [f"[start{l}]" for l in data.class_names]
    assert [inv[i] for i in end] == [f"[end{l}]" for l in data.class_names]
    rows = translation.language_rows(np.array([2, 0, 2, 1, 2]), 3, limit=2)
    assert [r.tolist() for r in rows] == [[1], [3], [0, 2]]
    refs = translation.references_from_ids(data)
    assert refs[0].split()[0] == f"[start{data.class_names[data.concern_test[0]]}]"
    assert refs[0].split()[-1] == f"[end{data.class_names[data.concern_test[0]]}]"
    with pytest.raises(ValueError, match="limit"):
        translation.language_rows(np.zeros(3), 3, limit=0)
    with pytest.raises(ValueError, match="batch_size"):
        translation.decode_ids(None, None, np.zeros((1, 2)), [1], [1], batch_size=0)


#: The small trained translator: LSTM-1, H=64, on 1,500 synthetic pairs of 2-4 words without
#: synonyms (so a trained model can be near exact), 150 test pairs (about 50 per language).
#: The margin of the 1-BLEU test is thin for this model (unrolled, one language: -0.99); with 20
#: epochs or 96 units some modules lose 1.5-4 BLEU-1, so small models do not always meet it.
TRAINED_EPOCHS = 14
BLEU1_FLOOR = 85.0       # monolithic BLEU-1 on every language; an untrained model scores < 30
SACREBLEU_FLOOR = 20.0   # monolithic sacreBLEU (4-gram, few 4-grams in 2-4 words; measured 24-62)


@functools.lru_cache(maxsize=None)
def _trained_translator():
    data = load_synthetic("encoder_decoder", n_train=1500, n_test=150, seed=0, min_len=2,
                          max_len=4, p_second_synonym=0.0)
    cfg = config_for(data, cell="lstm", layers=1, units=64, embed_dim=16, forward="artifact")
    params, _ = fit(cfg, data, epochs=TRAINED_EPOCHS, batch_size=32, learning_rate=1e-2, seed=0,
                    progress=False, validate=False)
    return data, cfg, params


def _bleu_by_language(data, cfg, params, decomp=None):
    refs = translation.references_from_ids(data)
    out = []
    for lang, rows in enumerate(translation.language_rows(data.concern_test, 3)):
        words = translation.decode_language(cfg, params, data, rows, lang, decomp=decomp,
                                            use_module=decomp is not None)
        out.append(translation.score_language(words, [refs[i] for i in rows],
                                              f"[start{data.class_names[lang]}]"))
    return out


def test_trained_translator_beats_the_floor_and_an_untrained_one_does_not():
    data, cfg, params = _trained_translator()
    for s in _bleu_by_language(data, cfg, params):
        assert s["bleu1"] >= BLEU1_FLOOR and s["sacrebleu"] >= SACREBLEU_FLOOR, s
    untrained = _bleu_by_language(data, cfg, init_params(cfg, seed=0))
    assert all(s["bleu1"] < 30 and s["sacrebleu"] < 5 for s in untrained), untrained


@pytest.mark.parametrize("mode", ["rolled", "unrolled"])
def test_each_language_module_within_one_bleu_of_the_model(mode):
    data, cfg, params = _trained_translator()
    decomp = decompose(params, data, model=cfg, preset="artifact", mode=mode)
    assert (~np.asarray(decomp.keep)).any()  # units were removed: the modules differ
    mono = _bleu_by_language(data, cfg, params)
    mods = _bleu_by_language(data, cfg, params, decomp)
    for lang in range(3):
        assert mods[lang]["bleu1"] >= mono[lang]["bleu1"] - 1.0, (lang, mono, mods)


def test_tatoeba_references_line_up_with_the_vectorised_test_pairs():
    """The raw tagged references are the test targets of load_tatoeba, row by row."""
    import os

    from modjax.data import default_data_dir, load_tatoeba
    from modjax.data.tokenizer import standardize_keep_brackets
    from tests.ci import in_ci

    d = default_data_dir()
    if not os.path.isdir(os.path.join(d, "tatoeba")):
        if in_ci():
            pytest.fail(f"real data folder {d!r} is missing (CI is set, so this is an error)")
        pytest.skip(f"real data folder {d!r} not present")
    data = load_tatoeba(path=d, max_tokens=2000)
    refs = translation.tatoeba_references(d)
    assert len(refs) == len(data.x_test) == 22834
    words = bleu.id_words(data.target_vocab, data.target_vocab_size)
    full = np.concatenate([data.decoder_input_test[:, :1], data.y_test], axis=1)
    for i in range(0, len(refs), 997):
        want = [w if w in data.target_vocab else "[UNK]"
                for w in standardize_keep_brackets(refs[i]).split()][:21]
        assert [w for w in words[full[i]] if w] == want, (i, refs[i])
        lang = data.class_names[data.concern_test[i]]
        assert refs[i].startswith(f"[start{lang}] ") and refs[i].endswith(f" [end{lang}]")
