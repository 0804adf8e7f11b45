"""Saving and loading fitted rankers without pickle.

``save`` writes one safetensors file: the adapter's tensors, plus JSON metadata
(format version, parameters, target scaling, history, backbone spec). Loading
it parses JSON and raw tensor bytes only, so an untrusted file cannot run code,
and checks the whole file against the schema of :mod:`skrank._schema` before
it allocates anything. The frozen backbone is not stored: it is rebuilt from
its spec on first use.

Pickles (``pickle``, ``joblib.dump``) of a ranker also work and are small (no
backbone inside), but loading a pickle executes code: only load pickles from
sources you trust.

The command line writes and reads its files through :func:`save_with_cli` and
:func:`load_with_cli`, which add an optional ``cli`` record (the target
column's name) to the same format; :func:`save` and :func:`load` are those
without it.
"""

from __future__ import annotations

import json
import numbers
import os
import struct
import warnings

import numpy as np
import torch

from skrank._files import (
    FileTooLargeError,
    NotRegularFileError,
    atomic_write,
    check_destination,
    open_regular_file,
)
from skrank._pickling import _defaults, warn_if_other_version
from skrank._quote import shown
from skrank._schema import (
    _CACHE_INFO_KEYS,
    FITTED,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_TENSOR_BYTES,
    SchemaError,
    _shown,
    check_header_length,
    read_contents,
)
from skrank._schema_compat import RemovedVariantError
from skrank._schema_json import _no_duplicate_keys
from skrank._schema_tensors import (
    check_tensor_table,
    check_values,
    expected_tensors,
    tensor_table,
)
from skrank.params import PARAMETERS, validate_params

__all__ = ["FORMAT_VERSION", "load", "save"]

# Where skrank writes is the loading machine's choice, never a file's: these are
# not saved, and a loaded ranker has their defaults unless load(...) is given them.
LOCAL_PARAMS = ("cache", "cache_dir")


def _metadata(ranker, cli: dict | None = None) -> dict:
    """The file's metadata strings; raises SchemaError for values JSON cannot hold."""
    params = ranker.get_params(deep=False)
    if isinstance(params.get("random_state"), np.random.RandomState):
        warnings.warn(
            "random_state is a RandomState, whose position a skrank file cannot hold: "
            "it is saved as None (predictions are unchanged; a refit of the loaded "
            "ranker is not reproducible). Pass an integer random_state to keep it.",
            UserWarning,
            stacklevel=3,
        )
    fitted = {k: getattr(ranker, k) for k in FITTED if hasattr(ranker, k)}
    return _metadata_of(params, ranker.adapter_.cfg.to_dict(), fitted, cli)


def _metadata_of(params: dict, config: dict, fitted: dict, cli: dict | None = None) -> dict:
    import skrank

    stored = {}
    for key, value in params.items():
        if key in LOCAL_PARAMS:
            continue
        if key == "random_state" and isinstance(value, np.random.RandomState):
            value = None
        stored[key] = to_plain(value, f"params.{key}", scalar=True)
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "skrank_version": skrank.__version__,
        "params": json.dumps(stored, ensure_ascii=False),
        "adapter_config": json.dumps(to_plain(config, "adapter_config")),
        # NaN is allowed: a validation score is NaN when Spearman is undefined.
        "fitted": json.dumps(to_plain(fitted, "fitted"), ensure_ascii=False),
    }
    if cli:
        meta["cli"] = json.dumps(to_plain(dict(cli), "cli"), ensure_ascii=False)
    return meta


# What a refusal of check_storable is about, in the words of fit's arguments.
_STORABLE_HINTS = {
    "fitted.instructions_": "an instruction of X (its instruction column or the instruction "
    "parameter)",
    "fitted.y_mean_": "y: the targets' mean per instruction; rescale y",
    "fitted.y_scale_": "y: the targets' spread per instruction; rescale y",
    "fitted.backbone_info_": "the backbone",
    "adapter_config": "the adapter these parameters build",
}


def check_storable(params: dict, config, backbone_info: dict, scaling, preset: str) -> None:
    """Refuse, before any training, a fit whose result :func:`save` could not write.

    Runs the checks of :func:`save` (the schema :func:`load` reads with) on
    everything a fit fixes before it trains: the parameters as given
    (``params``, the ranker's ``get_params``), the adapter ``config``, the
    backbone's ``backbone_info``, the instructions and the targets' scaling.
    Only the trained weights and the history are left for ``save`` to check.
    A parameter JSON cannot hold (a tuple column label) is a warning: the
    ranker fits, predicts and pickles, but :func:`save` will refuse it.

    Raises
    ------
    skrank.InvalidParameterError
        For a parameter or the adapter they build, naming it.
    ValueError
        For data (instructions, targets) the file could not hold, naming them.
    """
    from skrank.params import InvalidParameterError

    storable = {}
    for key, value in params.items():
        try:
            to_plain(value, f"params.{key}", scalar=True)
        except SchemaError as exc:
            warnings.warn(
                f"save will refuse this ranker: {exc}; fit, predict and pickling (joblib) "
                "are not affected",
                UserWarning,
                stacklevel=3,
            )
            value = _defaults()[key]
        storable[key] = value
    fitted = {
        "instructions_": list(scaling.instructions),
        "y_mean_": scaling.means,
        "y_scale_": scaling.scales,
        "history_": [],
        "n_iter_": 0,
        "preset_": preset,
        "backbone_info_": backbone_info,
        # no cache yet: kind None, every count 0
        "cache_info_": {"kind": None, **dict.fromkeys(_CACHE_INFO_KEYS[1:], 0)},
    }
    try:
        meta = _metadata_of(storable, config.to_dict(), fitted)
        contents = read_contents(meta, _defaults())
        expected_tensors(contents.config)
    except SchemaError as exc:
        about = next((v for k, v in _STORABLE_HINTS.items() if exc.field.startswith(k)), None)
        text = (
            f"fit refuses this before training: save could not write the fitted ranker "
            f"({exc}{'' if about is None else f'; this is about {about}'})"
        )
        if exc.field.startswith(("params", "adapter_config")):
            raise InvalidParameterError(text) from None
        raise ValueError(text) from None


def _check_destination(path: str) -> None:
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(
            f"cannot save to {shown(path)}: it is a directory; give a file name such as "
            f"{shown(os.path.join(path, 'ranker.skrank'))}"
        )
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot save to {shown(path)}: the folder {shown(folder)} does not exist"
        )
    try:  # before the ranker's checks: a device or a pipe there is never replaced
        check_destination(path)
    except NotRegularFileError as exc:
        raise NotRegularFileError(f"cannot save to {exc}") from None


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


def save(ranker, path: str | os.PathLike) -> None:
    """Write a fitted ranker to ``path`` (a safetensors file; no pickle inside).

    The file holds the adapter's float32 tensors and, as JSON, the parameters,
    the adapter config and the fitted attributes. ``save`` checks what it is
    about to write exactly as :func:`load` will check it, so a saved file always
    loads; the write is atomic (a temporary in the same folder, renamed), leaves
    nothing behind if it fails, and gives the file the permissions of the umask.

    Parameters
    ----------
    ranker : CLIPRanker
        Fitted. Not a Pipeline or a search: save their ranker (see Raises).
    path : str or path
        The file to write (replaced if it exists). Its folder must exist.

    Raises
    ------
    TypeError
        ``ranker`` is not a CLIPRanker: a ``Pipeline``, a ``GridSearchCV`` or
        another object holding one. The message says what to do: save the
        fitted ranker inside it (``pipeline[-1]``, ``search.best_estimator_``),
        or pickle the whole object with ``joblib.dump`` (a CLIPRanker pickles
        without its backbone, with its adapter on the CPU; load pickles only
        from sources you trust).
    sklearn.exceptions.NotFittedError
        ``ranker`` is not fitted.
    FileNotFoundError, IsADirectoryError
        The folder of ``path`` does not exist, or ``path`` is a directory;
        raised before anything is written.
    OSError
        ``path`` is a device, a FIFO or a socket (or a symbolic link to one),
        which a save would replace: ``skrank._files.NotRegularFileError``,
        raised before anything is written. A link to a regular file is
        replaced by the saved file; its target is left as it was.
    ValueError
        A value cannot be stored, naming it: a parameter that is not None, a
        bool, a number, a string, a path or a device (a tuple column label, for
        instance), or anything :func:`load` would refuse.

    Notes
    -----
    Parameters are stored as plain JSON values: numpy scalars (from a grid
    search over ``np.arange`` or ``np.logspace``) as ``int``, ``float`` or
    ``bool``, paths as ``str`` and a ``torch.device`` as its string, so they
    load back equal. ``cache`` and ``cache_dir`` are not stored: where skrank
    writes is the loading machine's choice. A ``random_state`` that is a
    ``numpy.random.RandomState`` is stored as None with a warning, rather than
    refused: it only seeds later refits, which cannot resume its position
    anyway, so the saved model predicts exactly as the original.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skrank import CLIPRanker, save, load
    >>> imgs = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 25)]
    >>> r = CLIPRanker("Sort by brightness.", backbone="skrank-tiny", max_epochs=1,
    ...                random_state=0).fit(imgs, np.arange(10.0))
    >>> path = os.path.join(tempfile.mkdtemp(), "ranker.skrank")
    >>> save(r, path)
    >>> np.allclose(load(path).predict(imgs), r.predict(imgs))
    True
    """
    save_with_cli(ranker, path)


def _not_a_ranker(obj) -> TypeError:
    """The refusal of ``save(obj)`` for anything but a CLIPRanker: what to do instead."""
    from sklearn.pipeline import Pipeline

    from skrank.ranker import CLIPRanker

    def ranker_last(pipeline) -> bool:
        steps = getattr(pipeline, "steps", None)
        return (
            isinstance(pipeline, Pipeline) and bool(steps) and isinstance(pipeline[-1], CLIPRanker)
        )

    if isinstance(obj, type):
        return TypeError(
            f"skrank.save writes a fitted CLIPRanker, not the class {obj.__name__}: fit an "
            "instance and save that"
        )
    best = getattr(obj, "best_estimator_", None)
    searched = best if best is not None else getattr(obj, "estimator", None)
    if ranker_last(obj):
        name = "pipeline"
        what = (
            "its fitted ranker step, skrank.save(pipeline[-1], path) (the file holds that "
            "step only, not the steps before it)"
        )
    elif ranker_last(searched):
        name = "search"
        what = "the best pipeline's ranker step, skrank.save(search.best_estimator_[-1], path)"
    elif best is not None or hasattr(obj, "param_grid") or hasattr(obj, "param_distributions"):
        name = "search"
        what = "the refitted best ranker, skrank.save(search.best_estimator_, path)"
    else:
        name = "obj"
        what = "the fitted CLIPRanker it holds"
    kind = type(obj).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return TypeError(
        f"skrank.save writes a fitted CLIPRanker, not {article} {kind}: save {what}; or "
        f"pickle the whole object, joblib.dump({name}, 'model.joblib') (a CLIPRanker pickles "
        "without its backbone, which is rebuilt when loaded, and with its adapter on the CPU; "
        "load pickles only from sources you trust)"
    )


def save_with_cli(ranker, path: str | os.PathLike, cli: dict | None = None) -> None:
    """:func:`save`, plus the command line's optional ``cli`` record (``skrank fit``).

    ``cli`` maps keys of :data:`skrank._schema.CLI_KEYS` to column names; it is
    checked as :func:`load` checks it. Empty or None: the file is :func:`save`'s.
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    from skrank.ranker import CLIPRanker

    if not isinstance(ranker, CLIPRanker):
        raise _not_a_ranker(ranker)
    check_is_fitted(ranker, "adapter_")
    path = os.fspath(path)
    _check_destination(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in ranker.adapter_.state_dict().items()}
    try:
        meta = _metadata(ranker, cli)
        contents = read_contents(meta, _defaults())
        _, expected, _ = expected_tensors(contents.config)
        check_tensor_table(tensor_table(tensors), expected)
        for name, tensor in tensors.items():
            check_values(name, tensor)
    except SchemaError as exc:
        raise ValueError(f"cannot save this ranker to {path!r}: {exc}") from None
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load(path: str | os.PathLike, **params):
    """Read a ranker written by :func:`save`. Never unpickles anything.

    The whole file is checked before anything is built from it (see
    ``docs/persistence.md``): known keys only; the type and range of every
    parameter (by the estimator's own rules), adapter config value and fitted
    attribute; the tensors' names, shapes and dtype against those the config
    implies, read from the header without loading a tensor; the file's size;
    finite, bounded weights. Where skrank writes is never taken from a file.

    Parameters
    ----------
    path : str or path
        A file written by :func:`save`.
    **params
        Parameters that replace the file's, validated like ``set_params``
        values: ``cache`` and ``cache_dir`` (a file never sets them, so a
        loaded ranker has ``cache="memory"`` and ``cache_dir=None`` unless
        given here), or ``device`` and ``precision`` for a model saved with
        ``device="cuda"`` and loaded on a machine without one.

    Returns
    -------
    CLIPRanker
        Fitted, with the file's parameters (and ``params``), adapter and
        fitted attributes.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a skrank model, is truncated or corrupt, was written
        by a newer format version, or breaks the schema: one error naming the
        file and the field. A file made with one of skrank 0.1's architecture
        variants (``fusion="one_mlp"`` and the like; ``docs/model.md``) is
        refused by one error naming the option and its value: refit it.

    Examples
    --------
    >>> import os, tempfile
    >>> from skrank import load
    >>> bad = os.path.join(tempfile.mkdtemp(), "not-a-model.skrank")
    >>> with open(bad, "wb") as fh:
    ...     _ = fh.write(b"hello")
    >>> try:
    ...     load(bad)
    ... except ValueError as exc:
    ...     print("refused")
    refused
    """
    return load_with_cli(path, **params)[0]


def load_with_cli(path: str | os.PathLike, **params):
    """:func:`load`, and the file's ``cli`` record: ``(ranker, dict)``, ``{}`` if none.

    Used by the command line (``skrank evaluate`` defaults ``--target-column``
    to the recorded one); checks and raises exactly as :func:`load`.
    """
    from skrank.ranker import CLIPRanker

    path = os.fspath(path)
    defaults = _defaults()
    if params:  # the caller's own mistakes are named as theirs, not the file's
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise TypeError(f"load() got unknown parameter(s) {unknown}; see CLIPRanker")
        validate_params({**defaults, **params})
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no skrank model file at {path!r}")
    try:
        contents, adapter, state = _read(path, defaults, params)
    except RemovedVariantError as exc:  # a valid file, of an architecture no longer built
        raise ValueError(f"{shown(path)} was {exc.detail}") from None
    except SchemaError as exc:
        overridden = exc.field.split(".", 1)[-1] if exc.field.startswith("params.") else None
        if overridden in params:  # the argument disagrees with the file: it is the one to blame
            raise ValueError(
                f"load({shown(path)}, {overridden}=...): the {overridden} given does not fit "
                f"this model file: {exc}; leave it out to use the file's"
            ) from None
        raise ValueError(
            f"{shown(path)} is a damaged or invalid skrank model file: {exc}"
        ) from None
    if "device" not in params:
        _check_device(path, contents.params["device"])
    adapter.load_state_dict(state, strict=True, assign=True)  # the checked tensors themselves
    adapter.eval()
    warn_if_other_version(contents.skrank_version, repr(path))
    local = {k: defaults[k] for k in LOCAL_PARAMS if k not in params}
    ranker = CLIPRanker(**{**contents.params, **local})
    ranker.adapter_ = adapter
    for key, value in contents.fitted.items():
        setattr(ranker, key, value)
    return ranker, dict(contents.cli)


def _check_device(path: str, device) -> None:
    """Warn, naming the fix, when this machine lacks the device a file was saved for.

    The file still loads (its parameters and history can be read anywhere);
    ``predict`` would fail, and its error cannot say how the model was loaded.
    """
    from skrank.devices import resolve_device

    try:
        resolve_device(device)
    except (TypeError, ValueError) as exc:
        warnings.warn(
            f"{shown(path)} was saved with device={shown(device)}, which this machine cannot "
            f"use ({exc}): predict will fail; load it with load(path, device='cpu') or "
            "device='auto' to score here",
            UserWarning,
            stacklevel=4,
        )


def _read(path: str, defaults: dict, overrides: dict):
    """The checked contents, the adapter on the meta device, and its checked tensors.

    Reads in the order that keeps a hostile file cheap: the header length, the
    metadata, the tensor table the config implies, and only then tensor bytes.
    The file is read into memory, through one descriptor, never mapped: a
    mapped file rewritten or truncated while it loads kills the process
    (SIGBUS), where bytes read are checked like any others.
    """
    unreadable = (
        f"{shown(path)} is not a readable skrank model file (not safetensors, truncated or corrupt)"
    )
    try:
        with open_regular_file(path, 8 + MAX_HEADER_BYTES + MAX_TENSOR_BYTES) as (fh, size):
            try:
                head = fh.read(8)
                if len(head) < 8:
                    raise SchemaError("header", f"the file has {size} bytes")
                header_length = struct.unpack("<Q", head)[0]
                check_header_length(header_length, size)
                header = _read_exactly(fh, header_length)
                meta, table = _parse_header(header)
            except SchemaError as exc:
                raise ValueError(f"{unreadable}: {exc}") from None
            # A value can be valid where the file was written and not here (a device).
            hint = "; load(path, name=value) replaces a file's parameter"
            contents = read_contents(meta, defaults, overrides, hint)
            adapter, expected, nbytes = expected_tensors(contents.config)
            check_tensor_table(table, expected)
            if size != 8 + header_length + nbytes:
                raise SchemaError(
                    "file size", f"{size} bytes, not the {8 + header_length + nbytes} it implies"
                )
            try:
                body = _read_exactly(fh, nbytes)
            except SchemaError as exc:
                raise ValueError(f"{unreadable}: {exc}") from None
    except FileTooLargeError as exc:
        raise ValueError(
            f"{unreadable}: file size: {exc.size} bytes, more than any skrank model holds"
        ) from None
    except OSError as exc:
        raise ValueError(f"{unreadable}: {exc}") from None
    tensors = _parse_tensors(head + header + body, unreadable)
    del body
    # What safetensors parsed is what was checked: names, shapes and dtype.
    check_tensor_table(tensor_table(tensors), expected)
    state = {}
    for name in table:
        check_values(name, tensors[name])
        # Tensors over bytes can sit at unaligned addresses, where the CPU kernels
        # take other paths: a copy predicts bit for bit as the saved one.
        state[name] = tensors.pop(name).clone()
    return contents, adapter, state


def _read_exactly(fh, n: int) -> bytes:
    """``n`` bytes of ``fh``; a file that shrank since its size was read is refused."""
    data = fh.read(n)
    if len(data) != n:
        raise SchemaError("file size", "the file shrank while it was read")
    return data


def _parse_header(header: bytes) -> tuple[dict | None, dict]:
    """A safetensors header's metadata and ``{name: (shape, dtype name)}``.

    Only what the schema checks before tensor bytes are read; safetensors
    parses the whole file afterwards, and its table must be this one.
    """
    try:
        parsed = json.loads(header, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise SchemaError("header", "nests deeper than a safetensors header does") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise SchemaError("header", f"is not JSON ({_shown(str(exc))})") from None
    if not isinstance(parsed, dict):
        raise SchemaError("header", "is not a JSON object")
    meta = parsed.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise SchemaError("header.__metadata__", "is not an object of strings")
    table = {}
    for name, entry in parsed.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if not (
            isinstance(shape, list)
            and all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
            and isinstance(dtype, str)
        ):
            raise SchemaError(f"tensor {_shown(name)}", "has no dtype and shape in the header")
        table[name] = (tuple(shape), dtype)
    return meta, table


def _parse_tensors(data: bytes, unreadable: str) -> dict:
    """The tensors of a whole safetensors file held in ``data`` (copied out of it)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    try:
        return load_bytes(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ValueError(f"{unreadable}: {exc}") from None
