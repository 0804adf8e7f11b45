"""Splitting comparisons so that no test image was trained on: :class:`ComparisonKFold`.

A comparison names two images, so the images of a test comparison can also be
in training comparisons, and a model that has learnt their scores there ranks
them from memory. Splitting comparisons by row (``KFold``) leaks that way;
``GroupKFold`` cannot help, since a row belongs to two images.
:class:`ComparisonKFold` splits the *images* into folds instead: fold k tests
on the comparisons whose two images are both in image fold k and trains on
those whose two images are both outside it. Comparisons between a test image
and a training image are in neither (with k folds about 2(k - 1) / k² of them).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state

from skrank._estimator.comparisons import image_keys, pair_columns

__all__ = ["ComparisonKFold"]


class ComparisonKFold(BaseCrossValidator):
    """K folds of comparisons whose test images never appear in training.

    The distinct images of ``X`` (a path by its text, any other image by
    identity, as :class:`~skrank.CLIPPreferenceRanker` counts them) are dealt
    into ``n_splits`` folds; split ``k`` tests on the comparisons between two
    images of fold ``k`` and trains on the comparisons between two images of
    the other folds. Comparisons across the border are left out of both.

    Parameters
    ----------
    n_splits : int, default=5
        Number of image folds, at least 2.
    shuffle : bool, default=True
        Deal the images in a random order (else in order of appearance).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle.
    image_columns : tuple of two str, default=("image_a", "image_b")
        The image columns when ``X`` is a DataFrame (as the estimator's).

    Examples
    --------
    >>> from skrank.model_selection import ComparisonKFold
    >>> X = [("a.png", "b.png"), ("c.png", "d.png"), ("a.png", "c.png"), ("b.png", "d.png")]
    >>> cv = ComparisonKFold(n_splits=2, shuffle=False)
    >>> [(train.tolist(), test.tolist()) for train, test in cv.split(X)]
    [([1], [0]), ([0], [1])]
    """

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None, image_columns=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state
        self.image_columns = image_columns

    def _image_folds(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The image fold of each comparison's first and second image."""
        if not isinstance(self.n_splits, (int, np.integer)) or self.n_splits < 2:
            raise ValueError(f"n_splits={self.n_splits!r} is not valid; expected an integer >= 2")
        first, second = self.image_columns or ("image_a", "image_b")
        side_a, side_b, _ = pair_columns(X, (first, second, None))
        keys = image_keys(side_a + side_b)
        distinct = list(dict.fromkeys(keys))
        if len(distinct) < self.n_splits:
            raise ValueError(
                f"X has {len(distinct)} distinct images, fewer than n_splits={self.n_splits}"
            )
        order = np.arange(len(distinct))
        if self.shuffle:
            order = check_random_state(self.random_state).permutation(len(distinct))
        fold_of = {distinct[i]: n % self.n_splits for n, i in enumerate(order)}
        folds = np.array([fold_of[k] for k in keys])
        return folds[: len(side_a)], folds[len(side_a) :]

    def split(self, X, y=None, groups=None):
        """Yield (train, test) comparison indices for each image fold.

        Parameters
        ----------
        X : DataFrame or sequence of pairs
            The comparisons.
        y : ignored
        groups : ignored

        Yields
        ------
        train : ndarray
            Comparisons between two images outside the fold.
        test : ndarray
            Comparisons between two images of the fold.
        """
        fold_a, fold_b = self._image_folds(X)
        for k in range(self.n_splits):
            test = np.flatnonzero((fold_a == k) & (fold_b == k))
            train = np.flatnonzero((fold_a != k) & (fold_b != k))
            yield train, test

    def get_n_splits(self, X=None, y=None, groups=None):
        """The number of splits, ``n_splits``.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits
