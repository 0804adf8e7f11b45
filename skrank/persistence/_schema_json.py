"""Checked JSON values for the model-file schema (:mod:`skrank.persistence._schema`).

The leaves every field is checked with (bounded integers and reals, non-empty
text, bounded lists, objects with known keys) and the parse of one JSON
document with its size, depth, string length and integer width bounded before
any typed check reads it. Every refusal is a :class:`SchemaError` naming the
field; messages quote a file's values short and escaped (:func:`_shown`).
"""

from __future__ import annotations

import json

from skrank._bounds import MAX_INT, text_problem
from skrank._estimator.params import Interval


class SchemaError(ValueError):
    """A model file (or a ranker being saved) breaks the schema at ``field``."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Ranges are the parameter table's own Interval; JSON holds no numpy scalars, so
# only the messages differ from a parameter's.
def _int(value, field: str, low: int, high: int) -> int:
    if not Interval(int, low, high).accepts(value):
        raise SchemaError(field, f"{_shown(value)} is not an integer in [{low}, {high}]")
    return value


def _real(value, field: str, low: float, high: float, low_open: bool = False) -> float:
    if not Interval(float, low, high, closed="right" if low_open else "both").accepts(value):
        where = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise SchemaError(field, f"{_shown(value)} is not a finite number in {where}")
    return float(value)


def _text(value, field: str, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(field, f"{_shown(value)} is not a non-empty string")
    return value


def _list(value, field: str, low: int, high: int) -> list:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise SchemaError(field, f"{_shown(value)} is not a list of {low} to {high} items")
    return value


def _keys(value, field: str, known, optional=()) -> dict:
    """``value`` as a dict holding only ``known`` keys, all but ``optional`` present."""
    if not isinstance(value, dict):
        raise SchemaError(field, f"{_shown(value)} is not a JSON object")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise SchemaError(_child(field, unknown[0]), "is not a known key")
    missing = [k for k in known if k not in value and k not in optional]
    if missing:
        raise SchemaError(f"{field}.{missing[0]}", "is missing")
    return value


def _child(field: str, key: str) -> str:
    # A key from the file is quoted unless it is a plain name, so that a message
    # never carries a file's control characters to a terminal.
    return f"{field}.{key}" if key.isidentifier() and len(key) <= 40 else f"{field}[{_shown(key)}]"


def _shown(value) -> str:
    """A short repr: messages quote the file, never echo megabytes of it."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({type(value).__name__})"


# ------------------------------------------------------------------------- JSON


def _no_duplicate_keys(pairs: list) -> dict:
    # Two parsers could pick different values for a repeated key: refuse it.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {repeated!r} appears twice")
    return out


def parse(text: str, field: str, max_items: int, max_depth: int, max_string: int):
    """The JSON document ``text`` (the value of ``field``), refused when it holds
    more than ``max_items`` items, repeats a key, nests deeper than ``max_depth``,
    or has a string over ``max_string`` characters, invalid Unicode or an integer
    wider than 64 bits."""
    items = text.count(",") + text.count("[") + text.count("{")
    if items > max_items:
        raise SchemaError(field, f"has {items} JSON items, more than a model needs")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too-long ints, nesting
        raise SchemaError(field, f"is not valid JSON ({str(exc)[:200]})") from None
    _check_tree(value, field, 0, max_depth, max_string)
    return value


def _check_tree(value, field: str, depth: int, max_depth: int, max_string: int) -> None:
    """Bounds every leaf of a parsed document; the typed checks come after."""
    if depth > max_depth:
        raise SchemaError(field, "is nested deeper than any model file")
    if isinstance(value, str):
        problem = text_problem(value, max_string)  # the parameter table's rule for text
        if problem is not None:
            raise SchemaError(field, problem)
    elif _is_int(value):
        if not -MAX_INT - 1 <= value <= MAX_INT:
            raise SchemaError(field, f"{_shown(value)} does not fit in 64 bits")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_tree(k, field, depth + 1, max_depth, max_string)
            _check_tree(v, _child(field, k), depth + 1, max_depth, max_string)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_tree(v, f"{field}[{i}]", depth + 1, max_depth, max_string)
