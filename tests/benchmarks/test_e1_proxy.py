"""benchmarks/e1_proxy.py: its targets are the held-out ones and repeat, its test
blocks never meet a training set, its training sets are nested, each method names
the settings it claims, and its table and plot render from rows (no fit here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import e1_proxy as e1


@pytest.mark.parametrize("target", e1.TARGETS)
def test_targets_repeat_and_a_larger_pool_extends_a_smaller_one(target):
    images, y = e1.target_data(target, 12, image_size=32)
    assert len(images) == len(y) == 12 and images[0].shape == (32, 32, 3)
    again, y_again = e1.target_data(target, 16, image_size=32)
    assert np.array_equal(y, y_again[:12])
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    if target == "triangle count":
        assert set(y) <= set(range(1, 7)) and y.min() >= 1  # only scenes with triangles
    else:
        assert ((0 <= y) & (y <= 1)).all() and len(np.unique(y)) == 12


def test_blur_and_jpeg_draw_other_scenes():
    blur, _ = e1.target_data("blur", 4, image_size=32)
    jpeg, _ = e1.target_data("jpeg", 4, image_size=32)
    assert not any(np.array_equal(a, b) for a, b in zip(blur, jpeg))


def test_folds_hold_out_disjoint_blocks_and_nest_the_training_sets():
    sizes, folds, n_test = [5, 20, 50], 3, 10
    n_pool = e1.pool_size(sizes, folds, n_test)
    assert n_pool == 80
    split = list(e1.fold_rows(n_pool, folds, sizes, n_test))
    assert [k for k, _, _ in split] == [0, 1, 2]
    tests = [set(test) for _, _, test in split]
    assert all(len(t) == n_test for t in tests)
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])
    for _, train, test in split:
        previous: set = set()
        for n, rows in train.items():
            assert len(rows) == n and len(set(rows)) == n
            assert not set(rows) & set(test)
            assert previous <= set(rows)
            previous = set(rows)
    with pytest.raises(SystemExit, match="pool"):
        list(e1.fold_rows(n_pool - 1, folds, sizes, n_test))


def test_methods_name_their_settings():
    from benchmarks._common import REFERENCE

    assert e1.ranker_params("small-data", 64, 500) == {"preset": "small-data"}
    paper = e1.ranker_params("paper", 64, 500)
    assert paper["max_epochs"] == 30 and paper["lr"] == REFERENCE["lr"] == 5e-5
    assert paper["preset"] == "paper" and paper["early_stopping"] is False
    for n in (500, 2000, 8000):
        epochs = e1.ranker_params("paper@matched", 64, n)["max_epochs"]
        assert 3800 <= epochs * -(-n // 64) < 3800 + -(-n // 64)  # about 3,800 steps
    deep = e1.ranker_params("deep@small-data-lr", 64, 500)
    assert deep["preset"] == "small-data" and deep["n_post_layers"] == 2
    assert deep["lr"] == pytest.approx(1e-3)  # the small-data rate at width 64
    assert e1.ranker_params("paper@matched", 64, 500, quick=True)["max_epochs"] == 2
    with pytest.raises(SystemExit, match="unknown method"):
        e1.ranker_params("ridge-tokens", 64, 500)


def test_multi_frame_carries_each_target_instruction():
    data = {t: ([np.zeros((4, 4, 3), np.uint8)] * 6, np.arange(6.0) + i)
            for i, t in enumerate(e1.TARGETS)}  # fmt: skip
    frame, y = e1.multi_frame(data, ["blur", "jpeg"], np.array([1, 3]))
    assert (
        list(frame["instruction"]) == [e1.INSTRUCTIONS["blur"]] * 2 + [e1.INSTRUCTIONS["jpeg"]] * 2
    )
    assert y.tolist() == [2.0, 4.0, 3.0, 5.0]


def _row(target, method, fold, srcc, n=500):
    return {"target": target, "n_pool": 2000, "n_train": n, "n_test": 500, "fold": fold,
            "method": method, "SRCC": srcc, "seconds": 2.0, "quick": False,
            "weights": "w"}  # fmt: skip


def test_markdown_and_plot_render_from_rows(tmp_path, monkeypatch):
    rows = [
        _row("blur", "small-data", 0, 0.8),
        _row("blur", "small-data", 1, 0.6),
        _row("blur", "zero-shot", 0, 0.1),
        _row("jpeg", "ridge-tokens", 0, 0.4, n=2000),
    ]
    text = e1.markdown(rows)
    assert "### blur" in text and "### jpeg" in text and "### triangle" not in text
    assert "0.700 ± 0.100" in text and "0.400 (1 fold)" in text
    header = next(line for line in text.splitlines() if line.startswith("| n_train"))
    assert header.index("small-data") < header.index("ridge-tokens") < header.index("zero-shot")
    monkeypatch.setattr(e1, "RESULTS", tmp_path)
    e1.write(tmp_path / "e1-proxy-t", rows, {"backbone": "skrank-tiny"})
    e1.main(["--tag", "t", "--render"])
    assert json.loads((tmp_path / "e1-proxy-t.json").read_text())["rows"] == rows
    assert (tmp_path / "e1-proxy-t.png").stat().st_size > 0


def test_default_tag_is_the_weights_name():
    assert e1.default_tag("synthetic") == "synthetic"
    assert e1.default_tag("/tmp/pilotB.safetensors") == "pilotB"
