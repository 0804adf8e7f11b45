"""The held-out split every example, test and benchmark uses: whole sources out."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["holdout_by_source"]


def holdout_by_source(groups: ArrayLike, every: int = 3) -> np.ndarray:
    """Boolean mask of the rows to hold out: those of every ``every``-th source.

    The distinct values of ``groups`` (the photo, person or scene each image
    comes from) are sorted and every ``every``-th one, starting with the
    first, is held out whole, so no source is on both sides of the split.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        The source of each row (``task.groups`` of a synthetic task).
    every : int, default=3
        Hold out one source in ``every``.

    Returns
    -------
    ndarray of bool, shape (n_samples,)
        True for held-out rows.

    Examples
    --------
    >>> from skrank.datasets import holdout_by_source
    >>> holdout_by_source(["a", "a", "b", "c", "d", "d"]).tolist()
    [True, True, False, False, True, True]
    """
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 2:
        raise ValueError(f"every={every!r} is not valid; expected an integer >= 2")
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be 1-D; got shape {groups.shape}")
    return np.isin(groups, np.unique(groups)[::every])
