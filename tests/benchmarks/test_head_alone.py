"""benchmarks/experiments/head_alone.py: the score head alone on the learning curves'
rows, printed beside the curves' own rows; a rerun replaces its rows, never doubles
them. benchmarks/experiments/score_skip.py: its linear shortcut starts at zero."""

from __future__ import annotations

import json

from benchmarks.experiments import head_alone, score_skip


def test_a_run_writes_a_row_per_cell_and_rate_beside_the_curves(tmp_path, monkeypatch):
    script = head_alone
    monkeypatch.setattr(script, "RESULTS", tmp_path)
    argv = ["--backbone", "skrank-tiny", "--kinds", "blur", "--sizes", "16", "40",
            "--only-sizes", "16", "--fold-ids", "0", "--max-test", "3",
            "--lrs", "1e-3", "3e-4", "--steps", "5", "--tag", "t"]  # fmt: skip
    n_sources = 22  # learning_curves.task_for's floor: the curves' row must match it
    curves = [{"kind": "blur", "n_sources": n_sources, "n_train": 16, "fold": 0,
               "method": "ridge-tokens", "SRCC_within": 0.25}]  # fmt: skip
    (tmp_path / "curves-t.json").write_text(json.dumps(curves))
    script.main(argv)
    rows = json.loads((tmp_path / "head-alone-t.json").read_text())
    assert [(r["fold"], r["n_train"], r["lr"]) for r in rows] == [(0, 16, 1e-3), (0, 16, 3e-4)]
    assert all(-1 <= r["head_alone"] <= 1 for r in rows)
    assert all(r["ridge-tokens"] == 0.25 and r["small-data"] is None for r in rows)
    script.main(argv)  # the same cells again: replaced
    assert len(json.loads((tmp_path / "head-alone-t.json").read_text())) == 2


def test_score_skip_linear_shortcut_starts_at_zero():
    import torch

    shortcut = score_skip.LinearShortcut(8)
    out = shortcut(torch.randn(3, 5, 8))
    assert out.shape == (3,) and torch.equal(out, torch.zeros(3))
