"""
Grid search with a shared token cache
=====================================

Both CLIP towers are frozen, so with ``cache="disk"`` and a shared
``cache_dir`` every clone in a grid search reads the same encoded tokens: each
image is encoded once for the whole search.
"""

import tempfile

import numpy as np
from sklearn.model_selection import GridSearchCV, GroupKFold

from skrank import CLIPRanker
from skrank.datasets import make_ranking_task
from skrank.metrics import mae_scorer, spearman_scorer

task = make_ranking_task("blur", image_size=64, random_state=0, n_sources=8)
cache_dir = tempfile.mkdtemp()
search = GridSearchCV(
    CLIPRanker(
        task.instruction,
        backbone="skrank-tiny",
        max_epochs=3,
        batch_size=16,
        cache="disk",
        cache_dir=cache_dir,
        random_state=0,
    ),
    {"lr": [1e-3, 3e-3], "n_prompt_tokens": [0, 8]},
    cv=GroupKFold(2),
    scoring={"spearman": spearman_scorer, "mae": mae_scorer},
    refit="spearman",
)
search.fit(task.images, task.target, groups=task.groups)
print("best parameters:", search.best_params_)
print("cache:", search.best_estimator_.cache_info_)
print(np.round(search.cv_results_["mean_test_spearman"], 3))
