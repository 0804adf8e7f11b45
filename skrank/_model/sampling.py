"""Which rows a fit trains on, batch by batch, and which it validates on.

:func:`epoch_batches` draws one epoch of batches (:class:`Batch`) as the reference code
does (Yu et al., ``training/data.py``, ``CsvDataset`` with ``sample_type="rank"``):
each batch takes one instruction drawn uniformly, distinct rows of it drawn
balanced over target bins (or uniformly), whole groups with
``pair_scope="group"``, and optionally a share of *negatives*, images of the
other instructions relabelled with the target 0. :func:`validation_split`
holds out the rows early stopping scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

__all__ = [
    "N_BINS",
    "Batch",
    "BatchPlan",
    "balanced_weights",
    "epoch_batches",
    "negative_count",
    "target_bins",
    "validation_split",
]

# "balanced" sampling balances over at most this many target levels per
# instruction: the distinct values when there are no more (counts, grades,
# ratings), else this many equal-frequency quantile bins.
N_BINS = 20


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


def target_bins(y: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The bin of each target (codes 0, 1, ...): what ``"balanced"`` balances over.

    At most ``n_bins`` distinct values: one bin per value. More (continuous
    targets): ``n_bins`` equal-frequency quantile bins; tied values always
    share a bin, so a value held by many rows (a spike at 0) is one bin, and
    bins left empty by ties are dropped.
    """
    values, inverse = np.unique(y, return_inverse=True)
    if len(values) <= n_bins:
        return inverse.reshape(-1)
    edges = np.quantile(y, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.unique(np.searchsorted(edges, y, side="right"), return_inverse=True)[1].reshape(-1)


def balanced_weights(y: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Row weights 1 / (#bins × rows in the row's bin), summing to 1 (:func:`target_bins`)."""
    bins = target_bins(y, n_bins)
    counts = np.bincount(bins)
    w = 1.0 / (len(counts) * counts[bins])
    return w / w.sum()


def negative_count(batch_size: int, fraction: float, n_instructions: int) -> int:
    """Negatives per batch: ``round(fraction · batch_size)``, at most ``batch_size - 2``.

    0 with a single instruction (there are no other instructions to take them
    from); two rows of the batch's own instruction always remain, so it keeps a
    pair to rank.
    """
    if n_instructions < 2 or fraction <= 0:
        return 0
    return max(0, min(int(round(fraction * batch_size)), batch_size - 2))


@dataclass
class Batch:
    """One optimiser step's rows: distinct, of one instruction, negatives last.

    ``rows`` index the arrays given to :func:`epoch_batches`; ``targets`` are
    what the losses fit, standardised: the rows' own, except that the last
    ``n_negative`` rows (of other instructions) take the value of a target 0
    in this instruction's units. A batch indexes, converts and measures like
    its ``rows`` array (``instr[batch]``, ``batch[i]``, ``len(batch)``).
    """

    rows: np.ndarray
    targets: np.ndarray
    instruction: int
    n_negative: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item):
        return self.rows[item]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.rows, dtype=dtype)


class BatchPlan(NamedTuple):
    """How :func:`epoch_batches` fills batches: the ``CLIPRanker`` parameters of these names."""

    batch_size: int
    sampling: str = "balanced"  # "balanced" or "uniform"
    pair_scope: str = "all"  # "all" or "group"
    negative_fraction: float = 0.0


def epoch_batches(
    rng: np.random.Generator,
    instr: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    plan: BatchPlan,
    zero: np.ndarray | None = None,
) -> list[Batch]:
    """One epoch of batches, each of distinct rows and a single instruction.

    As the reference: every batch draws its instruction uniformly (not in
    proportion to its rows), so a rare instruction trains as often as a common
    one; an epoch has as many batches as one instruction at a time would
    give, the sum over instructions of ceil(rows / ``batch_size``) (with
    ``pair_scope="group"``, of the batches its groups pack into).

    No row is ever twice in a batch (a duplicate is a self-pair for the
    ranking loss and a double weight for the regression); across batches rows
    repeat. ``sampling="balanced"`` draws each batch by successive sampling,
    each next row with probability proportional to its
    :func:`balanced_weights` among the rows not yet in the batch (the
    reference's ``np.random.choice(..., replace=False, p=...)``). Over an
    epoch every target bin is then seen about equally often, as far as
    distinctness allows: a bin with fewer rows than its share of a batch is
    in every batch, once. ``"uniform"`` sweeps each instruction's rows in
    shuffled order, every row once per sweep. The batches of an instruction
    have near-equal sizes, so no stray batch of one image (which has no pair)
    is drawn.

    ``pair_scope="group"`` packs whole groups into batches (a group larger
    than a batch is split), so ranking pairs stay inside groups. Balanced:
    the groups (pieces) are drawn with replacement, each with probability
    proportional to its rows' mean balanced weight, and packed in that order,
    a piece already in the batch skipped. Uniform: shuffled groups, each once
    per sweep.

    ``negative_fraction`` (several instructions only): ``negative_count`` rows
    of each batch are drawn uniformly, without replacement, from the rows of
    the other instructions; their target is ``zero[k]``, a target of 0 in
    instruction ``k``'s standardised units (None: 0.0 for every instruction).

    Parameters
    ----------
    rng : numpy.random.Generator
    instr : ndarray of shape (n,)
        Instruction code of each row; codes index ``zero``.
    y : ndarray of shape (n,)
        Targets, standardised per instruction.
    groups : ndarray of shape (n,) or None
        Group codes; needed with ``pair_scope="group"``.
    plan : BatchPlan
        ``batch_size``, ``sampling`` ("balanced" or "uniform"), ``pair_scope``
        ("all" or "group") and ``negative_fraction``.
    zero : ndarray of shape (n_instructions,), default=None

    Returns
    -------
    list of Batch
    """
    batch_size, sampling, pair_scope, negative_fraction = plan
    codes = np.unique(instr)
    n_neg = negative_count(batch_size, negative_fraction, len(codes))
    zero = np.zeros(int(codes.max()) + 1) if zero is None else np.asarray(zero, dtype=float)
    streams = {}
    for k in codes:
        rows = np.flatnonzero(instr == k)
        room = batch_size - min(n_neg, len(instr) - len(rows))
        weights = balanced_weights(y[rows]) if sampling == "balanced" else None
        if pair_scope == "group":
            streams[k] = _GroupStream(rows, groups[rows], weights, room)
        else:
            streams[k] = _RowStream(rows, weights, room)
    # As many steps as without negatives: rows / batch_size, one instruction at a time.
    packed = groups if pair_scope == "group" else None
    n_steps = sum(_n_batches(instr == k, packed, batch_size) for k in codes)
    if len(codes) > 1:
        order = codes[rng.integers(len(codes), size=n_steps)]
    else:
        order = np.full(n_steps, codes[0])
    batches = []
    for k in order:
        stream = streams[k]
        positives = stream.draw(rng)
        n_negative = batch_size - stream.room
        negatives = _other_rows(rng, stream.rows, len(instr), n_negative)
        targets = np.concatenate([y[positives], np.full(n_negative, zero[k])])
        rows = np.concatenate([positives, negatives])
        batches.append(Batch(rows, targets, int(k), n_negative))
    return batches


def _other_rows(rng, rows: np.ndarray, n: int, size: int) -> np.ndarray:
    """``size`` distinct rows of ``range(n)`` not in the sorted ``rows``, uniformly.

    Draws positions among the n - len(rows) others and maps them to rows
    (the j-th other row is j + the number of ``rows`` before it), so no list
    of the other rows is ever built.
    """
    if size == 0:
        return rows[:0]
    picked = rng.choice(n - len(rows), size=size, replace=False)
    return picked + np.searchsorted(rows - np.arange(len(rows)), picked, side="right")


def _successive(rng, rows: np.ndarray, weights: np.ndarray, cdf: np.ndarray, size: int):
    """``size`` distinct rows by successive sampling: each next row drawn with
    probability ∝ its weight among the rows not drawn yet.

    Rows are drawn with replacement (``cdf``: the cumulative weights) and a row
    already drawn is skipped, which is that distribution at O(size · log n).
    Should the rows drawn hold nearly all the weight, the rest are finished by
    Efraimidis and Spirakis keys (the smallest Exp(1) / weight), the same
    distribution again.
    """
    n = len(rows)
    if size >= n:
        return rng.permutation(rows)
    chosen: dict[int, None] = {}
    for _ in range(4):
        u = rng.random(2 * (size - len(chosen))) * cdf[-1]
        for i in np.minimum(np.searchsorted(cdf, u, side="right"), n - 1).tolist():
            chosen.setdefault(i)
            if len(chosen) == size:
                return rows[list(chosen)]
    rest = np.setdiff1d(np.arange(n), list(chosen))
    keys = rng.exponential(size=len(rest)) / weights[rest]
    more = rest[np.argsort(keys)[: size - len(chosen)]]
    return rows[np.concatenate([list(chosen), more]).astype(np.int64)]


def _near_equal_sizes(n: int, room: int) -> list[int]:
    """Sizes of ceil(n / room) near-equal parts of n (np.array_split's)."""
    parts = max(1, math.ceil(n / room))
    base, extra = divmod(n, parts)
    return [base + 1] * extra + [base] * (parts - extra)


class _RowStream:
    """Batches of one instruction's rows (``pair_scope="all"``), drawn one at a time."""

    def __init__(self, rows: np.ndarray, weights: np.ndarray | None, room: int):
        self.rows, self.weights, self.room = rows, weights, room
        self.cdf = None if weights is None else np.cumsum(weights)
        self.sizes = _near_equal_sizes(len(rows), room)
        self.turn = 0
        self.sweep: list[np.ndarray] = []

    def draw(self, rng) -> np.ndarray:
        if self.weights is not None:  # balanced: every batch a fresh successive sample
            size = self.sizes[self.turn % len(self.sizes)]
            self.turn += 1
            return _successive(rng, self.rows, self.weights, self.cdf, size)
        if not self.sweep:  # uniform: the next part of a shuffle, reshuffled when used up
            cuts = np.cumsum(self.sizes)[:-1]
            self.sweep = np.split(rng.permutation(self.rows), cuts)[::-1]
        return self.sweep.pop()


def _n_batches(selected: np.ndarray, groups: np.ndarray | None, batch_size: int) -> int:
    """Batches of one instruction's rows (``selected``) in an epoch, without a draw.

    ceil(rows / batch_size); by groups (``groups`` not None), the batches its
    groups make when split to fit and packed in order.
    """
    if groups is None:
        return max(1, math.ceil(int(selected.sum()) / batch_size))
    sizes = np.unique(groups[selected], return_counts=True)[1]
    parts = -(-sizes // batch_size)
    first = np.repeat(np.cumsum(parts) - parts, parts)  # each piece's group's first piece
    within = np.arange(parts.sum()) - first
    g_sizes, g_parts = np.repeat(sizes, parts), np.repeat(parts, parts)
    piece_sizes = g_sizes // g_parts + (within < g_sizes % g_parts)
    return len(_pack(range(len(piece_sizes)), piece_sizes.tolist(), batch_size))


class _GroupStream:
    """Batches of whole groups of one instruction (``pair_scope="group"``).

    The groups are cut once into pieces that fit a batch (near-equal parts of
    a group larger than one, its rows shuffled); each sweep orders the pieces
    (shuffled, or drawn by weight) and packs them.
    """

    def __init__(self, rows, row_groups, weights: np.ndarray | None, room: int):
        self.rows, self.room, self.weights = rows, room, weights
        self.row_groups = row_groups
        self.pieces: list[np.ndarray] | None = None
        self.ready: list[np.ndarray] = []

    def _cut(self, rng) -> None:
        n = len(self.rows)
        order = np.lexsort((rng.random(n), self.row_groups))  # by group, shuffled within
        groups = self.row_groups[order]
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        sizes = np.diff(np.r_[starts, n])
        parts = -(-sizes // self.room)
        position = np.arange(n) - np.repeat(starts, sizes)
        part = position * np.repeat(parts, sizes) // np.repeat(sizes, sizes)
        cuts = np.flatnonzero(np.r_[True, (groups[1:] != groups[:-1]) | (part[1:] != part[:-1])])
        self.pieces = np.split(self.rows[order], cuts[1:])
        self.sizes = np.diff(np.r_[cuts, n]).tolist()
        if self.weights is not None:  # a piece weighs its rows' mean weight
            total = np.add.reduceat(self.weights[order], cuts) / np.diff(np.r_[cuts, n])
            self.p = total / total.sum()

    def draw(self, rng) -> np.ndarray:
        if not self.ready:
            if self.pieces is None:
                self._cut(rng)
            if self.weights is None:  # uniform: each piece once a sweep, in shuffled order
                sequence = rng.permutation(len(self.pieces)).tolist()
            else:  # balanced: pieces drawn with replacement, by their rows' mean weight
                sequence = rng.choice(len(self.pieces), size=len(self.pieces), p=self.p).tolist()
            packed = _pack(sequence, self.sizes, self.room)
            self.ready = [np.concatenate([self.pieces[i] for i in b]) for b in packed][::-1]
        return self.ready.pop()


def _pack(sequence, sizes, room: int) -> list[list[int]]:
    """The items of ``sequence`` packed in order into batches of at most ``room`` rows.

    ``sizes[item]`` is an item's row count. A batch closes when the next item
    does not fit; an item already in the open batch is skipped, so no piece
    (and no row) is ever twice in one batch.
    """
    batches, current, members, used = [], [], set(), 0
    for item in sequence:
        if item in members:
            continue
        if current and used + sizes[item] > room:
            batches.append(current)
            current, members, used = [], set(), 0
        current.append(item)
        members.add(item)
        used += sizes[item]
    if current:
        batches.append(current)
    return batches
