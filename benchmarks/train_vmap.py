"""Training K same-shaped models side by side with ``vmap`` against one after another.

    python -m benchmarks.train_vmap --models=3 --epochs=1

The models share the architecture (a CLINC-sized M:1 LSTM-1 by default: vocabulary 5,531,
15 steps, 100 units, 10 classes, batch 128) and differ in their seed (initialisation and
shuffling), as the seeds of one Table II model would. "Sequential" calls
:func:`modjax.fit` K times; "vmapped" runs one compiled step that updates all K models on their
own batches. Both print their wall time per epoch (compilation excluded: each path runs one
warm-up step first) and the ratio vmapped / sequential.
"""
from __future__ import annotations

import time

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("models", 3, "K models trained side by side.")
    flags.DEFINE_integer("epochs", 1, "Epochs timed.")
    flags.DEFINE_integer("n_train", 15000, "Training examples per model.")
    flags.DEFINE_enum("cell", "lstm", ["lstm", "gru", "simple"], "Cell.")
    flags.DEFINE_integer("layers", 1, "Stacked recurrent layers.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")


def main(argv):
    del argv
    import jax
    import jax.numpy as jnp
    import numpy as np

    from modjax.data.synthetic import load_synthetic
    from modjax.models import config_for, init_params
    from modjax.train import _loss_fn, fit, make_optimizer

    k_models, bs = FLAGS.models, FLAGS.batch_size
    data = load_synthetic("many_to_one", n_train=FLAGS.n_train, n_test=10, seed=0)
    config = config_for(data, cell=FLAGS.cell, layers=FLAGS.layers, units=100, embed_dim=50)
    x = np.asarray(data.x_train, np.int32)
    y = np.asarray(data.y_train, np.int32)
    n = (len(x) // bs) * bs  # whole batches only, on both paths

    fit(config, data, epochs=1, batch_size=bs, seed=99, progress=False, validate=False)  # compile
    t0 = time.perf_counter()
    for k in range(k_models):
        fit(config, data, epochs=FLAGS.epochs, batch_size=bs, seed=k, progress=False,
            validate=False)
    seq = (time.perf_counter() - t0) / FLAGS.epochs

    opt = make_optimizer()

    def step(params, opt_state, xb, yb, rng):
        w = jnp.ones(xb.shape[0], jnp.float32)
        loss, grads = jax.value_and_grad(
            lambda p: _loss_fn(config, p, xb, None, yb, w, rng, True))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return jax.tree.map(lambda a, u: a + u, params, updates), opt_state, loss

    vstep = jax.jit(jax.vmap(step))
    params = jax.tree.map(lambda *a: jnp.stack(a), *[init_params(config, k)
                                                       for k in range(k_models)])
    opt_state = jax.vmap(opt.init)(params)
    rngs = jax.vmap(jax.random.PRNGKey)(jnp.arange(k_models))
    perms = np.stack([np.random.RandomState(k).permutation(len(x))[:n] for k in range(k_models)])
    jax.block_until_ready(vstep(params, opt_state, x[perms[:, :bs]], y[perms[:, :bs]], rngs))
    t0 = time.perf_counter()
    for _ in range(FLAGS.epochs):
        for s in range(0, n, bs):
            idx = perms[:, s:s + bs]
            params, opt_state, loss = vstep(params, opt_state, x[idx], y[idx], rngs)
        jax.block_until_ready(loss)
    vm = (time.perf_counter() - t0) / FLAGS.epochs
    print(f"{k_models} x {config.cell.upper()}-{config.layers} (H=100, T={config.in_len}, "
          f"{n} examples, batch {bs}) on {jax.default_backend()}")
    print(f"sequential fit: {seq:.2f} s/epoch for all {k_models}")
    print(f"vmapped step:   {vm:.2f} s/epoch for all {k_models}")
    print(f"ratio vmapped / sequential: {vm / seq:.2f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
