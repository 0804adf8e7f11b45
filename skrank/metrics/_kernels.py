"""Metric kernels: validated 1-D float arrays in, a float (nan when undefined) out.

:mod:`skrank.metrics` validates inputs and averages the kernels over groups.
"""

import numpy as np
from scipy.stats import kendalltau, rankdata


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


def _spearman(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None = None) -> float:
    if weight is None:
        return _pearson(rankdata(y_true), rankdata(y_pred))
    keep = weight > 0
    y_true, y_pred, weight = y_true[keep], y_pred[keep], weight[keep]
    if _is_constant(y_true) or _is_constant(y_pred):
        return float("nan")
    return _weighted_pearson(
        _weighted_ranks(y_true, weight), _weighted_ranks(y_pred, weight), weight
    )


def _weighted_ranks(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted mid-ranks: the weight below each value plus half the weight tied with it.

    With integer weights this is the average rank of the rows repeated that
    many times, less a constant, so the weighted Spearman equals the plain one
    on the repeated rows.
    """
    values, inverse = np.unique(x, return_inverse=True)
    inverse = inverse.ravel()
    per_value = np.bincount(inverse, weights=weight, minlength=values.size)
    below = np.concatenate(([0.0], np.cumsum(per_value)[:-1]))
    return (below + per_value / 2)[inverse]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    w = weight / weight.sum()
    xc = x - np.dot(w, x)
    yc = y - np.dot(w, y)
    vx, vy = np.dot(w, xc * xc), np.dot(w, yc * yc)
    if vx <= 0 or vy <= 0:
        return float("nan")
    return float(np.clip(np.dot(w, xc * yc) / np.sqrt(vx * vy), -1.0, 1.0))


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
    """Kendall's tau-b, scipy's: it equalled skrank's own pair count to 2.2e-16 on tied,
    constant and 100,000-long inputs, and ran 3 to 13 times faster at 100,000
    (``benchmarks/experiments/library_kernels.py``). A constant input is NaN before
    scipy sees it, so no version of scipy warns."""
    if _is_constant(y_true) or _is_constant(y_pred):
        return float("nan")
    tau, _ = kendalltau(y_true, y_pred, variant="b")
    return float(np.clip(tau, -1.0, 1.0))


def _pairwise_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if _is_constant(y_true):
        return float("nan")
    n_pairs, tied_true, tied_pred, tied_both, discordant = _pair_counts(y_true, y_pred)
    untied = n_pairs - tied_true
    only_pred_tied = tied_pred - tied_both
    correct = untied - only_pred_tied - discordant + 0.5 * only_pred_tied
    return float(correct / untied)


def _dcg(gains: np.ndarray, scores: np.ndarray, k: int) -> float:
    """DCG@k of ``gains`` ranked by ``scores`` (descending); tied scores share their gain.

    A block of tied scores gets the mean gain of the block at each of its
    positions, so the value does not depend on how ties happen to be ordered.
    """
    discount = np.zeros(gains.size)
    top = min(k, gains.size)
    discount[:top] = 1.0 / np.log2(np.arange(2, top + 2))
    values, inverse = np.unique(-scores, return_inverse=True)  # best score first
    inverse = inverse.ravel()
    block_gain = np.bincount(inverse, weights=gains) / np.bincount(inverse)
    block_size = np.bincount(inverse)
    starts = np.concatenate(([0], np.cumsum(block_size)[:-1]))
    cumulative = np.concatenate(([0.0], np.cumsum(discount)))
    block_discount = cumulative[starts + block_size] - cumulative[starts]
    return float(np.dot(block_gain, block_discount))


def _ndcg(y_true: np.ndarray, y_pred: np.ndarray, k: int | None = None) -> float:
    """NDCG@k with linear gain ``y_true``; nan when no item is relevant."""
    k = y_true.size if k is None else k
    ideal = _dcg(y_true, y_true, k)
    if ideal == 0:
        return float("nan")
    return float(np.clip(_dcg(y_true, y_pred, k) / ideal, 0.0, 1.0))


def _round_to_classes(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each value of ``y`` replaced by the nearest of ``classes`` (sorted, unique, non-empty).

    Values outside the range go to the end classes; a value exactly as far from
    two neighbouring classes goes to the lower one.
    """
    if classes.size == 1:
        return np.full(y.shape, classes[0])
    upper = np.clip(np.searchsorted(classes, y, side="left"), 1, classes.size - 1)
    lower = upper - 1
    # Strictly closer to the upper class, or the lower class: ties go down.
    go_up = (classes[upper] - y) < (y - classes[lower])
    return classes[np.where(go_up, upper, lower)]


def _weighted_mean(values: np.ndarray, weight: np.ndarray | None) -> float:
    if weight is None:
        return float(np.mean(values)) if values.size else float("nan")
    total = weight.sum()
    return float(np.dot(weight, values) / total) if total > 0 else float("nan")


def _exact_accuracy(
    y_true: np.ndarray, y_class: np.ndarray, weight: np.ndarray | None = None
) -> float:
    """Share (weighted) of exact matches; nan when there is no sample (or no weight)."""
    return _weighted_mean((y_true == y_class).astype(np.float64), weight)


def _absolute_error(
    y_true: np.ndarray, y_class: np.ndarray, weight: np.ndarray | None = None
) -> float:
    """Mean (weighted) absolute error; nan when there is no sample (or no weight)."""
    return _weighted_mean(np.abs(y_true - y_class), weight)
