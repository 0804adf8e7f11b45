"""Ranking metrics, one table of them all, and (re-exported) scikit-learn scorers.

:func:`spearman_score`, :func:`kendall_score` (tau-b), :func:`plcc_score` (Pearson),
:func:`pairwise_accuracy` and :func:`ndcg_score` (relevance = target, with ``k``)
take ``(y_true, y_pred, *, groups=None)``. With ``groups``, the metric is computed
within each group and the unweighted mean over groups is returned; groups where
it is undefined (too few samples, a constant input, no untied pair) are skipped,
and ``nan`` is returned when every group is; no warnings. :func:`evaluation`
computes them all and the MAE at once, pooled and per group. The scorers
(``spearman_scorer``, ..., :func:`get_scorer`, :func:`make_grouped_scorer`) live
in :mod:`skrank.scorers`, which explains routing, and are importable from here.

For ordinal targets (age groups, decades), :func:`ordinal_accuracy` and
:func:`ordinal_mae` score predictions rounded to the nearest class
(:func:`round_to_classes`), as the paper reports them; :func:`evaluation` adds
them to its table when the targets look ordinal.
"""

import functools
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from skrank._kernels import (
    _absolute_error,
    _exact_accuracy,
    _kendall,
    _ndcg,
    _pairwise_accuracy,
    _pearson,
    _round_to_classes,
    _spearman,
)

# Defined in skrank.scorers, which imports this module: looked up there on first use.
_SCORERS = (
    "get_scorer",
    "kendall_scorer",
    "mae_scorer",
    "make_grouped_scorer",
    "ndcg_scorer",
    "ordinal_accuracy_scorer",
    "ordinal_mae_scorer",
    "pairwise_accuracy_scorer",
    "plcc_scorer",
    "spearman_scorer",
)
__all__ = sorted(
    [
        "evaluation",
        "kendall_score",
        "ndcg_score",
        "ordinal_accuracy",
        "ordinal_mae",
        "pairwise_accuracy",
        "plcc_score",
        "round_to_classes",
        "spearman_score",
        *_SCORERS,
    ]
)


# ---------------------------------------------------------------------------
# Input validation and per-group averaging


def _as_finite_1d(values: ArrayLike, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must contain numbers; could not convert it: {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got an array of shape {array.shape}.")
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise ValueError(
            f"NaN or inf found in {name}: {n_bad} of {array.size} values are not finite."
        )
    return array


def _validate(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y_true = _as_finite_1d(y_true, "y_true")
    y_pred = _as_finite_1d(y_pred, "y_pred")
    if y_true.size != y_pred.size:
        raise ValueError(
            f"y_true and y_pred must have the same length; got {y_true.size} and {y_pred.size}."
        )
    if groups is None:
        return y_true, y_pred, None
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be 1-D; got an array of shape {groups.shape}.")
    if groups.size != y_true.size:
        raise ValueError(
            f"groups must have the same length as y_true; got {groups.size} and {y_true.size}."
        )
    try:
        codes = np.unique(groups, return_inverse=True)[1].ravel()
    except TypeError as exc:
        raise ValueError(f"groups must hold comparable labels: {exc}") from exc
    return y_true, y_pred, codes


def check_sample_weight(sample_weight: ArrayLike, n: int) -> np.ndarray:
    """Finite, non-negative weights, one per sample, not all zero."""
    weight = _as_finite_1d(sample_weight, "sample_weight")
    if weight.size != n:
        raise ValueError(
            f"sample_weight must have the same length as y_true; got {weight.size} and {n}."
        )
    if weight.size and (weight.min() < 0 or weight.max() == 0):
        raise ValueError("sample_weight must be non-negative with at least one positive weight.")
    return weight


def _apply(
    kernel: Callable[..., float],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    codes: np.ndarray | None,
    *extra: np.ndarray,
) -> float:
    """Apply ``kernel`` to all samples, or average it over the groups ``codes`` number.

    ``extra`` arrays (sample weights) are split by group alongside.
    """
    if codes is None:
        return kernel(y_true, y_pred, *extra)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    parts = [np.split(a[order], bounds) for a in (y_true, y_pred, *extra)]
    values = [kernel(*group) for group in zip(*parts, strict=True)]
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def _score(
    kernel: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    groups: ArrayLike | None,
) -> float:
    """Validate, then apply ``kernel`` to all samples or average it over groups."""
    return _apply(kernel, *_validate(y_true, y_pred, groups))


# ---------------------------------------------------------------------------
# Public metrics


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
# Ordinal targets: predictions rounded to the nearest class


def _check_classes(classes: ArrayLike) -> np.ndarray:
    """The allowed class values: finite, 1-D, non-empty; sorted and de-duplicated."""
    array = _as_finite_1d(classes, "classes")
    if array.size == 0:
        raise ValueError("classes must not be empty; got an empty array.")
    return np.unique(array)


def round_to_classes(y_pred: ArrayLike, classes: ArrayLike) -> np.ndarray:
    """Round each prediction to the nearest allowed class value.

    Parameters
    ----------
    y_pred : array-like of shape (n_samples,)
        Predicted values (finite).
    classes : array-like of shape (n_classes,)
        The allowed class values: finite numbers, not necessarily integers or
        evenly spaced. Duplicates are ignored and the order does not matter.

    Returns
    -------
    y_class : ndarray of shape (n_samples,)
        The class value (float64) nearest to each prediction. Predictions
        below the smallest class or above the largest are clipped to it. A
        prediction exactly halfway between two neighbouring classes (the two
        distances, as computed in float64, are equal) goes to the **lower**
        class: 1.5 rounds to 1 and 2.5 to 2 with integer classes, unlike
        :func:`numpy.round`, which rounds halves to even.

    Raises
    ------
    ValueError
        If ``y_pred`` or ``classes`` is not 1-D, not numeric or not finite, or
        if ``classes`` is empty.

    See Also
    --------
    ordinal_accuracy, ordinal_mae

    Examples
    --------
    >>> from skrank.metrics import round_to_classes
    >>> round_to_classes([-3.0, 0.4, 1.5, 2.5, 2.6, 9.0], classes=[0, 1, 2, 3, 4])
    array([0., 0., 1., 2., 3., 4.])
    >>> round_to_classes([0.9, 1.0, 1.1], classes=[0.5, 1.5])
    array([0.5, 0.5, 1.5])
    """
    y_pred = _as_finite_1d(y_pred, "y_pred")
    return _round_to_classes(y_pred, _check_classes(classes))


def _ordinal_inputs(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    classes: ArrayLike | None,
    sample_weight: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated ``y_true``, rounded ``y_pred`` and weights (or None)."""
    y_true, y_pred, _ = _validate(y_true, y_pred, None)
    if classes is not None:
        classes = _check_classes(classes)
    elif y_true.size:
        classes = np.unique(y_true)
    weight = None if sample_weight is None else check_sample_weight(sample_weight, y_true.size)
    if y_true.size == 0:
        return y_true, y_pred, weight
    return y_true, _round_to_classes(y_pred, classes), weight


def ordinal_accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    classes: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Classification accuracy of predictions rounded to the nearest class.

    Each prediction is rounded to the nearest class value
    (:func:`round_to_classes`), then compared with ``y_true`` for an exact
    match: the accuracy that the paper (Yu et al., ICLR 2025) reports for
    ordinal targets such as Adience age groups (0..7) or HCI decades (0..4).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True class values.
    y_pred : array-like of shape (n_samples,)
        Predicted values, in the units of ``y_true`` (not rounded).
    classes : array-like of shape (n_classes,), default=None
        The allowed class values (finite; duplicates ignored; need not be
        integers). None uses the sorted unique values of ``y_true``, so a class
        absent from ``y_true`` is never predicted: pass the full grid (e.g.
        ``classes=range(8)`` for Adience) when a test set may miss a class.
        ``y_true`` is compared as given, so a true value that is not one of
        ``classes`` always counts as a miss.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative row weights: the weighted share of exact matches. With
        integer weights it equals the unweighted accuracy of the rows repeated
        that many times.

    Returns
    -------
    score : float
        In [0, 1]; ``nan`` for empty input.

    Raises
    ------
    ValueError
        If the inputs are not 1-D, not finite or not of one length, if
        ``classes`` is empty, or if ``sample_weight`` is not valid.

    See Also
    --------
    round_to_classes : the rounding (ties go to the lower class).
    ordinal_mae : the mean absolute error after the same rounding.

    Notes
    -----
    A prediction exactly halfway between two classes is rounded to the lower
    one. The scorer ``ordinal_accuracy_scorer`` (``get_scorer("ordinal_accuracy")``)
    uses the default classes, the values present in each scored fold; for a
    fixed grid use ``make_scorer(ordinal_accuracy, classes=...)``.

    Examples
    --------
    >>> from skrank.metrics import ordinal_accuracy
    >>> ordinal_accuracy([0, 1, 2, 3, 4], [0.2, 1.4, 2.6, 2.9, 4.4])  # 2.6 rounds to 3
    0.8
    >>> ordinal_accuracy([0, 1, 2], [0.5, 1.5, 7.0])  # 0.5 and 1.5 round down; 7 clips to 2
    1.0
    >>> ordinal_accuracy([0, 2], [0.9, 1.9], classes=[0, 1, 2])  # 1 is allowed too
    0.5
    """
    y_true, y_class, weight = _ordinal_inputs(y_true, y_pred, classes, sample_weight)
    return _exact_accuracy(y_true, y_class, weight)


def ordinal_mae(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    classes: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Mean absolute error of predictions rounded to the nearest class.

    Each prediction is rounded to the nearest class value
    (:func:`round_to_classes`, ties to the lower class, values outside the
    range clipped to the end classes), then the mean absolute difference from
    ``y_true`` is taken, as the paper (Yu et al., ICLR 2025) reports MAE for
    ordinal targets.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True class values.
    y_pred : array-like of shape (n_samples,)
        Predicted values, in the units of ``y_true`` (not rounded).
    classes : array-like of shape (n_classes,), default=None
        The allowed class values (finite; duplicates ignored; need not be
        integers). None uses the sorted unique values of ``y_true``; pass the
        full grid when a test set may miss a class.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative row weights: the weighted mean of the absolute errors.

    Returns
    -------
    error : float
        Non-negative, in the units of ``y_true``; ``nan`` for empty input.

    Raises
    ------
    ValueError
        If the inputs are not 1-D, not finite or not of one length, if
        ``classes`` is empty, or if ``sample_weight`` is not valid.

    See Also
    --------
    round_to_classes, ordinal_accuracy

    Notes
    -----
    The scorer ``ordinal_mae_scorer`` (``get_scorer("ordinal_mae")``) returns the
    negated error (greater is better, like ``mae_scorer``) and uses the default
    classes, the values present in each scored fold; for a fixed grid use
    ``make_scorer(ordinal_mae, greater_is_better=False, classes=...)``.

    Examples
    --------
    >>> from skrank.metrics import ordinal_mae
    >>> ordinal_mae([0, 1, 2, 3, 4], [0.2, 1.4, 2.6, 2.9, 4.4])  # rounded: 0, 1, 3, 3, 4
    0.2
    >>> ordinal_mae([0, 4], [6.0, -1.0])  # clipped to 4 and 0
    4.0
    """
    y_true, y_class, weight = _ordinal_inputs(y_true, y_pred, classes, sample_weight)
    return _absolute_error(y_true, y_class, weight)


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


def __getattr__(name: str):
    # _RequireGroups: grouped scorers pickled when it lived here still unpickle.
    if name in _SCORERS or name == "_RequireGroups":
        from skrank import scorers

        return getattr(scorers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SCORERS})
