"""Training with optax Adam, and batched prediction."""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from modjax import programs, validate
from modjax.buckets import batch_plan, pad_rows
from modjax.checkpoint import to_plain_dict
from modjax.data.base import TaskData
from modjax.models import ModelConfig, RNNModel, init_params


def _model_inputs(config: ModelConfig, data: TaskData, split: str):
    x = np.asarray(getattr(data, f"x_{split}"), np.int32)
    y = np.asarray(getattr(data, f"y_{split}"), np.int32)
    dec = None
    if config.io == "encoder_decoder":
        dec = getattr(data, f"decoder_input_{split}")
        if dec is None:
            raise ValueError("data.decoder_input_%s is required for an encoder_decoder model" % split)
        dec = np.asarray(dec, np.int32)
    return x, dec, y


def check_data(config: ModelConfig, data: TaskData, split: str = "train") -> None:
    """Raise ``ValueError`` if ``data`` does not fit ``config`` (shapes, label range, ids)."""
    validate.token_ids(f"data.x_{split}", getattr(data, f"x_{split}"), config.vocab_size,
                       length=config.in_len)
    x, dec, y = _model_inputs(config, data, split)
    if not x.shape[0]:
        raise ValueError(f"data.x_{split} must hold at least one example, got shape "
                         f"{list(x.shape)}")
    want = (x.shape[0],) if config.io in ("one_to_one", "many_to_one") else (x.shape[0],
                                                                              config.steps)
    if y.shape != want:
        raise ValueError(f"data.y_{split} must have shape {list(want)} for io={config.io!r}, "
                         f"got {list(y.shape)}")
    if y.min() < 0 or y.max() >= config.num_classes:
        raise ValueError(f"data.y_{split} labels must lie in [0, {config.num_classes}) "
                         f"(config.num_classes), got [{y.min()}, {y.max()}]")
    if dec is not None and dec.shape != y.shape:
        raise ValueError(f"data.decoder_input_{split} must have shape {list(y.shape)}, "
                         f"got {list(dec.shape)}")


def _loss_fn(config: ModelConfig, params, x, dec, y, w, rng, train):
    logits = RNNModel(config).apply({"params": params}, x, dec, train=train,
                                    rngs={"dropout": rng} if train else None)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
    if config.io == "encoder_decoder":
        tok_w = (y != 0).astype(jnp.float32) * w[:, None]
    elif ce.ndim == 2:
        tok_w = jnp.broadcast_to(w[:, None], ce.shape)
    else:
        tok_w = w
    return jnp.sum(ce * tok_w) / jnp.maximum(jnp.sum(tok_w), 1.0)


@functools.lru_cache(maxsize=None)
def make_optimizer(learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """Adam with Keras's defaults (``b1=0.9, b2=0.999, eps=1e-7``).

    Cached per learning rate: the optimizer is a static argument of the compiled training
    step, so one object per rate lets every :func:`fit` call reuse the compiled step.
    """
    return optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-7)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _train_step(config, opt, params, opt_state, x, dec, y, w, rng):
    loss, grads = jax.value_and_grad(
        lambda p: _loss_fn(config, p, x, dec, y, w, rng, True))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("config",))
def _predict_batch(params, x, dec, *, config):
    logits = RNNModel(config).apply({"params": params}, x, dec)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _batches(n: int, batch_size: int):
    for s in range(0, n, batch_size):
        yield s, min(s + batch_size, n)


def _pad_to(a, size):
    if a is None or a.shape[0] == size:
        return a
    pad = np.zeros((size - a.shape[0],) + a.shape[1:], a.dtype)
    return np.concatenate([a, pad])


def predict(config: ModelConfig, params, x, dec_in=None, *, batch_size: int = 1024) -> np.ndarray:
    """Arg-max predictions of the monolithic model (teacher forcing for encoder-decoder).

    Args:
      x: ``[N, in_len]`` ids (``N`` may be 0); ``dec_in``: ``[N, out_len]`` for
        encoder-decoder.

    Returns:
      ``[N]`` or ``[N, T]`` int32 class ids.
    """
    x, dec_in = validate.model_inputs(config, x, dec_in, allow_empty=True)
    if x.shape[0] == 0:  # no examples: an empty prediction of the right shape
        one = config.io in ("one_to_one", "many_to_one")
        return np.zeros((0,) if one else (0, config.steps), np.int32)
    outs = []
    plain = to_plain_dict(params)
    bs, spans = batch_plan(x.shape[0], batch_size)  # shape buckets: few compiled sizes
    for s, e in spans:
        xb = pad_rows(x[s:e], bs)
        db = None if dec_in is None else pad_rows(dec_in[s:e], bs)
        outs.append(np.asarray(programs.call(_predict_batch, (plain, xb, db),
                                             dict(config=config)))[: e - s])
    return np.concatenate(outs)


def accuracy(config: ModelConfig, params, data: TaskData, split: str = "test",
             ignore_padding: bool = False) -> float:
    """Test accuracy of the monolithic model.

    Many-output models count every (example, step) position, padding included (as the paper
    does), unless ``ignore_padding``; encoder-decoder counts non-padding target tokens.
    """
    x, dec, y = _model_inputs(config, data, split)
    pred = predict(config, params, x, dec)
    if config.io == "encoder_decoder" or ignore_padding:
        m = y != 0
        return float((pred == y)[m].mean())
    return float((pred == y).mean())


def fit(config: ModelConfig, data: TaskData, *, epochs: int = 5, batch_size: int = 32,
        learning_rate: float = 1e-3, seed: int = 0, params=None, progress: bool = True,
        validate: bool = True):
    """Train ``config`` on ``data`` with Adam and categorical cross-entropy.

    Shuffling is a ``numpy.random.RandomState(seed + epoch)`` permutation, so a run is fully
    determined by ``seed``. Dropout is active in training only. The last, smaller batch is
    padded with zero-weight examples so one compiled step serves every batch.

    Args:
      config: the architecture.
      data: a :class:`~modjax.data.base.TaskData` matching ``config`` (:func:`check_data`).
      epochs, batch_size, learning_rate: as in Keras.
      seed: initialisation, shuffling and dropout seed.
      params: start from these params instead of a fresh init.
      progress: show a progress bar per epoch and log each epoch's loss (``absl.logging``
        INFO).
      validate: compute test accuracy after every epoch.

    Returns:
      ``(params, history)`` with ``history = {"loss": [...], "val_accuracy": [...],
      "seconds": [...]}`` per epoch.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    check_data(config, data, "train")
    x, dec, y = _model_inputs(config, data, "train")
    n = x.shape[0]
    bs = min(batch_size, n)
    params = init_params(config, seed) if params is None else params
    opt = make_optimizer(learning_rate)
    opt_state = opt.init(params)
    rng = jax.random.PRNGKey(seed + 1)
    history = {"loss": [], "val_accuracy": [], "seconds": []}
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = np.random.RandomState(seed + epoch).permutation(n)
        steps = list(_batches(n, bs))
        bar = tqdm(steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not progress or tqdm is None) if tqdm else steps
        total, count = 0.0, 0
        for s, e in bar:
            idx = perm[s:e]
            w = np.ones(bs, np.float32)
            w[e - s:] = 0.0
            xb = _pad_to(x[idx], bs)
            db = None if dec is None else _pad_to(dec[idx], bs)
            yb = _pad_to(y[idx], bs)
            rng, sub = jax.random.split(rng)
            params, opt_state, loss = _train_step(config, opt, params, opt_state, xb, db, yb,
                                                  w, sub)
            loss = float(loss)
            if not np.isfinite(loss):
                raise ValueError(f"fit: the training loss is {loss} at epoch "
                                 f"{epoch + 1}/{epochs}, step {s // bs + 1}/{len(steps)}; "
                                 f"training stopped (learning_rate={learning_rate} too high, "
                                 "or params or data not finite?)")
            total += loss * (e - s)
            count += e - s
        history["loss"].append(total / count)
        history["seconds"].append(time.perf_counter() - t0)
        if validate and data.x_test is not None and len(data.x_test):
            history["val_accuracy"].append(accuracy(config, params, data, "test"))
        if progress:
            va = (f" val_accuracy {history['val_accuracy'][-1]:.4f}"
                  if history["val_accuracy"] else "")
            logging.info("epoch %d/%d: loss %.4f%s (%.1fs)", epoch + 1, epochs,
                         history["loss"][-1], va, history["seconds"][-1])
    return params, history
