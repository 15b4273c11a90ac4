"""Presentation helpers of the report (the tables and figures are checked end to end in
tests/test_cli.py)."""
import numpy as np

from modjax import report


def test_kept_scale_floor_keeps_uniform_results_calm():
    # 5 of 100 units removed everywhere: the scale still spans 75..100, not 95..100
    assert report.kept_scale_floor(np.full((3, 2, 4), 95), 100) == 75
    # a real spread is shown in full
    assert report.kept_scale_floor(np.array([[[40, 100]]]), 100) == 40
    assert report.kept_scale_floor(np.full((1, 1, 1), 8), 8) == 6
