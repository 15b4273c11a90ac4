"""Minimal modules: the smallest module per class within a stated validation cost.

The method's removal cap (``max_remove``, ``docs/method.md#removal``) keeps 80-95% of the units,
so a module costs as much to run as the model it came from. :func:`minimal_modules` raises each
class's cap as far as a held-out part of the *training* data allows; the test split is never
read. It reuses the decomposition's one trace: the unit scores ``d`` do not depend on the cap,
so the keep vectors of a whole ladder of caps come from one set of scores, and every
(class, cap) module of the ladder is scored on the validation split in batched scans.

Procedure (all classes at once, no retracing per cap):

1. Split the training data: a seeded random ``val_fraction`` is held out for validation; the
   decomposition is computed on the rest (sampling in data order, as :func:`modjax.decompose`).
2. Ladder of caps ``0 = f_0 < f_1 < ... < f_K``; cap ``f_0 = 0`` is the original model (every
   unit kept). At cap ``f`` a class's module removes, per layer (and step), the first
   ``ceil(f * H)`` units of its removal order:

   * ``candidates="negative"`` (the method's rule): units with ``d < 0``, most negative first,
     plus the rule's near-ties, exactly as ``decompose(max_remove=f)``; units with ``d >= 0`` are
     never removed, so the cap stops mattering once every negative unit is gone;
   * ``candidates="all"`` (beyond the method): every unit in ascending ``d`` order, whatever its
     sign (no tie rule), so any size is reachable;
   * ``candidates="first_order"`` (beyond the method): every unit, in ascending order of its
     first-order removal effect on its class's contrast (:func:`removal_effect`): the mean over
     the class's sampled positives of ``|d(z_c - z_q) / d keep_u|`` at ``keep = 1``, where
     ``z_q`` is the mean of the other classes' logits (the channelled head's contrast);
   * ``candidates="iterative"`` (beyond the method): the same effect re-measured cap by cap
     (:func:`iterative_removal_order`): the units added at cap ``f_j`` are the still-kept ones
     with the smallest effect at the module of cap ``f_{j-1}``, so each step sees the units
     already removed.

3. Each class's **recall** on the validation split, with its module at each cap and every other
   module at cap 0 (the vote then differs from the original model only through that module):
   the cap of class ``c`` is raised step by step until its recall drops more than ``max_cost``
   below its recall at cap 0; the last step within the cost is kept. Classes without validation
   examples keep cap 0.
4. **Joint check**: with every class at its cap the modules are voted together on the
   validation split. While the composed accuracy is more than ``max_cost`` below the original
   model's (cap 0 everywhere, which votes as the original model's arg-max), the class whose
   one-step-lower cap gives the best composed accuracy steps down. The other way round is
   tried too: from cap 0 everywhere, one class's cap at a time is raised (up to its bound from
   step 3), the step that keeps the composed accuracy highest (ties: the one removing most
   units), while the cost stays within ``max_cost``. Of the two (both greedy, both within the
   cost), the one keeping fewer units is returned.

Accuracies count every position of many-output models, padding included, like the project's
δ (``docs/method.md#metrics``), unless ``ignore_padding``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import List, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from modjax import concern
from modjax.compose import module_scores
from modjax.data.base import TaskData
from modjax.decompose import decompose_with_scores, prepare_data, resolve_model, selector
from modjax.decomposition import Decomposition
from modjax.models import apply_model

CANDIDATES = ("negative", "all", "first_order", "iterative")

#: The default ladder of caps: 0 (the original model), 5%, 10%, ..., 100%.
DEFAULT_LADDER = tuple(round(0.05 * i, 2) for i in range(21))


@dataclasses.dataclass(frozen=True)
class MinimalModules:
    """Result of :func:`minimal_modules`.

    Attributes:
      decomposition: the minimal modules, keep vectors ``[C, L, (T,) H]`` at each class's cap
        (its ``options.max_remove`` is the largest chosen cap).
      caps: ``[C]`` the chosen cap (fraction of ``H``) per class.
      ladder: ``[K]`` the caps tried (``ladder[0] == 0``: the original model).
      units_kept: ``[C, K]`` mean kept units per layer (and step) of each class's module at
        each cap.
      recall: ``[C, K]`` validation recall of each class with its module at each cap and the
        others at cap 0 (NaN for a class without validation examples).
      val_accuracy: composed validation accuracy of the minimal modules.
      val_accuracy_original: the original model's validation accuracy (the vote at cap 0).
      val_index: ``[N_val]`` indices (into the training data) of the validation examples.
      candidates: one of :data:`CANDIDATES`.
      max_cost: the allowed drop (fraction, 0.01 = 1 point).
    """

    decomposition: Decomposition
    caps: np.ndarray
    ladder: np.ndarray
    units_kept: np.ndarray
    recall: np.ndarray
    val_accuracy: float
    val_accuracy_original: float
    val_index: np.ndarray
    candidates: str
    max_cost: float


@functools.partial(jax.jit, static_argnames=("config", "u_mask"))
def _contrast_gradients(params, xs, ws, keeps, *, config, u_mask: str):
    """``|d mean_w(z_c - z_q) / d keep|`` at ``keep = keeps[c]`` for every class ``c``, one
    class at a time in one compiled program: ``xs [C, n, in_len]``, ``ws [C, n]`` (one output)
    or ``[C, n, T]`` (weights of the positions to explain; 0 for padding rows), ``keeps
    [C, L, H]`` or ``[C, L, T, H]`` float -> the same shape as ``keeps``."""
    C = config.num_classes

    def one(args):
        x, w, c, k = args

        def mean_contrast(keep):
            z = apply_model(config, params, x, keep=keep, u_mask=u_mask).astype(jnp.float32)
            zc = jnp.take(z, c, axis=-1)
            contrast = zc - (jnp.sum(z, -1) - zc) / (C - 1)
            return jnp.sum(contrast * w) / jnp.maximum(jnp.sum(w), 1.0)

        return jnp.abs(jax.grad(mean_contrast)(k))

    return jax.lax.map(one, (xs, ws, jnp.arange(C), keeps))


def _class_examples(x, y, C: int, n_pos: int):
    """The first ``n_pos`` examples of every class, padded to one size: ``(xs [C, n, in_len],
    ws [C, n(, T)])`` with ``ws`` 1 at the class's positions (0 on padding rows)."""
    x, y = np.asarray(x), np.asarray(y)
    hit = np.stack([y == c for c in range(C)])  # [C, N(, T)]
    found = hit.any(-1) if y.ndim == 2 else hit  # [C, N]
    n = max(1, min(int(n_pos), int(found.sum(1).max(initial=0))))
    xs = np.zeros((C, n) + x.shape[1:], x.dtype)
    ws = np.zeros((C, n) + y.shape[1:], np.float32)
    for c in range(C):
        rows = np.nonzero(found[c])[0][:n]
        xs[c, :len(rows)] = x[rows]
        ws[c, :len(rows)] = hit[c, rows]
    return jnp.asarray(xs), jnp.asarray(ws)


def removal_effect(params, x, y, *, config, n_pos: int = 500, u_mask: str = "paper",
                   unrolled: bool = False) -> np.ndarray:
    """First-order effect of removing each unit on its class's contrast, per class.

    For class ``c``: the first ``n_pos`` examples with label ``c`` (many-output: sequences with
    ``c`` at some step, weighted by the positions where it is), and the gradient of their mean
    contrast ``z_c - z_q`` (``z_q`` the mean of the other logits) with respect to a continuous
    keep vector at ``keep = 1``; its absolute value estimates how much removing the unit moves
    the class's score. A class without examples gets zeros. Every class's examples are padded
    to one size (zero weight), so all classes run in one compiled program.

    Args:
      params: the model's params; ``config`` its :class:`~modjax.models.ModelConfig`.
      x: ``[N, in_len]`` ids; ``y``: ``[N]`` or ``[N, T]`` int labels.
      n_pos: examples per class.
      u_mask: the mask semantics the keep vector acts in.
      unrolled: one effect per step (``[.., T, H]``) instead of per layer.

    Returns:
      ``[C, L, M, H]`` float64 with ``M = T`` (unrolled) or 1.
    """
    C = config.num_classes
    xs, ws = _class_examples(x, y, C, n_pos)
    shape = ((C, config.layers, config.steps, config.units) if unrolled
             else (C, config.layers, config.units))
    g = np.asarray(_contrast_gradients(params, xs, ws, jnp.ones(shape, jnp.float32),
                                       config=config, u_mask=u_mask), np.float64)
    return g if unrolled else g[:, :, None, :]


def iterative_removal_order(params, x, y, counts: Sequence[int], *, config, n_pos: int = 500,
                            u_mask: str = "paper", unrolled: bool = False) -> np.ndarray:
    """A removal order per class, layer (and step) built in rounds of first-order effects.

    Round ``j`` starts from the module of round ``j - 1`` (round 0: every unit kept), takes the
    gradient of the class's mean contrast with respect to the keep vector *at that module*
    (:func:`removal_effect`'s quantity, re-measured after the earlier removals) and removes,
    per layer (and step), the ``counts[j] - counts[j - 1]`` still-kept units with the smallest
    effect. Later removals thus see the units already gone, which a single ranking at
    ``keep = 1`` does not.

    Args:
      params, x, y, config, n_pos, u_mask, unrolled: as :func:`removal_effect`.
      counts: increasing numbers of units removed per layer (and step) after each round, at
        most ``H``.

    Returns:
      ``[C, L, M, H]`` float64 positions: ascending order is the removal order (units removed in
      no round come last, by their effect in the last round), so removing the ``counts[j]``
      first units of each row gives round ``j``'s module.
    """
    C, H = config.num_classes, config.units
    counts = [int(k) for k in counts]
    if any(b < a for a, b in zip(counts, counts[1:])) or any(not 0 <= k <= H for k in counts):
        raise ValueError(f"counts must be increasing numbers of units in [0, {H}], got "
                         f"{counts}")
    xs, ws = _class_examples(x, y, C, n_pos)
    shape = ((C, config.layers, config.steps, H) if unrolled else (C, config.layers, H))
    keep = np.ones(shape, np.float32)
    pos = np.full(shape, np.inf)
    done = 0
    g = np.zeros(shape)
    for k in counts:
        if k == done and done > 0:  # a repeated count removes nothing: no gradient pass
            continue
        g = np.asarray(_contrast_gradients(params, xs, ws, jnp.asarray(keep), config=config,
                                           u_mask=u_mask), np.float64)
        if k == done:
            continue
        # the still-kept units with the smallest effect, per row (stable: lower index first)
        order = np.argsort(np.where(keep > 0, g, np.inf), axis=-1, kind="stable")
        take = order[..., : k - done]
        np.put_along_axis(pos, take, done + np.arange(k - done, dtype=np.float64), axis=-1)
        np.put_along_axis(keep, take, 0.0, axis=-1)
        done = k
    # the rest: after every removed unit, in ascending last-round effect
    rest = np.argsort(np.where(np.isinf(pos), g, np.inf), axis=-1, kind="stable")[..., : H - done]
    np.put_along_axis(pos, rest, done + np.arange(H - done, dtype=np.float64), axis=-1)
    return pos if unrolled else pos[:, :, None, :]


def split_validation(n: int, val_fraction: float, seed: int):
    """``(fit_index, val_index)``: a seeded random ``round(val_fraction * n)`` examples held out
    (at least 1), both sorted (the fit part keeps the data order the sampling depends on)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    n_val = max(1, int(round(val_fraction * n)))
    if n_val >= n:
        raise ValueError(f"val_fraction={val_fraction} leaves no training examples of {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@functools.partial(jax.jit, static_argnames=("config", "options", "all_units"))
def _ladder_keep(d, has, ks, *, config, options, all_units: bool):
    """Keep vectors of every class at every cap: ``d [C, L, M, F]``, ``has [C, M]``,
    ``ks [K]`` int caps -> ``[C, K, L, M, F]`` bool (cap 0: everything kept)."""
    select = selector(config, options)

    def one(dv, k):
        if all_units:
            order = jnp.argsort(dv, stable=True)
            rank = jnp.zeros(dv.shape, jnp.int32).at[order].set(
                jnp.arange(dv.shape[0], dtype=jnp.int32))
            keep = rank >= k
        else:
            keep = select(dv, k)
        return keep | (k == 0)

    per_k = jax.vmap(one, in_axes=(None, 0))  # over caps: [F] -> [K, F]
    keep = jax.vmap(jax.vmap(jax.vmap(per_k)))(d, jnp.broadcast_to(ks, d.shape[:3] + ks.shape))
    keep = jnp.moveaxis(keep, 3, 1)  # [C, L, M, K, F] -> [C, K, L, M, F]
    return keep | ~has[:, None, None, :, None]


def _vote_accuracy(scores_ck, caps_idx, y, counted):
    """Composed accuracy with class ``c`` at ladder index ``caps_idx[c]``: ``scores_ck
    [C, K, P]``, ``y [P]``, ``counted [P]`` bool."""
    s = scores_ck[np.arange(scores_ck.shape[0]), caps_idx]  # [C, P]
    pred = np.argmax(s, axis=0)
    return float((pred == y)[counted].mean())


def minimal_modules(params, data, *, model, max_cost: Union[float, Sequence[float]] = 0.01,
                    candidates: str = "negative", val_fraction: float = 0.1, seed: int = 0,
                    ladder: Optional[Sequence[float]] = None, max_val: Optional[int] = None,
                    ignore_padding: bool = False, class_names=None, batch_size: int = 2048,
                    modules_per_call: int = 16,
                    **options) -> Union[MinimalModules, List[MinimalModules]]:
    """The smallest module per class whose validation cost stays within ``max_cost``.

    See the module docstring for the procedure. The test split is never used.

    Args:
      params: the trained params.
      data: ``(inputs [N, in_len], labels [N] or [N, T])`` of the *training* data, or a
        :class:`~modjax.data.base.TaskData` (its train split). Encoder-decoder modules are not
        voted and are refused.
      model: the :class:`~modjax.models.ModelConfig`.
      max_cost: allowed drop of a class's recall and of the composed accuracy on the
        validation split, as a fraction (``0.01`` = 1 percentage point), in ``[0, 1]``; or a
        sequence of them, which share the trace and the ladder's scores (one result each).
      candidates: ``"negative"`` (the method's rule: only units with ``d < 0``), ``"all"``
        (every unit, ascending ``d``), ``"first_order"`` (every unit, ascending first-order
        removal effect, :func:`removal_effect`) or ``"iterative"`` (that effect re-measured
        at each cap's module, :func:`iterative_removal_order`; one gradient pass per cap).
      val_fraction: fraction of the training examples held out for validation (seeded by
        ``seed``); the decomposition uses the rest.
      seed: seed of the split.
      ladder: caps to try (fractions in ``(0, 1]``; 0 is added), default 0.05, 0.10, ..., 1.0.
      max_val: at most this many validation examples (the first of the held-out ones).
      ignore_padding: many-output: count only positions whose label is not 0.
      class_names: as :func:`modjax.decompose`.
      batch_size, modules_per_call: examples and ladder modules per compiled scoring call.
      **options: :class:`~modjax.decomposition.DecomposeOptions` fields; ``u_mask`` defaults
        to ``"paper"`` here (the semantics :func:`modjax.compact` can drop units in), ``mode``
        to ``"rolled"``. ``max_remove`` is ignored (the ladder replaces it).

    Returns:
      A :class:`MinimalModules` (a list of them, in order, for a sequence of costs).

    Raises:
      ValueError naming the argument on a bad ``max_cost``, ``candidates``, ``val_fraction``,
      ``ladder`` or model (encoder-decoder, ``gate_mode="per_gate"``).
    """
    config = resolve_model(model)
    if config.io == "encoder_decoder":
        raise ValueError("minimal_modules needs a voted model; encoder_decoder modules are "
                         "chosen by target language (model.io='encoder_decoder')")
    if config.directions == 2:
        raise ValueError("minimal_modules supports unidirectional models only (its cap ladder "
                         "has no direction axis); got model.bidirectional=True")
    many = np.ndim(max_cost) > 0
    costs = [float(m) for m in np.atleast_1d(np.asarray(max_cost, dtype=float))]
    if not costs or any(not 0.0 <= m <= 1.0 for m in costs):
        raise ValueError(f"max_cost must be a fraction in [0, 1] (or a sequence of them), got "
                         f"{max_cost!r}")
    if candidates not in CANDIDATES:
        raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
    if options.get("gate_mode", "unit") != "unit":
        raise ValueError("minimal_modules removes whole units: gate_mode must be 'unit', got "
                         f"{options['gate_mode']!r}")
    fracs = DEFAULT_LADDER[1:] if ladder is None else tuple(float(f) for f in ladder)
    if any(not 0.0 <= f <= 1.0 for f in fracs):
        raise ValueError(f"ladder must hold caps in [0, 1], got {list(fracs)}")
    fracs = np.array([0.0] + sorted(set(f for f in fracs if f > 0)))
    options = {"u_mask": "paper", **options}
    options.pop("max_remove", None)

    if isinstance(data, TaskData):
        if class_names is None and len(data.class_names) == config.num_classes:
            class_names = data.class_names
        data = (data.x_train, data.y_train)
    x, _, slots = prepare_data(config, data, config.num_classes)
    y = slots if config.many_output else slots[:, 0]
    fit_idx, val_idx = split_validation(len(x), val_fraction, seed)
    if max_val is not None:
        val_idx = val_idx[:max_val]
    decomp, d = decompose_with_scores(params, (x[fit_idx], y[fit_idx]), model=config,
                                      class_names=class_names, **options)
    opts = decomp.options
    H = config.units
    ks = np.array([concern.removal_count(f, H) for f in fracs], np.int32)
    if candidates == "first_order":
        d = removal_effect(params, x[fit_idx], y[fit_idx], config=config,
                           n_pos=opts.resolved(config, config.num_classes)[0],
                           u_mask=opts.u_mask, unrolled=decomp.unrolled)
    elif candidates == "iterative":
        d = iterative_removal_order(params, x[fit_idx], y[fit_idx], ks[1:], config=config,
                                    n_pos=opts.resolved(config, config.num_classes)[0],
                                    u_mask=opts.u_mask, unrolled=decomp.unrolled)
    keep = np.asarray(_ladder_keep(jnp.asarray(d, jnp.float32),
                                   jnp.asarray(decomp.has_positives), jnp.asarray(ks),
                                   config=config, options=opts,
                                   all_units=candidates != "negative"))  # [C, K, L, M, F]
    if not decomp.unrolled:
        keep = keep[:, :, :, 0]
    C, K = keep.shape[:2]
    units_kept = keep.reshape(C, K, -1, H).sum(-1).mean(-1)

    # score every distinct (class, cap) module on the validation split
    flat = keep.reshape(C * K, -1)
    heads = np.repeat(np.arange(C), K)
    uniq, inv = np.unique(np.concatenate([heads[:, None].astype(np.uint8) if C < 256 else
                                          heads[:, None].astype(np.int64), flat], 1),
                          axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    first = np.array([np.nonzero(inv == u)[0][0] for u in range(len(uniq))])
    x_val = x[val_idx]
    scores_u = []
    for s in range(0, len(first), modules_per_call):
        part = first[s:s + modules_per_call]
        pad = np.concatenate([part, np.repeat(part[-1:], modules_per_call - len(part))])
        sub = decomp.replace(keep=jnp.asarray(keep.reshape((C * K,) + keep.shape[2:])[pad]),
                             head_class=jnp.asarray(heads[pad], jnp.int32),
                             has_positives=decomp.has_positives[heads[pad]])
        out = np.asarray(module_scores(sub, params, x_val, batch_size=batch_size))
        scores_u.append(out[:len(part)])
    scores = np.concatenate(scores_u)[inv].reshape(C, K, -1)  # [C, K, P]
    y_val = y[val_idx].reshape(-1)
    counted = (y_val != 0) if (ignore_padding and config.many_output) else np.ones_like(
        y_val, bool)

    # per-class recall with only that class's module changed (the others at cap 0)
    base = scores[:, 0]  # [C, P]
    recall = np.full((C, K), np.nan)
    for c in range(C):
        pos = (y_val == c) & counted
        if not pos.any():
            continue
        others = np.delete(base, c, axis=0)
        best = others.max(0)
        # arg-max takes the first maximum: class c wins ties against later classes only
        first_best = np.delete(np.arange(C), c)[others.argmax(0)]
        wins = (scores[c] > best) | ((scores[c] == best) & (c < first_best))  # [K, P]
        recall[c] = wins[:, pos].mean(1)
    acc0 = _vote_accuracy(scores, np.zeros(C, np.int64), y_val, counted)

    def choose(max_cost):
        caps_idx = np.zeros(C, np.int64)
        for c in range(C):
            if np.isnan(recall[c, 0]):
                continue
            over = np.nonzero(recall[c, 0] - recall[c] > max_cost + 1e-12)[0]
            caps_idx[c] = (over[0] - 1) if len(over) else K - 1
        limit = caps_idx.copy()  # the per-class recall bound
        acc = _vote_accuracy(scores, caps_idx, y_val, counted)
        steps_back = 0
        while acc0 - acc > max_cost + 1e-12:
            best_c, best_acc = -1, -1.0
            # ties: step down the class with the highest cap (spreads the cost over classes)
            for c in sorted(np.nonzero(caps_idx > 0)[0], key=lambda c: -caps_idx[c]):
                trial = caps_idx.copy()
                trial[c] -= 1
                a = _vote_accuracy(scores, trial, y_val, counted)
                if a > best_acc:
                    best_c, best_acc = c, a
            caps_idx[best_c] -= 1
            acc = best_acc
            steps_back += 1
        # the other way round: from cap 0, raise one class's cap (within its recall bound) at
        # a time, the step that keeps the composed accuracy highest (ties: the one removing
        # the most units), while the cost stays within max_cost; keep whichever of the two
        # keeps fewer units
        up = np.zeros(C, np.int64)
        acc_up = acc0
        while True:
            best_c, best = -1, (-1.0, 0.0)
            for c in np.nonzero(up < limit)[0]:
                trial = up.copy()
                trial[c] += 1
                a = _vote_accuracy(scores, trial, y_val, counted)
                gain = units_kept[c, up[c]] - units_kept[c, up[c] + 1]
                if acc0 - a <= max_cost + 1e-12 and (a, gain) > best:
                    best_c, best = c, (a, gain)
            if best_c < 0:
                break
            up[best_c] += 1
            acc_up = best[0]
        kept_up = units_kept[np.arange(C), up].sum()
        kept_back = units_kept[np.arange(C), caps_idx].sum()
        if (kept_up, -acc_up) < (kept_back, -acc):
            caps_idx, acc, how = up, acc_up, "raised from cap 0"
        else:
            how = f"{steps_back} joint step(s) back"
        # report the smallest cap that gives the same module (the "negative" rule runs out of
        # candidates: higher caps change nothing)
        for c in range(C):
            same = np.nonzero((keep[c, :caps_idx[c] + 1] == keep[c, caps_idx[c]]).reshape(
                caps_idx[c] + 1, -1).all(1))[0]
            caps_idx[c] = same[0]
        logging.info("minimal modules (max_cost %g): caps %s (%s), kept units %s, "
                     "validation accuracy %.4f (original %.4f) on %d examples",
                     max_cost, fracs[caps_idx].tolist(), how,
                     units_kept[np.arange(C), caps_idx].round(1).tolist(), acc, acc0,
                     len(val_idx))
        chosen = keep[np.arange(C), caps_idx]
        result = decomp.replace(
            keep=jnp.asarray(chosen),
            options=dataclasses.replace(opts, max_remove=float(fracs[caps_idx].max())))
        return MinimalModules(decomposition=result, caps=fracs[caps_idx], ladder=fracs,
                              units_kept=units_kept, recall=recall, val_accuracy=acc,
                              val_accuracy_original=acc0, val_index=val_idx,
                              candidates=candidates, max_cost=float(max_cost))

    results = [choose(float(m)) for m in costs]
    return results if many else results[0]
