"""Ordinal targets (age groups, decades): predictions rounded to the nearest class.

The paper's accuracy and MAE of rounded predictions; public from
:mod:`skrank.metrics`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from skrank.metrics._inputs import _as_finite_1d, _validate, check_sample_weight
from skrank.metrics._kernels import _absolute_error, _exact_accuracy, _round_to_classes

__all__ = ["ordinal_accuracy", "ordinal_mae", "round_to_classes"]


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
