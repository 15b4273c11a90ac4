"""One matmul precision for the whole library: full float32 on every backend.

XLA's GPU backend runs a float32 matmul at its ``DEFAULT`` precision with TF32 inputs (10-bit
mantissas) on recent NVIDIA chips. Measured on an H200, that moved cell, layer and model outputs
by up to ~4e-3 from float64 references that CPU runs match to ~1e-6. The decomposition's trace
already asked for full precision; module scores, predictions, training and decoding did not,
so the same modules could score differently on a GPU than on a CPU. Every matmul in
modjax's forward passes therefore asks for :data:`MATMUL_PRECISION` explicitly, whatever the
caller's ``jax_default_matmul_precision``. On CPU this changes nothing (float32 matmuls are
float32 there already); the recurrent matmuls are small, so the cost on GPU is small.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

#: The precision of every matmul modjax traces (``Precision.HIGHEST``: float32 inputs as is).
MATMUL_PRECISION = jax.lax.Precision.HIGHEST


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b`` at :data:`MATMUL_PRECISION`: ``[..., n, k] @ [k, m]`` -> ``[..., n, m]``."""
    return jnp.matmul(a, b, precision=MATMUL_PRECISION)
