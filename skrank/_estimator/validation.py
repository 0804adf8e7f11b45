"""A fit's validation rows: ``X_val``/``y_val`` and the named sets of ``validation_data``.

:func:`validation_set` checks a user's ``X_val`` and ``y_val``;
:func:`validation_sets` checks ``validation_data``, named sets that
scikit-learn's searches pass to every fit whole (they are not cut per fold
as ``X_val`` of ``len(X)`` rows is). Each becomes a :class:`Validation`:
images, instruction codes of the training rows' instructions, targets in
units and standardised with the training rows' scaling, and its own groups
and weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from skrank._bounds import MAX_STRING, MAX_VALIDATION_SETS, text_problem
from skrank._estimator.inputs import Inputs, TargetScaling, check_targets, encode_groups
from skrank._quote import shown
from skrank.metrics._inputs import check_sample_weight

__all__ = ["Validation", "validation_set", "validation_sets"]


@dataclass
class Validation:
    """Validation rows of the user's own: ``X_val`` (``name`` None) or a named set."""

    items: list
    codes: np.ndarray  # instruction codes of the fitted instructions
    y: np.ndarray  # targets, in the units of y
    y_std: np.ndarray  # targets standardised with the training rows' scaling
    name: str | None = None
    groups: np.ndarray | None = None  # integer codes: ranking scores within each
    weight: np.ndarray | None = None


def validation_set(
    parsed: Inputs | None, y_val, scaling: TargetScaling, name: str | None = None
) -> Validation | None:
    """``X_val`` (parsed) and ``y_val`` checked against the training rows, or None.

    Both or neither must be given; every validation instruction must be one
    the training rows have, and its targets are standardised with their
    scaling, so validation scores what training optimises. ``name``: the
    named set these rows are (messages say so), None for ``X_val``.
    """
    x_name, y_name = ("X_val", "y_val") if name is None else (f"{name!r}'s X", f"{name!r}'s y")
    if parsed is None and y_val is None:
        return None
    if parsed is None or y_val is None:
        given, missing = (x_name, y_name) if y_val is None else (y_name, x_name)
        raise ValueError(f"{given} was given without {missing}: pass both, or neither")
    y_val = check_targets(y_val, len(parsed.items), (x_name, y_name))
    if len(y_val) < 2:
        raise ValueError(
            f"{x_name} has {len(y_val)} image(s); a validation ranking needs at least 2"
        )
    known = {t: k for k, t in enumerate(scaling.instructions)}
    unknown = sorted({t for t in parsed.instructions if t not in known})
    if unknown:
        raise ValueError(
            f"{x_name} has instruction(s) {unknown[:5]} that the training rows do not; they "
            f"have {scaling.instructions}"
        )
    codes = np.array([known[t] for t in parsed.instructions], dtype=np.int64)
    y_std = scaling.standardise(y_val, codes)
    return Validation(parsed.items, codes, y_val, y_std, name)


_FORM = (
    "validation_data must be a dict {name: (X, y)} or a list of (name, X, y) tuples; "
    "each may end with a dict of its 'groups' and 'sample_weight'"
)


def _entries(validation_data) -> list[tuple]:
    """``validation_data`` as (name, X, y, options) tuples, in order."""
    if isinstance(validation_data, Mapping):
        pairs = [(name, value) for name, value in validation_data.items()]
        if not all(isinstance(v, tuple) and len(v) in (2, 3) for _, v in pairs):
            raise TypeError(f"{_FORM}; a dict's values must be (X, y) tuples")
        rows = [(name, *value) for name, value in pairs]
    elif isinstance(validation_data, (list, tuple)):
        rows = list(validation_data)
    else:
        raise TypeError(f"{_FORM}; got {type(validation_data).__name__}")
    out = []
    for row in rows:
        if not isinstance(row, tuple) or len(row) not in (3, 4):
            size = f" of {len(row)} items" if isinstance(row, (tuple, list)) else ""
            raise TypeError(f"{_FORM}; got an entry: a {type(row).__name__}{size}")
        options = row[3] if len(row) == 4 else {}
        if not isinstance(options, Mapping) or set(options) - {"groups", "sample_weight"}:
            raise TypeError(f"{_FORM}; got options {shown(options)}")
        out.append((row[0], row[1], row[2], options))
    return out


def _check_name(name, seen: set) -> None:
    if not isinstance(name, str) or not name or text_problem(name):
        raise ValueError(
            f"a validation set's name must be a non-empty string of valid Unicode of at most "
            f"{MAX_STRING} characters; got {shown(name)}"
        )
    if name in seen:
        raise ValueError(f"validation_data names {name!r} twice; names must be distinct")
    seen.add(name)


def validation_sets(
    validation_data, parse: Callable, scaling: TargetScaling, n_rows: int
) -> list[Validation]:
    """The named validation sets of ``validation_data``, checked (none for None).

    ``parse(X, groups, argument)`` parses a set's images as ``fit`` parses
    ``X`` (a DataFrame's instruction and group columns included; the set's
    ``groups`` option wins over its group column). ``n_rows`` is ``len(X)``:
    scikit-learn's searches cut a fit parameter of that length to each fold's
    training rows, so ``validation_data`` of as many sets as ``X`` has rows is
    refused (it may have been cut).
    """
    if validation_data is None:
        return []
    entries = _entries(validation_data)
    if len(entries) == n_rows:
        raise ValueError(
            f"validation_data has {len(entries)} sets, as many as X has rows: scikit-learn's "
            "searches cut a fit parameter of len(X) to each fold's rows, so these sets may "
            "have been cut; pass them in fewer sets"
        )
    if len(entries) > MAX_VALIDATION_SETS:
        raise ValueError(
            f"validation_data has {len(entries)} sets; at most {MAX_VALIDATION_SETS} are "
            "scored (each after every epoch)"
        )
    out, seen = [], set()
    for name, X, y, options in entries:
        _check_name(name, seen)
        parsed = parse(X, options.get("groups"), f"validation_data[{name!r}]")
        val = validation_set(parsed, y, scaling, name)
        val.groups = encode_groups(parsed.groups)
        weight = options.get("sample_weight")
        if weight is not None:
            val.weight = check_sample_weight(weight, len(val.y))
        out.append(val)
    return out
