"""What ``fit``, ``predict`` and ``score`` receive: images, instructions, groups, targets.

:func:`parse_inputs` splits ``X`` (a sequence or Series of images, or a
DataFrame with image, instruction and group columns) into per-row images,
instruction texts and groups; :func:`check_targets` checks ``y``;
:class:`TargetScaling` standardises targets per instruction and maps
predictions back to the units of ``y``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.exceptions import DataConversionWarning

from skrank._encoding.images import as_image_list
from skrank._instruction import DEFAULT_INSTRUCTION
from skrank._quote import shown
from skrank.metrics._inputs import complex_kind

__all__ = [
    "Columns",
    "DEFAULT_INSTRUCTION",
    "Inputs",
    "TargetScaling",
    "check_targets",
    "encode_groups",
    "instruction_codes",
    "paired_codes",
    "parse_inputs",
    "ranking_groups",
    "to_target_units",
    "warn_column_overrides",
]


@dataclass
class Inputs:
    """Per-row images, instruction texts (object array) and groups (or None).

    ``from_column`` is True when the texts were read from the DataFrame's
    instruction column (not from ``instruction`` or the default).
    """

    items: list
    instructions: np.ndarray
    groups: np.ndarray | None
    from_column: bool = False


class Columns(NamedTuple):
    """The DataFrame columns an estimator reads (``group_column`` may be None)."""

    image: object = "image"
    instruction: object = "instruction"
    group: object = None


DEFAULT_COLUMNS = Columns()


def parse_inputs(
    X,
    groups=None,
    *,
    instruction: str | None,
    columns: Columns = DEFAULT_COLUMNS,
    argument: str = "X",
    default: str | None = DEFAULT_INSTRUCTION,
) -> Inputs:
    """Split ``X`` into images, one instruction text per row, and groups.

    Rows take their instruction from ``instruction_column`` when ``X`` is a
    DataFrame that has it, else from ``instruction``, else ``default``.
    ``groups`` given explicitly wins over ``group_column``.

    Parameters
    ----------
    X : sequence of images, pandas Series or DataFrame
    groups : array-like of shape (n_samples,), optional
    instruction : str or None
    columns : Columns
        The DataFrame columns to read (``image_column``, ``instruction_column``
        and ``group_column`` of the estimator).
    argument : str, default="X"
        What to call ``X`` in error messages (``"images_b"`` for ``compare``).
    default : str or None, default=DEFAULT_INSTRUCTION
        The instruction of rows that have none; None refuses such rows (a
        ranker fitted on several instructions cannot guess which one is meant).

    Returns
    -------
    Inputs
    """
    instr, groups_from = None, "groups"
    image_column, instruction_column, group_column = columns
    if isinstance(X, pd.DataFrame):
        items = image_column_of(X, image_column, instruction_column, argument).tolist()
        if instruction_column in X.columns and instruction_column != _lone_column(X):
            column = _column(X, instruction_column, "instruction_column", argument)
            instr = column.to_numpy(dtype=object)
            _check_instructions(
                instr, column.index, f"instruction_column={shown(instruction_column)}"
            )
        if group_column is not None:
            column = _column(X, group_column, "group_column", argument)
            if groups is None:
                groups, groups_from = column, f"group_column={shown(group_column)}"
    else:
        if isinstance(X, (Mapping, Set)):
            # A dict would give its keys and a set an arbitrary order: never the rows meant.
            raise TypeError(
                f"{argument} is a {type(X).__name__}; pass a list, array or pandas Series of "
                "images, or a DataFrame (pandas.DataFrame(...) for a dict of columns)"
            )
        items = as_image_list(X)
    from_column = instr is not None
    if instr is None:
        if instruction is None:
            instruction = default
        if instruction is None:
            raise ValueError(
                f"{argument} names no instruction and instruction=None, but this ranker was "
                "fitted on several instructions: set instruction=, or pass a DataFrame with "
                f"an {shown(instruction_column)} column"
            )
        instr = np.full(len(items), instruction, dtype=object)
    if len(items) == 0:
        raise ValueError(f"{argument} holds no images")
    if groups is not None:
        groups = _check_groups(groups, len(items), groups_from)
    return Inputs(items, instr, groups, from_column)


def warn_column_overrides(
    instruction: str | None, column, parsed: Mapping[str, Inputs | None], stacklevel: int = 2
) -> None:
    """One warning when an instruction column overrides a ``instruction=`` that was set.

    ``parsed`` maps what a call names its inputs (``"X"``, ``"X_val"``) to them
    parsed; a call warns once however many of them read the column. Silent
    when ``instruction`` is None: the column is then the only instruction given.
    """
    read = [name for name, p in parsed.items() if p is not None and p.from_column]
    if instruction is None or not read:
        return
    warnings.warn(
        f"instruction_column={shown(column)} of {' and '.join(read)} gives each row its "
        f"instruction, so instruction={shown(instruction)} is not used; drop the column, or "
        "set instruction=None, to silence this warning",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def image_column_of(X, image_column="image", instruction_column="instruction", argument="X"):
    """The images of the DataFrame ``X``: its ``image_column``, or its only column.

    A one-column frame (what a ``ColumnTransformer`` passing the image column
    through gives with pandas output, under whatever name) is that column.
    """
    lone = _lone_column(X)
    if image_column not in X.columns and lone is not None and lone != instruction_column:
        return X.iloc[:, 0]
    return _column(X, image_column, "image_column", argument)


def _lone_column(X):
    """The name of the only column of ``X``, or None when it has more (or none)."""
    return X.columns[0] if X.shape[1] == 1 else None


def _column(X, name, option: str, argument: str):
    """Column ``name`` of the DataFrame ``X`` as a Series; refuses a missing or repeated name."""
    if name not in X.columns:
        raise ValueError(
            f"{option}={shown(name)} is not a column of {argument}; columns are "
            f"{shown(list(X.columns))}"
        )
    picked = X[name]
    if not hasattr(picked, "tolist"):  # two columns of that name (or a column level)
        n = picked.shape[1]
        raise ValueError(
            f"{option}={shown(name)} names {n} columns of {argument}: column names must be "
            "unique; rename or drop the duplicates"
        )
    return picked


def _rows(positions, index=None) -> str:
    """Row positions (and the DataFrame's labels for them, when these differ)."""
    positions = list(positions)
    shown = f"rows {positions[:10]}{' ...' if len(positions) > 10 else ''}"
    if index is not None and not index.equals(pd.RangeIndex(len(index))):
        shown += f" (index labels {index[positions[:10]].tolist()})"
    return shown


def _check_instructions(instr: np.ndarray, index, what: str) -> None:
    """Every row must hold a non-blank string; say which rows do not, and what they hold."""
    missing = [i for i, s in enumerate(instr) if not isinstance(s, str) and _is_missing(s)]
    if missing:
        raise ValueError(
            f"{what} has missing instructions (None/NaN) at {_rows(missing, index)}; "
            "every row needs an instruction"
        )
    other = [i for i, s in enumerate(instr) if not isinstance(s, str)]
    if other:
        kinds = sorted({type(instr[i]).__name__ for i in other})
        raise ValueError(
            f"{what} must hold strings, but {_rows(other, index)} hold {', '.join(kinds)} "
            f"(first: {shown(instr[other[0]])}); write each instruction as text"
        )
    blank = [i for i, s in enumerate(instr) if not s.strip()]
    if blank:
        raise ValueError(
            f"{what} has empty or whitespace-only instructions at {_rows(blank, index)} "
            f"(first: {shown(instr[blank[0]])})"
        )


def _is_missing(value) -> bool:
    """None, NaN, NaT or pandas.NA: what pandas reads an empty cell as."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(value))
    return False


def _check_groups(groups, n: int, what: str) -> np.ndarray:
    """``groups`` as an array of ``n`` labels, none missing (``what`` names their origin)."""
    index = groups.index if isinstance(groups, pd.Series) else None
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"{what} has shape {groups.shape}; expected ({n},)")
    missing = np.flatnonzero(pd.isna(groups)) if groups.dtype.kind in "fOmM" else []
    if len(missing):
        raise ValueError(
            f"{what} has {len(missing)} missing label(s) (None/NaN) at "
            f"{_rows(missing.tolist(), index)}; give every row a group"
        )
    return groups


def encode_groups(groups: np.ndarray | None, pair_scope: str = "all") -> np.ndarray | None:
    """Any hashable group labels (strings, ids) as integer codes for the tensors.

    ``pair_scope="group"`` needs groups, so None is refused there.
    """
    if groups is None:
        if pair_scope == "group":
            raise ValueError(
                "pair_scope='group' needs groups: pass groups= to fit or set "
                "group_column to a DataFrame column"
            )
        return None
    return np.unique(groups.astype(str), return_inverse=True)[1]


def check_targets(y, n: int, names: tuple[str, str] = ("X", "y")) -> np.ndarray:
    """``y`` as a finite float64 vector of length ``n``.

    A (n, 1) column is flattened with a ``DataConversionWarning``, as
    scikit-learn's regressors do. ``names`` are what messages call the images
    and the targets (``("X_val", "y_val")`` for a validation set).
    """
    x_name, name = names
    if y is None:
        raise ValueError(f"{name} is required: one numeric target per image")
    kind = complex_kind(y)  # before the conversion below, which would drop imaginary parts
    if kind is not None:  # a ValueError, as scikit-learn's for complex data
        raise ValueError(f"{name} must be real numbers; got complex values ({kind})")
    try:
        y = np.asarray(y, dtype=np.float64)
    except OverflowError as exc:  # Python integers beyond float64's range
        raise ValueError(
            f"{name} has values too large for float64 ({exc}); rescale {name}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric; {exc}") from None
    if y.ndim != 1:
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            y = y[:, 0]
        else:
            raise ValueError(f"{name} must be 1-D; got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{x_name} has {n} images but {name} has {len(y)} targets")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(
            f"{name} has {len(bad)} NaN/inf value(s), e.g. at rows {bad[:10].tolist()}"
        )
    return y


@dataclass
class TargetScaling:
    """Per-instruction target mean and scale; instructions sorted, rows as codes.

    ``codes`` indexes ``instructions`` for the rows it was fitted on.
    """

    instructions: list[str]
    means: np.ndarray
    scales: np.ndarray
    codes: np.ndarray

    @classmethod
    def fit(cls, y: np.ndarray, instruction_texts: np.ndarray) -> TargetScaling:
        """Standardisation of ``y`` within each instruction (at least 2 distinct values).

        Refuses an instruction whose targets cannot be standardised in float64:
        a spread so small, or so large, that their variance underflows or
        overflows (every metric and scorer on ``y`` squares deviations too).
        """
        instructions, codes = np.unique(instruction_texts.astype(str), return_inverse=True)
        instructions = instructions.tolist()
        means, scales = np.zeros(len(instructions)), np.ones(len(instructions))
        for k, text in enumerate(instructions):
            yk = y[codes == k]
            if len(yk) < 2 or yk.min() == yk.max():  # np.ptp can overflow
                raise ValueError(
                    f"instruction {shown(text)} has {len(yk)} sample(s) and "
                    f"{len(np.unique(yk))} distinct target value(s); at least 2 "
                    "of each are needed to learn a ranking"
                )
            means[k], scales[k] = _mean_std(yk)
            _check_spread(yk, means[k], scales[k], text)
        return cls(instructions, means, scales, codes)

    def keeping(self, instructions: list[str], means, scales) -> TargetScaling:
        """This scaling, with the mean and scale of each of ``instructions`` that it
        has replaced by ``means`` and ``scales`` (a ``warm_start`` fit keeps them)."""
        kept_means, kept_scales = self.means.copy(), self.scales.copy()
        for k, text in enumerate(self.instructions):
            if text in instructions:
                j = list(instructions).index(text)
                kept_means[k], kept_scales[k] = means[j], scales[j]
        return TargetScaling(self.instructions, kept_means, kept_scales, self.codes)

    def standardise(self, y: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """``y`` in standard units of each row's instruction (``codes``: the fitted rows')."""
        codes = self.codes if codes is None else codes
        return (y - self.means[codes]) / self.scales[codes]


# Standard deviations whose square is a normal float64: outside, the variance of
# y under- or overflows, so standardising (and any metric on y) loses it.
_MIN_SCALE = float(np.sqrt(np.finfo(np.float64).tiny))  # ~1.5e-154
_MAX_SCALE = float(np.sqrt(np.finfo(np.float64).max))  # ~1.3e154


def _mean_std(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of ``y``, free of under- and overflow in between.

    ``y`` is scaled by the power of two nearest its largest magnitude first;
    such a scaling is exact, so the results are bit for bit NumPy's wherever
    NumPy's own do not under- or overflow, and right where they do
    (y ~ 1e-200, whose squares are 0).
    """
    exponent = int(np.frexp(np.max(np.abs(y)))[1])
    unit = np.ldexp(y, -exponent)
    return float(np.ldexp(unit.mean(), exponent)), float(np.ldexp(unit.std(), exponent))


def _check_spread(y: np.ndarray, mean: float, scale: float, text: str) -> None:
    """Refuse targets whose spread float64 cannot standardise; say how to rescale them."""
    if scale < _MIN_SCALE:
        how = f", e.g. multiply it by 1e{int(np.ceil(-np.log10(scale)))}" if scale > 0 else ""
        raise ValueError(
            f"y for instruction {shown(text)} has a spread too small to standardise: its values "
            f"differ by at most {np.ptp(y):.3g} (std {scale:.3g}; the squares of deviations "
            f"under {_MIN_SCALE:.1e} vanish in float64); rescale y{how}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        z = (y - mean) / scale
    if not (np.isfinite(mean) and scale <= _MAX_SCALE and np.isfinite(z).all()):
        raise ValueError(
            f"y for instruction {shown(text)} spans too wide a range to standardise "
            f"(mean {mean:.3g}, std {scale:.3g}; float64 squares of deviations over "
            f"{_MAX_SCALE:.1e} overflow); rescale y (e.g. divide it by a power of ten)"
        )


def instruction_codes(instruction_texts: np.ndarray, known: list[str]) -> np.ndarray:
    """Index into ``known`` of each row's instruction; unseen instructions are refused."""
    lookup = {t: k for k, t in enumerate(known)}
    unknown = sorted({t for t in instruction_texts if t not in lookup})
    if unknown:
        raise ValueError(
            f"instruction(s) {unknown[:5]} were not seen in fit; this ranker knows {known}"
        )
    return np.array([lookup[t] for t in instruction_texts], dtype=np.int64)


def ranking_groups(instruction_texts: np.ndarray, groups: np.ndarray | None):
    """Keys of the row sets a ranking is scored within: instruction (and group).

    None when every row shares one key, so the score is one correlation.
    """
    keys = instruction_texts.astype(str)
    if groups is not None:
        keys = np.char.add(np.char.add(keys, "\x00"), groups.astype(str))
    return None if len(np.unique(keys)) == 1 else keys


def paired_codes(a: Inputs, b: Inputs, known: list[str]) -> np.ndarray:
    """Instruction codes of pairs (a[n], b[n]): as many of each, one instruction a pair."""
    if len(a.items) != len(b.items):
        raise ValueError(f"images_a has {len(a.items)} images but images_b has {len(b.items)}")
    codes = instruction_codes(a.instructions, known)
    if (codes != instruction_codes(b.instructions, known)).any():
        raise ValueError("compared images must share an instruction, pair by pair")
    return codes


def to_target_units(scores: np.ndarray, codes: np.ndarray, means, scales) -> np.ndarray:
    """Standardised scores back in the units of ``y``, per row's instruction."""
    return scores * scales[codes] + means[codes]
