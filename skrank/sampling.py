"""Which rows a fit trains on, batch by batch, and which it validates on.

:func:`epoch_batches` draws one epoch of batches (one instruction per batch,
balanced or uniform, whole groups with ``pair_scope="group"``);
:func:`validation_split` holds out the rows early stopping scores.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["balanced_weights", "epoch_batches", "validation_split"]


def validation_split(
    instr: np.ndarray, groups: np.ndarray | None, fraction: float | None, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows to train on and to validate on (None when ``fraction`` is None).

    Whole groups are held out when groups are known; otherwise the split is
    stratified by instruction when there are several.
    """
    idx = np.arange(len(instr))
    if fraction is None:
        return idx, None
    from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

    if groups is not None:
        splitter = GroupShuffleSplit(1, test_size=fraction, random_state=seed)
        train_idx, val_idx = next(splitter.split(idx, groups=groups))
    elif len(np.unique(instr)) > 1:
        splitter = StratifiedShuffleSplit(1, test_size=fraction, random_state=seed)
        train_idx, val_idx = next(splitter.split(idx, instr))
    else:
        perm = np.random.default_rng(seed).permutation(len(idx))
        n_val = max(2, int(round(fraction * len(idx))))
        train_idx, val_idx = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    if len(val_idx) < 2 or len(train_idx) < 2:
        raise ValueError(
            f"early_stopping=True with validation_fraction={fraction} leaves too few rows "
            "to train or validate"
        )
    return np.sort(train_idx), np.sort(val_idx)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Row weights 1 / (#distinct values × frequency of the row's value), summing to 1."""
    values, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    w = 1.0 / (len(values) * counts[inverse])
    return w / w.sum()


def epoch_batches(
    rng: np.random.Generator,
    instr: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    batch_size: int,
    sampling: str,
    pair_scope: str,
) -> list[np.ndarray]:
    """One epoch of row-index batches; every batch holds a single instruction.

    ``sampling="balanced"`` draws rows with replacement, weighted so every
    distinct target value is seen equally often; ``"uniform"`` is a shuffle.
    ``pair_scope="group"`` packs whole groups into batches (a group larger than
    a batch is split), so ranking pairs stay inside groups.
    """
    batches: list[np.ndarray] = []
    for k in np.unique(instr):
        rows = np.flatnonzero(instr == k)
        n_batches = max(1, math.ceil(len(rows) / batch_size))
        if pair_scope == "group":
            batches += _group_batches(rng, rows, groups[rows], batch_size)
            continue
        if sampling == "balanced":
            order = rng.choice(rows, size=len(rows), replace=True, p=balanced_weights(y[rows]))
        else:
            order = rng.permutation(rows)
        # Near-equal splits: no stray batch of one image, which would have no pair.
        batches += [b for b in np.array_split(order, n_batches) if len(b)]
    rng.shuffle(batches)
    return batches


def _group_batches(rng, rows, row_groups, batch_size) -> list[np.ndarray]:
    pieces = []
    for g in rng.permutation(np.unique(row_groups)):
        members = rng.permutation(rows[row_groups == g])
        n_split = max(1, math.ceil(len(members) / batch_size))
        pieces += [p for p in np.array_split(members, n_split) if len(p)]
    batches, current = [], []
    for piece in pieces:
        if current and sum(map(len, current)) + len(piece) > batch_size:
            batches.append(np.concatenate(current))
            current = []
        current.append(piece)
    if current:
        batches.append(np.concatenate(current))
    return batches
