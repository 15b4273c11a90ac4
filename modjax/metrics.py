"""Metrics: accuracy, the paper's Jaccard index, a positional one, retention, overlap, BLEU."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from modjax.checkpoint import to_plain_dict
from modjax.decomposition import Decomposition
from modjax.masks import layer_prefix


def accuracy(pred, labels, *, ignore_padding: bool = False) -> float:
    """Fraction of equal entries of ``pred`` and ``labels`` (``[N]`` or ``[N, T]``).

    With ``ignore_padding`` only positions whose label is not 0 count (many-output); by
    default every position counts, padding included, as the paper reports.
    """
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"pred and labels must have the same shape, got {pred.shape} and "
                         f"{labels.shape}")
    if ignore_padding:
        m = labels != 0
        return float((pred == labels)[m].mean()) if m.any() else float("nan")
    return float((pred == labels).mean())


def chance_accuracy(labels, num_classes: int) -> float:
    """What a model that has learned nothing scores: ``max(1 / C, share of the most frequent
    label)`` over ``labels [N]`` or ``[N, T]`` (every position, as :func:`accuracy` counts).

    A monolithic accuracy at this level (e.g. 0.17 on six balanced classes) means an untrained
    or failed model; its modules say nothing about the method.
    """
    y = np.asarray(labels).ravel()
    if not (isinstance(num_classes, (int, np.integer)) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if y.size == 0:
        return 1.0 / num_classes
    return float(max(1.0 / num_classes, np.bincount(y.astype(np.int64)).max() / y.size))


def has_padding_class(class_names) -> bool:
    """Whether class 0 is a padding label (named ``pad``, ``<pad>`` or ``padding``): only then
    does :func:`accuracy` with ``ignore_padding=True`` mean "real positions only"."""
    names = list(class_names)
    return bool(names) and str(names[0]).strip("<>[] ").lower() in ("pad", "padding")


def _leaf_per_step(decomp: Decomposition, leaf, shape) -> np.ndarray:
    """A mask leaf of a param of ``shape`` (``[C, shape]`` or ``[C, T, shape]``) ->
    ``[C, S, prod(shape)]`` with ``S = T`` (unrolled) or 1; step-free leaves are repeated."""
    m = np.asarray(leaf)
    C = decomp.num_modules
    S = decomp.keep.shape[2] if decomp.unrolled else 1
    n = int(np.prod(shape))
    if m.ndim == len(shape) + 2:  # a step axis
        return m.reshape(C, S, n)
    return np.broadcast_to(m.reshape(C, 1, n), (C, S, n))


def _channelled_head(decomp: Decomposition, kernel: np.ndarray, mask: np.ndarray):
    """The channelled head of every module and step (:func:`modjax.compose.channelled_head`,
    as ``apply_masks`` builds it): ``kernel [H, K]``, ``mask [C, S, H*K]`` ->
    ``(new [C, S, H, K], p [C], q [C])``."""
    H, K = kernel.shape
    p = np.asarray(decomp.head_class, np.int64)
    new = _channelled_kernels(np.asarray(mask).reshape(mask.shape[:2] + (H, K)),
                              np.asarray(kernel), p.astype(np.int32))
    return np.asarray(new), p, np.where(p == 0, 1, 0)


@jax.jit
def _channelled_kernels(mask, kernel, p):
    """``mask [C, S, H, K]``, ``kernel [H, K]``, ``p [C]`` -> the masked, channelled kernels
    ``[C, S, H, K]`` (one compiled program)."""
    from modjax.compose import channelled_head

    k = jnp.where(mask, kernel, 0)
    bias = jnp.zeros((kernel.shape[-1],), k.dtype)
    per_step = jax.vmap(lambda ks, pc: channelled_head(ks, bias, pc)[0], in_axes=(0, None))
    return jax.vmap(per_step)(k, p)


@jax.jit
def _channelled_biases(bias, p):
    """``bias [K]``, ``p [C]`` -> each module's channelled head bias ``[C, K]``."""
    from modjax.compose import channelled_head

    zero_k = jnp.zeros((1, bias.shape[0]), bias.dtype)
    return jax.vmap(lambda pc: channelled_head(zero_k, bias, pc)[1])(p)


def jaccard_paper(decomp: Decomposition, params) -> np.ndarray:
    """The paper's Jaccard index per module (docs/method.md#metrics), ``[C]``.

    Value sets over the *input kernels*: every decomposed recurrent layer's ``kernel`` and the
    output ``dense`` kernel. ``JI = I / (|A| + |B| - I)`` where ``A`` is the model's list, ``B``
    the module's and ``I = len(set(A) & set(B))`` the number of *distinct* values they share
    (as the artifact computes it; a value repeated in the weights counts once in ``I`` and
    every time in ``|A|`` and ``|B|``; ``0.0`` and ``-0.0`` are one value). Unrolled: averaged
    over steps. All modules and steps at once: each module value is mapped to its index among
    the model's distinct values, and the shared ones are counted per (module, step).
    """
    from modjax.masks import all_masks

    params = to_plain_dict(params)
    cfg = decomp.config
    masks = all_masks(decomp, params)
    prefix = layer_prefix(cfg)
    names = [f"{prefix}{l}" for l in range(cfg.layers)]
    kernels = [np.asarray(params[n]["kernel"]) for n in names]
    head = np.asarray(params["dense"]["kernel"])
    dtype = jnp_dtype(head)  # the module's precision (float64 params, x64 off: float32)
    a = np.concatenate([k.ravel() for k in kernels] + [head.ravel()]).astype(dtype)
    uniq, inv = np.unique(a, return_inverse=True)  # -0.0 and 0.0 share one entry
    zero = np.searchsorted(uniq, 0.0)
    zero_id = int(zero) if zero < uniq.size and uniq[zero] == 0 else -1
    C = decomp.num_modules
    # ids of the module's values: the model's value where kept, zero where masked
    parts, off = [], 0
    for n, k in zip(names, kernels):
        m = _leaf_per_step(decomp, masks[n]["kernel"], k.shape)
        parts.append(np.where(m, inv[None, None, off:off + k.size], zero_id))
        off += k.size
    hm = _leaf_per_step(decomp, masks["dense"]["kernel"], head.shape)
    H, K = head.shape
    head_ids = np.where(hm, inv[None, None, off:], zero_id).reshape(hm.shape[:2] + (H, K))
    if cfg.io != "encoder_decoder":  # encoder-decoder heads are masked, not channelled
        new, p, q = _channelled_head(decomp, head, hm)
        col = np.arange(K)[None, None, None, :]
        qv = new[np.arange(C), :, :, q].astype(dtype)  # [C, S, H] the channelled column
        at = np.clip(np.searchsorted(uniq, qv), 0, uniq.size - 1)
        q_ids = np.where(uniq[at] == qv, at, -1)
        head_ids = np.where(col == p[:, None, None, None], head_ids, zero_id)
        head_ids = np.where(col == q[:, None, None, None], q_ids[..., None], head_ids)
    ids = np.concatenate(parts + [head_ids.reshape(hm.shape)], axis=-1)  # [C, S, P]
    S = ids.shape[1]
    present = np.zeros((C * S, uniq.size + 1), bool)  # the last column collects "not shared"
    rows = np.repeat(np.arange(C * S), ids.shape[-1])
    present[rows, np.where(ids >= 0, ids, uniq.size).ravel()] = True
    inter = present[:, :-1].sum(1).reshape(C, S)
    return np.mean(inter / (2 * a.size - inter), axis=1)


def jnp_dtype(x) -> np.dtype:
    """The dtype an array gets as a JAX array (float64 becomes float32 unless x64 is on)."""
    import jax.numpy as jnp

    return np.dtype(jnp.asarray(np.zeros((), np.asarray(x).dtype)).dtype)


def jaccard_positional(decomp: Decomposition, params) -> np.ndarray:
    """Positional Jaccard per module over ALL weights, ``[C]``.

    ``k`` = fraction of weight positions whose value is unchanged in the module (a masked
    entry whose value was already 0 counts as unchanged); ``JI = k / (2 - k)``. Unrolled:
    averaged over steps.
    """
    from modjax.masks import all_masks

    params = to_plain_dict(params)
    masks = all_masks(decomp, params)
    C = decomp.num_modules
    S = decomp.keep.shape[2] if decomp.unrolled else 1
    flat_p = jax.tree_util.tree_flatten_with_path(params)[0]
    flat_m = dict(jax.tree_util.tree_flatten_with_path(masks)[0])
    same = np.zeros((C, S))
    total = 0
    for path, leaf in flat_p:
        a = np.asarray(leaf).astype(jnp_dtype(leaf))
        total += a.size
        keys = tuple(getattr(k, "key", k) for k in path)
        if keys[0] == "dense" and decomp.config.io != "encoder_decoder":
            continue  # the channelled head: below
        m = _leaf_per_step(decomp, flat_m[path], a.shape)
        same += (m | (a.ravel() == 0)[None, None, :]).sum(-1)
    if decomp.config.io != "encoder_decoder":
        head = np.asarray(params["dense"]["kernel"])
        hm = _leaf_per_step(decomp, masks["dense"]["kernel"], head.shape)
        new, p, q = _channelled_head(decomp, head, hm)
        same += (new == head.astype(new.dtype)[None, None]).reshape(C, S, -1).sum(-1)
        b = np.asarray(params["dense"]["bias"]).astype(jnp_dtype(params["dense"]["bias"]))
        nb = np.asarray(_channelled_biases(b, p.astype(np.int32)))  # [C, K]
        same += (nb == b[None, :]).sum(1)[:, None]  # the bias has no step axis
    k = same / total
    return np.mean(k / (2 - k), axis=1)


def retention(decomp: Decomposition, params) -> np.ndarray:
    """Fraction of the decomposed layers' weights (W, U, b, head rows) each module keeps, ``[C]``.

    Unrolled masks count every step's copy.
    """
    from modjax.masks import all_masks

    params = to_plain_dict(params)
    prefix = layer_prefix(decomp.config)
    m = all_masks(decomp, params)
    leaves = [m[f"{prefix}{l}"][k] for l in range(decomp.config.layers)
              for k in ("kernel", "recurrent_kernel", "bias")] + [m["dense"]["kernel"]]
    C = decomp.num_modules
    kept = sum(np.asarray(x).reshape(C, -1).sum(1) for x in leaves)
    total = sum(np.asarray(x)[0].size for x in leaves)
    return kept / total


def overlap(decomp: Decomposition) -> np.ndarray:
    """Pairwise module overlap ``[C, C]``: Jaccard of the sets of kept (layer, step, unit)."""
    k = np.asarray(decomp.keep).reshape(decomp.num_modules, -1).astype(np.int64)
    inter = k @ k.T
    sizes = k.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter
    return inter / np.maximum(union, 1)


def units_kept(decomp: Decomposition) -> np.ndarray:
    """Kept units per module and layer, ``[C, L]`` (mean over steps when unrolled; both
    directions of a bidirectional layer counted, out of ``2H``)."""
    k = np.asarray(decomp.unit_keep())
    s = k.sum(-1)
    if decomp.config.directions == 2:
        s = s.sum(-1)
    return s.mean(-1) if decomp.unrolled else s


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str],
                max_ngram_order: int = 4) -> float:
    """sacreBLEU corpus BLEU (0–100) of whitespace-tokenised strings.

    ``max_ngram_order=1`` gives the BLEU-1 the paper reports (without smoothing differences).
    """
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references must have the same length, got "
                         f"{len(hypotheses)} and {len(references)}")
    bleu = BLEU(max_ngram_order=max_ngram_order, tokenize="none")
    return float(bleu.corpus_score(list(hypotheses), [list(references)]).score)
