"""The CLIP-likeness benchmark's measures, and bench_quality's zero-shot baseline, on
a handful of scenes: they run, land in range, and agree with the estimator."""

import numpy as np
import pytest

from benchmarks import bench_quality, tiny_clip
from skrank import CLIPZeroShotRanker
from skrank._encoding.backbone import load_backbone
from skrank.datasets._scenes import make_scenes

pytestmark = pytest.mark.usefixtures("one_thread")


def test_measures_run_and_render():
    out = tiny_clip.measure("synthetic", n_retrieval=20, n_graded=10, n_counted=60)
    for r in out["retrieval"]:
        assert 0 <= r["image_to_caption_r1"] <= 1 and r["chance"] == 1 / r["n"]
    assert set(out["targets"]) == {"blur", "jpeg", "triangle count", "circle count (taught)"}
    text = tiny_clip.table({"random tower": out, "synthetic": out})
    assert text.count("\n") == 2 + 2 * len(out["retrieval"]) + 1 + 8
    assert "| zero-shot background (of 19) |" in text


def test_retrieval_of_identical_pairs_is_perfect_when_captions_are_distinct():
    backbone = load_backbone("skrank-tiny", "synthetic")
    scenes = make_scenes(12, seed=77, degraded=False)
    r = tiny_clip.retrieval(backbone, scenes, 12)
    assert r["n"] == 12 and 0 <= r["caption_to_image_r1"] <= 1


def test_bench_quality_zero_shot_is_the_estimators_score_in_target_units():
    backbone = load_backbone("skrank-tiny", "synthetic")
    images = [np.full((64, 64, 3), v, np.uint8) for v in range(0, 250, 25)]
    emb = tiny_clip.embed_images(backbone, images)
    y = np.arange(len(images), dtype=float)
    pred = bench_quality.zero_shot(backbone, "brightness", emb, y, emb)
    direct = (
        CLIPZeroShotRanker(
            prompts=bench_quality.PROMPTS["brightness"],
            backbone="skrank-tiny",
            pretrained="synthetic",
        )
        .fit()
        .predict(images)
    )
    # A line of it, whose slope the training fold chose (either sign).
    assert abs(np.corrcoef(pred, direct)[0, 1]) == pytest.approx(1.0, abs=1e-5)
