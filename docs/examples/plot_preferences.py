"""
Learn a ranking from comparisons
================================

Train :class:`~skrank.CLIPPreferenceRanker` on comparisons of two images ("the
first is brighter": 1, "the second is": 0) rather than on a target per image,
with one label in ten flipped as a careless annotator would, and rank held-out
photos by the learnt score. :class:`~skrank.model_selection.ComparisonKFold`
scores it on comparisons whose images it never saw.
"""

import numpy as np
from sklearn.model_selection import cross_val_score

from skrank import CLIPPreferenceRanker
from skrank.datasets import holdout_by_source, make_ranking_task
from skrank.metrics import spearman_score
from skrank.model_selection import ComparisonKFold
from skrank.plotting import plot_ranking

task = make_ranking_task("brightness", image_size=64, random_state=0)
groups = np.asarray(task.groups)
test = holdout_by_source(groups)
train = np.flatnonzero(~test)

# 600 comparisons of random pairs of training images, 10% of the verdicts flipped.
rng = np.random.default_rng(0)
a, b = rng.choice(train, (2, 600))
a, b = a[a != b], b[a != b]
y = (task.target[a] > task.target[b]).astype(float)
y[task.target[a] == task.target[b]] = 0.5  # a tie
flip = rng.random(len(y)) < 0.1
y[flip] = 1 - y[flip]
X = [(task.images[i], task.images[j]) for i, j in zip(a, b)]

model = CLIPPreferenceRanker(
    task.instruction, backbone="skrank-tiny", max_epochs=10, random_state=0, verbose=0
)
model.fit(X, y)

# %%
# The score ranks whole photos it has never seen:
X_test = [im for im, t in zip(task.images, test) if t]
scores = model.score_images(X_test)
print(
    "within-photo Spearman:",
    round(spearman_score(task.target[test], scores, groups=groups[test]), 3),
)
plot_ranking(X_test, scores, y_true=task.target[test], n=16)

# %%
# Pairwise accuracy (ties count one half) on comparisons of images held out
# from training, fold by fold:
folds = ComparisonKFold(n_splits=3, random_state=0)
print(cross_val_score(model.set_params(max_epochs=3), X, y, cv=folds).round(3))
