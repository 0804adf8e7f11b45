"""benchmarks/bench_preferences.py: the simulated labels are what its docstring says,
the linear Bradley-Terry baseline finds a linear score, and its smallest run writes a
row per cell (a rerun replaces the cells it runs)."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import bench_preferences as script


def test_labels_tie_equal_targets_follow_the_order_and_flip_their_share():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8.0), 16)
    a, b = script.random_pairs(len(y), 20000, rng)
    assert np.all(a != b)
    clean = script.label(y, a, b, temperature=0.01, flip=0.0, rng=rng)
    assert np.all(clean[y[a] == y[b]] == 0.5)
    assert script.label_agreement(y, a, b, clean) == 1.0
    noisy = script.label(y, a, b, temperature=0.01, flip=0.1, rng=rng)
    assert np.all(noisy[y[a] == y[b]] == 0.5)  # a flipped tie is a tie
    assert abs(script.label_agreement(y, a, b, noisy) - 0.9) < 0.01


def test_bradley_terry_recovers_a_linear_score():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(64, 5))
    y = features @ np.array([2.0, -1.0, 0.0, 0.0, 0.5])
    a, b = script.random_pairs(64, 2000, rng)
    labels = script.label(y, a, b, temperature=0.3, flip=0.1, rng=rng)
    w, C = script.bradley_terry(features, a, b, labels, photos=np.arange(64) // 8)
    assert C in script.CS
    assert np.corrcoef(features @ w, y)[0, 1] > 0.95


def test_the_smallest_run_writes_every_cell_and_a_rerun_replaces_them(tmp_path, monkeypatch):
    monkeypatch.setattr(script, "RESULTS", tmp_path)
    argv = ["--kinds", "blur", "--sizes", "20", "40", "--folds", "1", "--max-epochs", "1",
            "--active", "40", "--tag", "t"]  # fmt: skip
    script.main(argv)
    rows = json.loads((tmp_path / "preferences-t.json").read_text())
    cells = {(r["n_comparisons"], r["method"]) for r in rows}
    assert cells == {(n, m) for n in (20, 40) for m in script.METHODS} | {(40, script.ACTIVE)}
    assert len(rows) == len(cells)
    for r in rows:
        assert -1 <= r["srcc_within"] <= 1 and -1 <= r["srcc_pooled"] <= 1
        assert r["commit"] and r["configuration"]["flip"] == 0.1
        assert r["n_images"] <= min(128, 2 * r["n_comparisons"])
    assert (tmp_path / "preferences-t.md").read_text().count("\n| 40 | ") == 1
    assert (tmp_path / "preferences-t.png").exists()
    script.main([*argv[:-2], "--methods", "--tag", "t"])  # only the active cell again
    again = json.loads((tmp_path / "preferences-t.json").read_text())
    assert len(again) == len(rows)
