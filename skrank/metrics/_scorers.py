"""scikit-learn scorers for skrank's ranking metrics, with metadata routing.

Everything here is public in :mod:`skrank.metrics`, where it is documented.

Pooled scorers
--------------
``spearman_scorer``, ``kendall_scorer``, ``plcc_scorer`` and
``pairwise_accuracy_scorer`` score the whole test fold at once (they pool the
groups). They behave identically whether or not
``sklearn.set_config(enable_metadata_routing=True)`` is on: with routing enabled
they declare ``groups`` as *not requested*, so passing ``groups`` to
``cross_validate(..., params={"groups": g})`` or ``GridSearchCV.fit(X, y,
groups=g)`` feeds the splitter only, and never raises ``UnsetMetadataPassedError``.
``mae_scorer`` is scikit-learn's negated mean absolute error.

Ordinal scorers
---------------
``ordinal_accuracy_scorer`` (``get_scorer("ordinal_accuracy")``, greater is
better) and ``ordinal_mae_scorer`` (``get_scorer("ordinal_mae")``, the negated
:func:`~skrank.metrics.ordinal_mae`, so greater is better, like ``mae_scorer``)
round predictions to the nearest class, with the default classes: the distinct
values of ``y_true`` *in the scored fold*. A test fold that misses a class
therefore rounds onto a coarser grid (a prediction near the missing class goes
to a neighbour). For a fixed grid, build the scorer yourself::

    make_scorer(ordinal_accuracy, classes=range(8))
    make_scorer(ordinal_mae, greater_is_better=False, classes=range(8))

Neither takes ``groups``; with routing on, ``groups`` passed to a search reach
the splitter only.

Grouped scorers
---------------
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
import functools
import re
from collections.abc import Callable
from typing import NamedTuple

from numpy.typing import ArrayLike
from sklearn import config_context
from sklearn.metrics import get_scorer as _sklearn_get_scorer
from sklearn.metrics import make_scorer, mean_absolute_error

from skrank.metrics._ordinal import ordinal_accuracy, ordinal_mae
from skrank.metrics._ranking import (
    kendall_score,
    ndcg_score,
    pairwise_accuracy,
    plcc_score,
    spearman_score,
)

__all__ = [
    "Scoring",
    "get_scorer",
    "kendall_scorer",
    "mae_scorer",
    "make_grouped_scorer",
    "ndcg_scorer",
    "ordinal_accuracy_scorer",
    "ordinal_mae_scorer",
    "pairwise_accuracy_scorer",
    "plcc_scorer",
    "scoring",
    "scoring_names",
    "spearman_scorer",
]


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


_NDCG_AT = re.compile(r"ndcg@([1-9][0-9]*)")


def _metric(name: str) -> Callable[..., float] | None:
    """The metric called ``name``: one of _METRICS, or ``ndcg@K`` (NDCG of the top K)."""
    if name in _METRICS:
        return _METRICS[name]
    match = _NDCG_AT.fullmatch(name)
    if match is None:
        return None
    metric = functools.partial(ndcg_score, k=int(match.group(1)))
    metric.__name__ = name.replace("@", "_at_")
    return metric


class Scoring(NamedTuple):
    """What a scorer name scores: its metric and how to call it (early stopping reads it)."""

    metric: Callable[..., float]  # metric(y_true, y_pred, **keywords)
    greater_is_better: bool
    grouped: bool  # takes groups= (ranking metrics: within each group, averaged)
    weighted: bool  # takes sample_weight=


# Every name of get_scorer's own, but "ndcg@K" (scoring() builds those).
_SCORINGS = {
    "spearman": Scoring(spearman_score, True, True, True),
    "kendall": Scoring(kendall_score, True, True, False),
    "plcc": Scoring(plcc_score, True, True, False),
    "pairwise_accuracy": Scoring(pairwise_accuracy, True, True, False),
    "ndcg": Scoring(ndcg_score, True, True, False),
    "neg_mean_absolute_error": Scoring(mean_absolute_error, False, False, True),
    # Default classes: the distinct y_true of the scored fold (see the module docstring).
    "ordinal_accuracy": Scoring(ordinal_accuracy, True, False, True),
    "ordinal_mae": Scoring(ordinal_mae, False, False, True),
}


# The ranking metrics, which a grouped scorer averages over groups.
_METRICS = {name: entry.metric for name, entry in _SCORINGS.items() if entry.grouped}


def scoring(name: str) -> Scoring | None:
    """The :class:`Scoring` of one of :func:`get_scorer`'s own names (``"ndcg@K"``
    included), or None for any other value."""
    if not isinstance(name, str):
        return None
    if name in _SCORINGS:
        return _SCORINGS[name]
    metric = _metric(name)
    return None if metric is None else Scoring(metric, True, True, False)


def scoring_names() -> list[str]:
    """The names :func:`scoring` knows, ``"ndcg@K"`` standing for every K."""
    return [*_SCORINGS, "ndcg@K"]


def _scorer(entry: Scoring) -> Callable:
    scorer = make_scorer(entry.metric, greater_is_better=entry.greater_is_better)
    # Ranking scorers pool the fold: with routing on, groups reach the splitter only.
    return _with_groups_request(scorer, False) if entry.grouped else scorer


_SCORERS = {name: _scorer(entry) for name, entry in _SCORINGS.items()}
spearman_scorer = _SCORERS["spearman"]
kendall_scorer = _SCORERS["kendall"]
plcc_scorer = _SCORERS["plcc"]
pairwise_accuracy_scorer = _SCORERS["pairwise_accuracy"]
ndcg_scorer = _SCORERS["ndcg"]
mae_scorer = _SCORERS["neg_mean_absolute_error"]
ordinal_accuracy_scorer = _SCORERS["ordinal_accuracy"]
ordinal_mae_scorer = _SCORERS["ordinal_mae"]


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
    name : {"spearman", "kendall", "plcc", "pairwise_accuracy", "ndcg"} or "ndcg@K"
        The metric to average over groups; ``"ndcg@10"`` is NDCG of each
        group's top 10.

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
    metric = _metric(name) if isinstance(name, str) else None
    if metric is None:
        raise ValueError(f"name must be one of {sorted(_METRICS)} or 'ndcg@K'; got {name!r}.")
    return _with_groups_request(make_scorer(_RequireGroups(metric)), True)


def get_scorer(name: str | Callable | None) -> Callable | None:
    """Get a scorer by name: skrank's ranking scorers first, then scikit-learn's.

    Parameters
    ----------
    name : str, callable or None
        ``"spearman"``, ``"kendall"``, ``"plcc"``, ``"pairwise_accuracy"``,
        ``"ndcg"``, ``"ndcg@K"`` (NDCG of the top K, e.g. ``"ndcg@10"``),
        ``"neg_mean_absolute_error"``, ``"ordinal_accuracy"`` or
        ``"ordinal_mae"`` (negated, so greater is better; both round to the
        classes present in the scored fold's ``y_true``, see
        :func:`ordinal_accuracy`); any other value goes to
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
    if isinstance(name, str) and _NDCG_AT.fullmatch(name):
        return _scorer(scoring(name))
    try:
        return _sklearn_get_scorer(name)
    except ValueError as exc:
        raise ValueError(
            f"{name!r} is not a valid scoring value. skrank's scorers are "
            f"{sorted(_SCORERS)} and 'ndcg@K'; scikit-learn's are listed by "
            "sklearn.metrics.get_scorer_names()."
        ) from exc
