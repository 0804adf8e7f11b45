"""What ``fit``, ``predict`` and ``score`` receive: images, instructions, groups, targets.

:func:`parse_inputs` splits ``X`` (a sequence or Series of images, or a
DataFrame with image, instruction and group columns) into per-row images,
instruction texts and groups; :func:`check_targets` checks ``y``;
:class:`TargetScaling` standardises targets per instruction and maps
predictions back to the units of ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skrank.images import as_image_list

__all__ = [
    "Inputs",
    "TargetScaling",
    "check_targets",
    "encode_groups",
    "instruction_codes",
    "parse_inputs",
    "ranking_groups",
    "to_target_units",
]


@dataclass
class Inputs:
    """Per-row images, instruction texts (object array) and groups (or None)."""

    items: list
    instructions: np.ndarray
    groups: np.ndarray | None


def parse_inputs(
    X,
    groups=None,
    *,
    instruction: str | None,
    image_column="image",
    instruction_column="instruction",
    group_column=None,
) -> Inputs:
    """Split ``X`` into images, one instruction text per row, and groups.

    Rows take their instruction from ``instruction_column`` when ``X`` is a
    DataFrame that has it, else from ``instruction``. ``groups`` given
    explicitly wins over ``group_column``.
    """
    import pandas as pd

    instr = None
    if isinstance(X, pd.DataFrame):
        if image_column not in X.columns:
            raise ValueError(
                f"image_column={image_column!r} is not a column of X; columns are {list(X.columns)}"
            )
        items = X[image_column].tolist()
        if instruction_column in X.columns:
            instr = X[instruction_column].to_numpy(dtype=object)
            bad = [i for i, s in enumerate(instr) if not isinstance(s, str) or not s.strip()]
            if bad:
                raise ValueError(
                    f"instruction_column={instruction_column!r} has missing "
                    f"or empty instructions at rows {bad[:10]}"
                )
        if group_column is not None:
            if group_column not in X.columns:
                raise ValueError(f"group_column={group_column!r} is not a column of X")
            if groups is None:
                groups = X[group_column].to_numpy()
    else:
        items = as_image_list(X)
    if instr is None:
        if instruction is None:
            raise ValueError(
                "instruction=None: give an instruction, or a DataFrame with an "
                f"{instruction_column!r} column"
            )
        instr = np.full(len(items), instruction, dtype=object)
    if len(items) == 0:
        raise ValueError("X holds no images")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(items),):
            raise ValueError(f"groups has shape {groups.shape}; expected ({len(items)},)")
    return Inputs(items, instr, groups)


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


def check_targets(y, n: int) -> np.ndarray:
    """``y`` as a finite float64 vector of length ``n``; a (n, 1) column is flattened."""
    if y is None:
        raise ValueError("y is required: one numeric target per image")
    try:
        if np.iscomplexobj(y):
            raise TypeError(f"y must be real numbers; got complex values ({np.asarray(y).dtype})")
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"y must be numeric; {exc}") from None
    if y.ndim != 1:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        else:
            raise ValueError(f"y must be 1-D; got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"X has {n} images but y has {len(y)} targets")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(f"y has {len(bad)} NaN/inf value(s), e.g. at rows {bad[:10].tolist()}")
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
        """Standardisation of ``y`` within each instruction (at least 2 distinct values)."""
        instructions, codes = np.unique(instruction_texts.astype(str), return_inverse=True)
        instructions = instructions.tolist()
        means, scales = np.zeros(len(instructions)), np.ones(len(instructions))
        for k, text in enumerate(instructions):
            yk = y[codes == k]
            if len(yk) < 2 or np.ptp(yk) == 0:
                raise ValueError(
                    f"instruction {text!r} has {len(yk)} sample(s) and "
                    f"{len(np.unique(yk))} distinct target value(s); at least 2 "
                    "of each are needed to learn a ranking"
                )
            means[k], scales[k] = yk.mean(), yk.std()
            if not (np.isfinite(means[k]) and np.isfinite(scales[k])):
                raise ValueError(
                    f"y for instruction {text!r} spans too wide a range to standardise "
                    f"(mean {means[k]}, std {scales[k]}); rescale y"
                )
        return cls(instructions, means, scales, codes)

    def standardise(self, y: np.ndarray) -> np.ndarray:
        """``y`` of the fitted rows in standard units of their instruction."""
        return (y - self.means[self.codes]) / self.scales[self.codes]


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


def to_target_units(scores: np.ndarray, codes: np.ndarray, means, scales) -> np.ndarray:
    """Standardised scores back in the units of ``y``, per row's instruction."""
    return scores * scales[codes] + means[codes]
