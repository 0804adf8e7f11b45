"""benchmarks/learning_curves.py: its folds never share a photo, its training sets
are nested, its verdicts compare like with like, and a run writes what it measured;
benchmarks/_common.py names a dirty tree by its diff."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import _common, learning_curves
from skrank.datasets import make_ranking_task


@pytest.fixture(scope="module")
def script():
    return learning_curves


def test_folds_split_photos_and_nest_the_training_sets(script):
    task = make_ranking_task("blur", image_size=16, random_state=0, n_sources=60)
    groups, photos = np.asarray(task.groups), np.asarray(task.photos)
    folds = list(script.fold_rows(task, 2, [16, 80, 200], max_test=5))
    assert [k for k, _, _ in folds] == [0, 1]
    for _, train, test in folds:
        assert len(np.unique(groups[test])) == 5
        previous = np.array([], dtype=int)
        for n, rows in train.items():
            assert len(rows) >= n and len(rows) % script.N_LEVELS == 0
            assert not set(photos[rows]) & set(photos[test])  # no crop of a test photo
            assert set(previous) <= set(rows)  # the larger set holds the smaller
            previous = rows
    # Both folds together test photos of both halves: the folds differ.
    assert set(photos[folds[0][2]]).isdisjoint(photos[folds[1][2]])


def test_a_size_larger_than_the_training_photos_hold_is_refused(script):
    task = make_ranking_task("blur", image_size=16, random_state=0, n_sources=22)
    with pytest.raises(SystemExit, match="only"):
        list(script.fold_rows(task, 2, [50, 5000], max_test=5))


def _row(method, fold, within, kind="blur", n=50):
    return {"kind": kind, "n_train": n, "fold": fold, "method": method,
            "SRCC_within": within, "SRCC": within / 2}  # fmt: skip


def test_verdict_uses_only_the_folds_the_small_data_rows_ran_on(script):
    rows = [
        _row("small-data", 0, 0.80),
        _row("ridge-tokens", 0, 0.75),
        _row("ridge-tokens", 1, 0.99),  # another test set: must not count
        _row("ridge-pooled", 0, 0.70),
    ]
    assert script.verdict(rows, "blur", 50) == "win"
    rows.append(_row("ridge-tokens", 0, 0.90, n=200))
    rows.append(_row("small-data", 0, 0.85, n=200))
    assert script.verdict(rows, "blur", 200) == "**below**"  # one fold: no std to allow


def test_verdict_allows_one_fold_std_and_names_ok_without_a_win(script):
    rows = [
        _row("small-data", 0, 0.70),
        _row("small-data", 1, 0.80),  # mean 0.75, std 0.05
        _row("ridge-tokens", 0, 0.78),
        _row("ridge-tokens", 1, 0.78),
    ]
    assert script.verdict(rows, "blur", 50) == "ok"
    rows[0]["SRCC_within"] = 0.60  # mean 0.70, std 0.10: 0.70 < 0.78 - 0.10 is false
    assert script.verdict(rows, "blur", 50) == "ok"
    rows[1]["SRCC_within"] = 0.62  # mean 0.61, std 0.01
    assert script.verdict(rows, "blur", 50) == "**below**"
    assert script.verdict(rows, "noise", 50) == ""  # nothing measured there


def test_markdown_shows_one_fold_cells_without_a_spread(script):
    text = script.markdown([_row("small-data", 0, 0.8), _row("ridge-tokens", 0, 0.7)], "tiny")
    assert "0.800 (1 fold) (0.40)" in text and "±" not in text.split("### blur")[1]


def test_only_sizes_must_be_among_sizes(script):
    with pytest.raises(SystemExit, match="only-sizes"):
        script.main(["--sizes", "50", "200", "--only-sizes", "1000", "--methods", "ridge-tokens"])


def test_a_probe_run_writes_rows_table_and_plot(script, tmp_path, monkeypatch):
    monkeypatch.setattr(script, "RESULTS", tmp_path)
    argv = ["--backbone", "skrank-tiny", "--kinds", "blur", "--sizes", "16", "40",
            "--only-sizes", "16", "--max-test", "3", "--methods", "ridge-tokens",
            "--tag", "t"]  # fmt: skip
    script.main(argv)
    rows = json.loads((tmp_path / "curves-t.json").read_text())
    assert {(r["fold"], r["n_train"], r["method"]) for r in rows} == {
        (0, 16, "ridge-tokens"),
        (1, 16, "ridge-tokens"),
    }
    assert all(-1 <= r["SRCC_within"] <= 1 and r["n_test_images"] == 24 for r in rows)
    assert (tmp_path / "curves-t.png").stat().st_size > 0
    assert "### blur" in (tmp_path / "curves-t.md").read_text()
    # --merge skips what is there: a second run adds nothing.
    script.main([*argv, "--merge"])
    assert len(json.loads((tmp_path / "curves-t.json").read_text())) == 2


def test_a_method_may_name_parameters_of_the_ranker(script):
    assert script.variant_params("paper") == script.VARIANTS["paper"]
    assert script.variant_params("small-data") == {"preset": "small-data"}
    assert script.variant_params("d_model=128,n_post_layers=1") == {
        "d_model": 128,
        "n_post_layers": 1,
    }
    assert script.variant_params("lr=auto,probe=ridge") == {"lr": "auto", "probe": "ridge"}
    for bad in ("d_modl=128", "defaults", "d_model", "=3"):
        with pytest.raises(SystemExit, match="unknown method"):
            script.variant_params(bad)
    with pytest.raises(SystemExit, match="unknown method"):
        script.main(["--methods", "ridge-tokens", "nosuch=1", "--kinds", "blur"])


def test_the_table_shows_methods_given_as_parameters(script):
    row = dict(n_sources=8, n_train_images=8, n_test_images=8, fold=0, SRCC=0.1)
    rows = [
        {**row, "kind": "blur", "n_train": 50, "method": "d_model=128", "SRCC_within": 0.25},
        {**row, "kind": "blur", "n_train": 50, "method": "ridge-tokens", "SRCC_within": 0.5},
    ]
    table = script.markdown(rows, "skrank-tiny")
    assert "| n_train | ridge-tokens | d_model=128 | verdict |" in table
    assert "| 50 | 0.500 (1 fold) (0.10) | 0.250 (1 fold) (0.10) |" in table


def test_separated_rows_change_one_thing_each(script):
    """Depth, rate and budget apart: each row differs from a reference row in one respect."""
    from skrank._model.training import resolve_lr

    deep = script.variant_params("deep@shallow-lr", 64, 200)
    assert deep["n_fusion_layers"] == 2 and deep["n_post_layers"] == 2
    assert deep["lr"] == resolve_lr("auto", 64, 1, 0) == 1e-3  # the shallow adapter's rate
    shallow = script.variant_params("shallow@deep-lr", 512, 200)
    assert (shallow["n_fusion_layers"], shallow["n_post_layers"]) == (1, 0)
    assert shallow["lr"] == pytest.approx(1e-4)  # the deep adapter's rate at d=512
    budget = script.variant_params("paper@3800-steps", 64, 200)
    assert {k: v for k, v in budget.items() if k != "max_epochs"} == {
        k: v for k, v in script.REFERENCE.items() if k != "max_epochs"
    }
    # 200 images: 4 batches of 64 an epoch; 950 epochs are the paper's 3,800 steps.
    assert budget["max_epochs"] == 950
    assert script.variant_params("paper@3800-steps", 64, 1000)["max_epochs"] == 238
    assert script.variant_params("paper@1000-steps", 64, 200)["max_epochs"] == 250  # any budget
    for bad in ("paper@-steps", "paper@1e3-steps", "paper@1000"):
        with pytest.raises(SystemExit, match="unknown method"):
            script.variant_params(bad, 64, 200)


def test_a_dirty_tree_is_named_by_the_hash_of_its_diff(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    run("add", "code.py")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    clean = _common.git_commit(repo=repo)
    assert "+" not in clean
    (repo / "benchmarks" / "results" / "r.json").write_text("[]")  # results do not count
    assert _common.git_commit(repo=repo) == clean
    (repo / "code.py").write_text("x = 2\n")
    first = _common.git_commit(repo=repo)
    assert first.startswith(clean + "+diff.") and len(first) == len(clean) + 18
    (repo / "code.py").write_text("x = 3\n")
    assert _common.git_commit(repo=repo) not in (first, clean)  # another diff, another name
