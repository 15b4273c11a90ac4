"""``python -m modjax train``: train a model from the shell and save a checkpoint.

::

  python -m modjax train --data=synthetic:many_to_one --cell=lstm --layers=1 --units=64 \\
      --epochs=10 --out=runs/m2o_lstm
  python -m modjax decompose --model=runs/m2o_lstm --data=synthetic:many_to_one \\
      --out=runs/m2o_lstm_report

The checkpoint is the directory :func:`modjax.save_model` writes (``format.json``,
``config.json``, ``params.msgpack``); ``train`` adds ``train.json`` (the command, the data,
the per-epoch loss and accuracy, and the chance level of the test split). The data spec is the
one ``decompose`` reads (``--data``, ``--data_path``, ``--synthetic_*``, ``--limit``); a
``.npz`` file needs ``--io`` unless its labels make it plain (``[N]``: many_to_one,
``[N, T]``: many_to_many).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import types

import numpy as np
from absl import flags

FLAGS = flags.FLAGS

_TRAIN_IOS = ("one_to_one", "many_to_one", "one_to_many", "many_to_many", "encoder_decoder")


def define_flags() -> None:
    """Define the ``train`` subcommand's own flags on absl's ``FLAGS`` (once)."""
    if "epochs" in FLAGS and "cell" in FLAGS:
        return
    d = flags
    d.DEFINE_enum("cell", "lstm", ["simple", "lstm", "gru"],
                  "train: recurrent cell (simple = vanilla tanh RNN).")
    d.DEFINE_integer("layers", 1, "train: stacked recurrent layers.", lower_bound=1)
    d.DEFINE_integer("units", 64, "train: units per recurrent layer.", lower_bound=1)
    d.DEFINE_bool("bidirectional", False, "train: bidirectional recurrent layers (the encoder's "
                  "only, for encoder-decoder).")
    d.DEFINE_enum("merge", "concat", ["concat", "sum"],
                  "train, with --bidirectional: how the two directions are merged.")
    d.DEFINE_integer("embed_dim", 32, "train: embedding size.", lower_bound=1)
    d.DEFINE_integer("epochs", 10, "train: training epochs.", lower_bound=1)
    d.DEFINE_integer("batch_size", 32, "train: batch size.", lower_bound=1)
    d.DEFINE_float("learning_rate", 3e-3, "train: Adam learning rate.", lower_bound=0.0)
    d.DEFINE_float("dropout", 0.0, "train: dropout before the head (training only).",
                   lower_bound=0.0, upper_bound=1.0)
    d.DEFINE_integer("seed", 0, "train: seed of initialisation, shuffling and dropout.")
    d.DEFINE_enum("io", None, list(_TRAIN_IOS),
                  "train, --data=FILE.npz only: the task's I/O type (default: many_to_one for "
                  "labels [N], many_to_many for labels [N, T]).")


def _npz_stub(path: str, CLIError):
    """The two config fields ``cli.load_data_arg`` reads for a ``.npz``, before a model exists."""
    try:
        with np.load(path, allow_pickle=False) as z:
            y = np.asarray(z["y_train"])
            y_test = np.asarray(z["y_test"]) if "y_test" in z.files else y[:0]
            names = z["class_names"] if "class_names" in z.files else None
    except Exception as e:  # noqa: BLE001 - any unreadable file is a bad --data
        raise CLIError(f"--data: cannot read {path!r} as a .npz file with y_train: "
                       f"{' '.join(str(e).split())}") from None
    io = FLAGS.io or ("many_to_many" if y.ndim == 2 else "many_to_one")
    if io == "encoder_decoder" and names is None:
        raise CLIError(f"--data: {path!r} needs class_names to train an encoder_decoder model")
    C = len(names) if names is not None else int(max(y.max(initial=0),
                                                     y_test.max(initial=0))) + 1
    return types.SimpleNamespace(io=io, num_classes=C)


def cmd_train() -> int:
    """``python -m modjax train``: see the module docstring."""
    from modjax import cli

    CLIError = cli.CLIError
    progress = cli._Progress(FLAGS.progress)
    if not FLAGS.data:
        raise CLIError("--data is required (synthetic:<io>, a dataset name or a .npz file)")
    if not FLAGS.out:
        raise CLIError("--out is required (the checkpoint directory to write)")
    out = FLAGS.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out: {out!r} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(
            os.path.join(out, "format.json")):
        raise CLIError(f"--out: {out!r} is a non-empty directory that is not a modjax "
                       "checkpoint; refusing to replace it")

    progress(f"loading data {FLAGS.data}")
    stub = None
    if FLAGS.data.endswith(".npz") and os.path.isfile(FLAGS.data):
        stub = _npz_stub(FLAGS.data, CLIError)
    data = cli._limit(cli.load_data_arg(FLAGS.data, stub), FLAGS.limit)
    if len(data.x_train) == 0:
        raise CLIError("--data: the train split is empty")

    from modjax.checkpoint import save_model
    from modjax.metrics import chance_accuracy
    from modjax.models import config_for
    from modjax.train import accuracy, check_data, fit

    try:
        config = config_for(data, cell=FLAGS.cell, layers=FLAGS.layers, units=FLAGS.units,
                            embed_dim=FLAGS.embed_dim, dropout=FLAGS.dropout,
                            bidirectional=FLAGS.bidirectional, merge=FLAGS.merge)
        check_data(config, data, "train")
    except (TypeError, ValueError) as e:
        raise CLIError(f"--data does not fit the model flags: {cli._one_line(e)}") from None
    progress(f"model: {cli._describe_model(config)}; data: {len(data.x_train)} train / "
             f"{len(data.x_test)} test examples, {data.num_classes} classes")
    params, hist = fit(config, data, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                       learning_rate=FLAGS.learning_rate, seed=FLAGS.seed,
                       progress=FLAGS.progress, validate=False)
    progress(f"writing {out}/")
    save_model(out, config, params)

    has_test = len(data.x_test) > 0 and config.io != "encoder_decoder"
    test_acc = accuracy(config, params, data, "test") if has_test else None
    chance = chance_accuracy(data.y_test, config.num_classes) if has_test else None
    info = {
        "command": "python -m modjax " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "data": FLAGS.data, "data_name": data.name, "io": data.io,
        "class_names": [str(c) for c in data.class_names],
        "train_examples": int(len(data.x_train)), "test_examples": int(len(data.x_test)),
        "epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate, "seed": FLAGS.seed,
        "loss": [float(v) for v in hist["loss"]],
        "seconds": [float(v) for v in hist["seconds"]],
        "test_accuracy": test_acc, "chance_accuracy": chance,
    }
    from modjax.report import write_text_atomic

    write_text_atomic(os.path.join(out, "train.json"), json.dumps(info, indent=1) + "\n")
    print(f"modjax train: {cli._describe_model(config)}; data {FLAGS.data}: "
          f"{len(data.x_train)} train / {len(data.x_test)} test, {data.num_classes} classes")
    print(f"  epochs {FLAGS.epochs}, final loss {hist['loss'][-1]:.4f}, "
          f"{sum(hist['seconds']):.1f} s")
    if test_acc is not None:
        print(f"  test accuracy {test_acc:.4f} (chance: {chance:.4f}, the most frequent "
              "label's share)")
        from modjax.cli_common import untrained_warning

        weak = untrained_warning(out, test_acc, chance)
        if weak:
            print(f"warning: {weak}; train longer or larger before decomposing",
                  file=sys.stderr)
    print(f"wrote {out}/ (load with modjax.load_model; decompose with "
          f"python -m modjax decompose --model={out} --data={FLAGS.data} --out=...)")
    return 0
