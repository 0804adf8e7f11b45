"""benchmarks/experiments/flip_views.py: every setting of a fold fits and scores the
same rows, ``augment=False`` encodes one view of each training image and
``augment=True`` two (counted at the encoder), the summary pairs the folds, and a
run writes its JSON (1-epoch fits on a few images)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.experiments import flip_views as fv


@pytest.fixture
def forward_images(monkeypatch):
    """Counts the images through the frozen image tower (Encoder.forward)."""
    from skrank._encoding.encoder import Encoder

    seen = []
    original = Encoder.forward

    def forward(self, pixels, pooled=False):
        seen.append(int(pixels.shape[0]))
        return original(self, pixels, pooled)

    monkeypatch.setattr(Encoder, "forward", forward)
    return seen


def test_settings_share_rows_and_plain_encodes_one_view(forward_images):
    task = fv.e1_task("blur", folds=2, n_train=10, n_test=6, image_size=32)
    assert task.name == "e1/blur" and len(task.folds) == 2
    tests = [set(test) for _, _, test, _ in task.folds]
    assert not tests[0] & tests[1]
    rows = []
    for fold, train, test, groups in task.folds:
        assert groups is None and not set(train) & set(test)
        for setting in ("flip", "plain"):
            before = sum(forward_images)
            rows.append(fv.fit_one(task, fold, train, test, groups, setting, max_epochs=1))
            # fit encodes each training image once per view; predict, each test image once
            views = 2 if setting == "flip" else 1
            assert sum(forward_images) - before == views * len(train) + len(test)
            assert rows[-1]["views_encoded"] == views * len(train)
            assert rows[-1]["test_digest"] == fv.digest(test)
    for fold in (0, 1):
        flip, plain = (r for r in rows if r["fold"] == fold)
        assert (flip["setting"], plain["setting"]) == ("flip", "plain")
        assert flip["augment"] and not plain["augment"]
        assert flip["random_state"] == plain["random_state"] == fold
        assert flip["test_digest"] == plain["test_digest"]
        assert flip["train_digest"] == plain["train_digest"]
    assert all(-1 <= r["srcc"] <= 1 and r["score"] == "pooled" for r in rows)
    assert all(r["epochs"] == 1 and r["fit_seconds"] >= r["train_seconds"] for r in rows)


def test_photo_folds_split_by_photo_and_score_within():
    task = fv.photo_task("brightness", folds=2, image_size=32, n_sources=4)
    assert task.name == "photo/brightness" and len(task.images) == 32
    photos = [set(groups) for _, _, _, groups in task.folds]
    assert not photos[0] & photos[1] and len(photos[0] | photos[1]) == 4
    fold, train, test, groups = task.folds[0]
    row = fv.fit_one(task, fold, train, test, groups, "plain", max_epochs=1)
    assert row["score"] == "within photo" and row["views_encoded"] == len(train)


def test_summary_pairs_each_fold():
    rows = [{"task": "e1/blur", "fold": k, "setting": s, "score": "pooled", "srcc": v,
             "fit_seconds": 2.0, "train_seconds": 1.0}
            for k, (a, b, c) in enumerate([(0.5, 0.4, 0.45), (0.6, 0.7, 0.6), (0.8, 0.6, 0.9)])
            for s, v in (("flip", a), ("plain", b), ("flip-reseed", c))]  # fmt: skip
    cell = fv.summarise(rows)["e1/blur"]
    assert cell["settings"]["flip"]["mean"] == pytest.approx(0.633333, abs=1e-5)
    assert cell["settings"]["plain"]["std"] == pytest.approx(np.std([0.4, 0.7, 0.6], ddof=1))
    paired = cell["flip_minus_plain"]
    assert paired["per_fold"] == pytest.approx([0.1, -0.1, 0.2])
    assert (paired["favours_flip"], paired["favours_other"], paired["ties"]) == (2, 1, 0)
    assert cell["flip_minus_flip-reseed"]["per_fold"] == pytest.approx([0.05, 0.0, -0.1])
    assert "flip − plain" in fv.table(fv.summarise(rows))


def test_a_run_writes_its_json(tmp_path, monkeypatch):
    monkeypatch.setattr(fv, "RESULTS", tmp_path)
    fv.main(["--e1-targets", "jpeg", "--photo-kinds", "--folds", "2", "--n-train", "6",
             "--n-test", "4", "--max-epochs", "1", "--no-control"])  # fmt: skip
    out = json.loads((tmp_path / "experiment-flip-views.json").read_text())
    assert out["commit"] and out["max_epochs"] == 1 and set(out["settings"]) == {"flip", "plain"}
    assert [(r["fold"], r["setting"]) for r in out["rows"]] == [
        (0, "flip"), (0, "plain"), (1, "flip"), (1, "plain")]  # fmt: skip
    assert set(out["summary"]) == {"e1/jpeg"}
