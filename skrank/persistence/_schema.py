"""What a skrank model file may hold, checked in full before anything is built from it.

A file written by :func:`skrank.save` is a safetensors file: an 8-byte header
length, a JSON header (each tensor's name, dtype, shape and offsets, plus string
metadata) and the tensor bytes. The metadata holds six strings: ``format``,
``format_version``, ``skrank_version`` and three JSON documents, ``params``,
``adapter_config`` and ``fitted``; a file written by ``skrank fit`` has an
optional one, ``cli``: what the command line was given that the estimator does
not hold (the target or winner column's name). A file of an estimator other
than ``CLIPRanker`` names it in an ``estimator`` string; the parameter table,
the fitted attributes, the history's keys and the ``cli`` keys a file may hold
are that estimator's (:class:`Estimator`, :data:`ESTIMATORS`). A file without
one holds a ``CLIPRanker``, as every file written before other estimators could
be saved does.

:func:`read_contents` checks the metadata against the schema below and
:func:`expected_tensors` derives, from the checked adapter config and on the
``meta`` device (no memory), the tensors the file must then hold: names,
shapes, dtype and total size. Only after the header matches does the loader read
tensor bytes, and each tensor is checked by :func:`check_values`. ``save`` runs
the same checks on what it is about to write, so it refuses what ``load`` would.

Every refusal is one :class:`SchemaError`, a ``ValueError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from skrank._bounds import (
    CONFIG_LIMITS,
    MAX_EPOCH,
    MAX_HISTORY,
    MAX_INSTRUCTIONS,
    MAX_INT,
    MAX_STRING,
    MAX_TARGET,
    MAX_VALIDATION_SETS,
)
from skrank._estimator.params import (
    PARAMETERS,
    PREFERENCE_PARAMETERS,
    Interval,
    validate_params,
)
from skrank._estimator.presets import BEFORE as PRESET_BEFORE
from skrank._estimator.presets import PRESETS
from skrank._model.adapter import OPTIONS, AdapterConfig
from skrank.persistence._schema_compat import BEFORE_OPTIONS, drop_removed_options
from skrank.persistence._schema_json import (
    SchemaError,
    _child,
    _int,
    _is_real,
    _keys,
    _list,
    _real,
    _shown,
    _text,
    parse,
)

__all__ = [
    "ESTIMATORS",
    "FITTED",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CLI_KEYS",
    "Contents",
    "Estimator",
    "SchemaError",
    "check_header_length",
    "estimator_of",
    "read_contents",
]

FORMAT_NAME = "skrank-ranker"
# 2: skrank 0.1's architecture options are gone from the adapter config and the
# parameters, and the adapter config holds every field. Format 1 files load by the
# rules of skrank.persistence._schema_compat.
FORMAT_VERSION = 2

# Bounds: the shared ones (the parameter table's too) are in skrank._bounds.
# Trained adapters hold weights of order 1 (under 2 even at lr=3e-2). With every
# |weight| <= 100 and the config bounds, no activation of predict or compare
# can reach float32's 3.4e38 (pre-LN blocks: each one adds at most ~M^3 d^2.5), so
# a loaded ranker predicts finite values; a flipped exponent bit is far above it.
MAX_ABS_WEIGHT = 100.0
MAX_TENSOR_BYTES = 4 * 2**30
MAX_HEADER_BYTES = 16 * 2**20
# Characters of each metadata string. Parsing JSON costs ~100 bytes of Python
# objects per item, so the items (commas, arrays and objects) are bounded too.
_MAX_CHARS = {
    "format": 64,
    "format_version": 16,
    "skrank_version": 64,
    "params": 2**18,
    "adapter_config": 2**12,
    "fitted": 2**23,
    "cli": 2**14,
    "estimator": 64,
}
# Metadata a file may lack: the command line's record (files saved from Python have none)
# and the estimator's name (a file without one holds a CLIPRanker).
_METADATA_OPTIONAL = ("cli", "estimator")
_MAX_JSON_ITEMS = (16 + 2 * MAX_VALIDATION_SETS) * MAX_HISTORY + 4 * MAX_INSTRUCTIONS + 1024
_MAX_DEPTH = 5  # fitted -> history_ -> entry -> validation -> score is the deepest

# The fitted attributes a file sets: exactly these. lr_, preset_ and best_epoch_ came
# after format 1 did (a file without preset_ was fitted with the small-data settings;
# one without best_epoch_ loads with None: which epoch early stopping kept is unknown).
FITTED = (
    "instructions_",
    "y_mean_",
    "y_scale_",
    "history_",
    "n_iter_",
    "best_epoch_",
    "lr_",
    "preset_",
    "backbone_info_",
    "cache_info_",
)
_FITTED_OPTIONAL = ("lr_", "preset_", "best_epoch_")
_HISTORY_KEYS = ("epoch", "loss", "reg_loss", "rank_loss", "lr", "val_score", "seconds")
_HISTORY_OPTIONAL = ("validation",)  # the named validation sets' scores
_CACHE_INFO_KEYS = ("kind", "hits", "misses", "images_encoded", "bytes")
# The keys of the ``cli`` document, each optional: the column names ``skrank fit`` read
# that no parameter records (the image, instruction and group columns are parameters).
CLI_KEYS = ("target_column",)


@dataclass(frozen=True)
class Estimator:
    """The part of a model file's schema that is one estimator's.

    ``name`` is the class a file holds, as its ``estimator`` metadata says
    (none: ``CLIPRanker``). A file's parameters are ``parameters``' names
    (each optional: a file predating one reads the default) checked by that
    table; ``pairs`` are parameters holding two column labels, stored as a
    JSON list and read back as a tuple. ``fitted`` are the attributes a file
    sets, exactly these (``fitted_optional`` may be missing, as in files older
    than them); ``history`` the keys of each epoch of ``history_``
    (``"epoch"`` a count, ``"val_score"`` a score, ``"validation"`` the named
    sets' scores, any other a non-negative number), ``history_optional`` those
    an epoch may lack; ``cli_keys`` the keys of the command line's record.
    """

    name: str
    parameters: Mapping[str, list]
    fitted: tuple[str, ...]
    history: tuple[str, ...]
    cli_keys: tuple[str, ...]
    pairs: tuple[str, ...] = ()
    fitted_optional: tuple[str, ...] = ()
    history_optional: tuple[str, ...] = ()


RANKER = Estimator(
    "CLIPRanker",
    PARAMETERS,
    FITTED,
    _HISTORY_KEYS,
    CLI_KEYS,
    fitted_optional=_FITTED_OPTIONAL,
    history_optional=_HISTORY_OPTIONAL,
)
PREFERENCE_RANKER = Estimator(
    "CLIPPreferenceRanker",
    PREFERENCE_PARAMETERS,
    ("instructions_", "history_", "n_iter_", "lr_", "preset_", "backbone_info_", "cache_info_"),
    ("epoch", "loss", "score_loss", "rank_loss", "lr", "seconds"),
    ("winner_column",),
    pairs=("image_columns",),
)
ESTIMATORS = {kind.name: kind for kind in (RANKER, PREFERENCE_RANKER)}


def estimator_of(cls: type) -> Estimator:
    """The schema of the estimator class ``cls``: that of the first class in its method
    resolution order the schema knows (a subclass of CLIPRanker saves as a CLIPRanker).

    Raises
    ------
    TypeError
        For a class that is no estimator a model file holds.
    """
    kind = next((ESTIMATORS[c.__name__] for c in cls.__mro__ if c.__name__ in ESTIMATORS), None)
    if kind is None:
        raise TypeError(f"{cls.__name__} is not one of {', '.join(ESTIMATORS)}")
    return kind


@dataclass
class Contents:
    """The checked metadata of a model file."""

    skrank_version: str
    params: dict  # as stored (pairs as tuples), checked against the estimator's table
    config: AdapterConfig
    fitted: dict  # y_mean_ and y_scale_ (CLIPRanker's) as float64 arrays
    cli: dict = dataclasses.field(default_factory=dict)  # the ``cli`` document, or {}
    estimator: str = RANKER.name  # which estimator the file holds


def _json(meta: Mapping, key: str):
    return parse(_string(meta, key), key, _MAX_JSON_ITEMS, _MAX_DEPTH, MAX_STRING)


def _string(meta: Mapping, key: str) -> str:
    value = meta.get(key)
    if not isinstance(value, str):
        raise SchemaError(f"metadata.{key}", "is missing")
    if len(value) > _MAX_CHARS[key]:
        raise SchemaError(f"metadata.{key}", f"has {len(value)} characters (> {_MAX_CHARS[key]})")
    return value


# ------------------------------------------------------------------------- metadata


def check_header_length(length: int, file_size: int) -> None:
    """The safetensors header length, before the header is parsed."""
    if length > MAX_HEADER_BYTES:
        raise SchemaError("header", f"is {length} bytes (> {MAX_HEADER_BYTES})")
    if 8 + length > file_size:
        raise SchemaError("header", f"claims {length} bytes but the file has {file_size}")


def read_contents(
    meta, defaults: Mapping[str, dict], overrides: Mapping = (), hint: str = ""
) -> Contents:
    """Check a file's metadata against the schema.

    Parameters
    ----------
    meta : dict of str to str, or None
        The safetensors metadata.
    defaults : mapping of str to dict
        The default parameters of each estimator a file may hold, by name
        (:func:`skrank.persistence._pickling.older_defaults`): they fill those a
        file predates. A file of an estimator not in it is refused.
    overrides : mapping, default=()
        Parameters that replace the file's (the arguments of ``load``) before
        the whole set is validated by :func:`skrank._estimator.params.validate_params`,
        the estimator's own rule.
    hint : str, default=""
        Appended to a refusal of the parameters.

    Returns
    -------
    Contents
        The parameters (merged as above), the adapter config, the fitted
        attributes and the command line's record (``{}`` when the file has none).

    Raises
    ------
    SchemaError
        At the first field that breaks the schema.
    """
    if not isinstance(meta, dict):
        raise SchemaError("metadata", "is missing: a safetensors file, but not a skrank model")
    if meta.get("format") != FORMAT_NAME:
        raise SchemaError(
            "metadata.format",
            f"{_shown(meta.get('format'))} is not {FORMAT_NAME!r}: a safetensors file, but not "
            "a skrank model",
        )
    version = _string(meta, "format_version")
    if not (version.isascii() and version.isdigit() and 1 <= int(version)):
        raise SchemaError("metadata.format_version", f"{_shown(version)} is not a version")
    if int(version) > FORMAT_VERSION:
        raise SchemaError(
            "metadata.format_version",
            f"{version} is newer than this skrank reads (<= {FORMAT_VERSION}); upgrade skrank",
        )
    _keys(meta, "metadata", tuple(_MAX_CHARS), optional=_METADATA_OPTIONAL)
    saved_by = _string(meta, "skrank_version")
    if not re.fullmatch(r"[0-9A-Za-z.+!_-]{1,64}", saved_by):  # it is echoed in a warning
        raise SchemaError("metadata.skrank_version", f"{_shown(saved_by)} is not a version")
    kind = _estimator(meta, defaults)
    first = int(version) == 1
    config = _check_config(_json(meta, "adapter_config"), first)
    # A file from before an architecture option was a parameter: the adapter's own value.
    own = defaults[kind.name]
    own = {**own, **{k: getattr(config, k) for k in OPTIONS if k in own}}
    params = _json(meta, "params")
    if first:
        params = drop_removed_options(params, "params", absent_is_old=False)
    params = _check_params(params, kind, own, dict(overrides), hint)
    fitted = _check_fitted(_json(meta, "fitted"), kind)
    _check_agreement(params, config, fitted)
    cli = _check_cli(_json(meta, "cli"), kind) if "cli" in meta else {}
    return Contents(saved_by, params, config, fitted, cli, kind.name)


def _estimator(meta: Mapping, defaults: Mapping[str, dict]) -> Estimator:
    """The estimator a file holds: its ``estimator`` metadata, or CLIPRanker without one."""
    if "estimator" not in meta:
        return RANKER
    name = _string(meta, "estimator")
    if name not in ESTIMATORS or name not in defaults:
        readable = [n for n in ESTIMATORS if n in defaults]
        raise SchemaError(
            "metadata.estimator",
            f"{_shown(name)} is not an estimator this skrank reads ({', '.join(readable)}); "
            "if a newer skrank wrote the file, upgrade skrank",
        )
    return ESTIMATORS[name]


def _check_params(params, kind: Estimator, defaults: dict, overrides: dict, hint: str) -> dict:
    names = tuple(kind.parameters)
    _keys(params, "params", names, optional=names)
    unknown = sorted(set(overrides) - set(names))
    if unknown:  # an argument of load this estimator does not take (load blames it)
        raise SchemaError(f"params.{unknown[0]}", f"is not a parameter of {kind.name}")
    # A pair of column labels is a JSON list: the estimator holds a tuple.
    pairs = {k: tuple(v) for k, v in params.items() if k in kind.pairs and isinstance(v, list)}
    merged = {**defaults, **params, **pairs, **overrides}
    try:  # the device is the loading machine's
        validate_params(merged, kind.parameters, resolve=False)
    except (ValueError, TypeError) as exc:
        raise SchemaError("params", f"{exc}{hint}") from None
    return merged


def _check_config(values, first: bool) -> AdapterConfig:
    """The adapter config; ``first``: of a format 1 file (the rules of
    :mod:`skrank.persistence._schema_compat`)."""
    fields = tuple(f.name for f in dataclasses.fields(AdapterConfig))
    if first:
        values = drop_removed_options(values, "adapter_config", absent_is_old=True)
    _keys(values, "adapter_config", fields, optional=tuple(BEFORE_OPTIONS) if first else ())
    for name, value in values.items():
        field = f"adapter_config.{name}"
        if name not in CONFIG_LIMITS:  # an option: one of its values
            _text(value, field)
            if value not in OPTIONS[name]:
                raise SchemaError(field, f"{_shown(value)} is not one of {list(OPTIONS[name])}")
            continue
        _int(value, field, _lowest(name), CONFIG_LIMITS[name])
    try:
        return AdapterConfig(**{**BEFORE_OPTIONS, **values})
    except (TypeError, ValueError) as exc:  # the config's own rules (an unknown option value)
        raise SchemaError("adapter_config", str(exc)) from None


def _lowest(name: str) -> int:
    """The least value of a config field: its parameter's, or 1 for widths and ratios."""
    if name not in PARAMETERS:
        return 1
    return min(c.low for c in PARAMETERS[name] if isinstance(c, Interval))


def _check_fitted(fitted, kind: Estimator) -> dict:
    _keys(fitted, "fitted", kind.fitted, optional=kind.fitted_optional)
    out = dict(fitted)
    instructions = _list(fitted["instructions_"], "fitted.instructions_", 1, MAX_INSTRUCTIONS)
    for i, text in enumerate(instructions):
        _text(text, f"fitted.instructions_[{i}]")
    if len(set(instructions)) != len(instructions):
        raise SchemaError("fitted.instructions_", "lists an instruction twice")
    if "y_mean_" in kind.fitted:  # CLIPRanker's targets' scaling
        out.update(_check_scaling(fitted, len(instructions)))
    for i, entry in enumerate(_list(fitted["history_"], "fitted.history_", 0, MAX_HISTORY)):
        _check_epoch(entry, f"fitted.history_[{i}]", kind)
    _int(fitted["n_iter_"], "fitted.n_iter_", 0, MAX_EPOCH)  # across warm starts
    if "best_epoch_" in kind.fitted:
        out["best_epoch_"] = fitted.get("best_epoch_")
        if out["best_epoch_"] is not None:
            _int(out["best_epoch_"], "fitted.best_epoch_", 1, MAX_EPOCH)
    if "lr_" in fitted:
        _real(fitted["lr_"], "fitted.lr_", 0.0, math.inf, low_open=True)
    out["preset_"] = fitted.get("preset_", PRESET_BEFORE)
    if not isinstance(out["preset_"], str) or out["preset_"] not in PRESETS:
        raise SchemaError(
            "fitted.preset_", f"{_shown(out['preset_'])} is not one of {list(PRESETS)}"
        )
    _check_backbone_info(fitted["backbone_info_"])
    _check_cache_info(fitted["cache_info_"])
    return out


def _check_scaling(fitted: dict, n: int) -> dict:
    """``y_mean_`` and ``y_scale_``: one bounded number per instruction, as float64 arrays."""
    out = {}
    for name, low_open in (("y_mean_", False), ("y_scale_", True)):
        field = f"fitted.{name}"
        values = _list(fitted[name], field, n, n)
        low = 0.0 if low_open else -MAX_TARGET
        out[name] = np.array(
            [_real(v, f"{field}[{i}]", low, MAX_TARGET, low_open) for i, v in enumerate(values)]
        )
    return out


def _check_cache_info(info) -> None:
    info = _keys(
        info,
        "fitted.cache_info_",
        _CACHE_INFO_KEYS + ("placement",),
        optional=("placement",),  # where a memory cache held the tokens (recent files)
    )
    if info.get("placement", "host") not in ("host", "pinned", "device"):
        raise SchemaError("fitted.cache_info_.placement", f"{_shown(info['placement'])} is not one")
    if not any(c.accepts(info["kind"]) for c in PARAMETERS["cache"]):
        raise SchemaError("fitted.cache_info_.kind", f"{_shown(info['kind'])} is not a cache")
    for key in _CACHE_INFO_KEYS[1:]:
        _int(info[key], f"fitted.cache_info_.{key}", 0, MAX_INT)


def _check_cli(values, kind: Estimator) -> dict:
    """The command line's record: known keys only, each a column name (non-empty text)."""
    _keys(values, "cli", kind.cli_keys, optional=kind.cli_keys)
    for key, value in values.items():
        # A CSV header may name a column "  ": blank is a name, empty is not.
        if not isinstance(value, str) or not value:
            raise SchemaError(f"cli.{key}", f"{_shown(value)} is not a column name")
    return dict(values)


def _check_epoch(entry, field: str, kind: Estimator) -> None:
    optional = kind.history_optional
    _keys(entry, field, kind.history + optional, optional=optional)
    _int(entry["epoch"], f"{field}.epoch", 1, MAX_EPOCH)
    for key in kind.history:
        if key not in ("epoch", "val_score"):  # losses, the learning rate, seconds
            _real(entry[key], f"{field}.{key}", 0.0, math.inf)
    if "val_score" in entry:
        _check_score(entry["val_score"], f"{field}.val_score")
    scores = entry.get("validation", {})
    if not isinstance(scores, dict) or len(scores) > MAX_VALIDATION_SETS:
        raise SchemaError(
            f"{field}.validation", f"is not a dict of at most {MAX_VALIDATION_SETS} scores"
        )
    for name, score in scores.items():
        _text(name, f"{field}.validation")
        _check_score(score, _child(f"{field}.validation", name))


def _check_score(score, field: str) -> None:
    """A validation score: None, a finite number (a scorer's: errors negated) or NaN."""
    # NaN is what Spearman gives on constant predictions: a record, not a weight.
    if score is not None and not (_is_real(score) and not math.isinf(score)):
        raise SchemaError(field, f"{_shown(score)} is not None or a finite number")


def _check_backbone_info(info) -> None:
    field = "fitted.backbone_info_"
    known = ("name", "pretrained", "weights_identity", "image_size", "mean", "std")
    widths = ("image_dim", "n_image_tokens", "text_dim", "embed_dim", "context_length")
    _keys(info, field, (*known, *widths, "family", "tokens"), optional=("tokens",))
    if "tokens" in info and info["tokens"] != "head_norm":
        raise SchemaError(f"{field}.tokens", f"{_shown(info['tokens'])} is not 'head_norm'")
    _text(info["name"], f"{field}.name")
    _text(info["pretrained"], f"{field}.pretrained", nullable=True)
    _text(info["weights_identity"], f"{field}.weights_identity")
    _text(info["family"], f"{field}.family")
    for i, side in enumerate(_list(info["image_size"], f"{field}.image_size", 2, 2)):
        _int(side, f"{field}.image_size[{i}]", 1, 8192)
    for key, low, low_open in (("mean", -MAX_TARGET, False), ("std", 0.0, True)):
        for i, v in enumerate(_list(info[key], f"{field}.{key}", 3, 3)):
            _real(v, f"{field}.{key}[{i}]", low, MAX_TARGET, low_open)
    for key in widths:
        _int(info[key], f"{field}.{key}", 1, 65536)


def _check_agreement(params: dict, config: AdapterConfig, fitted: dict) -> None:
    """What ``fit`` always makes agree: the adapter was built for this backbone, with
    the architecture options the parameters name."""
    for name in OPTIONS:
        # None: the preset chose it (and the config records what it chose).
        if params.get(name) is not None and params[name] != getattr(config, name):
            raise SchemaError(
                f"params.{name}",
                f"{_shown(params[name])} is not the adapter's {name} "
                f"({_shown(getattr(config, name))})",
            )
    if config.probe == "ridge" and config.n_instructions != len(fitted["instructions_"]):
        raise SchemaError(
            "adapter_config.n_instructions",
            f"{config.n_instructions} is not the number of fitted instructions "
            f"({len(fitted['instructions_'])})",
        )
    info = fitted["backbone_info_"]
    if params["backbone"] != info["name"]:
        raise SchemaError(
            "params.backbone",
            f"{_shown(params['backbone'])} is not the backbone the adapter was fitted on "
            f"({_shown(info['name'])})",
        )
    for key in ("image_dim", "text_dim"):
        if getattr(config, key) != info[key]:
            raise SchemaError(
                f"adapter_config.{key}",
                f"{getattr(config, key)} differs from the backbone's {key} ({info[key]})",
            )
