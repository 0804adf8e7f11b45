"""The estimators' parameters: one declarative table of what each may be.

Every parameter has a list of constraints; a value is valid when one of them
accepts it. :func:`validate_params` checks the whole table at the start of
``fit`` (never in ``__init__``, so ``clone`` and ``set_params`` behave like
construction) and returns the values normalised to plain Python types (a
numpy integer from a grid becomes an ``int``). A refusal is one
:class:`InvalidParameterError` naming the parameter, the value and what is
allowed. Rules that tie several parameters together are in
:func:`check_combinations`.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skrank._bounds import CONFIG_LIMITS, MAX_HISTORY, MAX_INT, MAX_STRING, text_problem
from skrank._devices import PRECISIONS, resolve_device, use_bf16
from skrank._estimator.presets import PRESETS
from skrank._model.adapter import OPTIONS as ADAPTER_OPTIONS
from skrank._quote import shown
from skrank.metrics._scorers import scoring, scoring_names

__all__ = [
    "PARAMETERS",
    "PREFERENCE_PARAMETERS",
    "InvalidParameterError",
    "Interval",
    "Kind",
    "Options",
    "check_combinations",
    "validate_params",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a value it cannot take (both a ``ValueError`` and a ``TypeError``).

    Examples
    --------
    >>> from skrank import CLIPRanker, InvalidParameterError
    >>> try:
    ...     CLIPRanker(batch_size=1).fit([], [])
    ... except InvalidParameterError as exc:
    ...     print(exc)
    batch_size=1 (int) is not valid; expected an integer >= 2 (ranking needs pairs)
    """


@dataclass(frozen=True)
class Interval:
    """Integers (``kind=int``) or finite reals (``kind=float``) between two bounds."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # which bounds are included: "both", "left", "right", "neither"
    note: str = ""

    def accepts(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        if isinstance(value, numbers.Integral) and not -MAX_INT - 1 <= value <= MAX_INT:
            return False  # a model file stores integers in 64 bits
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                return False
        elif not (isinstance(value, numbers.Real) and math.isfinite(value)):
            return False
        low_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        return low_ok and high_ok

    def normalise(self, value):
        return self.kind(value)

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a float"
        if self.high is None:
            text = f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        elif self.low is None:
            text = f"{what} {'<=' if self.closed in ('both', 'right') else '<'} {self.high}"
        else:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            text = f"{what} in {left}{self.low}, {self.high}{right}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (strings, or None)."""

    values: tuple

    def accepts(self, value) -> bool:
        return (value is None or isinstance(value, str)) and value in self.values

    def normalise(self, value):
        return value

    def __str__(self) -> str:
        shown = ["None" if v is None else f'"{v}"' for v in self.values]
        return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)


@dataclass(frozen=True)
class Kind:
    """A value of a kind that a predicate recognises (text, paths, flags, ...)."""

    description: str
    predicate: Any
    convert: Any = None

    def accepts(self, value) -> bool:
        return bool(self.predicate(value))

    def normalise(self, value):
        return value if self.convert is None else self.convert(value)

    def __str__(self) -> str:
        return self.description


NONE = Options((None,))
AUTO = Options(("auto",))
BOOL = Kind("True or False", lambda v: isinstance(v, (bool, np.bool_)), bool)
# Text a model file stores is bounded as the file's schema bounds it (skrank._bounds):
# what fit accepts, save can write and load reads back.
TEXT = Kind(
    f"a non-empty string of valid Unicode, at most {MAX_STRING} characters, such as "
    "'Sort the images by sharpness.'",
    lambda v: isinstance(v, str) and v.strip() and _storable_text(v),
)
NAME = Kind(
    f"a non-empty string of valid Unicode, at most {MAX_STRING} characters",
    lambda v: isinstance(v, str) and v and _storable_text(v),
)
PATH = Kind("a path", lambda v: isinstance(v, (str, os.PathLike)))
STORED_PATH = Kind(  # a path a model file records (pretrained): its text is bounded
    f"a path of valid Unicode, at most {MAX_STRING} characters",
    lambda v: isinstance(v, (str, os.PathLike)) and _storable_text(_path_text(v)),
)
COLUMN = Kind(
    f"a column label (a string: valid Unicode, at most {MAX_STRING} characters)",
    lambda v: v is not None and _hashable(v) and (not isinstance(v, str) or _storable_text(v)),
)
RANDOM_STATE = Kind(
    "None, an integer in [0, 2**32 - 1] or a numpy RandomState",
    lambda v: isinstance(v, np.random.RandomState) or Interval(int, 0, 2**32 - 1).accepts(v),
    lambda v: v if isinstance(v, np.random.RandomState) else int(v),
)
DEVICE = Kind("'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", lambda v: _device_spelling(v))
SCORING = Kind(
    "a name of skrank.metrics.get_scorer's own: " + ", ".join(map(repr, scoring_names())),
    lambda v: scoring(v) is not None,
)
CALLBACKS = Kind(
    "a list of callables, each called with an skrank.callbacks.EpochState after every epoch",
    lambda v: isinstance(v, (list, tuple)) and all(callable(c) for c in v),
    tuple,
)


def _device_spelling(value) -> bool:
    """A device skrank runs on, spelled validly; whether it is present is resolve_device's."""
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str):
        return False
    if value == "auto":
        return True
    try:
        return torch.device(value).type in ("cpu", "cuda", "mps")
    except RuntimeError:
        return False


def _storable_text(value: str) -> bool:
    return text_problem(value) is None


def _path_text(value) -> str:
    try:
        text = os.fsdecode(value)
    except (TypeError, ValueError):
        return ""
    return text if isinstance(text, str) else ""


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _count(low: int, note: str = "", high: int | None = None) -> Interval:
    return Interval(int, low, high, note=note)


def _bounded(name: str, low: int) -> Interval:
    """An adapter size: at most what a model file's adapter config may hold."""
    return _count(low, "the most a model file holds", CONFIG_LIMITS[name])


PARAMETERS: dict[str, list] = {
    "preset": [Options(("auto", *PRESETS))],
    "instruction": [NONE, TEXT],
    "backbone": [NAME],
    "pretrained": [NONE, STORED_PATH],
    "d_model": [NONE, _bounded("d_model", 1)],
    "n_fusion_layers": [NONE, _bounded("n_fusion_layers", 0)],
    "n_post_layers": [NONE, _bounded("n_post_layers", 0)],
    "n_heads": [_bounded("n_heads", 1)],
    "n_prompt_tokens": [_bounded("n_prompt_tokens", 0)],
    "n_relation_tokens": [_bounded("n_relation_tokens", 1)],
    **{name: [Options(values)] for name, values in ADAPTER_OPTIONS.items()},
    "score_pooling": [NONE, Options(ADAPTER_OPTIONS["score_pooling"])],
    "image_positions": [NONE, Options(ADAPTER_OPTIONS["image_positions"])],
    "reg_weight": [NONE, Interval(float, 0, None)],
    "rank_weight": [Interval(float, 0, None)],
    "lr": [AUTO, Interval(float, 0, None, closed="neither")],
    "weight_decay": [Interval(float, 0, None)],
    "batch_size": [_count(2, "ranking needs pairs")],
    "max_epochs": [NONE, _count(1, "the epochs a model file records", MAX_HISTORY)],
    "warmup_fraction": [Interval(float, 0, 1, closed="left")],
    "early_stopping": [AUTO, BOOL],
    "validation_fraction": [Interval(float, 0, 1, closed="neither")],
    "n_iter_no_change": [_count(1)],
    "tol": [Interval(float, 0, None, note="the least improvement early stopping counts")],
    "scoring": [SCORING],
    "sampling": [Options(("balanced", "uniform"))],
    "augment": [BOOL],
    "cache": [Options(("memory", "disk", None))],
    "cache_dir": [NONE, PATH],
    "device": [DEVICE],
    "precision": [Options(PRECISIONS)],
    "num_workers": [_count(0)],
    "random_state": [NONE, RANDOM_STATE],
    "verbose": [AUTO, _count(0)],
    "callbacks": [NONE, CALLBACKS],
    "warm_start": [BOOL],
    "image_column": [COLUMN],
    "instruction_column": [COLUMN],
    "group_column": [NONE, COLUMN],
    "pair_scope": [Options(("all", "group"))],
    "negative_fraction": [
        Interval(float, 0, 1, closed="left", note="the share of a batch from other instructions")
    ],
}

_COLUMN_PAIR = Kind(
    "a pair of two different column labels, such as ('image_a', 'image_b')",
    lambda v: (
        isinstance(v, (tuple, list))
        and len(v) == 2
        and all(COLUMN.accepts(c) for c in v)
        and v[0] != v[1]
    ),
    tuple,
)
# CLIPPreferenceRanker's: the CLIPRanker parameters it shares keep their constraints.
# Here, not in its module, so that the model-file schema reads it without importing the
# estimator (which imports the schema, to check before training what save could write).
_PREFERENCE_SHARED = (
    "instruction", "backbone", "pretrained", "preset", "d_model", "n_fusion_layers",
    "n_post_layers", "n_heads", "n_prompt_tokens", "n_relation_tokens", "score_pooling",
    "image_positions", "rank_weight", "lr", "weight_decay", "batch_size", "max_epochs",
    "warmup_fraction", "augment", "cache", "cache_dir", "device", "precision",
    "num_workers", "random_state", "verbose", "instruction_column",
)  # fmt: skip
PREFERENCE_PARAMETERS: dict[str, list] = {
    **{name: PARAMETERS[name] for name in _PREFERENCE_SHARED},
    "score_weight": [Interval(float, 0, None)],
    "image_columns": [_COLUMN_PAIR],
}


def _refuse(name: str, value, allowed: str) -> InvalidParameterError:
    why = ""
    text = value if isinstance(value, str) else _path_text(value) if name == "pretrained" else ""
    if text and text_problem(text):
        why = f": it {text_problem(text)}"
    elif isinstance(value, numbers.Integral) and not -MAX_INT - 1 <= value <= MAX_INT:
        why = ": it does not fit in 64 bits, as a model file stores integers"
    return InvalidParameterError(
        f"{name}={shown(value)} ({type(value).__name__}) is not valid; expected {allowed}{why}"
    )


def validate_params(
    params: dict, table: dict[str, list] = PARAMETERS, *, resolve: bool = True
) -> dict:
    """Check ``params`` against ``table``; return them normalised, plus ``device_``.

    ``device_`` is the resolved ``torch.device``. Raises
    :class:`InvalidParameterError` for the first parameter no constraint
    accepts, or for a combination :func:`check_combinations` refuses.
    ``resolve=False`` checks the values without looking at this machine's
    devices (no ``device_``): what a saved model may hold, loaded anywhere.
    """
    out = {}
    for name, value in params.items():
        constraints = table[name]
        accepted = next((c for c in constraints if c.accepts(value)), None)
        if accepted is None:
            raise _refuse(name, value, " or ".join(map(str, constraints)))
        out[name] = accepted.normalise(value)
    if resolve:
        try:
            out["device_"] = resolve_device(out["device"])
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(str(exc)) from None
    check_combinations(out)
    return out


def check_combinations(p: dict) -> None:
    """Rules over several parameters: a loss to train, and bf16 only where it runs.

    Each rule applies where its parameters are present (an estimator with a
    subset of the table, such as ``CLIPEmbedder``, has only some).
    """
    if p.get("reg_weight") == 0 and p.get("rank_weight") == 0:
        raise InvalidParameterError(
            "reg_weight=0 and rank_weight=0 leave nothing to train; make one of them > 0"
        )
    if p.get("score_weight") == 0 and p.get("rank_weight") == 0:
        raise InvalidParameterError(
            "score_weight=0 and rank_weight=0 leave nothing to train; make one of them > 0"
        )
    if "device_" in p and p.get("precision") == "bf16" and not use_bf16(p["device_"], "bf16"):
        raise InvalidParameterError(
            "precision='bf16' needs a CUDA device or a CPU that computes bf16 natively "
            f"(AVX512-BF16 or AMX); device={p['device']!r} resolved to {p['device_'].type!r}"
            + (", whose CPU does not" if p["device_"].type == "cpu" else "")
        )
