"""What a model file's metadata holds, and the check ``fit`` runs before it trains.

:func:`metadata_of` turns parameters, the adapter config and the fitted
attributes of one estimator into the file's JSON strings (:func:`to_plain`
converts each value or refuses it); :func:`check_storable` runs the same
checks, and the schema :func:`skrank.load` reads with, on what a fit fixes
before training, so that a fit never trains a model ``save`` could not write.
It does not import the estimators: ``check_storable`` is given the one that fits.
"""

from __future__ import annotations

import json
import numbers
import os
import warnings

import numpy as np
import torch

from skrank._estimator.params import InvalidParameterError
from skrank._version import __version__
from skrank.persistence._pickling import older_defaults
from skrank.persistence._schema import (
    _CACHE_INFO_KEYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    RANKER,
    Estimator,
    SchemaError,
    _shown,
    estimator_of,
    read_contents,
)
from skrank.persistence._schema_tensors import expected_tensors

__all__ = ["LOCAL_PARAMS", "check_storable", "metadata_of", "to_plain"]

# Where skrank writes is the loading machine's choice, never a file's, and callbacks
# are code of the fitting session: these are not saved, and a loaded ranker has
# their defaults unless load(...) is given them.
LOCAL_PARAMS = ("cache", "cache_dir", "callbacks")


def metadata_of(
    kind: Estimator, params: dict, config: dict, fitted: dict, cli: dict | None = None
) -> dict:
    """The metadata strings of a file of the estimator ``kind``; raises SchemaError for
    values JSON cannot hold."""
    stored = {}
    for key, value in params.items():
        if key in LOCAL_PARAMS:
            continue
        if key == "random_state" and isinstance(value, np.random.RandomState):
            value = None
        stored[key] = _plain_param(kind, key, value)
    meta = {} if kind is RANKER else {"estimator": kind.name}  # none: a CLIPRanker
    meta |= {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "skrank_version": __version__,
        "params": json.dumps(stored, ensure_ascii=False),
        "adapter_config": json.dumps(to_plain(config, "adapter_config")),
        # NaN is allowed: a validation score is NaN when Spearman is undefined.
        "fitted": json.dumps(to_plain(fitted, "fitted"), ensure_ascii=False),
    }
    if cli:
        meta["cli"] = json.dumps(to_plain(dict(cli), "cli"), ensure_ascii=False)
    return meta


def _plain_param(kind: Estimator, key: str, value):
    """A parameter's value as JSON holds it: a scalar, or a list for a pair of labels."""
    field = f"params.{key}"
    if key in kind.pairs and isinstance(value, (tuple, list)):
        return [to_plain(v, f"{field}[{i}]", scalar=True) for i, v in enumerate(value)]
    return to_plain(value, field, scalar=True)


# What a refusal of check_storable is about, in the words of fit's arguments.
_STORABLE_HINTS = {
    "fitted.instructions_": "an instruction of X (its instruction column or the instruction "
    "parameter)",
    "fitted.y_mean_": "y: the targets' mean per instruction; rescale y",
    "fitted.y_scale_": "y: the targets' spread per instruction; rescale y",
    "fitted.backbone_info_": "the backbone",
    "adapter_config": "the adapter these parameters build",
}


def check_storable(estimator, config, fixed: dict) -> None:
    """Refuse, before any training, a fit whose result :func:`save` could not write.

    Runs the checks of :func:`save` (the schema :func:`load` reads with) on
    everything a fit fixes before it trains: the parameters of ``estimator``
    (the one fitting) as given, the adapter ``config`` and ``fixed``, the
    fitted attributes known before training (the instructions, the backbone's
    ``backbone_info_``, the preset, CLIPRanker's target scaling, ...). Only the
    trained weights, the history and the cache's counts are left for ``save``
    to check. A parameter JSON cannot hold (a tuple column label) is a warning:
    the estimator fits, predicts and pickles, but :func:`save` will refuse it.

    Raises
    ------
    skrank.InvalidParameterError
        For a parameter or the adapter they build, naming it.
    ValueError
        For data (instructions, targets) the file could not hold, naming them.
    """
    kind = estimator_of(type(estimator))
    defaults = older_defaults(type(estimator))
    params = _storable_params(kind, estimator.get_params(deep=False), defaults)
    fitted = {
        "history_": [],
        "n_iter_": 0,
        # no cache yet: kind None, every count 0
        "cache_info_": {"kind": None, **dict.fromkeys(_CACHE_INFO_KEYS[1:], 0)},
        **fixed,
    }
    try:
        meta = metadata_of(kind, params, config.to_dict(), fitted)
        contents = read_contents(meta, {kind.name: defaults})
        expected_tensors(contents.config)
    except SchemaError as exc:
        about = next((v for k, v in _STORABLE_HINTS.items() if exc.field.startswith(k)), None)
        text = (
            f"fit refuses this before training: save could not write the fitted "
            f"{kind.name} ({exc}{'' if about is None else f'; this is about {about}'})"
        )
        if exc.field.startswith(("params", "adapter_config")):
            raise InvalidParameterError(text) from None
        raise ValueError(text) from None


def _storable_params(kind: Estimator, params: dict, defaults: dict) -> dict:
    """``params`` as a file would hold them: where skrank writes as the defaults, and a
    value JSON cannot hold replaced by its default, with a warning."""
    storable = {}
    for key, value in params.items():
        if key in LOCAL_PARAMS:
            storable[key] = defaults[key]
            continue
        try:
            _plain_param(kind, key, value)
        except SchemaError as exc:
            warnings.warn(
                f"save will refuse this {kind.name}: {exc}; fit, predict and pickling "
                "(joblib) are not affected",
                UserWarning,
                stacklevel=4,
            )
            value = defaults[key]
        storable[key] = value
    return storable


def to_plain(value, field: str, scalar: bool = False):
    """``value`` in plain JSON types: numpy scalars and arrays, paths, devices converted.

    Parameters
    ----------
    value : object
    field : str
        Where ``value`` is, for the message of a refusal.
    scalar : bool, default=False
        Refuse containers (parameters are scalars: a tuple column label would
        come back a list).

    Returns
    -------
    None, bool, int, float, str, or lists and str-keyed dicts of them

    Raises
    ------
    SchemaError
        For anything JSON cannot hold as the same value.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return to_plain(value.item(), field, scalar)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if not scalar and isinstance(value, (list, tuple, np.ndarray)):
        return [to_plain(v, f"{field}[{i}]") for i, v in enumerate(list(value))]
    if not scalar and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: to_plain(v, f"{field}.{k}") for k, v in value.items()}
    raise SchemaError(
        field,
        f"{_shown(value)} ({type(value).__name__}) cannot be stored in a skrank file, which "
        "holds None, True/False, numbers, strings and paths"
        + ("" if scalar else ", and lists and string-keyed dicts of them"),
    )
