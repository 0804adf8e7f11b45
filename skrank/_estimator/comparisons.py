"""What a preference estimator receives: comparisons of two images, and their labels.

:func:`parse_comparisons` turns ``X`` (a DataFrame with two image columns and
optionally an instruction column, or a sequence of ``(image_a, image_b)``
pairs) into the distinct images it names and, per comparison, the indices of
its two images and its instruction; :func:`check_labels` checks ``y``, the
probability that the first image ranks above the second. :func:`image_keys`
says which inputs are the same image (a path by its text, any other input by
identity), for the estimator and for :class:`skrank.model_selection.ComparisonKFold`.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import pandas as pd

from skrank._estimator.inputs import check_targets
from skrank._quote import shown

__all__ = [
    "Parsed",
    "check_labels",
    "failed_rows",
    "image_keys",
    "pair_columns",
    "parse_comparisons",
]


class Parsed(NamedTuple):
    """Comparisons parsed: distinct (image, instruction) items, both sides' indices
    into them, and the instructions of the items and of the comparisons."""

    items: list  # the distinct images (an image under two instructions is two items)
    item_instructions: np.ndarray  # the instruction of each item (object array of str)
    a: np.ndarray  # index into items of each comparison's first image
    b: np.ndarray  # ... and of its second
    instructions: np.ndarray  # per comparison (object array of str)


def pair_columns(X, columns, argument: str = "X") -> tuple[list, list, np.ndarray | None]:
    """The two sides of ``X`` as lists, and its instruction column (or None).

    ``columns`` is ``(image_a, image_b, instruction)`` column names for a
    DataFrame; any other ``X`` must be a sequence of pairs (or an array of
    shape (n, 2)).
    """
    first, second, instruction = columns
    if isinstance(X, pd.DataFrame):
        missing = [c for c in (first, second) if c not in X.columns]
        if missing:
            raise ValueError(
                f"{argument} has no column {shown(missing[0])}: a DataFrame of comparisons "
                f"needs the image columns {shown(first)} and {shown(second)} (image_columns); "
                f"it has {list(X.columns)[:10]}"
            )
        texts = X[instruction].to_numpy(dtype=object) if instruction in X.columns else None
        return X[first].tolist(), X[second].tolist(), texts
    if isinstance(X, (str, bytes, os.PathLike)) or not hasattr(X, "__len__"):
        raise TypeError(
            f"{argument} must be a DataFrame with two image columns or a sequence of "
            f"(image_a, image_b) pairs; got {type(X).__name__}"
        )
    rows = list(X)
    bad = next((i for i, r in enumerate(rows) if not _is_pair(r)), None)
    if bad is not None:
        raise ValueError(
            f"{argument}[{bad}] is not a pair of images: a comparison is (image_a, image_b); "
            f"got {type(rows[bad]).__name__}"
        )
    return [r[0] for r in rows], [r[1] for r in rows], None


def _is_pair(row) -> bool:
    if isinstance(row, (str, bytes, os.PathLike)):
        return False
    try:
        return len(row) == 2
    except TypeError:
        return False


def image_keys(items: list) -> list:
    """A key per image: equal keys mean the same image (a path's text, else the object)."""
    return [
        ("path", os.fspath(v)) if isinstance(v, (str, os.PathLike)) else ("object", id(v))
        for v in items
    ]


def parse_comparisons(X, columns, instruction: str | None, default: str | None, argument="X"):
    """``X`` as :class:`Parsed`; rows without an instruction get ``instruction`` or
    ``default`` (None: every row must have one, else a ValueError)."""
    side_a, side_b, texts = pair_columns(X, columns, argument)
    if not side_a:
        raise ValueError(f"{argument} holds no comparisons")
    texts = _instructions(texts, len(side_a), instruction, default, argument)
    items, item_texts, index = [], [], {}
    codes = np.empty(2 * len(side_a), dtype=np.int64)
    both = side_a + side_b
    for n, (key, item) in enumerate(zip(image_keys(both), both)):
        text = texts[n % len(side_a)]
        if (key, text) not in index:
            index[key, text] = len(items)
            items.append(item)
            item_texts.append(text)
        codes[n] = index[key, text]
    a, b = codes[: len(side_a)], codes[len(side_a) :]
    return Parsed(items, np.array(item_texts, dtype=object), a, b, texts)


def _instructions(texts, n: int, instruction, default, argument: str) -> np.ndarray:
    """Each comparison's instruction: its column's, else ``instruction``, else ``default``."""
    fallback = instruction if instruction is not None else default
    if texts is None:
        if fallback is None:
            raise ValueError(
                f"{argument} gives no instruction and the estimator knows several; pass an "
                "instruction column"
            )
        return np.full(n, fallback, dtype=object)
    texts = np.array([fallback if _missing(t) else t for t in texts], dtype=object)
    if any(not isinstance(t, str) for t in texts):
        raise ValueError(f"{argument} has rows without an instruction (a string)")
    return texts


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def check_labels(y, n: int) -> np.ndarray:
    """``y``: per comparison, P(the first image ranks above the second), in [0, 1].

    1 and 0 are verdicts, 0.5 a tie, anything between the share of annotators
    who preferred the first image (or a probability). Booleans are read as 1/0.
    """
    y = check_targets(y, n, ("X", "y"))
    bad = np.flatnonzero((y < 0) | (y > 1))
    if len(bad):
        raise ValueError(
            f"y must hold, per comparison, the probability that the first image ranks above "
            f"the second, in [0, 1] (1: first, 0: second, 0.5: a tie); y[{bad[0]}] is "
            f"{y[bad[0]]!r}"
        )
    return y


def failed_rows(failures: list, parsed: Parsed) -> list:
    """Image failures (item index, path, reason) as the comparisons that hold them.

    Each failed image is named once, at the first comparison that has it
    (``X[row]``, first or second image), as the row a user can find in ``X``.
    """
    out = []
    for i, path, reason in failures:
        side, rows = "first", np.flatnonzero(parsed.a == i)
        if not len(rows):
            side, rows = "second", np.flatnonzero(parsed.b == i)
        row = int(rows[0])
        out.append((row, path, f"X[{row}], {side} image: {reason}"))
    return out
