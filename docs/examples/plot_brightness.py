"""
Rank photos by brightness
=========================

Fit a :class:`~skrank.CLIPRanker` on a synthetic brightness task built from the
photos bundled with scikit-image, scikit-learn and matplotlib, hold out whole
photos, and look at the held-out images in predicted order.
"""

import numpy as np

from skrank import CLIPRanker
from skrank.datasets import holdout_by_source, make_ranking_task
from skrank.metrics import spearman_score
from skrank.plotting import plot_predictions, plot_ranking

task = make_ranking_task("brightness", image_size=64, random_state=0)
groups = np.asarray(task.groups)
test = holdout_by_source(groups)  # every third photo is held out, whole
X_train = [x for x, t in zip(task.images, test) if not t]
X_test = [x for x, t in zip(task.images, test) if t]

ranker = CLIPRanker(
    task.instruction, backbone="skrank-tiny", lr=1e-3, max_epochs=20, random_state=0
)
ranker.fit(X_train, task.target[~test])
pred = ranker.predict(X_test)
print(
    "within-photo Spearman:", round(spearman_score(task.target[test], pred, groups=groups[test]), 3)
)
print("pooled Spearman:", round(spearman_score(task.target[test], pred), 3))

# %%
# The held-out images, highest predicted brightness first:
plot_ranking(X_test, pred, y_true=task.target[test], n=16)

# %%
# Predicted against true, coloured by source photo:
plot_predictions(task.target[test], pred, groups=groups[test])
