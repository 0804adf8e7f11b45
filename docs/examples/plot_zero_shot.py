"""
Rank by the instruction alone
=============================

Score images by :class:`~skrank.CLIPZeroShotRanker` (no training: each image's
CLIP similarity to a text) before labelling anything, and compare with a
:class:`~skrank.CLIPRanker` trained on labelled images.

The backbone is ``skrank-tiny`` with ``pretrained="synthetic"``: a 64-pixel
CLIP that skrank pretrains on generated scenes whose captions name shapes,
colours, counts and what a photo shows, and never image quality. So it shows
both sides of zero-shot ranking: on brightness, which its colour words ("a
white background", "a black background") partly carry, the prompts order the
images the right way without a single label, if far less well than a trained
ranker; on blur, which no caption named, they do not, and training is what it
takes. The scores are Spearman's correlation pooled over the held-out
photos' images, which the photos' own differences (one is softer than another
before any blur) bound below 1.
"""

import numpy as np
from sklearn.model_selection import GroupKFold, cross_val_score

from skrank import CLIPRanker, CLIPZeroShotRanker
from skrank.datasets import make_ranking_task
from skrank.metrics import get_scorer

spearman = get_scorer("spearman")
tiny = dict(backbone="skrank-tiny", pretrained="synthetic", device="cpu")
prompts = {
    "brightness": ("a white background", "a black background"),
    "blur": ("a blurry photo.", "a sharp photo."),
}

for kind, pair in prompts.items():
    task = make_ranking_task(kind, image_size=64, random_state=0)
    folds = GroupKFold(2)
    zero = cross_val_score(
        CLIPZeroShotRanker(prompts=pair, **tiny),
        task.images,
        task.target,
        groups=task.groups,
        cv=folds,
        scoring=spearman,
    )
    trained = cross_val_score(
        CLIPRanker(
            task.instruction,
            preset="small-data",
            batch_size=32,
            max_epochs=40,
            random_state=0,
            verbose=0,
            **tiny,
        ),
        task.images,
        task.target,
        groups=task.groups,
        cv=folds,
        scoring=spearman,
    )
    print(
        f"{kind:>10}: zero-shot {np.mean(zero):+.2f}, "
        f"trained CLIPRanker {np.mean(trained):+.2f} (Spearman, 2 folds by photo)"
    )
