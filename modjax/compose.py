"""Modules as models: apply_masks, all modules in one batched scan, and the vote.

* :func:`apply_masks` — the params of one module as an ordinary model of the same architecture
  (masked weights, channelled head). Useful to export or inspect a module.
* :func:`module_scores` — the fast path: every module of a decomposition in ONE batched scan
  over a single copy of the weights, masks applied to the matmul inputs and outputs
  (``jax.vmap`` over keep vectors). Everything else (compose, metrics, experiments) uses it.
* :func:`compose` — a jit-compiled predict function: arg-max of the module scores.
* :func:`select`, :func:`replace`, :func:`concatenate` — reuse and replacement as edits of the
  Decomposition pytree.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import PartitionSpec

from modjax import programs, sharding, validate
from modjax.buckets import batch_plan, pad_rows
from modjax.checkpoint import to_plain_dict
from modjax.decomposition import Decomposition, check_module_index
from modjax.masks import masks_for
from modjax.models import ModelConfig, apply_model

Array = jax.Array


def channel_contrast(logits: Array, p) -> Array:
    """``z_p - z_q`` with ``z_q`` the mean of the other classes' logits (docs/method.md#channelling).

    ``logits [..., C]``, ``p`` int (or int array broadcastable to ``logits[..., 0]``) ->
    ``[...]``. Because the head is linear, the mean of the other columns' logits equals the
    logit of the averaged column ``mean_{c != p} w_c``.
    """
    C = logits.shape[-1]
    z_p = jnp.take_along_axis(logits, jnp.broadcast_to(jnp.asarray(p)[..., None],
                                                       logits.shape[:-1] + (1,)), -1)[..., 0]
    z_q = (jnp.sum(logits, axis=-1) - z_p) / (C - 1)
    return z_p - z_q


def channel_score(logits: Array, p) -> Array:
    """The module's probability of its class: ``sigmoid(z_p - z_q)`` (docs/method.md#channelling)."""
    return jax.nn.sigmoid(channel_contrast(logits, p))


def apply_masks(params, decomp: Decomposition, c: int, step: Optional[int] = None) -> dict:
    """The params of module ``c`` as an ordinary model of the same architecture (rolled).

    Masked weights follow :func:`modjax.masks.masks_for` (zeros where the mask is False). The
    head is channelled explicitly (docs/method.md#channelling): column ``p`` of ``dense`` is kept, column ``q``
    (``0``, or ``1`` when ``p == 0``) is the mean of the other classes' columns (bias too), and
    the other columns are zero. With these params the module's score is
    ``sigmoid(logits[p] - logits[q])`` over the two meaningful logits (not ``channel_score``,
    which expects the original head's logits). Encoder-decoder heads are not channelled.

    Unrolled decompositions have a different weight per step, which no ordinary model holds:
    use :func:`module_scores` to run them (``ValueError`` here), or pass ``step`` to get the
    weights module ``c`` uses at that step (as :func:`modjax.metrics.jaccard_paper` compares
    them), head rows per ``decomp.options.head_rows``.
    """
    if decomp.unrolled and step is None:
        raise ValueError("apply_masks needs a rolled decomposition (one weight per layer) or a "
                         "step; unrolled modules run through modjax.compose.module_scores")
    params = to_plain_dict(params)
    masks = masks_for(decomp, c, params)
    if decomp.unrolled:
        T = decomp.keep.shape[2]
        check_module_index("step", step, T)
        masks = jax.tree_util.tree_map(
            lambda a, m: m[step] if jnp.ndim(m) == jnp.ndim(a) + 1 else m, params, masks)
    out = jax.tree_util.tree_map(lambda a, m: jnp.where(m, jnp.asarray(a), 0), params, masks)
    cfg = decomp.config
    if cfg.io != "encoder_decoder":
        new_k, new_b = channelled_head(out["dense"]["kernel"], params["dense"]["bias"],
                                       decomp.head_class[c])
        out["dense"] = {"kernel": new_k, "bias": new_b}
    return out


def channelled_head(kernel, bias, p):
    """The head of module ``p`` as ordinary dense weights (docs/method.md#channelling):
    ``kernel [H, K]`` (already row-masked), ``bias [K]``, ``p`` int (traceable) ->
    ``(kernel [H, K], bias [K])`` with column ``p`` kept, column ``q`` (``0``, or ``1`` when
    ``p == 0``) the mean of the other columns, the rest zero. ``jax.vmap`` it over modules."""
    k = jnp.asarray(kernel)
    b = jnp.asarray(bias)
    p = jnp.asarray(p)
    q = jnp.where(p == 0, 1, 0)
    K = k.shape[1]
    cols = jnp.arange(K)
    others = cols != p
    mean_k = jnp.sum(jnp.where(others[None, :], k, 0), axis=1) / (K - 1)
    mean_b = jnp.sum(jnp.where(others, b, 0)) / (K - 1)
    new_k = jnp.where(cols == p, k, jnp.where(cols == q, mean_k[:, None], 0))
    new_b = jnp.where(cols == p, b, jnp.where(cols == q, mean_b, 0))
    return new_k, new_b


def removed_bound(decomp: Decomposition) -> int:
    """The most source units any module removes in any layer and step (a static bound)."""
    if decomp.options.gate_mode == "per_gate":
        return 0
    return int(np.max(np.sum(~np.asarray(decomp.keep, bool), axis=-1), initial=0))


def _scores_body(params, keep, head_class, x, dec, *, config: ModelConfig, u_mask: str,
                 channel: str, bound: int, head_rows: str, share_projection: bool = False,
                 row_chunk: int = 0):
    """Scores ``[m, B, ...]`` of the modules with keep vectors ``keep [m, ...]`` on ``x [B, ...]``.

    ``row_chunk > 0`` runs the examples ``row_chunk`` rows at a time inside the program
    (``lax.map``; ``B`` padded to a multiple), so that a step's gates for all modules stay in
    the CPU's cache."""
    keep = keep.astype(jnp.float32)

    def one(k, p, xx, dd):
        logits = apply_model(config, params, xx, dd, keep=k, u_mask=u_mask,
                             removed_bound=bound if u_mask == "code" else None,
                             head_rows=head_rows, share_projection=share_projection)
        if channel == "probability":
            return channel_score(logits, p)
        if channel == "contrast":
            return channel_contrast(logits, p)
        return logits

    def rows(xx, dd):
        return jax.vmap(one, in_axes=(0, 0, None, None))(keep, head_class, xx, dd)

    B = x.shape[0]
    if not row_chunk or B <= row_chunk:
        return rows(x, dec)
    n = -(-B // row_chunk)

    def split(a):
        if a is None:
            return None
        a = jnp.pad(a, [(0, n * row_chunk - B)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((n, row_chunk) + a.shape[1:])

    out = jax.lax.map(lambda xd: rows(*xd), (split(x), split(dec)))  # [n, m, rc, ...]
    out = jnp.moveaxis(out, 0, 1)
    return out.reshape((out.shape[0], n * row_chunk) + out.shape[3:])[:, :B]


_STATIC = ("config", "u_mask", "channel", "bound", "head_rows", "share_projection",
           "row_chunk")
_scores_jit = jax.jit(_scores_body, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC + ("mesh",))
def _scores_sharded(params, keep, head_class, x, dec, *, mesh, **static):
    """:func:`_scores_body` on a ``("modules", "examples")`` mesh: each device scores its
    modules on its examples (:func:`jax.shard_map`, no collective inside); the result
    ``[m, B, ...]`` is gathered onto every device."""
    mods, rows = PartitionSpec(sharding.MODULES), PartitionSpec(sharding.EXAMPLES)
    body = functools.partial(_scores_body, **static)
    args, specs = (params, keep, head_class, x), (PartitionSpec(), mods, mods, rows)
    if dec is not None:
        args, specs = args + (dec,), specs + (rows,)
    out = jax.shard_map(lambda *a: body(*a, *([None] * (5 - len(a)))), mesh=mesh,
                        in_specs=specs,
                        out_specs=PartitionSpec(sharding.MODULES, sharding.EXAMPLES),
                        check_vma=False)(*args)  # no collective inside
    return jax.lax.with_sharding_constraint(out, sharding.replicated(mesh))


#: memory the composed scan may take per device when neither the device
#: (``memory_stats()["bytes_limit"]``) nor the host (physical memory, for CPU devices) can be
#: read; otherwise half of that is used
DEFAULT_MEMORY_BUDGET = 8 << 30


def score_bytes(config: ModelConfig, modules: int, rows: int) -> int:
    """An upper estimate of the memory (bytes) :func:`module_scores` takes for ``modules``
    modules on ``rows`` examples in one call: every layer's states and gates at every step,
    and the head's logits, in float32, per module and example."""
    gates = {"simple": 1, "gru": 3, "lstm": 4}[config.cell]
    dirs = config.directions
    per = config.steps * config.layers * dirs * config.units * (gates + 1)
    per += config.steps * config.num_classes
    return 4 * int(modules) * int(rows) * per


def memory_budget_bytes(memory_budget: Optional[int] = None) -> int:
    """``memory_budget`` (bytes per device) or the default: half of what the first device
    reports as its limit (accelerators), else half of the host's physical memory divided
    among its devices (CPU devices share it), else :data:`DEFAULT_MEMORY_BUDGET`."""
    if memory_budget is not None:
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) \
                or memory_budget < 1:
            raise ValueError(f"memory_budget must be a positive number of bytes, got "
                             f"{memory_budget!r}")
        return int(memory_budget)
    try:
        limit = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
    except Exception:  # backends without memory statistics (CPU)
        limit = None
    if not limit:
        try:
            limit = (os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
                     // jax.local_device_count())
        except (AttributeError, ValueError, OSError):  # not POSIX
            limit = None
    return int(limit) // 2 if limit else DEFAULT_MEMORY_BUDGET


def module_chunk(config: ModelConfig, num_modules: int, rows: int, budget: int,
                 module_devices: int = 1, example_devices: int = 1) -> int:
    """How many modules one call scores: all ``num_modules`` if :func:`score_bytes` of a
    device's share (``rows / example_devices`` examples) fits ``budget``; else the fewest
    chunks of at most as many modules as fit (at least one per device), made near-equal so
    that little padding is needed (a multiple of ``module_devices``)."""
    per_device = -(-int(rows) // int(example_devices))
    fit = max(int(budget // max(score_bytes(config, 1, per_device), 1)), 1) * module_devices
    chunks = -(-int(num_modules) // fit)
    return sharding.round_up(-(-int(num_modules) // chunks), module_devices)


SCORE_KINDS = ("probability", "contrast", "logits")

#: about how many examples :func:`module_scores` runs at a time inside one compiled call on a
#: CPU (``docs/benchmarks.md``: on a 2-core CPU, 384 made a CLINC-sized LSTM-1's rolled composed
#: evaluation 0.64x C forward passes, against 0.88-0.98x for whole batches of 2,304)
CPU_ROW_CHUNK = 384


def row_chunk_for(rows: int, row_chunk: Optional[int] = None,
                  backend: Optional[str] = None) -> int:
    """Rows per inner chunk for a compiled call of ``rows`` examples (0: no chunking).

    ``row_chunk`` is the wanted size: ``None`` for the default (:data:`CPU_ROW_CHUNK` on the
    CPU backend, no chunking on accelerators, where chunks would only serialise the work),
    0 for none. The batch is cut into ``ceil(rows / row_chunk)`` near-equal chunks, each a
    multiple of 8 rows, so the padding stays small."""
    if row_chunk is None:
        backend = jax.default_backend() if backend is None else backend
        row_chunk = CPU_ROW_CHUNK if backend == "cpu" else 0
    if isinstance(row_chunk, bool) or not isinstance(row_chunk, (int, np.integer)) \
            or row_chunk < 0:
        raise ValueError(f"row_chunk must be None or a non-negative int, got {row_chunk!r}")
    if row_chunk == 0 or rows <= row_chunk:
        return 0
    n = -(-int(rows) // int(row_chunk))
    return sharding.round_up(-(-int(rows) // n), 8)


def module_scores(decomp: Decomposition, params, x, dec_in=None, *, batch_size: int = 4096,
                  channel: Optional[bool] = None, kind: Optional[str] = None,
                  mesh: sharding.MeshArg = None, memory_budget: Optional[int] = None,
                  share_projection: Optional[bool] = True,
                  row_chunk: Optional[int] = None) -> Array:
    """Every module's score on ``x``, all modules in one batched scan per batch.

    Args:
      decomp: the decomposition.
      params: the base params it came from.
      x: ``[N, in_len]`` ids (``dec_in [N, out_len]`` for encoder-decoder); ``N`` may be 0.
      batch_size: about how many examples per compiled call (near-equal batches, each
        padded to a shape bucket of :mod:`modjax.buckets`).
      channel: return channelled probabilities (default for classification/tagging) or raw
        logits (default for encoder-decoder, whose heads are not channelled).
      kind: overrides ``channel``: ``"probability"`` (``sigmoid(z_p - z_q)``, for display: it
        is exactly 1.0 in float32 once the contrast passes about 16.6), ``"contrast"``
        (``z_p - z_q``, the unsaturated score the vote compares, ``docs/method.md#vote``) or
        ``"logits"``.
      mesh: the devices to run on (``docs/scaling.md``): ``None`` (default) — every device
        when there is more than one, arranged ``g x (n / g)`` with ``g = gcd(C, n)`` (modules
        x examples), else one device; ``False`` — one device; a sequence of devices (arranged
        likewise); or a :class:`jax.sharding.Mesh` with axes named ``"modules"`` and/or
        ``"examples"``. Each device scores ``C / modules`` modules (``C`` padded to a multiple)
        on ``B / examples`` examples of each batch (``B`` padded likewise); the scores equal
        the one-device ones to float32 rounding.
      memory_budget: bytes one call may take per device (default: half the device's memory
        limit; CPU devices: half the host's memory, divided among them;
        :func:`memory_budget_bytes`). When all modules
        would not fit (:func:`score_bytes`) they are scored in chunks of
        :func:`module_chunk` modules.
      share_projection: ``True`` (default; ``None`` means the same) computes the embedding
        and, at every step, the first layer's input projection ``x_t W + b`` once for all
        modules and applies each module's column mask to it (rolled: one mask; unrolled: the
        step's row of a ``[T, gH]`` table); ``False`` projects each module's inputs with its
        own masked weights (same scores to float32 rounding). Sharing measured faster in
        both modes on a 2-core CPU (``docs/benchmarks.md``, CLINC-sized LSTM-1: 0.64-0.74x C
        forward passes rolled and unrolled, against 0.82-0.95x per module).
      row_chunk: about how many examples of a batch run at a time inside the compiled call
        (:func:`row_chunk_for`): ``None`` (default) — :data:`CPU_ROW_CHUNK` on a CPU, where a
        step's gates for all modules then stay in cache, and whole batches on accelerators;
        ``0`` — whole batches. Same scores either way.

    Returns:
      ``[C, N]`` (one-output) or ``[C, N, T]`` (many-output) scores of each module's class;
      encoder-decoder: ``[C, N, T, V]`` logits.
    """
    cfg = decomp.config
    if kind is None:
        channel = (cfg.io != "encoder_decoder") if channel is None else channel
        kind = "probability" if channel else "logits"
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind must be one of {SCORE_KINDS}, got {kind!r}")
    params = to_plain_dict(params)
    x, dec_in = validate.model_inputs(cfg, x, dec_in, allow_empty=True)
    N = x.shape[0]
    C = decomp.num_modules
    if N == 0:
        tail = () if cfg.io in ("one_to_one", "many_to_one") else (cfg.steps,)
        tail += (cfg.num_classes,) if kind == "logits" else ()
        return jnp.zeros((C, 0) + tail, jnp.float32)
    # near-equal batches rounded up to a shape bucket (modjax.buckets): few compiled shapes
    bs, spans = batch_plan(N, batch_size)
    bound = removed_bound(decomp)
    mesh = sharding.compose_mesh(mesh, C)
    budget = memory_budget_bytes(memory_budget)
    if share_projection is None:
        share_projection = True
    if not isinstance(share_projection, (bool, np.bool_)):
        raise ValueError(f"share_projection must be True, False or None, got "
                         f"{share_projection!r}")
    row_chunk_for(bs, row_chunk)  # checks the argument before any work
    return _scores_batched(decomp, params, x, dec_in, bs, spans, kind, bound, mesh, budget,
                           share_projection=bool(share_projection), row_chunk=row_chunk)


def _scores_batched(decomp: Decomposition, params, x, dec_in, bs: int, spans, kind: str,
                    bound: int, mesh, budget: int, share_projection: bool = False,
                    row_chunk: Optional[int] = 0) -> Array:
    """:func:`module_scores` batch by batch: on one device (through :func:`modjax.programs.call`)
    or on a ``("modules", "examples")`` mesh, all modules per call or in module chunks.

    ``bs`` rows per call (rounded up to a multiple of the examples axis), ``spans`` the real
    rows of each batch; the modules are padded to a whole number of chunks (kept-everything
    modules, dropped after), so every call has one shape and compiles once.
    """
    cfg = decomp.config
    C = decomp.num_modules
    m, e_dev = (1, 1) if mesh is None else (mesh.shape[sharding.MODULES],
                                           mesh.shape[sharding.EXAMPLES])
    bs = sharding.round_up(bs, e_dev)
    chunk = module_chunk(cfg, C, bs, budget, m, e_dev)
    if chunk < C:
        logging.info("module_scores: %d modules in chunks of %d (memory budget %d bytes per "
                     "device)", C, chunk, budget)
    padded = sharding.round_up(C, chunk)
    keep = np.ones((padded,) + tuple(decomp.keep.shape[1:]), bool)
    keep[:C] = np.asarray(decomp.keep)
    head = np.zeros((padded,), np.int32)
    head[:C] = np.asarray(decomp.head_class)
    static = dict(config=cfg, u_mask=decomp.options.u_mask, channel=kind, bound=bound,
                  head_rows=decomp.options.head_rows, share_projection=share_projection,
                  row_chunk=row_chunk_for(bs // e_dev, row_chunk))
    if mesh is None:
        run = lambda *a: programs.call(_scores_jit, a, static)  # noqa: E731
        place = lambda a, spec: a  # noqa: E731
    else:
        run = functools.partial(_scores_sharded, mesh=mesh, **static)
        place = functools.partial(sharding.put, mesh=mesh)
        params = sharding.put_tree(params, mesh)
    mods, rows = PartitionSpec(sharding.MODULES), PartitionSpec(sharding.EXAMPLES)
    outs = []
    for s, e in spans:
        xb = place(pad_rows(x[s:e].astype(np.int32), bs), spec=rows)
        db = None if dec_in is None else place(pad_rows(dec_in[s:e].astype(np.int32), bs),
                                               spec=rows)
        parts = [np.asarray(run(params, place(keep[c:c + chunk], spec=mods),
                                place(head[c:c + chunk], spec=mods), xb, db))[:, : e - s]
                 for c in range(0, padded, chunk)]
        outs.append(np.concatenate(parts)[:C])
    return jnp.asarray(np.concatenate(outs, axis=1))


def vote(scores: Array, head_class: Array) -> Array:
    """Arg-max over modules: ``scores [C, N(, T)]`` -> predicted class ``[N(, T)]``.

    Pass an unsaturated monotone score (the contrasts ``z_p - z_q`` of
    ``module_scores(..., kind="contrast")``), not probabilities: ``sigmoid`` rounds to 1.0 in
    float32 for contrasts above about 16.6, and the tie would go to the first module.
    """
    return jnp.asarray(head_class)[jnp.argmax(scores, axis=0)]


def compose(decomp: Decomposition, params) -> Callable:
    """A predict function for the composed modules.

    Returns ``predict(x, dec_in=None) -> (pred, scores)`` where ``pred`` is ``[N]`` or
    ``[N, T]`` (the class of the module with the largest contrast ``z_p - z_q`` per example /
    per step, ``docs/method.md#vote``) and ``scores`` the modules' probabilities
    ``sigmoid(z_p - z_q)`` (:func:`module_scores`; for display). Encoder-decoder modules are
    not voted: use :func:`modjax.models.greedy_decode` with the decomposition and a module.
    """
    if decomp.config.io == "encoder_decoder":
        raise ValueError("encoder_decoder modules are chosen by target language, not voted; use "
                         "modjax.greedy_decode(config, params, src, start, decomp=decomp, "
                         "module=c)")

    def predict(x, dec_in=None):
        contrast = module_scores(decomp, params, x, dec_in, kind="contrast")
        return _vote_and_probabilities(contrast, decomp.head_class)

    return predict


@jax.jit
def _vote_and_probabilities(contrast: Array, head_class: Array):
    """``contrast [C, N(, T)]`` -> ``(vote [N(, T)], sigmoid(contrast))`` in one program."""
    return vote(contrast, head_class), jax.nn.sigmoid(contrast)


# -- reuse and replacement: edits of the pytree ------------------------------------------
def select(decomp: Decomposition, classes: Sequence[int]) -> Decomposition:
    """The sub-decomposition of the given module indices (reuse within a model)."""
    idx = jnp.asarray(validate.indices("classes", classes, decomp.num_modules), jnp.int32)
    return decomp.replace(keep=decomp.keep[idx], head_class=decomp.head_class[idx],
                          has_positives=decomp.has_positives[idx],
                          class_names=tuple(decomp.class_names[int(i)] for i in idx))


def replace(decomp: Decomposition, c: int, other: Decomposition, c_other: int) -> Decomposition:
    """Swap module ``c`` for module ``c_other`` of another decomposition of the same model."""
    check_module_index("c", c, decomp.num_modules)
    check_module_index("c_other", c_other, other.num_modules)
    if other.config != decomp.config or other.keep.shape[1:] != decomp.keep.shape[1:]:
        raise ValueError("other must decompose a model of the same architecture and mode to "
                         "swap keep vectors inside one set of params")
    return decomp.replace(keep=decomp.keep.at[c].set(other.keep[c_other]),
                          head_class=decomp.head_class.at[c].set(other.head_class[c_other]),
                          has_positives=decomp.has_positives.at[c].set(
                              other.has_positives[c_other]))


def concatenate(a: Decomposition, b: Decomposition) -> Decomposition:
    """Stack the modules of two decompositions of the same model and mode."""
    if a.config != b.config or a.options != b.options:
        raise ValueError("a and b must share config and options to be concatenated")
    return a.replace(keep=jnp.concatenate([a.keep, b.keep]),
                     head_class=jnp.concatenate([a.head_class, b.head_class]),
                     has_positives=jnp.concatenate([a.has_positives, b.has_positives]),
                     class_names=a.class_names + b.class_names)
