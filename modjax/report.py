"""Text and markdown tables, and PNG figures, for a decomposition report (``python -m modjax``).

Everything here is presentation: the numbers come from :mod:`modjax.metrics`. Files are written
atomically (a temporary sibling, then ``os.replace``), so a reader never sees half a file.

* :class:`Summary` — what a report shows: per-class rows and summary metrics.
* :func:`render_text` / :func:`render_markdown` — the same tables for a terminal and for
  ``report.md``.
* :func:`keep_heatmap` — kept units per class and layer (rolled: kept/removed per unit;
  unrolled: the fraction of steps each unit is kept, plus units kept per class and step).
* :func:`overlap_plot` — the pairwise module overlap matrix.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np


# -- atomic writes (modjax.atomic) -----------------------------------------------------------
from modjax.atomic import write_bytes as write_bytes_atomic  # noqa: E402,F401 (re-export)
from modjax.atomic import write_file as _write_file  # noqa: E402
from modjax.atomic import write_text as write_text_atomic  # noqa: E402,F401 (re-export)


def save_figure_atomic(fig, path: str, dpi: int = 110) -> None:
    """``fig.savefig`` as PNG to ``path`` via a temporary file and ``os.replace``."""
    _write_file(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))


# -- tables ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Summary:
    """What the summary table shows.

    Attributes:
      class_names: the modules' class names ``[C]``.
      units: ``H`` of every decomposed layer.
      units_kept: ``[C, L]`` kept units per class and layer (mean over steps when unrolled).
      retention: ``[C]`` fraction of the decomposed layers' weights each module keeps.
      jaccard: ``[C]`` the paper's Jaccard index per module.
      steps_with_examples: ``[C]`` steps with positive examples (unrolled), else ``None``.
      num_steps: steps per module (unrolled), else ``None``.
      rows: ``(label, value)`` summary lines (accuracies, timings, ...), already formatted.
      notes: free-text remarks (skipped metrics, warnings).
    """

    class_names: Sequence[str]
    units: int
    units_kept: np.ndarray
    retention: np.ndarray
    jaccard: np.ndarray
    steps_with_examples: Optional[np.ndarray] = None
    num_steps: Optional[int] = None
    rows: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)

    def class_table(self) -> Tuple[List[str], List[List[str]], List[str]]:
        """``(headers, rows, alignments)`` of the per-class table (the last row is the mean)."""
        unrolled = self.steps_with_examples is not None
        fmt = "{:.1f}" if unrolled else "{:.0f}"
        headers = ["class", f"units kept / layer (of {self.units})", "retention",
                   "Jaccard (paper)"]
        align = ["<", ">", ">", ">"]
        if unrolled:
            headers.append("steps with examples")
            align.append(">")
        rows = []
        for c, name in enumerate(self.class_names):
            r = [str(name), " / ".join(fmt.format(k) for k in self.units_kept[c]),
                 f"{self.retention[c]:.3f}", f"{self.jaccard[c]:.3f}"]
            if unrolled:
                r.append(f"{int(self.steps_with_examples[c])} of {self.num_steps}")
            rows.append(r)
        mean_kept = np.asarray(self.units_kept, float).mean(0)
        r = ["mean", " / ".join(f"{k:.1f}" for k in mean_kept),
             f"{np.mean(self.retention):.3f}", f"{np.mean(self.jaccard):.3f}"]
        if unrolled:
            r.append("")
        rows.append(r)
        return headers, rows, align


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
               align: Optional[Sequence[str]] = None, indent: str = "  ") -> str:
    """A plain, space-aligned table."""
    align = align or ["<"] * len(headers)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: indent + "  ".join(f"{str(c):{a}{w}}" for c, a, w in
                                            zip(cells, align, widths)).rstrip()
    out = [line(headers), indent + "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _md_cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                   align: Optional[Sequence[str]] = None) -> str:
    """A GitHub-flavoured markdown table."""
    align = align or ["<"] * len(headers)
    sep = [":---" if a == "<" else "---:" for a in align]
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
           "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def md_code(s) -> str:
    """``s`` as inline code (class names such as ``<pad>`` would otherwise vanish as HTML)."""
    s = str(s)
    tick = "``" if "`" in s else "`"
    return f"{tick}{s}{tick}"


def render_text(summary: Summary) -> str:
    """The summary for a terminal: the per-class table, then the summary lines."""
    headers, rows, align = summary.class_table()
    out = [text_table(headers, rows, align), ""]
    if summary.rows:
        w = max(len(k) for k, _ in summary.rows)
        out += [f"  {k:<{w}}  {v}" for k, v in summary.rows]
    for n in summary.notes:
        out.append(f"  note: {n}")
    return "\n".join(out)


def render_markdown(summary: Summary, *, title: str, command: str,
                    sections: Sequence[Tuple[str, str]] = (),
                    images: Sequence[Tuple[str, str]] = ()) -> str:
    """``report.md``: the command, the summary and per-class tables, extra sections, images.

    Args:
      sections: ``(heading, markdown body)`` pairs appended after the results (options, model
        config, data).
      images: ``(caption, relative path)`` pairs.
    """
    headers, rows, align = summary.class_table()
    rows = [[md_code(r[0]) if i < len(rows) - 1 else f"**{r[0]}**"] + r[1:]
            for i, r in enumerate(rows)]
    out = [f"# {title}", "", "```", command, "```", "", "## Summary", ""]
    out.append(markdown_table(["", "value"], [[k, v] for k, v in summary.rows], ["<", ">"]))
    out.append("")
    for n in summary.notes:
        out.append("* " + str(n).replace("<", "&lt;").replace(">", "&gt;"))
    if summary.notes:
        out.append("")
    out += ["## Modules", "", markdown_table(headers, rows, align), ""]
    for cap, path in images:
        out += [f"### {cap}", "", f"![{cap}]({path})", ""]
    for heading, body in sections:
        out += [f"## {heading}", "", body.rstrip(), ""]
    return "\n".join(out)


# -- figures ---------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _layer_axis(ax, L: int, H: int) -> None:
    """x ticks at every layer's units, vertical lines between layers."""
    step = max(1, int(round(H / 5 / 5.0)) * 5) if H >= 10 else 1
    ticks, labels = [], []
    for l in range(L):
        for u in range(0, H, step):
            ticks.append(l * H + u)
            labels.append(str(u))
        if l:
            ax.axvline(l * H - 0.5, color="white", lw=2.5)
            ax.axvline(l * H - 0.5, color="black", lw=0.8)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7)
    if L > 1:
        sec = ax.secondary_xaxis("top")
        sec.set_xticks([l * H + (H - 1) / 2 for l in range(L)])
        sec.set_xticklabels([f"layer {l + 1}" for l in range(L)])
        sec.tick_params(length=0)
        ax.set_xlabel("unit (per layer)")
    else:
        ax.set_xlabel("unit")


def keep_heatmap(keep: np.ndarray, class_names: Sequence[str], path: str, *,
                 has_positives: Optional[np.ndarray] = None, title: str = "") -> None:
    """Write a heatmap of kept units to ``path`` (PNG).

    Args:
      keep: bool unit keep ``[C, L, H]`` (rolled) or ``[C, L, T, H]`` (unrolled).
      has_positives: ``[C, T]`` (unrolled): steps where the class had examples. The top panel
        shows the fraction of those steps at which each unit is kept; one panel per layer below
        shows the units kept per class and step (steps without examples, which keep every
        unit, are hatched).
    """
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    keep = np.asarray(keep, bool)
    C, L = keep.shape[:2]
    H = keep.shape[-1]
    unrolled = keep.ndim == 4
    names = [str(n) for n in class_names]
    width = float(np.clip(4 + L * H * 0.09, 8, 16))
    row_h = 0.32
    if not unrolled:
        fig, ax = plt.subplots(figsize=(width, 1.6 + row_h * C))
        grid = keep.reshape(C, L * H).astype(float)
        cmap = ListedColormap(["#b2182b", "#e8edf3"])
        im = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, ticks=[0.25, 0.75], fraction=0.03, pad=0.01)
        cb.ax.set_yticklabels(["removed", "kept"])
        removed = (~keep).reshape(C, -1).sum(1)
        ax.set_yticks(range(C))
        ax.set_yticklabels([f"{n}  (−{r})" for n, r in zip(names, removed)])
        ax.set_ylabel("module (class), units removed")
        _layer_axis(ax, L, H)
        ax.set_title(title or "Units kept by each module (red: removed)", fontsize=11,
                     pad=16 if L > 1 else 6)
        save_figure_atomic(fig, path)
        plt.close(fig)
        return

    T = keep.shape[2]
    has = (np.ones((C, T), bool) if has_positives is None
           else np.asarray(has_positives, bool).reshape(C, T))
    w = has.astype(float)
    w = np.where(w.sum(1, keepdims=True) > 0, w, 1.0)  # no examples anywhere: all steps
    frac = np.einsum("clth,ct->clh", keep.astype(float), w) / w.sum(1)[:, None, None]
    kept_steps = keep.sum(-1)  # [C, L, T]
    panel_h = 1.2 + row_h * C
    fig = plt.figure(figsize=(width, 2 * panel_h + 0.6))
    gs = fig.add_gridspec(2, L, height_ratios=[1, 1], hspace=0.45, wspace=0.25)
    ax = fig.add_subplot(gs[0, :])
    im = ax.imshow(frac.reshape(C, L * H), aspect="auto", cmap="magma", vmin=0, vmax=1,
                   interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    cb.set_label("fraction of steps kept", fontsize=8)
    ax.set_yticks(range(C))
    ax.set_yticklabels(names)
    ax.set_ylabel("module (class)")
    _layer_axis(ax, L, H)
    ax.set_title(title or "Units kept by each module: fraction of steps (with examples) at "
                 "which each unit is kept", fontsize=11, pad=16 if L > 1 else 6)
    lo = kept_scale_floor(kept_steps, H)
    for l in range(L):
        a = fig.add_subplot(gs[1, l])
        data = np.ma.masked_array(kept_steps[:, l].astype(float), mask=~has)
        im2 = a.imshow(data, aspect="auto", cmap="viridis", vmin=lo, vmax=H,
                       interpolation="nearest")
        a.set_facecolor("#dddddd")
        for c, t in zip(*np.nonzero(~has)):
            a.add_patch(_hatch(t, c))
        a.set_xlabel("step")
        a.set_xticks(range(0, T, max(1, T // 10)))
        a.set_yticks(range(C))
        a.set_yticklabels(names if l == 0 else [""] * C)
        a.set_title(f"layer {l + 1}: units kept at each step", fontsize=9)
        if C * T <= 300:
            for c in range(C):
                for t in range(T):
                    if has[c, t]:
                        v = int(kept_steps[c, l, t])
                        a.text(t, c, str(H - v) if v < H else "", ha="center", va="center",
                               fontsize=6, color="white")
    from matplotlib.ticker import MaxNLocator

    cb2 = fig.colorbar(im2, ax=fig.axes[-L:], fraction=0.03, pad=0.01)
    cb2.locator = MaxNLocator(integer=True)
    cb2.update_ticks()
    cb2.set_label(f"units kept (of {H}); numbers: removed", fontsize=8)
    if not has.all():
        fig.text(0.01, 0.005, "hatched: no examples of the class at that step (the module keeps "
                 "every unit there)", fontsize=7)
    save_figure_atomic(fig, path)
    plt.close(fig)


def kept_scale_floor(kept_steps: np.ndarray, H: int) -> int:
    """Lower end of the per-step "units kept" colour scale (the top is ``H``).

    The scale spans at least the top quarter of the units, so a uniform result (every step
    removing the same few units) reads as the small change it is, not as a full-range contrast.
    ``kept_steps``: ``[C, L, T]`` units kept per class, layer and step.
    """
    return int(min(np.min(kept_steps), np.floor(0.75 * H)))


def _hatch(t, c):
    from matplotlib.patches import Rectangle

    return Rectangle((t - 0.5, c - 0.5), 1, 1, fill=False, hatch="///", lw=0,
                     edgecolor="#888888")


def overlap_plot(overlap: np.ndarray, class_names: Sequence[str], path: str, *,
                 title: str = "") -> None:
    """Write the pairwise module overlap matrix ``[C, C]`` (values in [0, 1]) to ``path``."""
    plt = _pyplot()
    ov = np.asarray(overlap, float)
    C = ov.shape[0]
    names = [str(n) for n in class_names]
    side = float(np.clip(2.5 + 0.55 * C, 4.5, 14))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    off = ov[~np.eye(C, dtype=bool)]
    lo = float(off.min()) if off.size else 0.0
    vmin = max(0.0, np.floor(lo * 20) / 20 - 0.05) if lo > 0.5 else 0.0
    im = ax.imshow(ov, cmap="viridis", vmin=vmin, vmax=1, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label("overlap (Jaccard of kept units)", fontsize=8)
    ax.set_xticks(range(C))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticks(range(C))
    ax.set_yticklabels(names)
    ax.set_xlabel("module (class)")
    ax.set_ylabel("module (class)")
    if C <= 20:
        mid = (vmin + 1) / 2
        for i in range(C):
            for j in range(C):
                ax.text(j, i, f"{ov[i, j]:.2f}", ha="center", va="center",
                        fontsize=7 if C > 10 else 8,
                        color="black" if ov[i, j] > mid else "white")
    ax.set_title(title or "Pairwise module overlap", fontsize=11)
    save_figure_atomic(fig, path)
    plt.close(fig)
