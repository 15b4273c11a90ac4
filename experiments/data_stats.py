"""Print a dataset's sizes, vocabulary, class balance and length histograms (text only).

    python -m experiments.data_stats --dataset=clinc [--source=local] [--path=../shared/data]
"""
from __future__ import annotations

import numpy as np
from absl import app, flags

from modjax.data import LOADERS, load_dataset

FLAGS = flags.FLAGS
def define_flags():
    """Define this binary's flags (called only when it runs as a program, so importing
    the module from tests or other binaries defines nothing)."""
    flags.DEFINE_enum("dataset", "clinc", list(LOADERS), "Dataset to describe.")
    flags.DEFINE_enum("source", "local", ["local", "hf", "synthetic"], "Where to load it from.")
    flags.DEFINE_string("path", None, "Data folder (default: $MODJAX_DATA or ../shared/data).")


def _bar(count: int, total: int, width: int = 40) -> str:
    return "#" * int(round(width * count / max(total, 1)))


def histogram(title: str, values: np.ndarray) -> str:
    """Text histogram of small non-negative integers (one line per value)."""
    counts = np.bincount(np.asarray(values).ravel())
    lines = [title]
    for v, c in enumerate(counts):
        if c:
            lines.append(f"  {v:>4}: {c:>8} {_bar(c, counts.max())}")
    return "\n".join(lines)


def describe(d) -> str:
    """Multi-line text summary of a :class:`modjax.data.TaskData`."""
    out = [f"dataset {d.name} ({d.io})  {d.notes}",
           f"train {len(d.x_train)}  test {len(d.x_test)}  input length {d.in_len}  output length {d.out_len}",
           f"vocab_size (Embedding input) {d.vocab_size}" + (f"  words {len(d.vocab)}" if d.vocab else "")]
    if d.target_vocab_size:
        out.append(f"target_vocab_size {d.target_vocab_size}")
    labels = d.concern_train if d.io == "encoder_decoder" else d.y_train
    counts = np.bincount(np.asarray(labels).ravel(), minlength=d.num_classes)
    out.append("class balance (train" + (", target language" if d.io == "encoder_decoder" else "") + "):")
    for i, name in enumerate(d.class_names):
        c = counts[i] if i < len(counts) else 0
        out.append(f"  {i:>3} {name:<20} {c:>8} {_bar(c, counts.max())}")
    out.append(histogram("input length (non-padding ids, train):", (d.x_train > 0).sum(1)))
    if d.y_train.ndim == 2:
        out.append(histogram("output length (non-padding labels, train):", (d.y_train > 0).sum(1)))
    return "\n".join(out)


def main(argv):
    del argv
    kwargs = {} if FLAGS.path is None else {"path": FLAGS.path}
    print(describe(load_dataset(FLAGS.dataset, source=FLAGS.source, **kwargs)))


if __name__ == "__main__":
    define_flags()
    app.run(main)
