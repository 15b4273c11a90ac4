"""Small trained models shared by the decomposition tests (cached per test session).

Everything here is tiny on purpose (8-16 units, 1-2 layers, 1200 training examples, 2 epochs)
so the whole decomposition test suite trains in well under a minute on two CPU cores. The
models are *trained* (not random) so the hidden states carry class information and the
selection rules meet realistic scores: some units clearly below zero, some near ties.
"""
from __future__ import annotations

import functools

import numpy as np

from modjax.data.synthetic import load_synthetic
from modjax.decompose import decompose
from modjax.models import ModelConfig
from modjax.train import fit

N_TRAIN = 1200

#: name -> (cell, io, activation, layers, units[, merge of a bidirectional model]). Every cell
#: type appears with a one-output and a many-output architecture; every I/O type (but
#: encoder-decoder) appears at least once.
MODELS = {
    "simple_m2o": ("simple", "many_to_one", "tanh", 2, 12),
    "simple_m2m": ("simple", "many_to_many", "tanh", 1, 12),
    "lstm_o2o": ("lstm", "one_to_one", "tanh", 1, 12),
    "lstm_o2m": ("lstm", "one_to_many", "tanh", 2, 12),
    "gru_m2o": ("gru", "many_to_one", "tanh", 1, 16),
    "gru_m2m": ("gru", "many_to_many", "tanh", 1, 12),
    "relu_m2o": ("simple", "many_to_one", "relu", 1, 16),
    "relu_o2m": ("simple", "one_to_many", "relu", 1, 16),
    "bilstm_m2m": ("lstm", "many_to_many", "tanh", 2, 8, "concat"),
    "bigru_m2o": ("gru", "many_to_one", "tanh", 1, 8, "sum"),
    "birelu_m2o": ("simple", "many_to_one", "relu", 1, 8, "concat"),
}


@functools.lru_cache(maxsize=None)
def task(io: str):
    """The synthetic task for ``io`` (seeded; identical arrays every call)."""
    return load_synthetic(io, n_train=N_TRAIN, n_test=64, seed=0)


def config_for(name: str) -> ModelConfig:
    cell, io, activation, layers, units, *merge = MODELS[name]
    d = task(io)
    return ModelConfig(io=io, cell=cell, num_classes=d.num_classes, vocab_size=d.vocab_size,
                       in_len=d.in_len, out_len=d.out_len, layers=layers, units=units,
                       embed_dim=8, activation=activation, bidirectional=bool(merge),
                       merge=merge[0] if merge else "concat")


@functools.lru_cache(maxsize=None)
def trained(name: str):
    """``(config, params, data)`` of the named model, trained once per session."""
    config = config_for(name)
    data = task(config.io)
    params, _ = fit(config, data, epochs=2, batch_size=64, learning_rate=5e-3, seed=0,
                    progress=False, validate=False)
    params = {k: {n: np.asarray(v) for n, v in layer.items()} for k, layer in params.items()}
    return config, params, data


@functools.lru_cache(maxsize=None)
def decomposed(name: str, **options):
    """A float32 decomposition of the named model (cached; options as keyword arguments)."""
    config, params, data = trained(name)
    return decompose(params, (data.x_train, data.y_train), model=config, **options)


def k_of(max_remove: float, units: int) -> int:
    """The cap, written as the artifact walks it: the smallest k with k / H >= max_remove."""
    return next(k for k in range(units + 1) if k / units >= max_remove)


#: sizes of the larger models (accuracy tests): train and test examples
BIG_TRAIN = 2000
BIG_TEST = 1000


@functools.lru_cache(maxsize=None)
def trained_big(io: str, cell: str = "lstm", units: int = 64):
    """``(config, params, data, monolithic test predictions)`` of a 1-layer model that learns
    the synthetic task well (about 10 s of training on 2 CPU cores; cached per process)."""
    from modjax.train import predict

    data = load_synthetic(io, n_train=BIG_TRAIN, n_test=BIG_TEST, seed=0)
    cfg = ModelConfig(io=io, cell=cell, num_classes=data.num_classes,
                      vocab_size=data.vocab_size, in_len=data.in_len, out_len=data.out_len,
                      layers=1, units=units, embed_dim=32)
    params, _ = fit(cfg, data, epochs=10, batch_size=32, learning_rate=3e-3, seed=0,
                    progress=False, validate=False)
    mono = predict(cfg, params, data.x_test)
    return cfg, params, data, mono
