"""Tests of modjax.presets: the artifact's per-script behaviour resolved from one function."""
from __future__ import annotations

import numpy as np
import pytest

from modjax.decompose import decompose
from modjax.decomposition import DecomposeOptions
from modjax.presets import PRESETS, artifact_max_remove, decompose_options, options_for
from tests.trained_models import trained

# (cell, io, mode, layers, dropout) -> (max_remove, u_mask, head_rows), written out from the
# scripts' behaviour: M:1 rolled aliases the weights ("paper"), every other script "code";
# unrolled M:1 zeroes the head rows of the last step's removed units, unrolled 1:N and M:N those
# of step 0; no head rows with a Dropout before the head; LSTM caps by script and depth.
TABLE = [
    (("lstm", "one_to_one", "rolled", 1, False), (0.20, "code", "step")),
    (("lstm", "one_to_one", "rolled", 4, False), (0.07, "code", "step")),
    (("gru", "one_to_one", "rolled", 1, False), (0.05, "code", "step")),
    (("lstm", "many_to_one", "rolled", 1, False), (0.05, "paper", "step")),
    (("gru", "many_to_one", "rolled", 1, False), (0.05, "paper", "step")),
    (("simple", "many_to_one", "rolled", 3, False), (0.05, "paper", "step")),
    (("lstm", "many_to_one", "rolled", 4, True), (0.05, "paper", "none")),
    (("lstm", "many_to_one", "unrolled", 2, False), (0.05, "code", "last")),
    (("lstm", "many_to_one", "unrolled", 4, True), (0.05, "code", "none")),
    (("lstm", "one_to_many", "rolled", 1, False), (0.05, "code", "step")),
    (("lstm", "one_to_many", "unrolled", 1, False), (0.20, "code", "first")),
    (("lstm", "one_to_many", "unrolled", 3, False), (0.10, "code", "first")),
    (("gru", "one_to_many", "unrolled", 4, True), (0.05, "code", "none")),
    (("lstm", "many_to_many", "unrolled", 1, False), (0.10, "code", "first")),
    (("simple", "many_to_many", "unrolled", 1, False), (0.05, "code", "first")),
    (("gru", "many_to_many", "rolled", 2, False), (0.05, "code", "step")),
    (("lstm", "encoder_decoder", "rolled", 1, False), (0.05, "code", "step")),
    (("gru", "encoder_decoder", "unrolled", 2, False), (0.05, "code", "step")),
]


@pytest.mark.parametrize("model,want", TABLE, ids=["-".join(map(str, m)) for m, _ in TABLE])
def test_artifact_preset_table(model, want):
    cell, io, mode, layers, dropout = model
    o = decompose_options("artifact", cell=cell, io=io, mode=mode, layers=layers,
                          dropout_before_head=dropout)
    assert isinstance(o, DecomposeOptions)
    assert (o.max_remove, o.u_mask, o.head_rows) == want
    assert o.mode == mode and o.rolled_obs == "last_step" and o.padded_steps == "carry"
    assert artifact_max_remove(cell, io, mode, layers) == want[0]


def test_other_presets_and_overrides():
    kw = dict(cell="lstm", io="many_to_one", mode="rolled", layers=1)
    assert decompose_options("library", **kw) == DecomposeOptions()
    assert decompose_options("paper_text", **kw) == DecomposeOptions(max_remove=0.2)
    o = decompose_options("artifact", **kw, u_mask="code", max_remove=0.3)
    assert (o.u_mask, o.max_remove) == ("code", 0.3)
    assert set(PRESETS) == {"artifact", "paper_text", "library"}
    with pytest.raises(ValueError, match="preset"):
        decompose_options("nope", **kw)
    with pytest.raises(ValueError, match="mode"):
        decompose_options("artifact", cell="lstm", io="many_to_one", mode="both", layers=1)
    with pytest.raises(TypeError, match="option"):
        decompose_options("artifact", **kw, bogus=1)


def test_decompose_resolves_the_preset_for_the_model():
    config, params, data = trained("simple_m2o")
    args = (params, (data.x_train, data.y_train))
    rolled = decompose(*args, model=config, preset="artifact", n_pos=100)
    assert rolled.options == options_for("artifact", config, n_pos=100)
    assert (rolled.options.u_mask, rolled.options.head_rows) == ("paper", "step")
    unrolled = decompose(*args, model=config, preset="artifact", mode="unrolled", n_pos=100)
    assert (unrolled.options.u_mask, unrolled.options.head_rows) == ("code", "last")
    # the preset's options give the same keep vectors as the same options spelled out
    explicit = decompose(*args, model=config, n_pos=100, u_mask="paper", max_remove=0.05)
    np.testing.assert_array_equal(np.asarray(rolled.keep), np.asarray(explicit.keep))
