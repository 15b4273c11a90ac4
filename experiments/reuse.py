"""Table III (RQ2): reusing modules for new two-class problems, against retrained models.

Usage::

    python -m experiments.reuse --datasets=mathqa,clinc --cells=lstm --layers=1 \\
        --models_from=runs/table2/models --out=runs/reuse --report=docs/results/table3_reuse.md

* **intra** (docs/method.md#reuse): for every pair of classes ``(c1, c2)`` of a dataset (padding
  excluded: 15 + 45 + 21 + 66 = 147 pairs), the two modules of a decomposed Table II model decide
  the pair's test examples with the paper's rules (:mod:`modjax.decision`): 1:1 the one-claim
  rule over the C-way softmax of the channelled logits, M:1 the same over the pairwise score,
  1:N and M:N every module votes per step and a winner outside the pair becomes 0 (1:N collapsed
  to ``[c1, c2]`` / ``[0, c]``). Two baselines: **(a)** what the paper did — the original model
  fine-tuned with a new two-class head (1:1, M:1; M:1 training data under-sampled to balance),
  a model trained from scratch on balanced data (1:N, M:N); **(b)** a model trained from scratch
  for every I/O type. 5 epochs, batch 32.
* **inter**: MathQA (1:1) + toxic (1:N) over one 7,000-word tokenizer (7 × 6 = 42 problems),
  CLINC (M:1) + Brown (M:N) over one uncapped tokenizer (12 × 10 = 120): "a many-output example
  with label c1 (0) or a one-output example of class c2 (1)", decided by the larger odds (a
  many-output module's largest over its steps). Baseline: the one-output architecture trained
  from scratch with two classes on under-sampled data.

Rows are written to ``<out>/results.json`` after each one and resume across runs. ``--smoke``
runs the intra pipeline on tiny synthetic models in seconds.
"""
from __future__ import annotations

import functools
import itertools
import time
from typing import List

from absl import app, flags, logging

from experiments import reuse_common as rc
from experiments import runner

FLAGS = flags.FLAGS
RESULTS_FORMAT = "modjax-table3-reuse"
KEY = ("part", "problem", "cell", "layers", "c1", "c2")
#: The baselines' down-sampling per I/O type: (factor, floor) of balanced_indices, or None.
BALANCE = {"one_to_one": None, "many_to_one": (1.0, 0), "one_to_many": (2.0, 20000),
           "many_to_many": (1.0, 10000)}


def define_flags():
    """This binary's flags (only when it runs as a program)."""
    rc.define_common_flags("runs/reuse")
    flags.DEFINE_integer("layers", 1, "Depth of the reused models (the paper: mostly 4).")
    flags.DEFINE_list("baselines", ["a", "b"], "a: the paper's (fine-tuned head for 1:1/M:1, "
                      "scratch for 1:N/M:N); b: scratch for every I/O type.")


def pair_split(data, c1: int, c2: int, split: str, balance: bool, seed: int):
    """``(idx, x, y)`` of the two-class problem on one split, the paper's way per I/O type:
    one-output: examples of ``c1``/``c2`` labelled 0/1; 1:N: examples with ``c1`` and/or ``c2``,
    target ``[c1, c2]``, ``[0, c1]`` or ``[0, c2]``; M:N: sentences with ``c1`` or ``c2``, other
    tags set to 0. ``balance`` down-samples groups per :data:`BALANCE`."""
    import numpy as np

    x, y = getattr(data, f"x_{split}"), np.asarray(getattr(data, f"y_{split}"))
    if y.ndim == 1:
        groups = [np.flatnonzero(y == c1), np.flatnonzero(y == c2)]
    else:
        h1, h2 = (y == c1).any(1), (y == c2).any(1)
        groups = [np.flatnonzero(h1 & h2), np.flatnonzero(h1 & ~h2), np.flatnonzero(h2 & ~h1)]
    rule = BALANCE[data.io] if balance else None
    idx = (rc.balanced_indices(groups, factor=rule[0], floor=rule[1], seed=seed) if rule
           else np.sort(np.concatenate(groups)))
    x, y = x[idx], y[idx]
    if y.ndim == 1:
        return idx, x, (y == c2).astype(np.int32)
    if data.io == "one_to_many":
        h1, h2 = (y == c1).any(1), (y == c2).any(1)
        t = np.zeros((len(y), 2), np.int32)
        t[:, 0] = np.where(h1 & h2, c1, 0)
        t[:, 1] = np.where(h2, c2, c1)
        return idx, x, t
    return idx, x, np.where((y == c1) | (y == c2), y, 0).astype(np.int32)


def pair_task(data, c1: int, c2: int, seed: int):
    """``(test_idx, task)``: the two-class TaskData the baselines train on (balanced train
    split, full test split) and its test examples' indices in ``data``'s test split."""
    _, xtr, ytr = pair_split(data, c1, c2, "train", True, seed)
    test_idx, xte, yte = pair_split(data, c1, c2, "test", False, seed)
    changes = {}
    if ytr.ndim == 1:
        changes["class_names"] = (data.class_names[c1], data.class_names[c2])
    elif data.io == "one_to_many":
        changes["out_len"] = 2
    return test_idx, rc.with_split(data, xtr, ytr, xte, yte, **changes)


def model_scores(decomp, params, x):
    """What the pair rules read, for every module on ``x``: raw head logits ``[C, N, C]``
    (one-output) or contrasts ``z_p - z_q`` ``[C, N, T]`` (many-output)."""
    import numpy as np

    from modjax.compose import module_scores

    kind = "logits" if decomp.config.io in ("one_to_one", "many_to_one") else "contrast"
    return np.asarray(module_scores(decomp, params, x, kind=kind))


def modular_predict(decomp, scores, c1: int, c2: int):
    """The modules' answer to the pair problem from :func:`model_scores` of its examples
    (:mod:`modjax.decision`)."""
    import numpy as np

    from modjax import decision
    from modjax.compose import vote

    i1, i2 = rc.module_index(decomp, c1), rc.module_index(decomp, c2)
    io = decomp.config.io
    if io in ("one_to_one", "many_to_one"):
        score = "softmax" if io == "one_to_one" else "pairwise"
        return np.asarray(decision.pair_decision(scores[i1], scores[i2], (c1, c2), score))
    pred = decision.restrict_votes(vote(scores, decomp.head_class), (c1, c2))
    if io == "one_to_many":
        pred = decision.collapse_pair(pred, scores[i1], scores[i2], c1, c2)
    return np.asarray(pred)


def intra(spec, run, cell, store, phases, command) -> None:
    """All pending pair rows of one dataset and cell."""
    which = run["baselines"]
    layers = run["layers"]
    with phases("load"):
        data = runner.load_data(spec, run["seed"], limit_train=run["limit_train"],
                                limit_test=run["limit_test"])
    with phases("train"):
        config, params, meta, mdir = rc.model_for(spec, data, cell, layers, run)
    settings = dict(baseline_epochs_batch=list(rc.BASELINE_TRAINING), units=run["units"],
                    limit_train=run["limit_train"], limit_test=run["limit_test"],
                    seed=run["seed"], smoke=run["epochs_override"] is not None,
                    options=rc.decompose_settings(config), baselines=which)
    pairs = list(itertools.combinations(rc.pair_classes(data), 2))
    todo = [p for p in pairs if store.fresh(("intra", spec.id, cell, layers) + p, settings) is None]
    todo = todo[: run["max_items"]] if run["max_items"] else todo
    logging.info("%s %s-%d: %d of %d pairs to compute", spec.id, cell, layers, len(todo),
                 len(pairs))
    if not todo:
        return
    with phases("decompose"):
        decomp, dec_s = rc.decompose_paper(config, params, data)
    with phases("modular"):
        t0 = time.perf_counter()
        scores = model_scores(decomp, params, data.x_test)  # once; each pair reads its rows
        score_s = (time.perf_counter() - t0) / max(1, len(data.x_test))
    for c1, c2 in todo:
        test_idx, task = pair_task(data, c1, c2, run["seed"])
        with phases("modular"):
            acc_m, rule_s = rc.timed_accuracy(
                lambda i: modular_predict(decomp, scores, c1, c2)[i], task.y_test, test_idx)
            mod_s = rule_s + score_s * len(test_idx)  # the rule runs on the whole test set
        with phases("baselines"):
            base = rc.baseline_rows(spec, data, task, config, params, run, which)
        row = dict(part="intra", problem=spec.id, io=spec.io, cell=cell, layers=layers, c1=c1,
                   c2=c2, model=runner.model_label(cell, layers), model_dir=mdir,
                   n_train=int(len(task.x_train)), n_test=int(len(task.x_test)),
                   acc_modular=acc_m, modular_s=mod_s, decompose_s=dec_s,
                   kept=rc.kept_fraction(decomp, [rc.module_index(decomp, c1),
                                                  rc.module_index(decomp, c2)]),
                   command=command, time=time.strftime("%Y-%m-%dT%H:%M:%S"), **base)
        for b in which:
            row[f"delta_{b}"] = 100.0 * (acc_m - row[f"acc_{b}"])
        store.put(row, settings)
        store.save()
        logging.info("%s %s (%d,%d): modular %.4f, %s", spec.id, row["model"], c1, c2, acc_m,
                     ", ".join(f"({b}) {row[f'acc_{b}']:.4f}" for b in which))


def inter(name, run, cell, store, phases, command, cache) -> None:
    """All pending rows of one inter-reuse problem (``mathqa+toxic`` or ``clinc+brown``)."""
    import numpy as np

    from modjax.reuse import ModuleRef, compose_modules

    layers = run["layers"]
    one, many, settings = rc.inter_setup(name, run, cell, layers, cache, phases)
    (o_spec, o_data, o_cfg, o_par, _), (_, m_data, _, m_par, _) = one, many
    combos = [(c1, c2) for c1 in rc.pair_classes(m_data) for c2 in range(o_data.num_classes)]
    todo = rc.pending(store, ("inter", name, cell, layers), combos, settings, run["max_items"],
                      "problems")
    if not todo:
        return
    d_o, d_m, dec_s = rc.decompose_pair(one, many, phases)
    for c1, c2 in todo:
        split = {}
        for s in ("train", "test"):
            xm = getattr(m_data, f"x_{s}")[(np.asarray(getattr(m_data, f"y_{s}")) == c1).any(1)]
            xo = getattr(o_data, f"x_{s}")[np.asarray(getattr(o_data, f"y_{s}")) == c2]
            if s == "train":
                idx = rc.balanced_indices([np.arange(len(xm)), len(xm) + np.arange(len(xo))],
                                          seed=run["seed"])
            else:
                idx = np.arange(len(xm) + len(xo))
            x = np.concatenate([xm, xo])[idx]
            y = np.concatenate([np.zeros(len(xm), np.int32), np.ones(len(xo), np.int32)])[idx]
            split[s] = (x, y)
        task = rc.with_split(o_data, *split["train"], *split["test"],
                             class_names=(m_data.class_names[c1], o_data.class_names[c2]))
        refs = [ModuleRef(d_m, m_par, rc.module_index(d_m, c1), label=0),
                ModuleRef(d_o, o_par, rc.module_index(d_o, c2), label=1)]
        predict_m = compose_modules(refs, reduce_steps="max")
        with phases("modular"):
            acc_m, mod_s = rc.timed_accuracy(lambda x: predict_m(x)[0], task.y_test, task.x_test)
        with phases("baselines"):
            base = rc.baseline_rows(o_spec, o_data, task, o_cfg, o_par, run, ["b"])
        row = dict(part="inter", problem=name, io=name, cell=cell, layers=layers, c1=c1, c2=c2,
                   model=runner.model_label(cell, layers), n_train=int(len(task.x_train)),
                   n_test=int(len(task.x_test)), acc_modular=acc_m, modular_s=mod_s,
                   decompose_s=dec_s,
                   kept=0.5 * (rc.kept_fraction(d_m, [refs[0].module])
                               + rc.kept_fraction(d_o, [refs[1].module])),
                   command=command, time=time.strftime("%Y-%m-%dT%H:%M:%S"),
                   acc_a=base["acc_b"], train_s_a=base["train_s_b"],
                   delta_a=100.0 * (acc_m - base["acc_b"]))
        rc.save_row(store, row, settings, "%s %s (%d,%d): modular %.4f, scratch %.4f", name,
                    row["model"], c1, c2, acc_m, base["acc_b"])


def check_flags() -> dict:
    run = rc.common_run(FLAGS)
    which = [b.strip().lower() for b in FLAGS.baselines]
    if not which or any(b not in ("a", "b") for b in which):
        raise ValueError(f"--baselines entries must be a or b, got {FLAGS.baselines}")
    if FLAGS.layers < 1:
        raise ValueError(f"--layers must be >= 1, got {FLAGS.layers}")
    return dict(run, layers=FLAGS.layers, baselines=which)


def expected_rows(part: str, io_or_problem: str) -> int:
    """How many rows a complete (part, I/O type or problem, cell) group has."""
    return {"one_to_one": 15, "many_to_one": 45, "one_to_many": 21, "many_to_many": 66,
            "mathqa+toxic": 42, "clinc+brown": 120}.get(io_or_problem, 0)


def render(rows: List[dict], path: str, command: str) -> None:
    """The Table III report: means and medians beside the paper's, coverage, costs."""
    paper = rc.paper_cells("3")
    group = ("part", "io", "cell", "layers")
    extra = (("kept", "kept"), ("modular s", "modular_s"), ("decompose s", "decompose_s"),
             ("retrain s (a)", "train_s_a"))
    h_a, t_a, j_a = rc.summary_table(rows, "delta_a", paper, group, extra)
    h_b, t_b, j_b = rc.summary_table([r for r in rows if "delta_b" in r], "delta_b", paper,
                                     group, (("retrain s (b)", "train_s_b"),))
    for j in j_a:
        j["expected"] = expected_rows(j["part"], j["io"])
    cov = "; ".join(f"{j['part']} {runner.IO_LABELS.get(j['io'], j['io'])} "
                    f"{runner.model_label(j['cell'], j['layers'])}: {j['n']}/{j['expected']}"
                    for j in j_a)
    intra_a = [r["delta_a"] for r in rows if r["part"] == "intra"]
    m, med, n = runner.mean_median(intra_a)
    wall = sum(r.get("modular_s", 0) + r.get("train_s_a", 0) + r.get("train_s_b", 0)
               for r in rows)
    lead = ("Modules reused for two-class problems, minus a retrained model, in percentage points "
        "(docs/method.md#reuse). Generated by `experiments/reuse.py`; the paper's numbers are "
        "its Table III (`experiments/paper_reuse_replace.csv`).")
    bullets = [
        f"Rows: {len(rows)}; summed modular + baseline time {wall:.0f} s.",
        f"Coverage (rows / complete): {cov or 'none'}.",
        f"Headline: mean intra reuse vs baseline (a) {runner.fmt(m, signed=True)} pp, median "
        f"{runner.fmt(med, signed=True)} over {n} pairs (paper: intra mean −0.58, overall "
        "accuracy −2.38; target ≥ −1).",
        "Baseline (a) is the paper's: the original model fine-tuned with a new two-class head "
        "for 1:1 and M:1, a model trained from scratch for 1:N and M:N (balanced training "
        "data, 5 epochs, batch 32); (b) trains from scratch for every I/O type. Inter rows "
        "compare with a one-output model trained from scratch on the shared vocabulary.",
        "Many-output accuracy counts every position, padding included, as the paper does.",
        "`kept`: mean fraction of recurrent units the modules keep; `modular s`: inference "
        "of the modules on the pair's test set (decomposition once per model: `decompose s`); "
        "`retrain s`: training the baseline.",
    ]
    sections = [("Modular − baseline (a), beside the paper", runner.markdown_table(h_a, t_a)),
                ("Modular − baseline (b) (scratch for every I/O type)",
                 runner.markdown_table(h_b, t_b))]
    headline = {"intra_mean_a": m, "intra_median_a": med, "n": n}
    rc.render_report(path, "Table III: reuse (RQ2)", lead, bullets, sections,
                     dict(summary_a=j_a, summary_b=j_b, headline=headline, rows=rows), command)


if __name__ == "__main__":
    define_flags()
    app.run(functools.partial(rc.main, FLAGS=FLAGS, binary="experiments.reuse",
                              results_format=RESULTS_FORMAT, key=KEY, check_flags=check_flags,
                              intra_fn=intra, inter_fn=inter, render=render))
