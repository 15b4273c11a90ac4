"""Which layer's masks cost a composed model its accuracy: one model, its modules with the masks
of one layer at a time.

Decomposes one trained model with the artifact preset (``preset="artifact"``) under each recurrent
mask semantics asked for (``u_mask="code"``, the authors' scripts, and ``"paper"``), then composes
the modules with

* every layer's masks (the decomposition as it is);
* the masks of one layer only (every unit of the other layers kept), for each layer;
* every layer's masks but no head rows removed (``head_rows="none"``),

and reports the composed accuracy minus the monolithic model's (δ, points; many-output models
also without padding positions). It answers, by measurement, where a deep model's drop comes
from (``docs/results/layer_ablation.md``)::

    python -m experiments.layer_ablation --dataset=brown --cell=lstm --layers=4 \\
        --mode=unrolled --models_from=runs/table2/models --out=runs/layer_ablation \\
        --report=docs/results/layer_ablation.md

The model is read from the first ``--models_from`` folder that holds it (the name
``experiments.reproduce`` gives it), else trained with the paper's settings into
``<--out>/models``. The measurements are kept in ``<--out>/results.json``; ``--render_only``
renders ``--report`` from them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict

from absl import app, flags, logging

from experiments import reuse_common as rc, runner

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("dataset", "brown", "mathqa, clinc, toxic, brown or synthetic:<io>.")
    flags.DEFINE_string("cell", "lstm", "lstm, gru or simple.")
    flags.DEFINE_integer("layers", 4, "Model depth.")
    flags.DEFINE_enum("mode", "unrolled", ["rolled", "unrolled"], "Decomposition mode.")
    flags.DEFINE_list("u_masks", ["code", "paper"], "Recurrent mask semantics to compare.")
    flags.DEFINE_list("models_from", [], "Read-only folders of trained models (e.g. the "
                      "Table II run's runs/table2/models).")
    flags.DEFINE_integer("epochs", None, "Training epochs if the model is trained here "
                         "(default: the paper's for the I/O type).")
    flags.DEFINE_integer("limit_train", None, "A seeded subset of N training examples.")
    flags.DEFINE_integer("limit_test", None, "Only the first N test examples.")
    flags.DEFINE_integer("seed", 0, "Subset, initialisation and shuffling seed.")
    flags.DEFINE_string("out", "runs/layer_ablation", "Folder for models trained here.")
    flags.DEFINE_string("report", "docs/results/layer_ablation.md",
                        "Write the report here (.md; .json beside it).")
    flags.DEFINE_bool("compilation_cache", True, "Use JAX's persistent compilation cache.")
    flags.DEFINE_bool("render_only", False, "Only render --report from <--out>/results.json, "
                      "the measurements of the last run into --out.")


def check_flags() -> dict:
    """The validated run description; ``ValueError`` naming the flag."""
    spec = runner.parse_dataset(FLAGS.dataset)
    cell = "simple" if FLAGS.cell.strip().lower() == "vanilla" else FLAGS.cell.strip().lower()
    if cell not in runner.CELLS:
        raise ValueError(f"--cell must be lstm, gru or simple, got {FLAGS.cell!r}")
    (k,) = runner.parse_layers([FLAGS.layers])
    masks = [m.strip().lower() for m in FLAGS.u_masks]
    if not masks or any(m not in ("code", "paper") for m in masks):
        raise ValueError(f"--u_masks entries must be code or paper, got {FLAGS.u_masks}")
    for name in ("epochs", "limit_train", "limit_test"):
        v = getattr(FLAGS, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    if spec.io in ("one_to_one",) and FLAGS.mode == "unrolled":
        raise ValueError("--mode=unrolled needs a model with steps (not mathqa's one-to-one)")
    return dict(spec=spec, cell=cell, layers=k, mode=FLAGS.mode, u_masks=masks)


def variants(keep, layers: int) -> Dict[str, object]:
    """Keep arrays to compose: ``"all layers"`` (``keep`` itself, ``[C, L, ...]``) and
    ``"layer l only"`` (every other layer's units kept) for each layer."""
    import numpy as np

    keep = np.asarray(keep, bool)
    out = {"all layers": keep}
    for l in range(layers):
        k = np.ones_like(keep)
        k[:, l] = keep[:, l]
        out[f"layer {l + 1} only"] = k
    return out


def composed_delta(decomp, params, data, mono: float, mono_np) -> tuple:
    """``(δ, δ without padding or None)`` in points of ``decomp``'s composed model."""
    import numpy as np

    from modjax import metrics
    from modjax.compose import compose

    pred = np.asarray(compose(decomp, params)(data.x_test)[0])
    y = np.asarray(data.y_test)
    d = 100 * (metrics.accuracy(pred, y) - mono)
    dn = None if mono_np is None else 100 * (metrics.accuracy(pred, y, ignore_padding=True)
                                             - mono_np)
    return d, dn


def run(desc: dict, command: str) -> dict:
    """Train or load the model, decompose it under each semantics and measure every variant."""
    import jax.numpy as jnp
    import numpy as np

    from modjax import metrics
    from modjax.decompose import decompose
    from modjax.presets import options_for
    from modjax.train import predict

    t_start = time.perf_counter()
    spec, cell, k = desc["spec"], desc["cell"], desc["layers"]
    data = runner.load_data(spec, FLAGS.seed, limit_train=FLAGS.limit_train,
                            limit_test=FLAGS.limit_test)
    config, params, _, model_dir = rc.model_for(spec, data, cell, k, {
        "epochs_override": FLAGS.epochs, "units": 100, "seed": FLAGS.seed,
        "limit_train": FLAGS.limit_train, "models_from": FLAGS.models_from, "out": FLAGS.out})
    y = np.asarray(data.y_test)
    mono_pred = predict(config, params, data.x_test)
    mono = metrics.accuracy(mono_pred, y)
    mono_np = metrics.accuracy(mono_pred, y, ignore_padding=True) if config.many_output else None
    rows, removed_per_layer = [], {}
    for u_mask in desc["u_masks"]:
        opts = dataclasses.asdict(options_for("artifact", config, desc["mode"], u_mask=u_mask))
        decomp = decompose(params, data, model=config, **opts)
        removed = (~np.asarray(decomp.keep, bool)).sum(-1)  # [C, L(, T)]
        removed_per_layer[u_mask] = removed.reshape(removed.shape[0], k, -1).mean(
            axis=(0, 2)).tolist()
        for vname, keep in variants(decomp.keep, k).items():
            d, dn = composed_delta(dataclasses.replace(decomp, keep=jnp.asarray(keep)), params,
                                   data, mono, mono_np)
            rows.append({"u_mask": u_mask, "variant": vname, "delta": d, "delta_nopad": dn})
            logging.info("%s %s: δ %+.2f", u_mask, vname, d)
        no_head = decompose(params, data, model=config, **{**opts, "head_rows": "none"})
        d, dn = composed_delta(no_head, params, data, mono, mono_np)
        rows.append({"u_mask": u_mask, "variant": "all layers, no head rows removed",
                     "delta": d, "delta_nopad": dn})
        logging.info("%s no head rows: δ %+.2f", u_mask, d)
    return {"command": command, "hardware": runner.hardware(), "dataset": spec.id,
            "model": runner.model_label(cell, k), "mode": desc["mode"], "mono_acc": mono,
            "mono_acc_nopad": mono_np, "model_name": os.path.basename(model_dir), "rows": rows,
            "removed_per_layer": removed_per_layer,
            "wall_s": time.perf_counter() - t_start,
            "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def render(doc: dict, path: str, rendered_by: str) -> None:
    """Write the markdown report at ``path`` and the JSON beside it; ``rendered_by`` is the
    command that renders it (the measurements name the command that computed them)."""
    f = runner.fmt
    masks = list(dict.fromkeys(r["u_mask"] for r in doc["rows"]))
    names = list(dict.fromkeys(r["variant"] for r in doc["rows"]))
    by = {(r["u_mask"], r["variant"]): r for r in doc["rows"]}
    head = ["masks composed"] + [f"δ, u_mask={m}" for m in masks]
    many = doc["mono_acc_nopad"] is not None
    if many:
        head += [f"δ no pad, u_mask={m}" for m in masks]
    body = []
    for v in names:
        row = [v] + [f(by[(m, v)]["delta"], signed=True) if (m, v) in by else "–"
                     for m in masks]
        if many:
            row += [f(by[(m, v)]["delta_nopad"], signed=True) if (m, v) in by else "–"
                    for m in masks]
        body.append(row)
    removed = doc.get("removed_per_layer") or {  # results written before it had its own key
        r["u_mask"]: r["removed_per_layer"] for r in doc["rows"] if "removed_per_layer" in r}
    lines = [
        f"# Where the composed accuracy goes: {doc['dataset']} {doc['model']}, {doc['mode']}",
        "",
        f"Measured by `{doc['command']}` on {doc['hardware']} in {doc['wall_s']:.0f} s"
        + (f" ({doc['time']})" if doc.get("time") else "")
        + f"; rendered by `{rendered_by}`. Do not edit by hand.",
        "",
        f"Model `{doc['model_name']}`: monolithic test accuracy {100 * doc['mono_acc']:.2f}%"
        + (f" ({100 * doc['mono_acc_nopad']:.2f}% without padding positions)" if many else "")
        + ". Modules from `preset=\"artifact\"` with each recurrent mask semantics "
        "(docs/method.md#artifact): `code` keeps a removed unit's recurrent input from kept "
        "units and its output into the next layer, `paper` removes all its edges. δ = composed "
        "− monolithic accuracy (points). \"layer l only\": the modules keep every unit of the "
        "other layers.",
        "",
        runner.markdown_table(head, body, left=1),
        "",
        "Units removed per module, layer and step (mean): " + "; ".join(
            f"`{m}`: " + ", ".join(f"{x:.1f}" for x in v) for m, v in removed.items()) + ".",
    ]
    runner.write_atomic(path, "\n".join(lines) + "\n")
    runner.write_atomic(os.path.splitext(path)[0] + ".json",
                        json.dumps(doc, indent=1, sort_keys=True, default=str))


def program(command: str) -> None:
    """Measure (unless ``--render_only``) and render ``--report``."""
    desc = check_flags()
    stored = os.path.join(FLAGS.out, "results.json")
    if FLAGS.render_only:
        if not os.path.isfile(stored):
            raise ValueError(f"--render_only needs {stored}, written by a run with "
                             f"--out={FLAGS.out}")
        with open(stored) as fh:
            doc = json.load(fh)
    else:
        if FLAGS.compilation_cache:
            from modjax import compile_cache

            compile_cache.enable()
        doc = run(desc, command)
        runner.write_atomic(stored, json.dumps(doc, indent=1, sort_keys=True, default=str))
    render(doc, FLAGS.report, command)
    for r in doc["rows"]:
        print(f"{r['u_mask']:5s} {r['variant']:34s} δ {r['delta']:+.2f}")
    print(f"report: {FLAGS.report}")


main = runner.main_of(program, "layer_ablation")


if __name__ == "__main__":
    define_flags()
    app.run(main)
