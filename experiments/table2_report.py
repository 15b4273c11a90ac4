"""Render the Table II rows of :mod:`experiments.reproduce` as markdown, JSON and a PNG figure.

Every number in the report is computed from the stored rows (ours) or from the paper's
published table (theirs, through :mod:`experiments.paper_results`); nothing is written by hand.
The paper's statistics are taken over the same models as ours, so the two columns compare like
with like while the run is incomplete.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional, Sequence

from experiments import runner

ONE_OUTPUT = ("one_to_one", "many_to_one")
#: Targets on the ``artifact`` configuration: (label, group, statistic, bound).
TARGETS = (
    ("mean δ, one-output rolled", ("rolled", "one"), "mean", -0.3),
    ("mean δ, many-output unrolled", ("unrolled", "many"), "mean", -0.5),
    ("worst δ, one-output rolled", ("rolled", "one"), "min", -1.5),
    ("worst δ, many-output unrolled", ("unrolled", "many"), "min", -1.5),
    ("mean δ without padding, many-output unrolled", ("unrolled", "many"), "mean_nopad", -1.5),
)
#: A model whose δ differs from the paper's by more than this (points) is marked.
DIFF_MARK = 1.0
DATASET_ORDER = {"mathqa": 0, "clinc": 1, "toxic": 2, "brown": 3}
CELL_ORDER = {"lstm": 0, "gru": 1, "simple": 2}


def _order(r: dict):
    return (r["config"], DATASET_ORDER.get(r["dataset"], 9), r["dataset"], r["mode"],
            CELL_ORDER.get(r["cell"], 9), r["layers"])


def _group(r: dict) -> tuple:
    return (r["mode"], "one" if r["io"] in ONE_OUTPUT else "many")


def group_stats(rows: Sequence[dict]) -> Dict[str, Optional[float]]:
    """Ours and the paper's statistics over ``rows`` (one configuration, one group).

    Returns a dict with ``n``; ``mean``/``median``/``min`` of our δ; ``mean_nopad`` (our δ on
    non-padding positions, many-output only); ``same_or_better`` (share of δ >= 0); ``ji``;
    and ``paper_*`` counterparts over the same models (where the paper has a number).
    """
    d = [r["delta"] for r in rows]
    mean, median, n = runner.mean_median(d)
    nopad, _, _ = runner.mean_median(r.get("delta_nopad") for r in rows)
    pd = [r.get("paper_delta") for r in rows if r.get("paper_delta") is not None]
    pmean, pmedian, pn = runner.mean_median(pd)
    ji, _, _ = runner.mean_median(r.get("ji") for r in rows)
    pji, _, _ = runner.mean_median(r.get("paper_avg_ji") for r in rows)
    return {"n": n, "mean": mean, "median": median, "min": min(d) if d else None,
            "mean_nopad": nopad,
            "same_or_better": (sum(x >= -1e-9 for x in d) / n) if n else None,
            "ji": ji, "paper_n": pn, "paper_mean": pmean, "paper_median": pmedian,
            "paper_min": min(pd) if pd else None,
            "paper_same_or_better": (sum(x >= 0 for x in pd) / pn) if pn else None,
            "paper_ji": pji}


def headline(rows: Sequence[dict]) -> Dict[str, Dict[str, dict]]:
    """Statistics per configuration and group: ``{config: {group_name: stats}}`` with groups
    ``rolled``, ``rolled one-output`` ... and ``headline`` (rolled for 1:1, unrolled elsewhere,
    the paper's abstract's choice)."""
    out: Dict[str, Dict[str, dict]] = {}
    for cfg in sorted({r["config"] for r in rows}):
        rs = [r for r in rows if r["config"] == cfg]
        groups = {}
        for mode in ("rolled", "unrolled"):
            groups[mode] = [r for r in rs if r["mode"] == mode]
            for kind, name in (("one", "one-output"), ("many", "many-output")):
                groups[f"{mode} {name}"] = [r for r in rs if _group(r) == (mode, kind)]
        groups["headline"] = [r for r in rs if (r["io"] == "one_to_one") == (r["mode"] == "rolled")]
        out[cfg] = {k: group_stats(v) for k, v in groups.items() if v}
    return out


def targets(rows: Sequence[dict]) -> List[dict]:
    """The issue's targets on the ``artifact`` rows: label, bound, value, met."""
    res = []
    art = [r for r in rows if r["config"] == "artifact"]
    for label, grp, stat, bound in TARGETS:
        rs = [r for r in art if _group(r) == grp]
        v = group_stats(rs)[stat] if rs else None
        res.append({"target": label, "bound": bound, "value": v, "n": len(rs),
                    "met": None if v is None else v >= bound})
    return res


def _marks(r: dict) -> str:
    m = ""
    if r.get("paper_delta") is not None and abs(r["delta"] - r["paper_delta"]) > DIFF_MARK:
        m += "‡"
    if r["config"] == "artifact" and _group(r) in (("rolled", "one"), ("unrolled", "many")) \
            and r["delta"] < -1.5:
        m += "✗"
    return m


MODEL_HEADERS = ("Dataset", "I/O", "Model", "Mode", "Mono %", "Comp %", "δ", "δ paper", "mark",
                 "Mono no-pad %", "δ no pad", "JI", "JI paper (row avg)", "Retention",
                 "Units kept / layer", "Decompose s (compile)", "Compose s", "Train s")


def model_rows(rows: Sequence[dict]) -> List[List[str]]:
    """One table line per row (already filtered to one configuration)."""
    f = runner.fmt
    out = []
    for r in sorted(rows, key=_order):
        out.append([r["dataset"], runner.IO_LABELS.get(r["io"], r["io"]), r["model"], r["mode"],
                    f(100 * r["mono_acc"]), f(100 * r["comp_acc"]), f(r["delta"], signed=True),
                    f(r.get("paper_delta"), signed=True), _marks(r),
                    f(None if r.get("mono_acc_nopad") is None else 100 * r["mono_acc_nopad"]),
                    f(r.get("delta_nopad"), signed=True), f(r["ji"], ".3f"),
                    f(r.get("paper_avg_ji")), f(r["retention"], ".3f"),
                    "/".join(f"{u:.1f}" for u in r["units_kept_per_layer"]),
                    f"{r['decompose_s']:.2f} ({r['decompose_compile_s']:.2f})",
                    f(r["compose_s"]), f(r.get("train_s"), ".0f")])
    return out


def coverage(rows: Sequence[dict]) -> List[List[str]]:
    """Rows present against the full grid, per real dataset and configuration: 12 models
    (3 cells x 4 depths) x modes (1:1 rolled only), per-gate rows for LSTM and GRU on CLINC
    and Brown, ``artifact_paper_mask`` rows on toxic and Brown."""
    out = []
    for ds in ("mathqa", "clinc", "toxic", "brown"):
        modes = 1 if runner.IO_OF[ds] == "one_to_one" else 2
        for cfg in ("artifact", "paper", "per_gate", "artifact_paper_mask"):
            if cfg == "per_gate" and ds not in ("clinc", "brown"):
                continue
            if cfg == "artifact_paper_mask" and ds not in ("toxic", "brown"):
                continue
            want = (8 if cfg == "per_gate" else 12) * modes
            have = sum(r["dataset"] == ds and r["config"] == cfg for r in rows)
            out.append([ds, cfg, f"{have} / {want}", "complete" if have >= want else
                        "**incomplete**"])
    return out


ABLATION_HEADERS = ("Dataset", "Model", "Mode", "δ code mask", "δ paper mask", "Δ",
                    "δ no pad, code mask", "δ no pad, paper mask", "δ paper's Table II")


def mask_ablation(rows: Sequence[dict]) -> List[List[str]]:
    """``artifact`` against ``artifact_paper_mask`` for every model that has both rows."""
    f = runner.fmt
    by = {(r["dataset"], r["cell"], r["layers"], r["mode"], r["config"]): r for r in rows}
    out = []
    for r in sorted(rows, key=_order):
        if r["config"] != "artifact":
            continue
        q = by.get((r["dataset"], r["cell"], r["layers"], r["mode"], "artifact_paper_mask"))
        if q is None:
            continue
        out.append([r["dataset"], r["model"], r["mode"], f(r["delta"], signed=True),
                    f(q["delta"], signed=True), f(q["delta"] - r["delta"], signed=True),
                    f(r.get("delta_nopad"), signed=True), f(q.get("delta_nopad"), signed=True),
                    f(r.get("paper_delta"), signed=True)])
    return out


def phase_totals(rows: Sequence[dict]) -> Dict[str, float]:
    """Seconds per phase over every stored row (training counted once per model): wall time,
    and the training's CPU time (all cores), whose label says how many models recorded it
    when some did not."""
    train = {r["model_dir"]: r.get("train_s") or 0.0 for r in rows}
    cpu = {r["model_dir"]: r.get("train_cpu_s") for r in rows}
    known = [v for v in cpu.values() if v is not None]
    cpu_label = "training CPU time" + ("" if len(known) == len(cpu) else
                                       f" ({len(known)} of {len(cpu)} models recorded it)")
    mono = {r["model_dir"]: r.get("mono_eval_s") or 0.0 for r in rows}
    return {"train": sum(train.values()), cpu_label: sum(known),
            "monolithic evaluation": sum(mono.values()),
            "decompose": sum(r["decompose_s"] for r in rows),
            "of which XLA compile": sum(r["decompose_compile_s"] for r in rows),
            "compose": sum(r["compose_s"] for r in rows),
            "metrics (JI, retention)": sum(r.get("metrics_s", 0.0) for r in rows)}


HEAD_HEADERS = ("Config", "Group", "n", "mean δ", "mean δ paper", "median δ", "median δ paper",
                "same or better", "same or better paper", "mean δ no pad", "mean JI",
                "mean JI paper")


def headline_rows(stats: Dict[str, Dict[str, dict]]) -> List[List[str]]:
    f = runner.fmt
    pct = lambda v: f(None if v is None else 100 * v, ".0f") + ("%" if v is not None else "")
    out = []
    for cfg, groups in stats.items():
        for g, s in groups.items():
            out.append([cfg, g, str(s["n"]), f(s["mean"], signed=True),
                        f(s["paper_mean"], signed=True), f(s["median"], signed=True),
                        f(s["paper_median"], signed=True), pct(s["same_or_better"]),
                        pct(s["paper_same_or_better"]), f(s["mean_nopad"], signed=True),
                        f(s["ji"], ".3f"), f(s["paper_ji"], ".3f")])
    return out


def text_summary(rows: Sequence[dict]) -> str:
    """The rows of this run as a console table."""
    heads = ("Config",) + MODEL_HEADERS[:11]
    lines = [[r["config"]] + m[:11] for r, m in zip(sorted(rows, key=_order),
                                                  model_rows(rows))]
    return runner.text_table(heads, lines, left=5)


def figure(rows: Sequence[dict], path: str) -> None:
    """PNG: per (dataset, mode) panel, our δ per model (one bar per configuration) beside the
    paper's; symmetric-log scale so the rolled collapses and sub-point deltas both show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = sorted({(r["dataset"], r["mode"]) for r in rows},
                    key=lambda p: (DATASET_ORDER.get(p[0], 9), p[0], p[1]))
    cfgs = sorted({r["config"] for r in rows})
    ncol = 2
    nrow = max(1, (len(panels) + ncol - 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(13, 3.1 * nrow), squeeze=False)
    for ax, (ds, mode) in zip(axes.flat, panels):
        rs = [r for r in rows if r["dataset"] == ds and r["mode"] == mode]
        models = sorted({(r["cell"], r["layers"]) for r in rs},
                        key=lambda m: (CELL_ORDER.get(m[0], 9), m[1]))
        x = np.arange(len(models))
        width = 0.8 / (len(cfgs) + 1)
        for i, cfg in enumerate(cfgs):
            by = {(r["cell"], r["layers"]): r["delta"] for r in rs if r["config"] == cfg}
            ax.bar(x + i * width, [by.get(m, np.nan) for m in models], width, label=f"ours ({cfg})")
        by_p = {(r["cell"], r["layers"]): r.get("paper_delta") for r in rs}
        ax.bar(x + len(cfgs) * width, [np.nan if by_p.get(m) is None else by_p[m] for m in models],
               width, label="paper", color="0.35")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x + width * len(cfgs) / 2)
        ax.set_xticklabels([runner.model_label(c, k) for c, k in models], fontsize=7,
                           rotation=45)
        ax.set_title(f"{ds} ({runner.IO_LABELS.get(rs[0]['io'], '')}) {mode}", fontsize=9)
        ax.set_ylabel("δ (points)", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    runner.save_figure(fig, path)
    plt.close(fig)


def render(rows: Sequence[dict], path: str, *, command: str) -> None:
    """Write ``path`` (markdown), and the JSON and PNG beside it (same stem)."""
    rows = sorted(rows, key=_order)
    stem = os.path.splitext(path)[0]
    stats = headline(rows)
    tg = targets(rows)
    phases = phase_totals(rows)
    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: (DATASET_ORDER.get(d, 9), d))
    cfgs = sorted({r["config"] for r in rows})
    runner.write_atomic(stem + ".json", json.dumps(
        {"format": "modjax-table2-report", "command": command, "hardware": runner.hardware(),
         "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "phases_s": phases,
         "headline": stats, "targets": tg, "rows": rows}, indent=1, sort_keys=True))
    if rows:
        figure(rows, stem + ".png")
    f = runner.fmt
    # bidirectional models (bilstm ...) are not in the paper's grid: the report sets them beside
    # the unidirectional ones, without the grid's coverage
    bi = any(runner.split_cell(r["cell"])[1] for r in rows)
    title = ("Bidirectional models beside unidirectional ones" if bi
             else "Table II reproduction: classification and tagging")
    md = [f"# {title}", "",
          f"Generated by `{command}` on {time.strftime('%Y-%m-%d')} "
          f"({runner.hardware()}). Every number below comes from `{os.path.basename(stem)}.json` "
          "(ours) or the paper's published Table II; nothing is edited by hand.", "",
          "Rows computed by: " + "; ".join(f"`{c}`" for c in sorted({r.get("command", "?")
                                                                      for r in rows})) + ".", "",
          "Wall time of the stored rows, per phase (training counted once per model; rows "
          "computed in earlier runs keep the times they took then): "
          + "; ".join(f"{k} {v / 60:.1f} min" for k, v in phases.items()) + ".", "",
          f"Rows: {len(rows)} over datasets {', '.join(datasets)} and configurations "
          f"{', '.join(cfgs)}. Configurations are described in "
          "[`docs/method.md#artifact`](../method.md#artifact): `artifact` = the authors' "
          "scripts (`preset=\"artifact\"`), `paper` = the paper's text (20% cap, "
          "`u_mask=\"paper\"`, all steps observed), `per_gate` = `artifact` with gates scored "
          "one by one, `artifact_paper_mask` = `artifact` with the paper's recurrent mask "
          "semantics (`u_mask=\"paper\"`) on the many-output models, where the scripts use "
          "`\"code\"`.", "",
          "δ = composed − monolithic test accuracy in points. Many-output accuracies count every "
          "position, padding included, as the paper does; *no pad* columns count only positions "
          "whose label is not the padding class. The paper's statistics are computed over the "
          "same models as ours. ‡ marks a model whose δ is more than 1 point from the paper's; "
          "✗ a model below −1.5 in a targeted group.", ""]
    if bi:
        md += ["`Bi*` models run every recurrent layer in both directions, merged by "
               "concatenation; their modules keep units per direction "
               "([`docs/method.md#bidirectional`](../method.md#bidirectional)). The paper has no "
               "such models (no δ paper); the statistics below pool both kinds: compare the "
               "per-model rows.", ""]
    caveats = [f"- **{d}**: {runner.DATA_CAVEATS[d]}" for d in datasets if d in runner.DATA_CAVEATS]
    if caveats:
        md += ["## Data caveats", ""] + caveats + [""]
    cov = coverage(rows)
    if any(r[3] != "complete" for r in cov) and any(d in runner.IO_OF for d in datasets) \
            and not bi:
        md += ["## Coverage", "", "The run resumes across sessions; statistics below cover the "
               "rows present only.", "",
               runner.markdown_table(("Dataset", "Config", "rows", "status"), cov, left=2), ""]
    md += ["## Headline statistics", "", runner.markdown_table(HEAD_HEADERS,
                                                               headline_rows(stats), left=2), ""]
    md += ["## Targets (artifact configuration)", "",
           runner.markdown_table(("Target", "bound", "ours", "models", "met"),
                                 [[t["target"], f(t["bound"], signed=True),
                                   f(t["value"], signed=True), str(t["n"]),
                                   {None: "–", True: "yes", False: "**no**"}[t["met"]]]
                                  for t in tg], left=1), ""]
    if rows:
        md += [f"![δ per model, ours beside the paper's]({os.path.basename(stem)}.png)", ""]
    ablation = mask_ablation(rows)
    if ablation:
        md += ["## Mask semantics on the many-output models", "",
               "The same models and caps as `artifact`; only the recurrent mask semantics "
               "differ: the scripts' `u_mask=\"code\"` (a removed unit keeps its recurrent "
               "input from kept units, so it keeps a state and feeds the next layer) against "
               "the paper's `\"paper\"` (its recurrent row and column both go). Δ = δ(paper "
               "mask) − δ(code mask).", "",
               runner.markdown_table(ABLATION_HEADERS, ablation, left=3), ""]
    for cfg in cfgs:
        md += [f"## Per model: `{cfg}`", "",
               runner.markdown_table(MODEL_HEADERS, model_rows([r for r in rows
                                                                if r["config"] == cfg])), ""]
    runner.write_atomic(path, "\n".join(md))
