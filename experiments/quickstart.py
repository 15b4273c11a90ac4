"""Quickstart: train a small RNN on embedded synthetic data, decompose it, compose the modules.

    python -m experiments.quickstart                      # LSTM, many-to-one, rolled
    python -m experiments.quickstart --io=many_to_many --mode=unrolled --cell=gru
    python -m experiments.quickstart --out=runs/quickstart   # also save the model
"""
from __future__ import annotations

import time

from absl import app, flags

FLAGS = flags.FLAGS
def define_flags():
    """Define this binary's flags (called only when it runs as a program, so importing
    the module from tests or other binaries defines nothing)."""
    flags.DEFINE_enum("io", "many_to_one", ["one_to_one", "many_to_one", "one_to_many",
                                            "many_to_many"], "I/O type of the synthetic task.")
    flags.DEFINE_enum("cell", "lstm", ["simple", "lstm", "gru"], "Recurrent cell.")
    flags.DEFINE_integer("layers", 1, "Stacked recurrent layers.")
    flags.DEFINE_integer("units", 64, "Units per recurrent layer.")
    flags.DEFINE_integer("epochs", 10, "Training epochs.")
    flags.DEFINE_integer("seed", 0, "Seed for data, initialisation and shuffling.")
    flags.DEFINE_string("out", None, "Also save the trained model to this checkpoint directory "
                        "(python -m modjax decompose --model=DIR reads it).")
    flags.DEFINE_integer("n_train", 4000, "Training examples of the synthetic task.")
    flags.DEFINE_integer("n_test", 1000, "Test examples of the synthetic task.")
    flags.DEFINE_enum("mode", None, ["rolled", "unrolled"],
                      "Decomposition mode (default: rolled for one-output, unrolled for many-output).")
    flags.DEFINE_float("max_remove", 0.05, "Removal cap per layer.")
    flags.DEFINE_enum("u_mask", "code", ["code", "paper"], "Recurrent-mask semantics.")


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing out of the summary
    import jax
    import numpy as np

    from modjax import compose, decompose, metrics
    from modjax.baselines import bag_of_words_baseline, last_token_baseline
    from modjax.data.synthetic import load_synthetic
    from modjax.models import config_for
    from modjax.train import fit, predict

    t_all = time.perf_counter()
    data = load_synthetic(FLAGS.io, seed=FLAGS.seed, n_train=FLAGS.n_train,
                          n_test=FLAGS.n_test)
    many = FLAGS.io in ("one_to_many", "many_to_many")
    mode = FLAGS.mode or ("unrolled" if many else "rolled")
    cell = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}[FLAGS.cell]  # RNN-1 = vanilla
    print(f"modjax quickstart on {jax.default_backend().upper()}: {cell}-"
          f"{FLAGS.layers} ({'vanilla, ' if FLAGS.cell == 'simple' else ''}{FLAGS.units} units), "
          f"synthetic {FLAGS.io} task, "
          f"{len(data.x_train)} train / {len(data.x_test)} test, {data.num_classes} classes")
    config = config_for(data, cell=FLAGS.cell, layers=FLAGS.layers, units=FLAGS.units,
                        embed_dim=32)
    t0 = time.perf_counter()
    params, hist = fit(config, data, epochs=FLAGS.epochs, batch_size=32, learning_rate=3e-3,
                       seed=FLAGS.seed, progress=False, validate=False)
    t_train = time.perf_counter() - t0
    if FLAGS.out:
        from modjax.checkpoint import save_model

        save_model(FLAGS.out, config, params)

    t0 = time.perf_counter()
    decomp = decompose(params, data, model=config, mode=mode, max_remove=FLAGS.max_remove,
                       u_mask=FLAGS.u_mask)
    jax.block_until_ready(decomp.keep)
    t_dec = time.perf_counter() - t0
    t0 = time.perf_counter()
    decomp2 = decompose(params, data, model=config, mode=mode, max_remove=FLAGS.max_remove,
                        u_mask=FLAGS.u_mask)
    jax.block_until_ready(decomp2.keep)
    t_dec_warm = time.perf_counter() - t0

    mono = predict(config, params, data.x_test)
    t0 = time.perf_counter()
    pred, _ = compose(decomp, params)(data.x_test)
    pred = np.asarray(pred)
    t_comp = time.perf_counter() - t0
    y = data.y_test
    ji = metrics.jaccard_paper(decomp, params)
    ret = metrics.retention(decomp, params)
    kept = metrics.units_kept(decomp)

    rows = [("monolithic accuracy", metrics.accuracy(mono, y)),
            ("composed accuracy", metrics.accuracy(pred, y))]
    if many and metrics.has_padding_class(data.class_names):
        rows += [("monolithic accuracy (no padding)", metrics.accuracy(mono, y,
                                                                      ignore_padding=True)),
                 ("composed accuracy (no padding)", metrics.accuracy(pred, y,
                                                                    ignore_padding=True))]
    rows += [("bag-of-words baseline", bag_of_words_baseline(data)),
             ("last/current-token baseline", last_token_baseline(data))]
    print(f"\ntrained in {t_train:.1f}s (final loss {hist['loss'][-1]:.3f})")
    print(f"decomposed ({mode}, max_remove={FLAGS.max_remove}, u_mask={FLAGS.u_mask}) in "
          f"{t_dec:.2f}s with compilation, {t_dec_warm:.2f}s warm; composed evaluation "
          f"{t_comp:.2f}s\n")
    w = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{w}}  {val:.4f}")
    # What differs between modules: which units each removes, and how many of those no
    # other module removes (kept counts alone look alike when every module hits the cap).
    removed = ~np.asarray(decomp.unit_keep(), bool).reshape(len(decomp.class_names), -1)
    others = removed.sum(0)[None, :] - removed
    unique = (removed & (others == 0)).sum(1)
    ov = metrics.overlap(decomp)
    off = ov[~np.eye(len(ov), dtype=bool)]
    print(f"\n  {'class':<14}{'units kept/layer':>18}{'retention':>11}{'Jaccard':>9}"
          f"{'unique':>8}  removed units{' (layer:unit)' if FLAGS.layers > 1 else ''}")
    H = FLAGS.units
    for c, name in enumerate(decomp.class_names):
        ks = "/".join(f"{k:.0f}" for k in kept[c])
        idx = np.nonzero(removed[c])[0]
        if decomp.unrolled:
            units = f"{len(idx)} (layer, step, unit) triples"
        else:
            units = " ".join(f"{i // H}:{i % H}" if FLAGS.layers > 1 else str(i) for i in idx)
        print(f"  {name:<14}{ks + ' of ' + str(FLAGS.units):>18}{ret[c]:>11.3f}{ji[c]:>9.3f}"
              f"{unique[c]:>8}  {units}")
    print(f"\n  unique: removed units no other module removes; mean pairwise overlap of kept "
          f"units {off.mean():.3f} (1 = identical modules)")
    print(f"\n  mean Jaccard {ji.mean():.3f}, mean retention {ret.mean():.3f}; "
          f"total {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    define_flags()
    app.run(main)
