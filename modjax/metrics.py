"""Metrics: accuracy, the paper's Jaccard index, a positional one, retention, overlap, BLEU."""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from modjax.checkpoint import to_plain_dict
from modjax.compose import apply_masks
from modjax.decomposition import Decomposition
from modjax.masks import layer_prefix, masks_for


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


def _steps(decomp: Decomposition):
    """``[None]`` (rolled) or every step of an unrolled decomposition."""
    return list(range(decomp.keep.shape[2])) if decomp.unrolled else [None]


def _input_kernels(config, tree) -> np.ndarray:
    prefix = layer_prefix(config)
    parts = [np.asarray(tree[f"{prefix}{l}"]["kernel"]).ravel() for l in range(config.layers)]
    parts.append(np.asarray(tree["dense"]["kernel"]).ravel())
    return np.concatenate(parts)


def _ji(a: np.ndarray, b: np.ndarray) -> float:
    """``len(set(A) & set(B)) / (|A| + |B| - len(set(A) & set(B)))``: the intersection counts
    distinct values, as the artifact computes it (``0.0`` and ``-0.0`` are one value)."""
    a = a.astype(b.dtype)  # compare in the module's precision (e.g. float64 params, x64 off)
    inter = int(np.intersect1d(a, b).size)
    return inter / (a.size + b.size - inter)


def jaccard_paper(decomp: Decomposition, params) -> np.ndarray:
    """The paper's Jaccard index per module (docs/method.md#metrics), ``[C]``.

    Value sets over the *input kernels*: every decomposed recurrent layer's ``kernel`` and the
    output ``dense`` kernel. ``JI = I / (|A| + |B| - I)`` where ``A`` is the model's list, ``B``
    the module's and ``I = len(set(A) & set(B))`` the number of *distinct* values they share
    (as the artifact computes it; a value repeated in the weights counts once in ``I`` and
    every time in ``|A|`` and ``|B|``). Unrolled: averaged over steps.
    """
    params = to_plain_dict(params)
    a = _input_kernels(decomp.config, params)
    out = np.zeros(decomp.num_modules)
    for c in range(decomp.num_modules):
        out[c] = np.mean([_ji(a, _input_kernels(decomp.config, apply_masks(params, decomp, c, t)))
                          for t in _steps(decomp)])
    return out


def jaccard_positional(decomp: Decomposition, params) -> np.ndarray:
    """Positional Jaccard per module over ALL weights, ``[C]``.

    ``k`` = fraction of weight positions whose value is unchanged in the module (masked and
    channelled entries count as changed); ``JI = k / (2 - k)``. Unrolled: averaged over steps.
    """
    params = to_plain_dict(params)
    base = np.concatenate([np.asarray(v).ravel() for v in jax.tree_util.tree_leaves(params)])
    out = np.zeros(decomp.num_modules)
    for c in range(decomp.num_modules):
        vals = []
        for t in _steps(decomp):
            mod = np.concatenate([np.asarray(x).ravel() for x in
                                  jax.tree_util.tree_leaves(apply_masks(params, decomp, c, t))])
            k = float(np.mean(mod == base.astype(mod.dtype)))
            vals.append(k / (2 - k))
        out[c] = np.mean(vals)
    return out


def retention(decomp: Decomposition, params) -> np.ndarray:
    """Fraction of the decomposed layers' weights (W, U, b, head rows) each module keeps, ``[C]``.

    Unrolled masks count every step's copy.
    """
    params = to_plain_dict(params)
    prefix = layer_prefix(decomp.config)
    out = np.zeros(decomp.num_modules)
    for c in range(decomp.num_modules):
        m = masks_for(decomp, c, params)
        leaves = [m[f"{prefix}{l}"][k] for l in range(decomp.config.layers)
                  for k in ("kernel", "recurrent_kernel", "bias")] + [m["dense"]["kernel"]]
        kept = sum(int(np.asarray(x).sum()) for x in leaves)
        total = sum(int(np.asarray(x).size) for x in leaves)
        out[c] = kept / total
    return out


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
