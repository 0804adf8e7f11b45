"""What every metric of :mod:`skrank.metrics` shares: input checks (one message
style) and averaging over groups."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["check_sample_weight", "complex_kind"]


def complex_kind(values: ArrayLike) -> str | None:
    """The dtype of ``values`` when they hold complex numbers, else None.

    Checked before a conversion to float64, which would otherwise drop the
    imaginary part of a complex array with no more than a ``ComplexWarning``,
    or refuse a Python complex in an object array with a message that does not
    say so. A complex dtype counts even with every imaginary part zero, as in
    scikit-learn's ``check_array``.
    """
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):  # ragged or odd: the float conversion says why
        return None
    if array.dtype.kind == "c":
        return str(array.dtype)
    if array.dtype == object and any(
        isinstance(v, (complex, np.complexfloating)) for v in array.flat
    ):
        return "object"
    return None


def _as_finite_1d(values: ArrayLike, name: str) -> np.ndarray:
    kind = complex_kind(values)
    if kind is not None:
        raise ValueError(f"{name} must contain real numbers; got complex values ({kind}).")
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
