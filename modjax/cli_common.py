"""What every ``python -m modjax`` subcommand shares: ``--help``, the compilation cache, quiet logs.

* :func:`maybe_help` — ``python -m modjax [SUBCOMMAND] --help`` prints the usage and that
  subcommand's flags (every subcommand's without one) to stdout and exits 0.
* :func:`prepare_runtime` — points JAX's persistent compilation cache at ``--compilation_cache``
  (default ``$MODJAX_JAX_CACHE``, else ``~/.cache/modjax/jax``; ``none`` turns it off), keeps
  JAX's backend probing (such as the missing TPU library message) off stderr unless
  ``--verbosity`` is given, and shows each distinct warning once.
"""
from __future__ import annotations

import logging as _pylogging
import os
import sys
import textwrap
import warnings
from typing import Optional, Sequence

from absl import flags

FLAGS = flags.FLAGS

#: Flags every subcommand reads (defined in :mod:`modjax.cli` or here).
COMMON_FLAGS = ("data", "data_path", "synthetic_n_train", "synthetic_n_test", "synthetic_seed",
                "limit", "out", "progress", "compilation_cache")
#: Flags of ``train`` only (defined in :mod:`modjax.cli_train`); every other flag of
#: :mod:`modjax.cli` belongs to ``decompose``.
TRAIN_FLAGS = ("cell", "layers", "units", "embed_dim", "epochs", "batch_size", "learning_rate",
               "dropout", "seed", "io")
_HELP_ARGS = ("--help", "-h", "--helpshort", "--helpfull", "-help", "-?")


def define_flags() -> None:
    """Define the flags shared by every subcommand that :mod:`modjax.cli` does not (once)."""
    if "compilation_cache" in FLAGS:
        return
    flags.DEFINE_string(
        "compilation_cache", None,
        "Folder of JAX's persistent compilation cache (compiled programs are reused across "
        "runs); default $MODJAX_JAX_CACHE or ~/.cache/modjax/jax; 'none' turns it off.")


#: What an unset decompose option flag means (``DecomposeOptions``'s defaults, resolved).
_OPTION_DEFAULTS = {
    "n_pos": "500; 1000 for an encoder-decoder",
    "n_neg": "ceil(n_pos / (C - 1)) in total; 500 per other language for an encoder-decoder",
}


def _default_text(name: str, f) -> str:
    if f.default is not None:
        return f.default_as_str
    if name in _OPTION_DEFAULTS:
        return _OPTION_DEFAULTS[name]
    from modjax.decomposition import DecomposeOptions

    fields = DecomposeOptions.__dataclass_fields__
    if name in fields and fields[name].default is not None:
        return repr(fields[name].default)
    return "none"


def _flag_help(name: str) -> str:
    f = FLAGS[name]
    default = _default_text(name, f)
    head = f"  --{name}" if not f.boolean else f"  --[no]{name}"
    body = textwrap.fill(f"{f.help} (default: {default})", width=96, initial_indent="      ",
                         subsequent_indent="      ")
    return f"{head}\n{body}"


def subcommand_flags(cmd: str) -> list:
    """Names of the flags ``cmd`` (``"decompose"`` or ``"train"``) reads, common ones first."""
    by_module = FLAGS.flags_by_module_dict()
    cli_flags = [f.name for f in by_module.get("modjax.cli", [])]
    common = [n for n in COMMON_FLAGS if n in FLAGS]
    if cmd == "train":
        own = [n for n in TRAIN_FLAGS if n in FLAGS]
    else:
        own = [n for n in dict.fromkeys(cli_flags) if n not in COMMON_FLAGS
               and n not in TRAIN_FLAGS]
    return own + [n for n in common if n not in own]


def help_text(cmd: Optional[str], doc: str, subcommands: Sequence[str]) -> str:
    """The ``--help`` text: ``doc``, then the flags of ``cmd`` (of every subcommand if None)."""
    out = [doc.strip(), ""]
    for c in ([cmd] if cmd else list(subcommands)):
        out.append(f"Flags of 'python -m modjax {c}':")
        out += [_flag_help(n) for n in subcommand_flags(c)]
        out.append("")
    out.append("absl's own flags (--verbosity, --logtostderr, ...): python -m modjax "
               "--helpfull")
    return "\n".join(out) + "\n"


def maybe_help(argv: Sequence[str], doc: str, subcommands: Sequence[str]) -> None:
    """If ``argv`` asks for help, print it to stdout and exit 0. ``--helpfull`` is left to
    absl (every flag of every module)."""
    args = list(argv[1:])
    if not any(a in _HELP_ARGS for a in args) or "--helpfull" in args:
        return
    cmd = next((a for a in args if a in subcommands), None)
    sys.stdout.write(help_text(cmd, doc, subcommands))
    sys.stdout.flush()
    sys.exit(0)


class _Once(_pylogging.Filter):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def prepare_runtime() -> Optional[str]:
    """Compilation cache, log levels and warning filters for a command-line run.

    Returns the cache folder in use (``None`` when off).
    """
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        # backend probing (e.g. "Unable to initialize backend 'tpu'") is INFO or WARNING
        for name in ("jax._src.xla_bridge", "jax._src.compiler", "jax._src.cache_key"):
            _pylogging.getLogger(name).setLevel(_pylogging.ERROR)
    warnings.simplefilter("once")  # one line per distinct warning, whatever its origin
    _pylogging.getLogger().addFilter(_Once())
    from modjax import compile_cache

    cache = FLAGS.compilation_cache
    if cache is None:
        cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or compile_cache.default_dir()
    return compile_cache.enable(cache)


def untrained_warning(model_path: str, acc: float, chance: float,
                      margin: float = 0.02) -> Optional[str]:
    """A warning when the monolithic accuracy ``acc`` is within ``margin`` of ``chance``
    (:func:`modjax.metrics.chance_accuracy`), naming the authors' ``*_scratch`` baselines,
    which are untrained; ``None`` otherwise."""
    if acc > chance + margin:
        return None
    msg = (f"the monolithic accuracy {acc:.4f} is near chance ({chance:.4f}): the model has "
           "not learned the task, so its modules say nothing about the method")
    if "_scratch" in os.path.basename(os.path.normpath(model_path or "")):
        msg += (f"; {os.path.basename(model_path)!r} is one of the paper's untrained "
                "'_scratch' baselines, not a trained model")
    return msg
