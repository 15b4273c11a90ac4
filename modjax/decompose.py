"""``decompose``: trace once, identify every class's concern, return a Decomposition.

Pipeline (no Python loop over examples, steps or classes):

1. **Sample** (host, vectorised over labels): the union of every class's positives (first
   ``n_pos`` in data order, per output step for many-output models) and negatives.
2. **Trace** (one jit-compiled scan of the original model over that union): hidden states
   ``[L, U, T, H]`` (gate values ``[L, U, T, gH]`` in per-gate mode).
3. **Concern** (same jit): per class and output step, positive/negative index sets by
   ``jnp.nonzero(..., size=...)`` over the union, gathered observations, MAD-filtered means,
   scores and the capped selection, ``vmap``-ed over classes and steps.
"""
from __future__ import annotations

import functools
import warnings
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from modjax import concern, direction, programs, sharding, validate
from modjax.cells import CELL_TABLE
from modjax.buckets import bucket as shape_bucket
from modjax.checkpoint import to_plain_dict
from modjax.data.base import TaskData
from modjax.decomposition import Decomposition, DecomposeOptions
from modjax.models import ModelConfig, RNNModel, apply_model, init_params

Array = jax.Array


def resolve_model(model) -> ModelConfig:
    """A :class:`ModelConfig` from a config or an :class:`RNNModel`; TypeError otherwise."""
    if isinstance(model, ModelConfig):
        return model
    if isinstance(model, RNNModel):
        return model.config
    raise TypeError("model must be a modjax ModelConfig or RNNModel (the decomposer reads the "
                    f"architecture from it), got {type(model).__name__}")


@functools.lru_cache(maxsize=64)
def _param_shapes(config: ModelConfig) -> dict:
    """``{key path: ShapeDtypeStruct}`` of the params ``config`` needs (cached per config)."""
    want = jax.eval_shape(lambda: init_params(config))
    return {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(want)[0]}


def check_params(config: ModelConfig, params) -> dict:
    """Normalise the container (dict / FrozenDict / NNX pure dict) and check every shape.

    Returns the params as nested plain dicts; raises ``ValueError`` naming the first leaf whose
    path or shape does not match ``config``.
    """
    params = to_plain_dict(params)
    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    want_flat = _param_shapes(config)
    got_flat = {jax.tree_util.keystr(p): v for p, v in
                jax.tree_util.tree_flatten_with_path(params)[0]}
    missing = sorted(set(want_flat) - set(got_flat))
    extra = sorted(set(got_flat) - set(want_flat))
    if missing or extra:
        raise ValueError(f"params do not match the model config: missing {missing[:4]}, "
                         f"unexpected {extra[:4]}")
    for k, v in want_flat.items():
        shape = tuple(np.shape(got_flat[k]))
        if shape != tuple(v.shape):
            raise ValueError(f"params{k} has shape {shape}, the model config needs "
                             f"{tuple(v.shape)}")
        leaf = got_flat[k]
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"params{k} must be floating point, got {dtype}")
    return params


def statistics_precision(params) -> dict:
    """Params to trace and score in: float16 / bfloat16 leaves as float32, others as they are.

    The hidden states and statistics never run in half precision (the medians' order-preserving
    keys need 32 or 64 bits, and half-precision scores tie far more often).
    """
    def up(a):
        dtype = np.dtype(getattr(a, "dtype", np.asarray(a).dtype))
        return jnp.asarray(a, jnp.float32) if dtype.itemsize < 4 else a

    return jax.tree_util.tree_map(up, params)


def prepare_data(config: ModelConfig, data, num_classes: int):
    """Normalise ``data`` to ``(x [N, in_len], dec [N, T] | None, slots [N, S])``.

    ``data`` is a :class:`TaskData` (its train split) or ``(inputs, labels)``; encoder-decoder
    takes ``((src, dec_in), concern)``. ``slots`` are the labels the samples are drawn by:
    ``S = 1`` for one-output and encoder-decoder (the concern), ``S = T`` for many-output.
    """
    if isinstance(data, TaskData):
        if config.io == "encoder_decoder":
            data = ((data.x_train, data.decoder_input_train), data.concern_train)
        else:
            data = (data.x_train, data.y_train)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError("data must be a modjax TaskData or a pair (inputs, labels), got "
                        f"{type(data).__name__}")
    inputs, labels = data
    dec = None
    if config.io == "encoder_decoder":
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise ValueError("data inputs for an encoder_decoder model must be a pair "
                             "(src [N, in_len], dec_in [N, out_len])")
        inputs, dec = inputs
    x, dec = validate.model_inputs(config, inputs, dec, x_name="data inputs",
                                   dec_name="data decoder inputs")
    N = x.shape[0]
    if config.many_output:
        y = validate.labels("data labels", labels, (N, config.steps), num_classes)
    else:
        y = validate.labels("data labels" if config.io != "encoder_decoder" else
                            "data concern", labels, (N,), num_classes)[:, None]
    return x, dec, y


def sample_union(slots: np.ndarray, num_classes: int, n_pos: int, n_neg: int,
                 neg_per_class: bool) -> np.ndarray:
    """Bool ``[N]``: examples that are a positive or negative of some class at some slot.

    Vectorised over examples, slots and classes with cumulative counts.
    """
    onehot = slots[:, :, None] == np.arange(num_classes)[None, None, :]  # [N, S, C]
    rank_in = np.cumsum(onehot, axis=0) - 1
    pos = onehot & (rank_in < n_pos)
    if neg_per_class:
        neg = onehot & (rank_in < n_neg)  # first n_neg of every class serve the others
    else:
        rank_out = np.cumsum(~onehot, axis=0) - 1
        neg = ~onehot & (rank_out < n_neg)
    return (pos | neg).any(axis=(1, 2))


def _sample_indices(slots, real, c, n_pos, n_neg, neg_per_class, num_classes):
    """Per slot: positive / negative indices into the union and their validity.

    ``slots [U, S]``, ``real [U]`` -> ``pos_idx [S, n_pos]``, ``pos_ok [S, n_pos]``,
    ``neg_idx [S, n_neg]``, ``neg_ok [S, n_neg]``.
    """
    def one_slot(y):
        is_c = (y == c) & real
        pos = is_c & (jnp.cumsum(is_c) - 1 < n_pos)
        if neg_per_class:
            own = jax.nn.one_hot(y, num_classes, dtype=jnp.int32) * real[:, None]
            own_rank = jnp.take_along_axis(jnp.cumsum(own, axis=0) - 1,
                                           jnp.clip(y, 0, num_classes - 1)[:, None], 1)[:, 0]
            neg = ~is_c & real & (own_rank < n_neg)
            n_neg_total = min(n_neg * (num_classes - 1), slots.shape[0])  # at most U
        else:
            other = ~is_c & real
            neg = other & (jnp.cumsum(other) - 1 < n_neg)
            n_neg_total = n_neg
        pi = jnp.nonzero(pos, size=n_pos, fill_value=0)[0]
        ni = jnp.nonzero(neg, size=n_neg_total, fill_value=0)[0]
        pok = jnp.arange(n_pos) < jnp.sum(pos)
        nok = jnp.arange(n_neg_total) < jnp.sum(neg)
        return pi, pok, ni, nok

    return jax.vmap(one_slot, in_axes=1)(slots)


def _observations(src, step_ok, idx, ok, many_output, unrolled, pool_all, bidirectional=False):
    """Gather observations of one layer for one class.

    Args:
      src: ``[U, T, F]`` hidden states (or gates) of the union (bidirectional:
        ``[U, T, 2, F]``, input-position order).
      step_ok: ``[U, T]`` real (non-padded) steps.
      idx, ok: ``[S, n]`` sample indices and validity per slot.
      bidirectional: ``src`` has a direction axis; the "last step" of a one-output model is
        each direction's own last step (position ``T - 1`` forward, 0 backward), valid where
        both are.

    Returns:
      ``obs [M, n', (2,) F]`` and ``valid [M, n']``: ``M = T`` unrolled, else 1.
    """
    T = src.shape[1]
    if many_output:  # slot t samples are observed at step t
        t = jnp.arange(T)
        obs = src[idx, t[:, None]]  # [T, n, (2,) F]
        valid = ok & step_ok[idx, t[:, None]]
        if unrolled:
            return obs, valid
        return obs.reshape((1, -1) + obs.shape[2:]), valid.reshape(1, -1)
    i, o = idx[0], ok[0]
    obs = src[i]  # [n, T, (2,) F]
    valid = o[:, None] & step_ok[i]  # [n, T]
    if unrolled:
        return jnp.swapaxes(obs, 0, 1), valid.T
    if pool_all:
        return obs.reshape((1, -1) + obs.shape[2:]), valid.reshape(1, -1)
    last_ok = valid[:, -1] & valid[:, 0] if bidirectional else valid[:, -1]
    return direction.own_order(obs, 1, bidirectional)[None, :, -1], last_ok[None]


@functools.partial(jax.jit, static_argnames=("config", "gates"))
def _trace(params, x, dec, *, config: ModelConfig, gates: bool):
    """The trace stage: the original model's ``{"hidden", ("gates")}`` (full float32 matmuls,
    as everywhere: :mod:`modjax.precision`)."""
    _, aux = apply_model(config, params, x, dec, return_hidden=True, return_gates=gates)
    return aux


def _relu_int_dtype(threshold, n_pos, n_neg, neg_per_class, num_classes, T, config, options):
    """The integer type in which the ReLU rule's exact comparison cannot overflow."""
    a, b = concern.threshold_fraction(threshold)
    n_neg_total = n_neg * (num_classes - 1) if neg_per_class else n_neg
    pooled = options.mode == "rolled" and (config.many_output or options.rolled_obs == "all_steps"
                                           or config.io == "encoder_decoder")
    steps = T if pooled else 1
    bound = n_pos * steps * n_neg_total * steps * (max(abs(a), 1) + b)
    if bound < 2 ** 31:
        return jnp.int32
    if jax.config.jax_enable_x64:
        return jnp.int64
    raise ValueError(f"relu_threshold={threshold!r} with n_pos={n_pos}, n_neg={n_neg_total} over "
                     f"{steps} pooled steps needs 64-bit integers for its exact comparison: "
                     "enable jax_enable_x64, or use fewer examples or a threshold with a smaller "
                     "denominator")


@functools.partial(jax.jit, static_argnames=("config", "options", "num_classes", "n_pos",
                                             "n_neg", "neg_per_class", "mesh"))
def _decompose_core(params, x, dec, slots, real, *, config: ModelConfig,
                    options: DecomposeOptions, num_classes: int, n_pos: int, n_neg: int,
                    neg_per_class: bool, mesh=None):
    per_gate = options.gate_mode == "per_gate"
    aux = _trace(params, x, dec, config=config, gates=per_gate)
    hidden = aux["hidden"]  # [L, U, T, H]
    src = aux["gates"] if per_gate else hidden
    finite = jnp.all(jnp.isfinite(hidden))
    T = config.steps
    # Padded steps are those the model itself masks (mask_zero: decoder inputs, or the inputs
    # of a model that reads one token per step); skipped only on request.
    step_ids = dec if config.io == "encoder_decoder" else (
        x if config.io in ("many_to_one", "many_to_many") else None)
    if options.padded_steps == "skip" and config.mask_zero and step_ids is not None:
        step_ok = step_ids != 0
    else:  # no padded steps, or their held state is observed (the artifact's)
        step_ok = jnp.ones((x.shape[0], T), bool)
    unrolled = options.mode == "unrolled"
    pool_all = options.rolled_obs == "all_steps" or config.io == "encoder_decoder"
    relu = config.activation == "relu" and config.cell == "simple"
    H = config.units
    k = concern.removal_count(options.max_remove, H)
    spec = CELL_TABLE[config.cell]

    relu_int = relu and _relu_int_dtype(options.relu_threshold, n_pos, n_neg, neg_per_class,
                                        num_classes, T, config, options)
    select = functools.partial(selector(config, options), k=k)
    bi = config.directions == 2

    def score_one(p, pv, n, nv):
        if per_gate:
            return concern.gate_scores(p, pv, n, nv, spec.gate_kinds, H)
        if relu:
            return concern.relu_score_parts(p, pv, n, nv, relu_int)
        return concern.unit_scores(p, pv, n, nv, relu)

    # bidirectional: statistics and removal (with its cap) per direction
    score = jax.vmap(score_one, in_axes=(1, None, 1, None)) if bi else score_one
    if bi:
        select = jax.vmap(select)

    def per_class(c, src, step_ok, slots, real):
        pi, pok, ni, nok = _sample_indices(slots, real, c, n_pos, n_neg, neg_per_class,
                                           num_classes)

        def per_layer(layer_src):
            po, pv = _observations(layer_src, step_ok, pi, pok, config.many_output, unrolled,
                                   pool_all, bi)
            no, nv = _observations(layer_src, step_ok, ni, nok, config.many_output, unrolled,
                                   pool_all, bi)
            d = jax.vmap(score)(po, pv, no, nv)  # [M, (2,) F]
            keep = jax.vmap(select)(d)
            has = jnp.any(pv, axis=1) & jnp.any(nv, axis=1)  # [M]
            keep = keep | ~has.reshape(has.shape + (1,) * (keep.ndim - 1))
            return keep, has, d

        keep, has, d = jax.vmap(per_layer)(src)  # [L, M, (2,) F], [L, M], [L, M, (2,) F]
        return keep, has[0], d

    classes = (src, step_ok, slots, real)
    all_classes = jax.vmap(per_class, in_axes=(0,) + (None,) * len(classes))
    if mesh is None:
        keep, has, d = all_classes(jnp.arange(num_classes), *classes)  # [C, L, M, (2,) F], [C, M]
    else:
        keep, has, d = _classes_sharded(all_classes, num_classes, mesh, classes)
    if not unrolled:
        keep = keep[:, :, 0]
    return keep, has, finite, d


def _classes_sharded(all_classes, num_classes: int, mesh, state):
    """The statistics and removal of every class, the classes split over ``mesh``.

    ``state`` (the union's states, step validity, slots and validity) is replicated first: an
    all-gather, which moves values and computes nothing. Each device then runs the unchanged
    per-class computation for its own classes (:func:`jax.shard_map`, no collective inside), so
    every class's medians, counts and sums are computed exactly as on one device. The class
    axis is padded to a multiple of the device count with repeats of the first classes, which
    are dropped after. Returns ``(keep, has, d)`` replicated on every device.
    """
    axes = tuple(mesh.axis_names)
    everywhere = sharding.replicated(mesh)
    state = tuple(jax.lax.with_sharding_constraint(a, everywhere) for a in state)
    padded = sharding.round_up(num_classes, mesh.size)
    classes = jnp.arange(padded, dtype=jnp.int32) % num_classes
    out = jax.shard_map(all_classes, mesh=mesh,
                        in_specs=(PartitionSpec(axes),) + (PartitionSpec(),) * len(state),
                        out_specs=PartitionSpec(axes),
                        # no collective inside; the loops' constant carries would need pcasts
                        check_vma=False)(classes, *state)
    return jax.tree_util.tree_map(
        lambda a: jax.lax.with_sharding_constraint(a[:num_classes], everywhere), out)


def selector(config: ModelConfig, options: DecomposeOptions):
    """The removal rule of ``config``/``options`` as ``select(d [F], k) -> keep [F]`` (bool);
    for ReLU models ``d`` is ``(numerators [F], denominator)`` and the rule is exact.

    ``k`` (the cap, ``ceil(max_remove * H)``) may be a traced int, so one compiled function
    serves a ladder of caps (:mod:`modjax.minimal`). Rules: per-gate blocks, the ReLU
    threshold, or the logistic rule with its tie ratio (``docs/method.md#removal``).
    """
    spec = CELL_TABLE[config.cell]
    if options.gate_mode == "per_gate":
        return lambda d, k: concern.select_gates(d, k, spec.blocks)
    if config.activation == "relu" and config.cell == "simple":
        # exact: d = (integer numerators, their shared denominator)
        return lambda d, k: concern.select_relu(d[0], k, options.relu_threshold, den=d[1])
    return lambda d, k: concern.select_logistic(d, k, options.tie_ratio)


def decompose(params, data, *, model, class_names=None, preset: Optional[str] = None,
              mesh: sharding.MeshArg = None, **options) -> Decomposition:
    """Decompose a trained model into one module per class.

    Args:
      params: the trained params (dict, FrozenDict, ``{"params": ...}`` or an NNX model's
        state as a pure dict), matching ``model``.
      data: ``(inputs [N, in_len], labels)`` — labels ``[N]`` (one-output) or ``[N, T]``
        (many-output), integer or one-hot — or a :class:`~modjax.data.base.TaskData` (its train
        split). Encoder-decoder: ``((src, dec_in), concern [N])`` where ``concern`` is the target
        language of each pair.
      model: the :class:`~modjax.models.ModelConfig` (or :class:`~modjax.models.RNNModel`).
      class_names: optional names (default: ``data.class_names`` or ``"0".."C-1"``).
      preset: a named option set (:data:`modjax.presets.PRESETS`: ``"artifact"``,
        ``"paper_text"``, ``"library"``), resolved for this model's cell, I/O type, depth,
        Dropout and ``mode`` by :func:`modjax.presets.decompose_options`; explicit options
        override it.
      mesh: the devices to run on (``docs/scaling.md``): ``None`` (default) — every device
        (:func:`jax.devices`) when there is more than one, else one device; ``False`` — one
        device; a :class:`jax.sharding.Mesh` (any axis names; all its devices are used) or a
        sequence of devices. On a mesh the trace is data-parallel over the ``U`` sampled
        examples (``x [U, in_len]`` split over all devices, ``U`` padded to a multiple of the
        device count with invalid rows) and the statistics are split over the ``C`` classes;
        the keep vectors and scores are bit-identical to the one-device run.
      **options: fields of :class:`~modjax.decomposition.DecomposeOptions`.

    Returns:
      A :class:`~modjax.decomposition.Decomposition` with keep vectors ``[C, L, (T,) H]``
      (bidirectional: ``[C, L, (T,) 2, H]``, forward then backward, statistics and cap per
      direction; ``docs/method.md#bidirectional``).

    Raises:
      TypeError / ValueError naming the argument on a bad model, params, data or option; a
      ``UserWarning`` lists classes (and steps) without positive examples, which keep all units.
    """
    decomp, _ = decompose_with_scores(params, data, model=model, class_names=class_names,
                                      preset=preset, warn_stacklevel=3, mesh=mesh, **options)
    return decomp


def decompose_with_scores(params, data, *, model, class_names=None,
                          preset: Optional[str] = None, warn_stacklevel: int = 2,
                          mesh: sharding.MeshArg = None, **options):
    """:func:`decompose`, also returning every unit's score ``d = ct_pos - ct_neg``.

    Returns ``(decomp, d)`` with ``d [C, L, M, (2,) F]`` float (``M = 1`` rolled, ``T`` unrolled;
    the direction axis for a bidirectional model; ``F = H``, or ``gH`` per gate): the scores
    the removal rule sorted
    (``docs/method.md#statistics``). Raising the cap changes which of them are removed, not
    the scores, so a ladder of caps needs this one trace (:mod:`modjax.minimal`).
    ``mesh`` as in :func:`decompose`.
    """
    config = resolve_model(model)
    mesh = sharding.resolve_mesh(mesh)
    if preset is not None:
        from modjax.presets import options_for

        opts = options_for(preset, config, **options)
    else:
        try:
            opts = DecomposeOptions(**options)
        except TypeError as e:
            raise TypeError(f"unknown decompose option: {e}") from None
    if opts.gate_mode == "per_gate" and config.cell == "simple":
        raise ValueError("gate_mode='per_gate' needs an LSTM or GRU model; "
                         f"model.cell is {config.cell!r}")
    params = statistics_precision(check_params(config, params))
    if config.io == "encoder_decoder":
        if class_names is None and isinstance(data, TaskData):
            class_names = data.class_names
        if class_names is None:
            raise ValueError("class_names (the target languages) are required to decompose an "
                             "encoder_decoder model from arrays")
        num_classes = len(class_names)
    else:
        num_classes = config.num_classes
        if class_names is None:
            class_names = (data.class_names if isinstance(data, TaskData)
                           and len(data.class_names) == num_classes
                           else tuple(str(i) for i in range(num_classes)))
    if len(class_names) != num_classes:
        raise ValueError(f"class_names must have {num_classes} entries, got {len(class_names)}")
    x, dec, slots = prepare_data(config, data, num_classes)
    n_pos, n_neg, per_class = opts.resolved(config, num_classes)
    union = sample_union(slots, num_classes, n_pos, n_neg, per_class)
    idx = np.nonzero(union)[0]
    U = len(idx)
    # a shape bucket (modjax.buckets): few distinct compiled sizes, at most 12.5% padding
    bucket = shape_bucket(U, minimum=128)
    if mesh is not None:  # whole rows per device, enough for one matmul kernel
        bucket = sharding.device_rows(bucket, mesh.size)
    real = np.zeros(bucket, bool)
    real[:U] = True

    def padded(a):
        if a is None:
            return None
        out = np.zeros((bucket,) + a.shape[1:], a.dtype)
        out[:U] = a[idx]
        return out

    # No class has more positives or negatives than the union holds: sample arrays (and the
    # memory they take) are bounded by the data, not by n_pos; the samples are the same.
    arrays = (to_plain_dict(params), padded(x), padded(dec), padded(slots), real)
    static = dict(config=config, options=opts, num_classes=num_classes,
                  n_pos=min(n_pos, bucket), n_neg=min(n_neg, bucket), neg_per_class=per_class)
    if mesh is None:
        keep, has, finite, d = programs.call(_decompose_core, arrays, static)
    else:  # examples split over every device, params on each; results replicated
        rows = PartitionSpec(tuple(mesh.axis_names))
        arrays = (sharding.put_tree(arrays[0], mesh),) + tuple(
            None if a is None else sharding.put(a, mesh, rows) for a in arrays[1:])
        keep, has, finite, d = _decompose_core(*arrays, mesh=mesh, **static)
        keep, has, finite = map(sharding.to_host, (keep, has, finite))
        d = jax.tree_util.tree_map(sharding.to_host, d)
    if not bool(finite):
        raise ValueError("the model's hidden states are not finite (NaN/inf) on the data: check "
                         "params and inputs")
    has_np = np.asarray(has)
    if not has_np.all():
        missing = [(class_names[c], int(m)) for c, m in zip(*np.nonzero(~has_np))]
        where = "steps" if opts.mode == "unrolled" else "slots"
        warnings.warn(f"no positive (or negative) examples for {len(missing)} (class, {where}) "
                      f"pairs; those modules keep every unit there: {missing[:10]}",
                      UserWarning, stacklevel=warn_stacklevel)
    decomp = Decomposition(keep=keep, head_class=jnp.arange(num_classes, dtype=jnp.int32),
                           has_positives=has, config=config, options=opts,
                           class_names=tuple(class_names))
    return decomp, d


def trace(params, inputs, *, model, dec_in=None, gates: bool = False):
    """Hidden states of the original model at every layer and step (one jit-compiled scan).

    Returns ``hidden [L, N, T, H]`` (and ``gates [L, N, T, gH]`` when ``gates``); a
    bidirectional model's have a direction axis before the last, ``[L, N, T, 2, H]``, in
    input-position order.
    """
    config = resolve_model(model)
    params = statistics_precision(check_params(config, params))
    inputs, dec_in = validate.model_inputs(config, inputs, dec_in, x_name="inputs")
    aux = _trace(params, jnp.asarray(inputs, jnp.int32),
                 None if dec_in is None else jnp.asarray(dec_in, jnp.int32),
                 config=config, gates=gates)
    return (aux["hidden"], aux["gates"]) if gates else aux["hidden"]
