"""Named option sets for :func:`modjax.decompose`, resolved per model.

The authors' decomposer is a family of near-copies, one script per cell × I/O type × mode, and
the scripts differ in more than their removal cap (``docs/method.md#artifact``). One function,
:func:`decompose_options`, says what each script does, from the model's cell, I/O type, depth
and the mode:

* ``"artifact"`` — reproduces the published numbers (with the ``forward="artifact"`` forward
  pass of :class:`~modjax.models.ModelConfig`):

  - ``max_remove``: the script's cap (:func:`artifact_max_remove`);
  - ``u_mask``: ``"paper"`` for many-to-one rolled (those scripts alias the working weights to
    the originals, so a removed unit's recurrent row and column are gone for good), ``"code"``
    for every other script;
  - ``head_rows``: ``"last"`` for many-to-one unrolled (the units removed at the last step),
    ``"first"`` for one-to-many and many-to-many unrolled (the units removed at step 0, one
    head for every step), ``"step"`` elsewhere; ``"none"`` when a Dropout sits before the head
    (the scripts look only at the layer right after the last recurrent one);
  - ``rolled_obs="last_step"`` and ``padded_steps="carry"``.

* ``"paper_text"`` — the paper's text: a 20% cap, the library's other defaults.

* ``"library"`` — :class:`~modjax.decomposition.DecomposeOptions`'s defaults (``u_mask="code"``,
  ``head_rows="step"``, a 5% cap): one rule for every architecture, the artifact's behaviour
  for all but its many-to-one rolled scripts, with per-step head rows that follow each step's
  own keep vector.
"""
from __future__ import annotations

from modjax.decomposition import MODES, DecomposeOptions
from modjax.models import ModelConfig

#: Names accepted by :func:`decompose_options` (and ``decompose(preset=...)``).
PRESETS = ("artifact", "paper_text", "library")

#: The LSTM scripts' caps that differ from 0.05, by (I/O type, mode) and depth (LSTM-k).
_LSTM_CAPS = {
    ("one_to_one", "rolled"): {1: 0.20, 2: 0.10, 3: 0.10, 4: 0.07},
    ("one_to_many", "unrolled"): {1: 0.20, 2: 0.10, 3: 0.10, 4: 0.20},
    ("many_to_many", "unrolled"): {1: 0.10, 2: 0.05, 3: 0.05, 4: 0.05},
}


def artifact_max_remove(cell: str, io: str, mode: str, layers: int) -> float:
    """The removal cap of the authors' script for this model: 0.05 except some LSTM scripts
    (1:1 rolled 0.20/0.10/0.10/0.07, 1:N unrolled 0.20/0.10/0.10/0.20, M:N unrolled 0.10 for
    LSTM-1, by depth)."""
    if cell == "lstm":
        table = _LSTM_CAPS.get((io, mode))
        if table is not None:
            return table.get(layers, 0.05)
    return 0.05


def _artifact(cell: str, io: str, mode: str, layers: int, dropout_before_head: bool) -> dict:
    unrolled = mode == "unrolled"
    if dropout_before_head:
        head_rows = "none"
    elif unrolled and io == "many_to_one":
        head_rows = "last"
    elif unrolled and io in ("one_to_many", "many_to_many"):
        head_rows = "first"
    else:
        head_rows = "step"
    return {"mode": mode, "max_remove": artifact_max_remove(cell, io, mode, layers),
            "u_mask": "paper" if (io == "many_to_one" and not unrolled) else "code",
            "head_rows": head_rows, "rolled_obs": "last_step", "padded_steps": "carry"}


def preset_options(preset: str, *, cell: str, io: str, mode: str, layers: int,
                   dropout_before_head: bool = False) -> dict:
    """The fields :func:`decompose_options` sets, as a dict (explicit options go on top)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if preset == "artifact":
        return _artifact(cell, io, mode, layers, bool(dropout_before_head))
    if preset == "paper_text":
        return {"mode": mode, "max_remove": 0.20}
    return {"mode": mode}


def decompose_options(preset: str, *, cell: str, io: str, mode: str, layers: int,
                      dropout_before_head: bool = False, **overrides) -> DecomposeOptions:
    """The :class:`~modjax.decomposition.DecomposeOptions` of a named preset for one model.

    Args:
      preset: one of :data:`PRESETS` (see the module docstring).
      cell: ``"simple"``, ``"lstm"`` or ``"gru"``.
      io: the model's I/O type.
      mode: ``"rolled"`` or ``"unrolled"``.
      layers: stacked recurrent layers (the script's model depth, RNN-k).
      dropout_before_head: a Dropout layer sits between the last recurrent layer and the head
        (:attr:`ModelConfig.dropout` > 0 for modjax models).
      **overrides: explicit option fields, applied on top of the preset.

    Returns:
      The options; ``ValueError`` naming the argument for an unknown preset, mode or option
      value, ``TypeError`` for an unknown option name.
    """
    opts = {**preset_options(preset, cell=cell, io=io, mode=mode, layers=layers,
                             dropout_before_head=dropout_before_head), **overrides}
    try:
        return DecomposeOptions(**opts)
    except TypeError as e:
        raise TypeError(f"unknown decompose option: {e}") from None


def options_for(preset: str, config: ModelConfig, mode: str = "rolled",
                **overrides) -> DecomposeOptions:
    """:func:`decompose_options` with the cell, I/O type, depth and Dropout of ``config``."""
    return decompose_options(preset, cell=config.cell, io=config.io, mode=mode,
                             layers=config.layers, dropout_before_head=config.dropout > 0,
                             **overrides)
