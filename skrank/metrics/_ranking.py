"""The ranking metrics and :func:`evaluation`, their table (public in :mod:`skrank.metrics`)."""

import functools

import numpy as np
from numpy.typing import ArrayLike

from skrank.metrics._inputs import _apply, _score, _validate, check_sample_weight
from skrank.metrics._kernels import (
    _absolute_error,
    _exact_accuracy,
    _kendall,
    _ndcg,
    _pairwise_accuracy,
    _pearson,
    _round_to_classes,
    _spearman,
)

__all__ = [
    "evaluation",
    "kendall_score",
    "ndcg_score",
    "pairwise_accuracy",
    "plcc_score",
    "spearman_score",
]


# ---------------------------------------------------------------------------
# The input checks and per-group averaging are in skrank.metrics._inputs


def spearman_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Spearman rank correlation between true and predicted values.

    The Pearson correlation of the ranks, ties given their average rank, as in
    :func:`scipy.stats.spearmanr`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True target values.
    y_pred : array-like of shape (n_samples,)
        Predicted scores.
    groups : array-like of shape (n_samples,), default=None
        Group labels. When given, the correlation is computed within each group
        and averaged over groups, unweighted; groups with fewer than two samples
        or a constant ``y_true`` or ``y_pred`` are skipped.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative row weights. The weighted correlation is the weighted
        Pearson correlation of weighted mid-ranks (the weight below a value
        plus half the weight tied with it): with integer weights it equals the
        unweighted score of the rows repeated that many times. Rows of weight
        0 are left out. Within groups, each group is weighted inside; the
        groups are still averaged unweighted.

    Returns
    -------
    score : float
        In [-1, 1]; ``nan`` when undefined (constant input, fewer than two
        samples, or no group where it is defined).

    See Also
    --------
    kendall_score, plcc_score, pairwise_accuracy

    Examples
    --------
    >>> from skrank.metrics import spearman_score
    >>> spearman_score([1, 2, 3, 4], [10, 30, 20, 40])
    0.8
    >>> spearman_score([1, 2, 3, 4], [1, 2, 4, 3], groups=[0, 0, 1, 1])
    0.0
    >>> w = spearman_score([1, 2, 3], [1, 3, 2], sample_weight=[2, 1, 1])
    >>> w == spearman_score([1, 1, 2, 3], [1, 1, 3, 2])  # the first row counted twice
    True
    """
    y_true, y_pred, codes = _validate(y_true, y_pred, groups)
    if sample_weight is None:
        return _apply(_spearman, y_true, y_pred, codes)
    return _apply(_spearman, y_true, y_pred, codes, check_sample_weight(sample_weight, y_true.size))


def kendall_score(
    y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike | None = None
) -> float:
    """Kendall rank correlation (tau-b) between true and predicted values.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True target values.
    y_pred : array-like of shape (n_samples,)
        Predicted scores.
    groups : array-like of shape (n_samples,), default=None
        Group labels. When given, tau-b is computed within each group and
        averaged over groups, unweighted; groups with fewer than two samples or a
        constant ``y_true`` or ``y_pred`` are skipped.

    Returns
    -------
    score : float
        In [-1, 1]; ``nan`` when undefined.

    See Also
    --------
    spearman_score, pairwise_accuracy

    Notes
    -----
    With C concordant and D discordant pairs, n0 pairs in all, and T and U the
    pairs tied in ``y_true`` and in ``y_pred``,
    ``tau_b = (C - D) / sqrt((n0 - T) * (n0 - U))``, as in
    :func:`scipy.stats.kendalltau`. Pairs are counted in O(n log^2 n) time.

    Examples
    --------
    >>> from skrank.metrics import kendall_score
    >>> round(kendall_score([1, 2, 3, 4], [10, 30, 20, 40]), 4)
    0.6667
    """
    return _score(_kendall, y_true, y_pred, groups)


def plcc_score(y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike | None = None) -> float:
    """Pearson linear correlation coefficient (PLCC) between true and predicted values.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True target values.
    y_pred : array-like of shape (n_samples,)
        Predicted values.
    groups : array-like of shape (n_samples,), default=None
        Group labels. When given, the correlation is computed within each group
        and averaged over groups, unweighted; groups with fewer than two samples
        or a constant ``y_true`` or ``y_pred`` are skipped.

    Returns
    -------
    score : float
        In [-1, 1]; ``nan`` when undefined.

    See Also
    --------
    spearman_score

    Examples
    --------
    >>> from skrank.metrics import plcc_score
    >>> plcc_score([1, 2, 3], [2, 4, 6])
    1.0
    """
    return _score(_pearson, y_true, y_pred, groups)


def pairwise_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike | None = None
) -> float:
    """Share of pairs whose predicted order agrees with the true order.

    Over the pairs ``i < j`` with ``y_true[i] != y_true[j]``, a pair counts 1
    when ``y_pred`` orders it the same way, 0.5 when ``y_pred`` ties it and 0
    otherwise. Pairs tied in ``y_true`` are left out.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True target values.
    y_pred : array-like of shape (n_samples,)
        Predicted scores.
    groups : array-like of shape (n_samples,), default=None
        Group labels. When given, only pairs within a group are compared: the
        accuracy is computed per group and averaged over groups, unweighted;
        groups with no pair untied in ``y_true`` are skipped.

    Returns
    -------
    score : float
        In [0, 1] (0.5 is chance); ``nan`` when there is no untied pair.

    See Also
    --------
    kendall_score

    Notes
    -----
    Computed from pair counts in O(n log^2 n) time and O(n) memory, so tens of
    thousands of samples take milliseconds. Without ties it equals
    ``(1 + kendall_score(y_true, y_pred)) / 2``.

    Examples
    --------
    >>> from skrank.metrics import pairwise_accuracy
    >>> pairwise_accuracy([1, 2, 3], [1, 3, 2])
    0.6666666666666666
    >>> pairwise_accuracy([1, 2, 2], [5, 5, 5])
    0.5
    """
    return _score(_pairwise_accuracy, y_true, y_pred, groups)


# ---------------------------------------------------------------------------
# One table of every metric


def _mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_true - y_pred)))


_TABLE = {
    "srcc": _spearman,
    "krcc": _kendall,
    "plcc": _pearson,
    "pairwise_accuracy": _pairwise_accuracy,
    "mae": _mean_absolute_error,
}


def ndcg_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    k: int | None = None,
    groups: ArrayLike | None = None,
) -> float:
    """Normalised discounted cumulative gain of the predicted order, relevance = target.

    DCG@k sums ``y_true`` of the items in predicted order (best first), the
    item at position i discounted by 1 / log2(i + 1); NDCG divides it by the
    DCG of the ideal order. Gains are linear in ``y_true``, as in
    :func:`sklearn.metrics.ndcg_score`, so targets must be non-negative
    (shift them first if they are not). Tied predictions share their mean gain,
    so the score does not depend on how ties are broken.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Relevance of each item (non-negative).
    y_pred : array-like of shape (n_samples,)
        Predicted scores; larger ranks higher.
    k : int, default=None
        Only the top ``k`` positions count (NDCG@k); None counts all.
    groups : array-like of shape (n_samples,), default=None
        Query groups: NDCG is computed within each group and averaged,
        unweighted; groups whose items all have relevance 0 are skipped.

    Returns
    -------
    score : float
        In [0, 1]; ``nan`` when no item (in any group) is relevant.

    See Also
    --------
    spearman_score, pairwise_accuracy

    Examples
    --------
    >>> from skrank.metrics import ndcg_score
    >>> ndcg_score([3, 2, 0, 1], [0.9, 0.8, 0.1, 0.5])
    1.0
    >>> round(ndcg_score([3, 2, 0, 1], [0.1, 0.8, 0.9, 0.5], k=2), 3)
    0.296
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k={k!r} is not valid; expected None or an integer >= 1.")
    y_true, y_pred, codes = _validate(y_true, y_pred, groups)
    if y_true.size and y_true.min() < 0:
        raise ValueError(
            f"ndcg_score needs non-negative relevance; y_true has minimum {y_true.min()}. "
            "Shift the targets (y - y.min()) or use spearman_score."
        )
    return _apply(functools.partial(_ndcg, k=None if k is None else int(k)), y_true, y_pred, codes)


# evaluation(ordinal=None) treats targets as ordinal classes when every value is an
# integer and there are at most this many distinct values.
_ORDINAL_MAX_CLASSES = 20


def _looks_ordinal(y_true: np.ndarray) -> bool:
    return (
        y_true.size > 0
        and bool(np.all(y_true == np.round(y_true)))
        and np.unique(y_true).size <= _ORDINAL_MAX_CLASSES
    )


def evaluation(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    ordinal: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Every ranking metric and the MAE, pooled and (with groups) averaged over groups.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True target values.
    y_pred : array-like of shape (n_samples,)
        Predicted scores.
    groups : array-like of shape (n_samples,), default=None
        Group labels. When given, every metric is also computed within each
        group and averaged over groups, unweighted, skipping the groups where it
        is undefined, as the ``groups`` argument of the metric functions does.
    ordinal : bool, default=None
        Whether to add the ordinal metrics, ``"ordinal_accuracy"``
        (:func:`ordinal_accuracy`) and ``"ordinal_mae"`` (:func:`ordinal_mae`),
        computed on ``y_pred`` rounded to the nearest of the distinct values of
        ``y_true`` (all of ``y_true``, also within groups). None decides from
        the targets: True when every ``y_true`` is an integer (``3.0`` counts)
        and there are at most 20 distinct values, as with age groups or
        decades; False otherwise. Pass False to keep integer-valued continuous
        targets (a score out of 10) to the ranking metrics.

    Returns
    -------
    table : dict
        ``{"pooled": scores}``, plus ``"per_group_mean": scores`` when ``groups``
        is given, where ``scores`` maps ``"srcc"`` (:func:`spearman_score`),
        ``"krcc"`` (:func:`kendall_score`), ``"plcc"`` (:func:`plcc_score`),
        ``"pairwise_accuracy"`` (:func:`pairwise_accuracy`) and ``"mae"`` (mean
        absolute error), then, when ordinal, ``"ordinal_accuracy"`` and
        ``"ordinal_mae"``, to floats; undefined correlations are ``nan``.

    Raises
    ------
    ValueError
        If the inputs are not 1-D, not finite or not of one length, or if
        ``ordinal`` is not None, True or False.

    Examples
    --------
    >>> from skrank.metrics import evaluation
    >>> table = evaluation([1.5, 2, 3, 4], [10, 30, 40, 20], groups=["a", "a", "b", "b"])
    >>> {name: round(value, 3) for name, value in table["pooled"].items()}
    {'srcc': 0.4, 'krcc': 0.333, 'plcc': 0.291, 'pairwise_accuracy': 0.667, 'mae': 22.375}
    >>> table["per_group_mean"]["srcc"]  # +1 within "a", -1 within "b"
    0.0

    Integer targets with few distinct values are ordinal classes:

    >>> pooled = evaluation([0, 1, 2, 3], [0.2, 1.6, 2.4, 3.3])["pooled"]
    >>> pooled["ordinal_accuracy"], pooled["ordinal_mae"]  # rounded: 0, 2, 2, 3
    (0.75, 0.25)
    """
    y_true, y_pred, codes = _validate(y_true, y_pred, groups)
    if ordinal is None:
        ordinal = _looks_ordinal(y_true)
    elif not isinstance(ordinal, (bool, np.bool_)):
        raise ValueError(f"ordinal={ordinal!r} is not valid; expected None, True or False.")
    columns = [(name, kernel, y_pred) for name, kernel in _TABLE.items()]
    if ordinal:
        y_class = _round_to_classes(y_pred, np.unique(y_true)) if y_true.size else y_pred
        columns += [
            ("ordinal_accuracy", _exact_accuracy, y_class),
            ("ordinal_mae", _absolute_error, y_class),
        ]
    parts = {"pooled": None} if codes is None else {"pooled": None, "per_group_mean": codes}
    return {
        part: {name: _apply(kernel, y_true, values, part_codes) for name, kernel, values in columns}
        for part, part_codes in parts.items()
    }
