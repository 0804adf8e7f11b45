"""benchmarks/experiments/library_kernels.py: its hand-written tau-b is skrank's pair
count (which pairwise_accuracy keeps), the metric it was replaced by agrees with it, the
ridge rows compare like with like, and a run refuses uncommitted code."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.experiments import library_kernels as script
from skrank.metrics import kendall_score


@pytest.mark.parametrize("case", sorted(script.KENDALL_CASES))
def test_the_metric_is_the_hand_written_tau_b_on_every_case(case):
    draw, sizes = script.KENDALL_CASES[case]
    for n in (n for n in sizes if n <= 1000):
        y_true, y_pred = draw(np.random.default_rng(0), n)
        ours, theirs = script.hand_tau_b(y_true, y_pred), kendall_score(y_true, y_pred)
        assert np.isnan(ours) == np.isnan(theirs)
        assert np.isnan(ours) or abs(ours - theirs) < 1e-12


def test_a_ridge_row_compares_the_same_fit():
    X, y = script.low_rank_features(np.random.default_rng(0), 60, 16)
    for weight in (None, np.linspace(0.5, 2.0, 60)):
        row = script.compare_ridge(X, y, weight, repeats=1)
        assert row["alpha"] == row["ridgecv_alpha"] and row["coef_max_rel_diff"] < 1e-9


def test_a_run_refuses_uncommitted_code(monkeypatch, tmp_path):
    monkeypatch.setattr(script, "git_commit", lambda: "abc1234+diff.0123456789ab")
    monkeypatch.setattr(script, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="uncommitted"):
        script.main([])
    assert not list(tmp_path.iterdir())
