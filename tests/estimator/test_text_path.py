"""With skrank-tiny's pretrained ("synthetic") text tower the instruction carries
meaning: zero-shot similarity follows what the pretraining captions taught, and one fit
on the same images ranks them differently under two instructions."""

import numpy as np
import pandas as pd
import pytest

from skrank import CLIPRanker, CLIPZeroShotRanker
from skrank.datasets._scenes import PHOTO_WORDS, make_scenes
from skrank.metrics import spearman_score

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(backbone="skrank-tiny", pretrained="synthetic", device="cpu")


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(300, seed=4_321, degraded=False)


def test_zero_shot_finds_the_background_the_captions_named(scenes):
    rows = [i for i, b in enumerate(scenes.background) if b.startswith("a photo of ")]
    images = [scenes.images[i] for i in rows]
    hits = []
    for word in ("a cat", "the moon", "a brick wall"):
        ranker = CLIPZeroShotRanker(f"a photo of {word}", **TINY).fit()
        truth = np.array([scenes.background[i] == f"a photo of {word}" for i in rows])
        score = ranker.predict(images)
        # The scenes on that photo rank above the others: AUC well above one half.
        hits.append(np.mean(score[truth][:, None] > score[~truth][None, :]))
    assert min(hits) > 0.75, hits
    assert len(PHOTO_WORDS) == 19


def test_zero_shot_follows_a_colour_the_captions_named(scenes):
    flat = [i for i, b in enumerate(scenes.background) if b.endswith(" background")]
    flat = [i for i in flat if len(scenes.background[i].split()) == 3]  # "a red background"
    images = [scenes.images[i] for i in flat]
    red = np.array([scenes.background[i] == "a red background" for i in flat])
    score = CLIPZeroShotRanker("a red background", **TINY).fit().predict(images)
    assert red.any() and np.mean(score[red][:, None] > score[~red][None, :]) > 0.9


def test_two_instructions_on_the_same_images_train_two_rankings():
    greys = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 256, 16)]  # 16 images
    level = np.arange(16.0)
    instructions = ["Sort the images by brightness.", "Sort the images by darkness."]
    X = {"image": greys * 2, "instruction": [instructions[0]] * 16 + [instructions[1]] * 16}
    model = CLIPRanker(
        preset="small-data", max_epochs=30, batch_size=16, random_state=0, verbose=0, **TINY
    ).fit(pd.DataFrame(X), np.concatenate([level, -level]))
    bright = model.predict(pd.DataFrame({"image": greys, "instruction": instructions[0]}))
    dark = model.predict(pd.DataFrame({"image": greys, "instruction": instructions[1]}))
    assert spearman_score(level, bright) > 0.8
    assert spearman_score(level, dark) < -0.8
