"""modjax command line: train an RNN, decompose it into per-class modules, report on them.

Usage:

  python -m modjax train --data=SPEC --cell=lstm --layers=1 --units=64 --out=DIR [options]
  python -m modjax decompose --model=PATH --data=SPEC --out=DIR [options]
  python -m modjax SUBCOMMAND --help     # that subcommand's flags

Subcommands:

  train       Train a model on the train split of SPEC (Adam, cross-entropy) and save a modjax
              checkpoint directory (DIR/format.json, config.json, params.msgpack, train.json)
              that decompose --model=DIR reads. Warns when the test accuracy is near chance.

  decompose   Decompose a trained model (a modjax checkpoint directory or a Keras .h5) on the
              train split of SPEC, compose the modules, compare them with the monolithic model
              on the test split, print a summary table and write DIR/report.md,
              DIR/keep_heatmap.png, DIR/overlap.png and DIR/decomposition/.

--data SPEC is one of:

  synthetic:<io>   an embedded synthetic task (io: one_to_one, many_to_one, one_to_many,
                   many_to_many, encoder_decoder); sizes via --synthetic_n_train/_n_test/_seed
  <name>           a paper dataset from local files: mathqa, clinc, toxic, brown, tatoeba
                   (under $MODJAX_DATA or --data_path); mathqa_shared, toxic_shared,
                   clinc_shared, brown_shared: tokenised with the pair's shared vocabulary
  FILE.npz         arrays x_train, y_train (optional x_test, y_test, class_names; for an
                   encoder-decoder model also decoder_input_train/_test and concern_train/_test)

Example:

  python -m modjax train --data=synthetic:many_to_many --units=32 --out=runs/tagger_ckpt
  python -m modjax decompose --model=runs/tagger_ckpt --data=synthetic:many_to_many \\
      --out=runs/tagger_report
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import shlex
import sys
import time
import warnings

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS

SUBCOMMANDS = ("decompose", "train")
_IOS = ("one_to_one", "many_to_one", "one_to_many", "many_to_many", "encoder_decoder")


def define_flags() -> None:
    """Define the CLI's flags on absl's global ``FLAGS`` (once).

    Called by :func:`run`, not at import: importing :mod:`modjax.cli` (e.g. from a script with
    its own ``--mode`` flag) defines nothing.
    """
    if "model" in FLAGS and "synthetic_n_train" in FLAGS:
        return
    d = flags
    d.DEFINE_string("model", None, "Trained model: a modjax checkpoint directory (with "
                    "format.json, see modjax.save_model) or a Keras 2 .h5 file.")
    d.DEFINE_string("data", None, "Data: synthetic:<io>, a dataset name (mathqa, clinc, toxic, "
                    "brown, tatoeba; local files) or a .npz file with x_train, y_train "
                    "[, x_test, y_test, class_names].")
    d.DEFINE_string("out", None, "Output directory (created; files in it are replaced).")
    d.DEFINE_enum("mode", "auto", ["auto", "rolled", "unrolled"],
                  "Decomposition mode; auto: unrolled for many-output models (one_to_many, "
                  "many_to_many), rolled otherwise.")
    d.DEFINE_string("preset", None, "A named option set (modjax.PRESETS: artifact, "
                    "paper_text, library), resolved for the model's cell, I/O type, depth and "
                    "mode; explicit option flags override it. artifact (with "
                    "--forward=artifact) reproduces the authors' published numbers.")
    d.DEFINE_enum("forward", None, ["keras", "artifact"],
                  "Forward pass: keras (the trained equations) or artifact (the authors' NumPy "
                  "forward: logistic-sigmoid gates, their GRU candidate). Default: the model's "
                  "own (keras for a .h5, the checkpoint's config otherwise).")
    d.DEFINE_float("max_remove", None, "Removal cap per layer (fraction of units; default "
                   "0.05).", lower_bound=0.0, upper_bound=1.0)
    d.DEFINE_enum("u_mask", None, ["code", "paper"],
                  "Recurrent-kernel mask semantics (default code).")
    d.DEFINE_enum("rolled_obs", None, ["last_step", "all_steps"],
                  "What one-output models observe in rolled mode (default last_step).")
    d.DEFINE_enum("padded_steps", None, ["carry", "skip"],
                  "mask_zero models (encoder-decoder): observe the held state at padded steps "
                  "(carry, default, the artifact's) or real steps only (skip).")
    d.DEFINE_enum("gate_mode", None, ["unit", "per_gate"],
                  "unit: a unit leaves every gate (default); per_gate: gate columns scored and "
                  "removed on their own (LSTM/GRU).")
    d.DEFINE_integer("n_pos", None, "Positive examples per class (and step); default 500 "
                     "(1000 encoder-decoder).", lower_bound=1)
    d.DEFINE_integer("n_neg", None, "Negative examples; default ceil(n_pos / (C - 1)).",
                     lower_bound=1)
    d.DEFINE_enum("split", "test", ["test", "train", "none"],
                  "Split the monolithic and composed models are evaluated on (none: skip).")
    d.DEFINE_integer("limit", None, "Use only the first N examples of each split.",
                     lower_bound=1)
    d.DEFINE_integer("in_len", None, "Input length of a Keras model whose file does not "
                     "record it (default: the data's).", lower_bound=1)
    d.DEFINE_string("data_path", None, "Folder of a paper dataset's local files (default: "
                    "$MODJAX_DATA or ../shared/data).")
    d.DEFINE_integer("synthetic_n_train", 4000, "synthetic:<io>: training examples.",
                     lower_bound=1)
    d.DEFINE_integer("synthetic_n_test", 1000, "synthetic:<io>: test examples.",
                     lower_bound=1)
    d.DEFINE_integer("synthetic_seed", 0, "synthetic:<io>: generator seed.")
    d.DEFINE_boolean("progress", True, "Print progress messages to stderr.")
    d.DEFINE_boolean("warm_times", False, "Run the decomposition and the composed evaluation "
                     "a second time, to report their warm (already compiled) times too.")
    from modjax import cli_common, cli_train

    cli_train.define_flags()
    cli_common.define_flags()


#: Datasets tokenised with a vocabulary shared with another one, as the paper's "combined"
#: models were trained: spec -> (loader in modjax.data.shared_vocab, index in its pair).
_SHARED = {"mathqa_shared": ("load_mathqa_toxic_shared", 0),
           "toxic_shared": ("load_mathqa_toxic_shared", 1),
           "clinc_shared": ("load_clinc_brown_shared", 0),
           "brown_shared": ("load_clinc_brown_shared", 1)}

_OPTION_FLAGS = ("max_remove", "u_mask", "rolled_obs", "padded_steps", "gate_mode", "n_pos",
                 "n_neg")


#: Exit status of a user error (bad flag, missing or corrupt file, unwritable --out).
USAGE_ERROR = 2


class CLIError(Exception):
    """A bad flag or input: reported as one line, exit status :data:`USAGE_ERROR`."""


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- inputs -----------------------------------------------------------------------------------
def load_model_arg(path: str, in_len=None, data_in_len=None):
    """``(config, params, description)`` from ``--model``; ``CLIError`` naming the flag."""
    if not path:
        raise CLIError("--model is required (a modjax checkpoint directory or a Keras .h5)")
    if not os.path.exists(path):
        raise CLIError(f"--model: no such file or directory: {path!r}")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "format.json")):
            raise CLIError(f"--model: {path!r} is a directory but not a modjax model checkpoint "
                           "(no format.json; write one with modjax.save_model)")
        from modjax.checkpoint import load_model

        try:
            config, params = load_model(path)
        except (ValueError, OSError, KeyError, TypeError) as e:
            raise CLIError(f"--model: cannot load {path!r}: {_one_line(e)}") from None
        return config, params, "modjax checkpoint"
    from modjax.keras_import import from_keras_h5

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                config, params = from_keras_h5(path, in_len=in_len)
            except ValueError as e:
                if in_len is None and data_in_len is not None and "input length" in str(e):
                    config, params = from_keras_h5(path, in_len=data_in_len)
                else:
                    raise
    except ValueError as e:
        raise CLIError(f"--model: cannot import {path!r} as a Keras .h5 model: "
                       f"{_one_line(e)}") from None
    for msg in dict.fromkeys(str(w.message) for w in caught):  # a retry warns again
        print(f"warning: {msg}", file=sys.stderr)
    return config, params, "Keras .h5"


def _peek_npz_in_len(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["x_train"].shape[1])
    except Exception:  # noqa: BLE001 - best effort; the real load reports errors
        return None


def load_data_arg(spec: str, config, progress=None):
    """A :class:`~modjax.data.base.TaskData` for ``--data``; ``CLIError`` naming the flag.
    ``progress(msg)``, when given, is told whether a dataset comes from the cache."""
    from modjax.data.base import TaskData

    if not spec:
        raise CLIError("--data is required (synthetic:<io>, a dataset name or a .npz file)")
    if spec.startswith("synthetic:"):
        io = spec.split(":", 1)[1]
        if io not in _IOS:
            raise CLIError(f"--data: unknown synthetic task {io!r} in {spec!r}; expected "
                           f"synthetic:<io> with io one of {', '.join(_IOS)}")
        from modjax.data.synthetic import load_synthetic

        return load_synthetic(io, n_train=FLAGS.synthetic_n_train,
                              n_test=FLAGS.synthetic_n_test, seed=FLAGS.synthetic_seed)
    from modjax.data import LOADERS, load_dataset

    if spec in LOADERS or spec in _SHARED:
        from modjax.data import shared_vocab

        try:
            if spec in LOADERS:
                from modjax.data.cache import lookup

                path = FLAGS.data_path or None
                hit = lookup(spec, path)
                if progress is not None:
                    progress(f"{spec}: " + (f"processed data from the cache {hit}" if hit
                             else "reading and tokenising the source files (cached for the "
                             "next run)"))
                return load_dataset(spec, source="local", **({"path": path} if path else {}))
            fn, idx = _SHARED[spec]
            return getattr(shared_vocab, fn)(source="local", path=FLAGS.data_path or None)[idx]
        except (OSError, ValueError, KeyError, ImportError) as e:
            raise CLIError(f"--data: cannot load dataset {spec!r} from local files: "
                           f"{_one_line(e)}") from None
    if spec.endswith(".npz") or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise CLIError(f"--data: no such file: {spec!r}")
        return _load_npz(spec, config, TaskData)
    names = ", ".join(list(LOADERS) + list(_SHARED))
    raise CLIError(f"--data: unknown data spec {spec!r}; expected synthetic:<io> (io one of "
                   f"{', '.join(_IOS)}), a dataset name ({names}) or a .npz file")


def _load_npz(path, config, TaskData):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is a bad --data
        raise CLIError(f"--data: cannot read {path!r} as a .npz file: {_one_line(e)}") from None
    for k in ("x_train", "y_train"):
        if k not in arrays:
            raise CLIError(f"--data: {path!r} has no array {k!r} (found {sorted(arrays)})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise CLIError(f"--data: {path!r} must hold both x_test and y_test, or neither")
    encdec = config.io == "encoder_decoder"
    for k in arrays:
        if k != "class_names" and not np.issubdtype(arrays[k].dtype, np.integer):
            raise CLIError(f"--data: array {k!r} of {path!r} must hold integers (token ids / "
                           f"labels), got dtype {arrays[k].dtype}")
    x = arrays["x_train"]
    if x.ndim != 2:
        raise CLIError(f"--data: x_train must be [N, in_len], got shape {list(x.shape)}")
    has_test = "x_test" in arrays
    y = arrays["y_train"]
    if "class_names" in arrays:
        names = tuple(str(s) for s in np.asarray(arrays["class_names"]).ravel())
    elif encdec:
        raise CLIError(f"--data: {path!r} needs class_names (the target languages) to "
                       "decompose an encoder_decoder model")
    else:
        names = tuple(str(i) for i in range(config.num_classes))
    extra = {}
    if encdec:
        for k in ("decoder_input_train", "concern_train") + (
                ("decoder_input_test", "concern_test") if has_test else ()):
            if k not in arrays:
                raise CLIError(f"--data: {path!r} needs {k!r} for an encoder_decoder model")
            extra[k] = arrays[k]
    vocab = int(max(x.max(initial=0), arrays["x_test"].max(initial=0) if has_test else 0)) + 1
    empty_x = np.zeros((0,) + x.shape[1:], np.int32)
    empty_y = np.zeros((0,) + y.shape[1:], np.int32)
    return TaskData(
        name=os.path.basename(path), io=config.io, x_train=x, y_train=y,
        x_test=arrays["x_test"] if has_test else empty_x,
        y_test=arrays["y_test"] if has_test else empty_y,
        class_names=names, vocab_size=vocab, in_len=int(x.shape[1]),
        out_len=int(y.shape[1]) if y.ndim == 2 else 1,
        target_vocab_size=config.num_classes if encdec else None, **extra)


def _limit(data, n):
    if not n:
        return data
    kw = {}
    for f in dataclasses.fields(data):
        v = getattr(data, f.name)
        if isinstance(v, np.ndarray) and (f.name.endswith("_train") or f.name.endswith("_test")):
            kw[f.name] = v[:n]
    return dataclasses.replace(data, **kw)


def check_fit(config, data, eval_split):
    """``CLIError`` naming ``--data``/``--model`` when the data does not fit the model."""
    from modjax.train import check_data

    if data.io != config.io:
        raise CLIError(f"--data: {data.name!r} is a {data.io} task, but --model is a "
                       f"{config.io} model")
    x = np.asarray(data.x_train)
    if x.ndim != 2 or x.shape[1] != config.in_len:
        raise CLIError(f"--data: inputs have length {x.shape[1] if x.ndim == 2 else '?'}, but "
                       f"--model expects in_len={config.in_len} (input length mismatch)")
    for split in ("train", "test"):
        xs = np.asarray(getattr(data, f"x_{split}"))
        if xs.size and int(xs.max()) >= config.vocab_size:
            raise CLIError(f"--data: {split} token ids reach {int(xs.max())}, but --model's "
                           f"vocabulary has {config.vocab_size} ids (0..{config.vocab_size - 1});"
                           " vocabulary mismatch (was the model trained with this tokenizer?)")
        if xs.size and int(xs.min()) < 0:
            raise CLIError(f"--data: {split} token ids must be >= 0, got {int(xs.min())}")
    if config.io != "encoder_decoder" and data.num_classes != config.num_classes:
        raise CLIError(f"--data has {data.num_classes} classes {list(data.class_names)[:8]}, "
                       f"but --model has {config.num_classes} outputs")
    if config.many_output:
        y = np.asarray(data.y_train)
        if y.ndim != 2 or y.shape[1] != config.steps:
            raise CLIError(f"--data: y_train must be [N, {config.steps}] (one label per output "
                           f"step of --model), got shape {list(y.shape)}")
    if len(data.x_train) == 0:
        raise CLIError("--data: the train split is empty")
    splits = ["train"] + ([eval_split] if eval_split == "test" and len(data.x_test) else [])
    for split in splits:
        try:
            check_data(config, data, split)
        except ValueError as e:
            raise CLIError(f"--data does not fit --model: {_one_line(e)}") from None
    if config.io == "encoder_decoder":
        c = np.asarray(data.concern_train)
        if c.size and (c.min() < 0 or c.max() >= data.num_classes):
            raise CLIError(f"--data: concern_train must lie in [0, {data.num_classes}) (one "
                           "index per class name)")


def _one_line(e) -> str:
    s = " ".join(str(e).split())
    return s or type(e).__name__


# -- the decompose subcommand ------------------------------------------------------------------
def _options(config):
    """Option kwargs for :func:`modjax.decompose` (only those given) and the mode's origin."""
    opts = {k: getattr(FLAGS, k) for k in _OPTION_FLAGS if getattr(FLAGS, k) is not None}
    mode = FLAGS.mode
    if mode == "auto":
        mode = "unrolled" if config.many_output else "rolled"
        kind = ("encoder-decoder" if config.io == "encoder_decoder" else
                "many-output" if config.many_output else "one-output")
        origin = f"auto: {kind} model"
    else:
        origin = "--mode"
    opts["mode"] = mode
    return opts, origin


def _describe_model(config) -> str:
    name = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}.get(config.cell, config.cell.upper())
    if config.bidirectional:
        name = f"Bi{name}"
    kind = f"vanilla {config.activation}, " if config.cell == "simple" else ""
    return (f"{name}-{config.layers} ({kind}{config.units} units) {config.io}, "
            f"vocab {config.vocab_size}, in_len {config.in_len}, forward {config.forward}")


def _pp(a, b) -> str:
    return f"{100 * (a - b):+.2f} pp"


@contextlib.contextmanager
def _collect_warnings(sink):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, UserWarning):
            msg = _one_line(w.message)
            if msg not in sink:
                sink.append(msg)


@dataclasses.dataclass
class Inputs:
    """What :func:`load_inputs` read: the model and the data."""

    config: object
    params: dict
    model_kind: str
    data: object
    class_names: tuple


@dataclasses.dataclass
class Options:
    """What :func:`resolve_options` chose: the option flags given (``given``), the options in
    full (``resolved``), the origin of the mode and the resolved sample sizes."""

    given: dict
    resolved: object
    mode_origin: str
    n_pos: int
    n_neg: int
    neg_per_class: bool


def check_args() -> str:
    """Stage 0: the required flags, ``--preset`` and ``--out``, before any work; returns
    ``--out``."""
    if not FLAGS.model:
        raise CLIError("--model is required (a modjax checkpoint directory or a Keras .h5)")
    if not FLAGS.data:
        raise CLIError("--data is required (synthetic:<io>, a dataset name or a .npz file)")
    if not FLAGS.out:
        raise CLIError("--out is required (the output directory)")
    from modjax.presets import PRESETS

    if FLAGS.preset is not None and FLAGS.preset not in PRESETS:
        raise CLIError(f"--preset must be one of {list(PRESETS)}, got {FLAGS.preset!r}")
    check_out_dir(FLAGS.out)
    return FLAGS.out


def check_out_dir(out: str) -> None:
    """``CLIError`` naming ``--out`` unless ``out`` is (or can be created as) a writable
    directory whose ``decomposition/`` (if any) is a decomposition that may be replaced.
    Nothing is created."""
    import tempfile

    from modjax.atomic import check_target
    from modjax.persist import DECOMP_FILES, DECOMP_FORMAT

    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out: {out!r} exists and is not a directory")
    anc = path
    while not os.path.exists(anc):
        anc = os.path.dirname(anc)
    if not os.path.isdir(anc):
        raise CLIError(f"--out: {out!r} lies under {anc!r}, which is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".modjax-probe-", dir=anc))
    except OSError as e:
        raise CLIError(f"--out: cannot write to {anc!r} (for {out!r}): "
                       f"{e.strerror or _one_line(e)}") from None
    try:
        check_target(os.path.join(path, "decomposition"), DECOMP_FORMAT, DECOMP_FILES, True)
    except ValueError as e:
        raise CLIError(f"--out: {_one_line(e)}") from None


def load_inputs(progress) -> Inputs:
    """Stage 1: the model (``--model``) and the data (``--data``, ``--limit``), checked to fit."""
    progress(f"loading model {FLAGS.model}")
    data_in_len = None
    if FLAGS.data.endswith(".npz") and os.path.isfile(FLAGS.data):
        data_in_len = _peek_npz_in_len(FLAGS.data)
    config, params, model_kind = load_model_arg(FLAGS.model, FLAGS.in_len, data_in_len)
    if FLAGS.forward is not None:
        config = dataclasses.replace(config, forward=FLAGS.forward)
    progress(f"model: {_describe_model(config)} ({model_kind})")

    progress(f"loading data {FLAGS.data}")
    data = _limit(load_data_arg(FLAGS.data, config, progress), FLAGS.limit)
    check_fit(config, data, FLAGS.split)
    class_names = tuple(str(c) for c in data.class_names)
    progress(f"data: {len(data.x_train)} train / {len(data.x_test)} test examples, "
             f"{len(class_names)} classes")
    return Inputs(config, params, model_kind, data, class_names)


def resolve_options(inp: Inputs) -> Options:
    """Stage 2: the option flags and ``--preset`` as :class:`~modjax.DecomposeOptions`."""
    from modjax.decomposition import DecomposeOptions

    opts, mode_origin = _options(inp.config)
    try:
        if FLAGS.preset:
            from modjax.presets import options_for

            resolved = options_for(FLAGS.preset, inp.config, **opts)
        else:
            resolved = DecomposeOptions(**opts)
    except (TypeError, ValueError) as e:
        raise CLIError(f"invalid decompose option: {_one_line(e)}") from None
    if resolved.gate_mode == "per_gate" and inp.config.cell == "simple":
        raise CLIError("--gate_mode=per_gate needs an LSTM or GRU model; --model is a "
                       "SimpleRNN")
    n_pos, n_neg, per_class = resolved.resolved(inp.config, len(inp.class_names))
    return Options(opts, resolved, mode_origin, n_pos, n_neg, per_class)


def run_decomposition(inp: Inputs, opt: Options, notes: list, progress):
    """Stage 3: decompose (twice with ``--warm_times``); ``(decomp, t_first, t_warm)``, where
    ``t_warm`` is ``None`` without ``--warm_times``."""
    import jax

    from modjax.decompose import decompose

    config, data, resolved = inp.config, inp.data, opt.resolved
    if data.vocab is not None and data.vocab_size != config.vocab_size:
        notes.append(f"the data's tokenizer has {data.vocab_size} ids but --model's embedding "
                     f"has {config.vocab_size}: the model was probably trained with another "
                     "vocabulary (e.g. a shared one: --data=<name>_shared)")
        print(f"warning: {notes[-1]}", file=sys.stderr)
    progress(f"decomposing ({resolved.mode}, max_remove={resolved.max_remove}, "
             f"u_mask={resolved.u_mask}, n_pos={opt.n_pos}) — compiles unless cached")

    def once():
        t0 = time.perf_counter()
        d = decompose(inp.params, data, model=config, class_names=inp.class_names,
                      preset=FLAGS.preset, **opt.given)
        jax.block_until_ready(d.keep)
        return d, time.perf_counter() - t0

    try:
        with _collect_warnings(notes):
            decomp, t_cold = once()
            t_warm = once()[1] if FLAGS.warm_times else None
    except (ValueError, TypeError) as e:
        raise CLIError(f"decomposition failed: {_one_line(e)}") from None
    progress(f"decomposed in {t_cold:.2f}s" + ("" if t_warm is None else
                                               f", {t_warm:.2f}s warm"))
    return decomp, t_cold, t_warm


def module_summary(inp: Inputs, decomp):
    """Stage 4: units kept, retention, Jaccard and overlap; ``(summary, overlap)``."""
    from modjax import metrics, report

    kept = metrics.units_kept(decomp)
    ret = metrics.retention(decomp, inp.params)
    ji = metrics.jaccard_paper(decomp, inp.params)
    ov = metrics.overlap(decomp)
    has = np.asarray(decomp.has_positives)
    summary = report.Summary(
        class_names=inp.class_names, units=inp.config.units, units_kept=kept, retention=ret,
        jaccard=ji, steps_with_examples=has.sum(1) if decomp.unrolled else None,
        num_steps=has.shape[1] if decomp.unrolled else None)
    summary.rows.append(("classes (modules)", str(len(inp.class_names))))
    return summary, ov


def evaluation_split(inp: Inputs, notes: list) -> str:
    """The split ``--split`` asks for, or ``"none"`` where it cannot be evaluated (noted)."""
    eval_split = FLAGS.split
    if eval_split == "none":
        notes.append("evaluation skipped (--split=none): no accuracy")
    if eval_split == "test" and len(inp.data.x_test) == 0:
        notes.append("the data has no test split: accuracy not computed (use --split=train to "
                     "evaluate on the train split)")
        eval_split = "none"
    if inp.config.io == "encoder_decoder":
        notes.append("encoder-decoder model: composed accuracy not computed (its modules are "
                     "chosen by target language, not voted; compose does not apply)")
        eval_split = "none"
    return eval_split


def evaluate(inp: Inputs, decomp, eval_split: str, notes: list, progress):
    """Stage 5: monolithic vs composed accuracy on ``eval_split``; ``(rows, t_cold, t_warm)``
    (no rows and ``None`` times for ``"none"``)."""
    from modjax import metrics
    from modjax.compose import compose
    from modjax.train import predict

    if eval_split == "none":
        return [], None, None
    config, params, data = inp.config, inp.params, inp.data
    x = np.asarray(getattr(data, f"x_{eval_split}"))
    y = np.asarray(getattr(data, f"y_{eval_split}"))
    progress(f"evaluating the monolithic model on {len(x)} {eval_split} examples")
    mono = predict(config, params, x)
    progress(f"evaluating the composed modules ({decomp.num_modules} modules in one batched "
             "scan)")
    predict_fn = compose(decomp, params)
    t0 = time.perf_counter()
    pred = np.asarray(predict_fn(x)[0])
    t_cold = time.perf_counter() - t0
    t_warm = None
    if FLAGS.warm_times:
        t0 = time.perf_counter()
        np.asarray(predict_fn(x)[0])
        t_warm = time.perf_counter() - t0
    a_m, a_c = metrics.accuracy(mono, y), metrics.accuracy(pred, y)
    label = f"({eval_split}, {len(x)} examples)"
    rows = [(f"monolithic accuracy {label}", f"{a_m:.4f}"),
            (f"composed accuracy {label}", f"{a_c:.4f} ({_pp(a_c, a_m)})")]
    from modjax.cli_common import untrained_warning

    weak = untrained_warning(FLAGS.model, a_m, metrics.chance_accuracy(y, len(inp.class_names)))
    if weak:
        notes.append(weak)
        print(f"warning: {weak}", file=sys.stderr)
    if config.many_output and metrics.has_padding_class(inp.class_names):
        b_m = metrics.accuracy(mono, y, ignore_padding=True)
        b_c = metrics.accuracy(pred, y, ignore_padding=True)
        rows.append(("monolithic accuracy (no padding)", f"{b_m:.4f}"))
        rows.append(("composed accuracy (no padding)", f"{b_c:.4f} ({_pp(b_c, b_m)})"))
        notes.append("many-output accuracy counts every (example, step) position, padding "
                     "(label 0) included, as the paper does; '(no padding)' counts label "
                     "!= 0 only (docs/method.md#metrics)")
    rows.append(("composed/monolithic agreement", f"{float(np.mean(pred == mono)):.4f}"))
    return rows, t_cold, t_warm


def summary_rows(inp: Inputs, summary, ov, times: dict) -> None:
    """Append the mean metrics and the timings to ``summary.rows``."""
    C = len(inp.class_names)
    off = ov[~np.eye(C, dtype=bool)]
    summary.rows += [
        ("mean units kept per layer", " / ".join(f"{k:.1f}" for k in summary.units_kept.mean(0))
         + f" of {inp.config.units}"),
        ("mean retention", f"{summary.retention.mean():.3f}"),
        ("mean Jaccard (paper)", f"{summary.jaccard.mean():.3f}"),
        ("mean pairwise module overlap", f"{off.mean():.3f}" if off.size else "n/a"),
        ("decomposition time (first call, compilation included)",
         f"{times['dec_cold']:.2f} s"),
    ]
    if times.get("dec_warm") is not None:
        summary.rows.append(("decomposition time (warm)", f"{times['dec_warm']:.2f} s"))
    if times.get("eval_cold") is not None:
        summary.rows.append(("composed evaluation time (first call, compilation included)",
                             f"{times['eval_cold']:.2f} s"))
    if times.get("eval_warm") is not None:
        summary.rows.append(("composed evaluation time (warm)", f"{times['eval_warm']:.2f} s"))


def draw_figures(out: str, inp: Inputs, decomp, ov) -> None:
    """``out/keep_heatmap.png`` and ``out/overlap.png`` (:mod:`modjax.report`)."""
    from modjax import report

    os.makedirs(out, exist_ok=True)
    has = np.asarray(decomp.has_positives)
    unit_keep = np.asarray(decomp.unit_keep())
    if decomp.config.directions == 2:  # [C, L, (T,) 2, H]: both directions side by side
        unit_keep = unit_keep.reshape(unit_keep.shape[:-2] + (-1,))
    model_name = os.path.basename(os.path.normpath(FLAGS.model))
    report.keep_heatmap(unit_keep, inp.class_names, os.path.join(out, "keep_heatmap.png"),
                        has_positives=has if decomp.unrolled else None,
                        title=(f"{model_name}: units kept by each module"
                               + (" (red: removed)" if not decomp.unrolled else
                                  " — fraction of steps (with examples) kept")))
    report.overlap_plot(ov, inp.class_names, os.path.join(out, "overlap.png"),
                        title=f"{model_name}: pairwise module overlap (kept units)")


def write_outputs(out: str, inp: Inputs, opt: Options, decomp, summary, ov,
                  eval_split: str) -> None:
    """Stage 6: ``out/decomposition/`` and ``out/report.md`` (the figures: :func:`draw_figures`)."""
    from modjax import report
    from modjax.persist import save_decomposition

    config, data, class_names = inp.config, inp.data, inp.class_names
    os.makedirs(out, exist_ok=True)
    save_decomposition(os.path.join(out, "decomposition"), decomp, inp.params, overwrite=True)
    model_name = os.path.basename(os.path.normpath(FLAGS.model))

    used = {**dataclasses.asdict(opt.resolved), "n_pos": opt.n_pos, "n_neg": opt.n_neg}
    opts_rows = [[k, f"`{v}`" + (" per other class" if k == "n_neg" and opt.neg_per_class
                                 else "")] for k, v in used.items()]
    opts_rows.insert(1, ["(mode chosen by)", opt.mode_origin])
    opts_rows += [["preset", f"`{FLAGS.preset}`" if FLAGS.preset else "none"]]
    cfg_rows = [[k, f"`{v}`"] for k, v in dataclasses.asdict(config).items()]
    data_rows = [["--data", f"`{FLAGS.data}`"], ["name", data.name], ["io", data.io],
                 ["train examples (decomposition)", str(len(data.x_train))],
                 ["test examples", str(len(data.x_test))],
                 ["evaluated on", eval_split],
                 ["classes", ", ".join(report.md_code(c) for c in class_names)]]
    if FLAGS.limit:
        data_rows.append(["--limit", str(FLAGS.limit)])
    command = "python -m modjax " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = report.render_markdown(
        summary, title=f"modjax decomposition: {model_name}", command=command,
        images=[("Units kept per class and layer", "keep_heatmap.png"),
                ("Pairwise module overlap", "overlap.png")],
        sections=[
            ("Options", report.markdown_table(["option", "value"], opts_rows)),
            ("Model", f"`{FLAGS.model}` ({inp.model_kind}): {_describe_model(config)}\n\n"
             + report.markdown_table(["field", "value"], cfg_rows)),
            ("Data", report.markdown_table(["", ""], data_rows)),
            ("Files", "* `decomposition/` — load with "
             "`modjax.persist.load_decomposition(path, params)` (bound to the model's params)\n"
             "* `keep_heatmap.png`, `overlap.png` — the figures above"),
        ])
    report.write_text_atomic(os.path.join(out, "report.md"), md)


def print_summary(out: str, inp: Inputs, opt: Options, summary) -> None:
    """Stage 7: the summary table on stdout."""
    from modjax import report

    resolved, data = opt.resolved, inp.data
    print(f"modjax decompose: {_describe_model(inp.config)} ({inp.model_kind}); data "
          f"{FLAGS.data}: {len(data.x_train)} train / {len(data.x_test)} test, "
          f"{len(inp.class_names)} classes")
    print(f"options: mode={resolved.mode} ({opt.mode_origin}), max_remove={resolved.max_remove}, "
          f"u_mask={resolved.u_mask}, head_rows={resolved.head_rows}, "
          f"rolled_obs={resolved.rolled_obs}, "
          f"gate_mode={resolved.gate_mode}, n_pos={opt.n_pos}, n_neg={opt.n_neg}"
          + (f", preset={FLAGS.preset}" if FLAGS.preset else ""))
    print()
    print(report.render_text(summary))
    print(f"\nwrote {os.path.join(out, 'report.md')}, keep_heatmap.png, overlap.png, "
          "decomposition/")


def cmd_decompose() -> int:
    """``python -m modjax decompose``: see the module docstring. One call per stage."""
    progress = _Progress(FLAGS.progress)
    out = check_args()
    inp = load_inputs(progress)
    opt = resolve_options(inp)
    notes: list = []
    decomp, t_dec_cold, t_dec_warm = run_decomposition(inp, opt, notes, progress)
    progress("computing module metrics (units kept, retention, Jaccard, overlap)")
    summary, ov = module_summary(inp, decomp)
    # the figures depend on the masks only: drawn on a worker thread while the evaluation
    # runs (XLA releases the GIL while it computes); a drawing error is raised below
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    figures = pool.submit(draw_figures, out, inp, decomp, ov)
    pool.shutdown(wait=False)
    eval_split = evaluation_split(inp, notes)
    try:
        acc_rows, t_eval_cold, t_eval_warm = evaluate(inp, decomp, eval_split, notes, progress)
    finally:
        concurrent.futures.wait([figures])
    summary.rows += acc_rows
    summary_rows(inp, summary, ov, {"dec_cold": t_dec_cold, "dec_warm": t_dec_warm,
                                    "eval_cold": t_eval_cold, "eval_warm": t_eval_warm})
    summary.notes = notes
    progress(f"writing {out}/")
    try:
        figures.result()
        write_outputs(out, inp, opt, decomp, summary, ov, eval_split)
    except (OSError, ValueError) as e:
        raise CLIError(f"--out: cannot write {out!r}: {_one_line(e)}") from None
    print_summary(out, inp, opt, summary)
    progress("done")
    return 0


def _cmd_train() -> int:
    from modjax.cli_train import cmd_train

    return cmd_train()


_COMMANDS = {"decompose": cmd_decompose, "train": _cmd_train}


def main(argv) -> None:
    """absl main: ``argv[1]`` is the subcommand."""
    from modjax.cli_common import prepare_runtime

    prepare_runtime()  # compilation cache, quiet JAX backend probing, warnings once
    args = list(argv[1:])
    if not args:
        _fail(f"missing subcommand; one of: {', '.join(SUBCOMMANDS)} "
              "(python -m modjax --help)")
    cmd, rest = args[0], args[1:]
    if cmd not in _COMMANDS:
        _fail(f"unknown subcommand {cmd!r}; one of: {', '.join(SUBCOMMANDS)}")
    if rest:
        _fail(f"unexpected arguments {rest}; flags look like --name=value", cmd)
    try:
        rc = _COMMANDS[cmd]()
    except CLIError as e:
        _fail(str(e), cmd)
    exit_now(rc)


def exit_now(rc: int) -> None:
    """End the process with status ``rc`` once its output is flushed, skipping the
    interpreter's teardown: every file is written and closed by then (outputs, the compilation
    cache and stored programs are written synchronously), and tearing down JAX, XLA and the
    imported modules took about 0.5 s of a 4 s warm ``decompose`` run."""
    import logging as std_logging

    sys.stdout.flush()
    sys.stderr.flush()
    std_logging.shutdown()
    os._exit(int(rc))


def _fail(msg: str, cmd: str = "") -> None:
    print(f"modjax{' ' + cmd if cmd else ''}: error: {_one_line(msg)}", file=sys.stderr,
          flush=True)
    sys.exit(USAGE_ERROR)


def parse_flags(argv):
    """absl flag parsing; a bad flag is a one-line error with exit status 2 (no usage dump)."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        cmd = next((a for a in argv[1:] if a in _COMMANDS), "")
        _fail(f"{e} (python -m modjax --help lists the flags)", cmd)


def run(argv=None) -> None:
    """Entry point (``python -m modjax``)."""
    define_flags()
    from modjax.cli_common import maybe_help

    maybe_help(sys.argv if argv is None else argv, __doc__, SUBCOMMANDS)  # exits 0
    app.run(main, argv=argv, flags_parser=parse_flags)
