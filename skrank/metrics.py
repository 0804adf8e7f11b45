"""Ranking metrics and scikit-learn scorers.

Metrics
-------
:func:`spearman_score`, :func:`kendall_score` (tau-b), :func:`plcc_score` (Pearson)
and :func:`pairwise_accuracy` take ``(y_true, y_pred, *, groups=None)``. With
``groups``, the metric is computed within each group and the unweighted mean over
groups is returned; groups where the metric is undefined (too few samples, a
constant input, no untied pair) are skipped, and ``nan`` is returned when every
group is undefined. Undefined metrics return ``nan`` without warnings.

Scorers and metadata routing
----------------------------
``spearman_scorer``, ``kendall_scorer``, ``plcc_scorer`` and
``pairwise_accuracy_scorer`` score the whole test fold at once (they pool the
groups). They behave identically whether or not
``sklearn.set_config(enable_metadata_routing=True)`` is on: with routing enabled
they declare ``groups`` as *not requested*, so passing ``groups`` to
``cross_validate(..., params={"groups": g})`` or ``GridSearchCV.fit(X, y,
groups=g)`` feeds the splitter only, and never raises ``UnsetMetadataPassedError``.

Per-group scores in a search need metadata routing, since only routing can carry
``groups`` from ``fit`` to a scorer. Use :func:`make_grouped_scorer`::

    import sklearn
    sklearn.set_config(enable_metadata_routing=True)
    search = GridSearchCV(ranker, grid, cv=GroupKFold(5),
                          scoring=make_grouped_scorer("spearman"))
    search.fit(X, y, groups=g)  # each test fold is scored per group, then averaged

A grouped scorer raises a ``ValueError`` when it is called without ``groups`` (for
example with routing disabled) instead of silently pooling the groups.
Equivalently, ``get_scorer("spearman").set_score_request(groups=True)`` gives a
grouped scorer that pools when no groups arrive; :func:`get_scorer` returns a copy,
so this never changes the module-level scorers.
"""

import copy
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.metrics import get_scorer as _sklearn_get_scorer
from sklearn.metrics import make_scorer, mean_absolute_error

__all__ = [
    "get_scorer",
    "kendall_score",
    "kendall_scorer",
    "mae_scorer",
    "make_grouped_scorer",
    "pairwise_accuracy",
    "pairwise_accuracy_scorer",
    "plcc_score",
    "plcc_scorer",
    "spearman_score",
    "spearman_scorer",
]


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


def _score(
    kernel: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    groups: ArrayLike | None,
) -> float:
    """Validate, then apply ``kernel`` to all samples or average it over groups."""
    y_true, y_pred, codes = _validate(y_true, y_pred, groups)
    if codes is None:
        return kernel(y_true, y_pred)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    true_parts = np.split(y_true[order], bounds)
    pred_parts = np.split(y_pred[order], bounds)
    values = [kernel(t, p) for t, p in zip(true_parts, pred_parts, strict=True)]
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


# ---------------------------------------------------------------------------
# Kernels: validated 1-D float arrays in, a float (nan when undefined) out


def _is_constant(x: np.ndarray) -> bool:
    return x.size < 2 or x.min() == x.max()


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if _is_constant(x) or _is_constant(y):
        return float("nan")
    # Scale by a power of two (exact) so that neither the mean nor the sums of
    # squares can overflow, whatever the magnitude of the values.
    x = np.ldexp(x, -np.frexp(np.abs(x).max())[1])
    y = np.ldexp(y, -np.frexp(np.abs(y).max())[1])
    xc = x - x.mean()
    yc = y - y.mean()
    r = np.dot(xc, yc) / np.sqrt(np.dot(xc, xc) * np.dot(yc, yc))
    return float(np.clip(r, -1.0, 1.0))


def _spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return _pearson(rankdata(y_true), rankdata(y_pred))


def _tied_pairs(*sorted_keys: np.ndarray) -> int:
    """Pairs equal in every key, for arrays sorted lexicographically by the keys."""
    n = sorted_keys[0].size
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for key in sorted_keys:
        change |= key[1:] != key[:-1]
    runs = np.diff(np.concatenate(([0], np.flatnonzero(change) + 1, [n])))
    return int((runs * (runs - 1) // 2).sum())


def _count_inversions(a: np.ndarray) -> int:
    """Count pairs i < j with a[i] > a[j], for non-negative integers ``a``.

    A bottom-up merge sort done with whole-array numpy operations: at each level
    the array is sorted within blocks of ``width``, and for every element of a
    right block a binary search counts the larger elements of its left block.
    O(n log^2 n) time, O(n) memory.
    """
    n = a.size
    span = int(a.max()) + 1 if n else 1
    position = np.arange(n)
    total = 0
    width = 1
    while width < n:
        pair = position // (2 * width)
        # Offsetting by pair makes the left blocks, taken in order, one sorted array.
        keyed = a + pair * span
        is_right = (position // width) % 2 == 1
        left, right = keyed[~is_right], keyed[is_right]
        left_end = (pair[is_right] + 1) * width
        total += int((left_end - np.searchsorted(left, right, side="right")).sum())
        a = np.sort(keyed) - pair * span
        width *= 2
    return total


def _pair_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int, int]:
    """Return (pairs, tied in y_true, tied in y_pred, tied in both, discordant)."""
    n = y_true.size
    order = np.lexsort((y_pred, y_true))
    t, p = y_true[order], y_pred[order]
    # Sorted by (y_true, y_pred), a strict inversion of y_pred is a discordant pair.
    discordant = _count_inversions(np.unique(p, return_inverse=True)[1].ravel())
    return (
        n * (n - 1) // 2,
        _tied_pairs(t),
        _tied_pairs(np.sort(p)),
        _tied_pairs(t, p),
        discordant,
    )


def _kendall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if _is_constant(y_true) or _is_constant(y_pred):
        return float("nan")
    n_pairs, tied_true, tied_pred, tied_both, discordant = _pair_counts(y_true, y_pred)
    concordant = n_pairs - tied_true - tied_pred + tied_both - discordant
    denominator = np.sqrt(float(n_pairs - tied_true) * float(n_pairs - tied_pred))
    return float(np.clip((concordant - discordant) / denominator, -1.0, 1.0))


def _pairwise_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if _is_constant(y_true):
        return float("nan")
    n_pairs, tied_true, tied_pred, tied_both, discordant = _pair_counts(y_true, y_pred)
    untied = n_pairs - tied_true
    only_pred_tied = tied_pred - tied_both
    correct = untied - only_pred_tied - discordant + 0.5 * only_pred_tied
    return float(correct / untied)


# ---------------------------------------------------------------------------
# Public metrics


def spearman_score(
    y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike | None = None
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
    """
    return _score(_spearman, y_true, y_pred, groups)


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
# Scorers


class _RequireGroups:
    """A metric that refuses to pool samples when no ``groups`` reach it.

    A class rather than a closure so that scorers built on it pickle (joblib).
    """

    def __init__(self, metric: Callable[..., float]):
        self.metric = metric
        self.__name__ = f"grouped_{metric.__name__}"

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike | None = None
    ) -> float:
        if groups is None:
            raise ValueError(
                f"{self.__name__} scores per group but received no groups. Enable "
                "metadata routing with sklearn.set_config(enable_metadata_routing=True) "
                "and pass groups to the search or cross-validation: "
                "GridSearchCV(...).fit(X, y, groups=groups) or "
                "cross_validate(..., params={'groups': groups})."
            )
        return self.metric(y_true, y_pred, groups=groups)


def _with_groups_request(scorer: Callable, requested: bool) -> Callable:
    # set_score_request works only while routing is on; the request it records
    # stays with the scorer and is read only when routing is on.
    with config_context(enable_metadata_routing=True):
        return scorer.set_score_request(groups=requested)


_METRICS = {
    "spearman": spearman_score,
    "kendall": kendall_score,
    "plcc": plcc_score,
    "pairwise_accuracy": pairwise_accuracy,
}

spearman_scorer = _with_groups_request(make_scorer(spearman_score), False)
kendall_scorer = _with_groups_request(make_scorer(kendall_score), False)
plcc_scorer = _with_groups_request(make_scorer(plcc_score), False)
pairwise_accuracy_scorer = _with_groups_request(make_scorer(pairwise_accuracy), False)
mae_scorer = make_scorer(mean_absolute_error, greater_is_better=False)

_SCORERS = {
    "spearman": spearman_scorer,
    "kendall": kendall_scorer,
    "plcc": plcc_scorer,
    "pairwise_accuracy": pairwise_accuracy_scorer,
    "neg_mean_absolute_error": mae_scorer,
}


def make_grouped_scorer(name: str) -> Callable:
    """Build a scorer that averages a ranking metric over groups.

    The scorer requests ``groups`` through scikit-learn metadata routing, so it
    works only with ``sklearn.set_config(enable_metadata_routing=True)``: the
    groups passed to ``GridSearchCV.fit(X, y, groups=g)`` or to
    ``cross_validate(..., params={"groups": g})`` reach the scorer, restricted to
    the test fold. Called without groups, the scorer raises a ``ValueError``
    rather than pooling the groups.

    Parameters
    ----------
    name : {"spearman", "kendall", "plcc", "pairwise_accuracy"}
        The metric to average over groups.

    Returns
    -------
    scorer : callable
        A new scorer ``scorer(estimator, X, y, groups=groups)``; greater is better.

    See Also
    --------
    get_scorer : the pooled scorers.

    Examples
    --------
    >>> import numpy as np
    >>> import sklearn
    >>> from sklearn.linear_model import LinearRegression
    >>> from sklearn.model_selection import GroupKFold, cross_validate
    >>> from skrank.metrics import make_grouped_scorer
    >>> X = np.arange(12.0).reshape(-1, 1)
    >>> y = np.array([0, 1, 3, 2, 4, 5, 7, 6, 8, 9, 11, 10])
    >>> groups = np.repeat([0, 1, 2, 3], 3)
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     result = cross_validate(
    ...         LinearRegression(), X, y, cv=GroupKFold(2),
    ...         scoring=make_grouped_scorer("spearman"), params={"groups": groups},
    ...     )
    >>> result["test_score"].round(2)
    array([0.75, 0.75])
    """
    if name not in _METRICS:
        raise ValueError(f"name must be one of {sorted(_METRICS)}; got {name!r}.")
    return _with_groups_request(make_scorer(_RequireGroups(_METRICS[name])), True)


def get_scorer(name: str | Callable | None) -> Callable | None:
    """Get a scorer by name: skrank's ranking scorers first, then scikit-learn's.

    Parameters
    ----------
    name : str, callable or None
        ``"spearman"``, ``"kendall"``, ``"plcc"``, ``"pairwise_accuracy"`` or
        ``"neg_mean_absolute_error"``; any other value goes to
        :func:`sklearn.metrics.get_scorer` (so ``"r2"`` works, and a callable or
        ``None`` is returned unchanged).

    Returns
    -------
    scorer : callable or None
        A copy of the scorer, like :func:`sklearn.metrics.get_scorer` returns, so
        calling ``set_score_request`` on it leaves the module's scorers alone.

    Raises
    ------
    ValueError
        If the name is neither skrank's nor scikit-learn's.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> from skrank.metrics import get_scorer
    >>> X, y = [[0], [1], [2], [3]], [0, 2, 1, 3]
    >>> model = LinearRegression().fit(X, y)
    >>> get_scorer("spearman")(model, X, y)
    0.8
    >>> round(get_scorer("r2")(model, X, y), 2)
    0.64
    """
    if isinstance(name, str) and name in _SCORERS:
        return copy.deepcopy(_SCORERS[name])
    try:
        return _sklearn_get_scorer(name)
    except ValueError as exc:
        raise ValueError(
            f"{name!r} is not a valid scoring value. skrank's scorers are "
            f"{sorted(_SCORERS)}; scikit-learn's are listed by "
            "sklearn.metrics.get_scorer_names()."
        ) from exc
