"""Ranking metrics, one table of them all, and scikit-learn scorers.

:func:`spearman_score`, :func:`kendall_score` (tau-b), :func:`plcc_score` (Pearson),
:func:`pairwise_accuracy` and :func:`ndcg_score` (relevance = target, with ``k``)
take ``(y_true, y_pred, *, groups=None)``. With ``groups``, the metric is computed
within each group and the unweighted mean over groups is returned; groups where
it is undefined (too few samples, a constant input, no untied pair) are skipped,
and ``nan`` is returned when every group is; no warnings. :func:`evaluation`
computes them all and the MAE at once, pooled and per group. The scorers
(``spearman_scorer``, ..., :func:`get_scorer`, :func:`make_grouped_scorer`) score
estimators in scikit-learn's searches, with metadata routing for ``groups``.

For ordinal targets (age groups, decades), :func:`ordinal_accuracy` and
:func:`ordinal_mae` score predictions rounded to the nearest class
(:func:`round_to_classes`), as the paper reports them; :func:`evaluation` adds
them to its table when the targets look ordinal.
"""

from skrank.metrics._ordinal import ordinal_accuracy, ordinal_mae, round_to_classes
from skrank.metrics._ranking import (
    evaluation,
    kendall_score,
    ndcg_score,
    pairwise_accuracy,
    plcc_score,
    spearman_score,
)
from skrank.metrics._scorers import (
    get_scorer,
    kendall_scorer,
    mae_scorer,
    make_grouped_scorer,
    ndcg_scorer,
    ordinal_accuracy_scorer,
    ordinal_mae_scorer,
    pairwise_accuracy_scorer,
    plcc_scorer,
    spearman_scorer,
)

__all__ = [
    "evaluation",
    "get_scorer",
    "kendall_score",
    "kendall_scorer",
    "mae_scorer",
    "make_grouped_scorer",
    "ndcg_score",
    "ndcg_scorer",
    "ordinal_accuracy",
    "ordinal_accuracy_scorer",
    "ordinal_mae",
    "ordinal_mae_scorer",
    "pairwise_accuracy",
    "pairwise_accuracy_scorer",
    "plcc_score",
    "plcc_scorer",
    "round_to_classes",
    "spearman_score",
    "spearman_scorer",
]
