"""The :class:`Decomposition` pytree and its options."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
from flax import struct

from modjax import validate
from modjax.models import HEAD_ROWS, ModelConfig

MODES = ("rolled", "unrolled")
ROLLED_OBS = ("last_step", "all_steps")
GATE_MODES = ("unit", "per_gate")
U_MASKS = ("paper", "code")
PADDED_STEPS = ("carry", "skip")


@dataclasses.dataclass(frozen=True)
class DecomposeOptions:
    """Options of :func:`modjax.decompose`, with the paper's defaults (docs/method.md).

    Attributes:
      mode: ``"rolled"`` (one keep vector per layer) or ``"unrolled"`` (one per layer and step).
      rolled_obs: one-output models in rolled mode observe the ``"last_step"`` (the artifact)
        or ``"all_steps"`` (the paper's Algorithm 1). Encoder-decoder always pools all steps.
      max_remove: removal cap per layer; ``ceil(max_remove * H)`` units before the tie rule.
      n_pos: positives per class (and per step for many-output models); default 500
        (1000 for encoder-decoder).
      n_neg: negatives; default ``ceil(n_pos / (C - 1))`` in total, and for encoder-decoder
        500 from *each* other class.
      gate_mode: ``"unit"`` (approach 2: a unit leaves every gate) or ``"per_gate"``
        (approach 1: each gate column is scored and removed on its own, capped per gate block
        with no tie rule; a unit is never removed as a whole, so the recurrent kernel's rows
        — a unit's out-edges — are all kept, only the removed gate columns lose their input,
        recurrent and bias weights).
      u_mask: recurrent-kernel semantics: ``"code"`` (the artifact's, which produced the
        published tables: an entry is dropped only if source and destination are removed) or
        ``"paper"`` (entry kept iff both are kept).
      tie_ratio: the tie rule's ratio (``d_min / d < tie_ratio``).
      relu_threshold: ReLU models remove units with ``active_pos - active_neg <= threshold``.
      padded_steps: models with ``mask_zero`` (encoder-decoder) hold their state at padded
        steps. ``"carry"`` (the artifact's, docs/method.md#encoder-decoder: it pools ``h_t`` for every step of every
        sample) observes that held state there too; ``"skip"`` observes real steps only.
        Models without ``mask_zero`` have no padded steps.
      head_rows: which rows of the head (the last recurrent layer's out-edges) a module zeroes:
        ``"step"`` (the library's default: at each step, the rows of the units removed at that
        step; rolled: the removed units), ``"last"`` (the units removed at the last step, at
        every step: the artifact's unrolled many-to-one scripts), ``"first"`` (those removed at
        step 0, at every step: its unrolled one-to-many and many-to-many scripts) or
        ``"none"`` (no row: the artifact with a Dropout before the head). See
        ``docs/method.md#artifact``.
    """

    mode: str = "rolled"
    rolled_obs: str = "last_step"
    max_remove: float = 0.05
    n_pos: Optional[int] = None
    n_neg: Optional[int] = None
    gate_mode: str = "unit"
    u_mask: str = "code"
    tie_ratio: float = 1.1
    relu_threshold: float = -0.5
    padded_steps: str = "carry"
    head_rows: str = "step"

    def __post_init__(self):
        for name, allowed in (("mode", MODES), ("rolled_obs", ROLLED_OBS),
                              ("gate_mode", GATE_MODES), ("u_mask", U_MASKS),
                              ("padded_steps", PADDED_STEPS), ("head_rows", HEAD_ROWS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        # normalised (NumPy scalars -> Python) so equal options hash alike as jit static args
        for name, v in (
                ("max_remove", validate.real("max_remove", self.max_remove, lo=0.0, hi=1.0,
                                             what=" (fraction of units)")),
                ("tie_ratio", validate.real("tie_ratio", self.tie_ratio, lo=1.0)),
                ("relu_threshold", validate.real("relu_threshold", self.relu_threshold)),
                ("n_pos", validate.positive_int("n_pos", self.n_pos, allow_none=True)),
                ("n_neg", validate.positive_int("n_neg", self.n_neg, allow_none=True))):
            object.__setattr__(self, name, v)

    def resolved(self, config: ModelConfig, num_classes: int):
        """``(n_pos, n_neg, neg_per_class)`` for a model with ``num_classes`` concerns."""
        encdec = config.io == "encoder_decoder"
        n_pos = self.n_pos or (1000 if encdec else 500)
        if encdec:
            return n_pos, self.n_neg or 500, True
        return n_pos, self.n_neg or int(math.ceil(n_pos / (num_classes - 1))), False


def check_module_index(name: str, value, num_modules: int) -> int:
    """``value`` as an int module index in ``[0, num_modules)``; a ``ValueError`` naming
    ``name`` for a non-integer or out-of-range value."""
    return validate.index(name, value, num_modules)


@struct.dataclass
class Decomposition:
    """The result of :func:`modjax.decompose`: one module per class, as keep vectors.

    Attributes:
      keep: bool keep vectors, ``[C, L, H]`` (rolled) or ``[C, L, T, H]`` (unrolled); the last
        axis is ``gH`` in ``per_gate`` mode. ``L``/``T`` are the decomposed stack's layers and
        steps (the decoder's for encoder-decoder). A bidirectional model's have a direction
        axis before the last, ``[C, L, (T,) 2, F]`` (forward, backward; ``T`` counts input
        positions, ``docs/method.md#bidirectional``): ``config.keep_shape``.
      head_class: int32 ``[C]``, the class ``p`` each module answers for; its channelled head
        scores ``sigmoid(z_p - z_q)`` with ``z_q`` the mean of the other classes' logits
        (docs/method.md#channelling). Encoder-decoder modules are not channelled.
      has_positives: bool ``[C, M]`` (``M = 1`` rolled, ``T`` unrolled): whether the class had
        both positive and negative examples there; where not, the module keeps every unit.
      config: the model's config (static).
      options: the :class:`DecomposeOptions` used (static).
      class_names: names of the classes (static).
    """

    keep: jax.Array
    head_class: jax.Array
    has_positives: jax.Array
    config: ModelConfig = struct.field(pytree_node=False)
    options: DecomposeOptions = struct.field(pytree_node=False)
    class_names: tuple = struct.field(pytree_node=False)

    @property
    def num_modules(self) -> int:
        """Number of modules ``C``."""
        return int(self.keep.shape[0])

    @property
    def unrolled(self) -> bool:
        return self.options.mode == "unrolled"

    def unit_keep(self):
        """Keep vectors per unit ``[C, L, (T,) (2,) H]`` (per gate: a unit counts as kept if any
        of its gate columns is)."""
        if self.options.gate_mode == "unit":
            return self.keep
        g = self.keep.shape[-1] // self.config.units
        k = self.keep.reshape(self.keep.shape[:-1] + (g, self.config.units))
        return k.any(axis=-2)
