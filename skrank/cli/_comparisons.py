"""What the commands share for comparisons: a CSV of two image columns and a winner column.

``skrank fit`` fits a CLIPPreferenceRanker on such a CSV, ``skrank evaluate`` scores
one with a preference model; ``skrank predict`` scores single images with it (through
:func:`skrank.cli._common.predict_scores`). Images are found as for every CSV
(:data:`skrank.cli._common.RELATIVE_PATHS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skrank._quote import shown
from skrank.cli._common import (
    CLIError,
    CSVImages,
    CSVReading,
    _rows,
    column,
    image_paths,
)

# The options that name a comparison's columns, by the attribute argparse gives each.
OPTIONS = {
    "image_a_column": "--image-a-column",
    "image_b_column": "--image-b-column",
    "winner_column": "--winner-column",
}
# The words a winner cell may hold (any letter case), as P(the first image ranks above).
WINNER_WORDS = {"a": 1.0, "b": 0.0, "tie": 0.5}
# How the estimator may name a failed image, by its comparison (X[3], first image: ...).
_BY_COMPARISON = re.compile(r"^X\[\d+\], (?:first|second) image: ")
WINNER_HELP = (
    "column saying which image ranks above: a (the first), b (the second) or tie, in "
    "any letter case; or a number in [0, 1], the probability that the first ranks above "
    "(1 as a, 0 as b, 0.5 a tie, 0.7 the share of annotators who chose the first)"
)


def given_options(args) -> list[str]:
    """The comparison options ``args`` gives, as their flags."""
    return [flag for dest, flag in OPTIONS.items() if getattr(args, dest, None) is not None]


def winners(df, name: str, csv: str, what: str = "--winner-column"):
    """Column ``name`` (which ``what`` named) as P(the first image ranks above), a float array.

    A cell is ``a``, ``b`` or ``tie`` (any case, spaces around ignored) or a
    number in [0, 1]; anything else (an empty cell too) is refused, naming the
    column, the first bad cell and its rows.
    """
    import numpy as np
    import pandas as pd

    raw = column(df, name, what, csv)
    words = raw.astype(str).str.strip().str.lower().map(WINNER_WORDS)
    numbers = pd.to_numeric(raw, errors="coerce")
    y = words.fillna(numbers).to_numpy(dtype=float)
    bad = np.flatnonzero(~((y >= 0) & (y <= 1)))  # NaN too: empty, or neither word nor number
    if len(bad):
        raise CLIError(
            f"{what} {shown(name)} has {len(bad)} value(s) that are not a, b, tie or a number "
            f"in [0, 1], first {shown(raw.iloc[bad[0]])}: {_rows(bad)}"
        )
    return y


@dataclass
class ComparisonImages(CSVReading):
    """The two image columns of a CSV of comparisons (see :class:`CSVImages`)."""

    a: CSVImages
    b: CSVImages

    @classmethod
    def of(cls, df, names: tuple, whats: tuple, csv: str) -> ComparisonImages:
        """The image paths of columns ``names`` (the first and second image's), which the
        options (or descriptions) ``whats`` named."""
        return cls(*(image_paths(df, n, w, csv) for n, w in zip(names, whats)))

    @property
    def paths(self) -> list:
        """Every cell's path, the first column's then the second's."""
        return self.a.paths + self.b.paths

    def frame(self, columns: tuple, instructions=None):
        """The comparisons as a DataFrame with the image ``columns`` (and the instructions,
        a ``(column, values)`` pair, when given)."""
        import pandas as pd

        # object, not pandas' string dtype: that refuses file names that are not UTF-8.
        data = {c: pd.Series(s.paths, dtype=object) for c, s in zip(columns, (self.a, self.b))}
        if instructions is not None:
            data[instructions[0]] = instructions[1]
        return pd.DataFrame(data)

    def unreadable(self, failures) -> str:
        """One line: how many could not be read, and the first, by its column, row and cell.

        The estimator numbers distinct images or comparisons, not cells: the
        first failure is found by its path, at the first cell that names it.
        """
        _, path, reason = failures[0]
        side = self.b if path not in self.a.paths and path in self.b.paths else self.a
        row = side.paths.index(path) if path in side.paths else len(side.given)
        reason = _BY_COMPARISON.sub("", reason)  # the CSV's row and column say it here
        return side.unreadable([(row, path, reason), *failures[1:]])


def metrics(y, p) -> dict:
    """How predicted probabilities ``p`` (that the first image ranks above) agree with ``y``.

    ``pairwise_accuracy``: the share of comparisons ordered as ``y`` says, a
    predicted tie as half (CLIPPreferenceRanker.score's rule); ``log_loss``:
    the cross-entropy of ``y`` under ``p`` (log 2, 0.693, is chance); ``brier``:
    the mean squared difference (0.25 is chance).
    """
    import numpy as np

    pred = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))
    agree = y * (pred == 1.0) + (1 - y) * (pred == 0.0) + 0.5 * (pred == 0.5)
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "pairwise_accuracy": float(agree.mean()),
        "log_loss": float(-(y * np.log(q) + (1 - y) * np.log1p(-q)).mean()),
        "brier": float(((p - y) ** 2).mean()),
    }
