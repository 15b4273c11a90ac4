"""Reuse and replacement across models: compose modules taken from different decompositions.

Within one model, reuse and replacement are edits of one :class:`~modjax.decomposition.
Decomposition` (:func:`modjax.compose.select`, :func:`~modjax.compose.replace`). Here the
modules may come from *different* models — another cell type, depth, I/O type or training run
— as long as they read the same inputs (same ``in_len``, ids below every model's vocabulary;
models trained on a shared tokenizer). A new problem is a list of :class:`ModuleRef`, each
naming a module of some decomposition and the label it votes for:

* **inter reuse** (docs/method.md#reuse): ``[ModuleRef(d_toxic, p_toxic, 3, label=0),
  ModuleRef(d_math, p_math, 2, label=1)]`` with ``reduce_steps="max"``: a many-output module
  is scored by its most confident step, so it can vote in a one-output problem;
* **replacement** (docs/method.md#reuse): :func:`replacement` — every module of a (faulty) model but
  one, plus another model's module voting for that class.

The modules of one source decomposition run together, in one batched scan
(:func:`modjax.compose.module_scores`); the vote is the arg-max of the modules' contrasts
``z_p - z_q``. The log-odds of a module's probability ``p = sigmoid(z_p - z_q)`` is the contrast
itself, so this is the paper's comparison of odds, without the float32 saturation of ``p``
(``docs/method.md#vote``).
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Any, Callable, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from modjax.compose import module_scores, select
from modjax.decomposition import Decomposition, check_module_index

REDUCE_STEPS = (None, "max")


@dataclasses.dataclass(frozen=True, eq=False)
class ModuleRef:
    """One module of one decomposition, and the label it votes for in the new problem.

    Attributes:
      decomp: the source decomposition (not encoder-decoder).
      params: the base params ``decomp`` was computed from.
      module: index of the module in ``decomp`` (``0 <= module < decomp.num_modules``).
      label: the class this module stands for in the composed problem; default: its head
        class in the source model.
    """

    decomp: Decomposition
    params: Any
    module: int
    label: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.decomp, Decomposition):
            raise TypeError(f"ModuleRef.decomp must be a Decomposition, got "
                            f"{type(self.decomp).__name__}")
        if self.decomp.config.io == "encoder_decoder":
            raise ValueError("ModuleRef.decomp: encoder_decoder modules translate, they do not "
                             "vote; use modjax.greedy_decode(config, params, src, start, "
                             "decomp=decomp, module=c)")
        check_module_index("ModuleRef.module", self.module, self.decomp.num_modules)
        if self.label is not None:
            try:
                ok = operator.index(self.label) >= 0
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(f"ModuleRef.label must be a non-negative int or None, got "
                                 f"{self.label!r}")

    @property
    def vote_label(self) -> int:
        """``label``, or the module's head class when ``label`` is ``None``."""
        if self.label is not None:
            return int(self.label)
        return int(np.asarray(self.decomp.head_class)[self.module])


def modules_of(decomp: Decomposition, params, classes: Optional[Sequence[int]] = None,
               labels: Optional[Sequence[int]] = None) -> List[ModuleRef]:
    """References to modules of one decomposition (all of them by default).

    ``labels`` (same length as ``classes``) relabels them for the new problem.
    """
    classes = list(range(decomp.num_modules)) if classes is None else list(classes)
    if labels is not None and len(labels) != len(classes):
        raise ValueError(f"labels must have one entry per class ({len(classes)}), got "
                         f"{len(labels)}")
    labels = [None] * len(classes) if labels is None else list(labels)
    return [ModuleRef(decomp, params, c, lab) for c, lab in zip(classes, labels)]


def replacement(decomp: Decomposition, params, c: int, other: Decomposition, other_params,
                c_other: int) -> List[ModuleRef]:
    """Every module of ``decomp`` except ``c``, plus module ``c_other`` of ``other`` voting for
    ``decomp``'s class ``c`` (replacing a weak model's module by a stronger model's)."""
    head = np.asarray(decomp.head_class)
    c = check_module_index("c", c, decomp.num_modules)
    refs = [ModuleRef(decomp, params, i) for i in range(decomp.num_modules) if i != c]
    refs.insert(c, ModuleRef(other, other_params, c_other, label=int(head[c])))
    return refs


def _checked_refs(refs) -> List[ModuleRef]:
    refs = list(refs)
    if not refs:
        raise ValueError("refs must name at least one module")
    for i, r in enumerate(refs):
        if not isinstance(r, ModuleRef):
            raise TypeError(f"refs[{i}] must be a ModuleRef, got {type(r).__name__}")
    return refs


def _check_inputs(refs: Sequence[ModuleRef], x: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"x must be [N, in_len] token ids, got shape {x.shape}")
    if x.size and x.min() < 0:
        raise ValueError(f"x must hold non-negative token ids, got {int(x.min())}")
    seen = set()
    for r in refs:
        cfg = r.decomp.config
        if id(cfg) in seen:
            continue
        seen.add(id(cfg))
        if x.shape[1] != cfg.in_len:
            raise ValueError(f"x has {x.shape[1]} tokens per example, but a module's model "
                             f"reads in_len={cfg.in_len}: modules to compose must read the "
                             f"same inputs")
        if x.size and x.max() >= cfg.vocab_size:
            raise ValueError(f"x holds token id {int(x.max())}, outside a module's vocabulary "
                             f"(vocab_size={cfg.vocab_size}); models composed together need "
                             f"a shared tokenizer")


def module_set_scores(refs: Sequence[ModuleRef], x, *, reduce_steps: Optional[str] = None,
                      batch_size: int = 4096, kind: str = "probability"):
    """Each referenced module's score for its class, ``[M, N]`` or ``[M, N, T]``.

    Modules of the same source (same decomposition and params objects) run in one batched
    scan.

    Args:
      refs: the modules, in vote order.
      x: ``[N, in_len]`` token ids every source model can read.
      reduce_steps: ``None`` (keep the step axis of many-output modules) or ``"max"`` (score a
        many-output module by its most confident step: ``[N, T] -> [N]``). Required when
        one-output and many-output modules are mixed, or many-output ones disagree on ``T``.
      batch_size: examples per compiled call.
      kind: ``"probability"`` (for display) or ``"contrast"`` (``z_p - z_q``, what the vote
        compares); see :func:`modjax.compose.module_scores`.

    Returns:
      ``[M, N]`` (one-output, or reduced) or ``[M, N, T]``.
    """
    if kind not in ("probability", "contrast"):
        raise ValueError(f"kind must be 'probability' or 'contrast', got {kind!r}")
    refs = _checked_refs(refs)
    if reduce_steps not in REDUCE_STEPS:
        raise ValueError(f"reduce_steps must be one of {REDUCE_STEPS}, got {reduce_steps!r}")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"x must hold integer token ids, got dtype {x.dtype}")
    _check_inputs(refs, x)
    shapes = {(r.decomp.config.steps if r.decomp.config.many_output else None) for r in refs}
    if reduce_steps is None and len(shapes) > 1:
        raise ValueError("the modules' outputs differ in shape (one-output and many-output, or "
                         f"many-output with different steps: {sorted(shapes, key=str)}); pass "
                         "reduce_steps='max' to score a many-output module by its most "
                         "confident step")
    # group by source, keeping the first-seen order; one batched scan per source
    groups: dict = {}
    for i, r in enumerate(refs):
        groups.setdefault((id(r.decomp), id(r.params)), []).append(i)
    out: List[Any] = [None] * len(refs)
    for idxs in groups.values():
        src = refs[idxs[0]]
        sub = select(src.decomp, [refs[i].module for i in idxs])
        s = module_scores(sub, src.params, x, batch_size=batch_size, kind=kind)  # [m, N(, T)]
        if reduce_steps == "max" and s.ndim == 3:
            s = jnp.max(s, axis=2)
        for j, i in enumerate(idxs):
            out[i] = s[j]
    return jnp.stack(out)


def compose_modules(refs: Sequence[ModuleRef], *, reduce_steps: Optional[str] = None,
                    batch_size: int = 4096) -> Callable:
    """A predict function for modules taken from any decompositions.

    Returns ``predict(x) -> (pred, scores)``: ``pred`` the label of the module with the largest
    contrast ``z_p - z_q`` per example (per step when the scores keep a step axis; ties go to
    the first module in ``refs``) and ``scores`` the modules' probabilities (for display).
    """
    refs = _checked_refs(refs)
    labels = jnp.asarray([r.vote_label for r in refs], jnp.int32)

    def predict(x):
        contrast = module_set_scores(refs, x, reduce_steps=reduce_steps, batch_size=batch_size,
                                     kind="contrast")
        return labels[jnp.argmax(contrast, axis=0)], jax.nn.sigmoid(contrast)

    return predict


__all__ = ["ModuleRef", "modules_of", "replacement", "module_set_scores", "compose_modules"]
