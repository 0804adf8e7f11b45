"""``save`` and ``load``: one safetensors file per fitted estimator (see :mod:`skrank.persistence`).

A file holds a :class:`~skrank.CLIPRanker` or a :class:`~skrank.CLIPPreferenceRanker`
(its metadata says which; :data:`skrank.persistence._schema.ESTIMATORS`), and ``load``
builds that class.
"""

from __future__ import annotations

import json
import os
import struct
import warnings

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from skrank._devices import resolve_device
from skrank._estimator.params import validate_params
from skrank._estimator.preference_ranker import CLIPPreferenceRanker
from skrank._estimator.ranker import CLIPRanker
from skrank._estimator.zero_shot import CLIPZeroShotRanker
from skrank._files import (
    FileTooLargeError,
    NotRegularFileError,
    atomic_write,
    check_destination,
    open_regular_file,
)
from skrank._quote import shown
from skrank.persistence._metadata import LOCAL_PARAMS, metadata_of
from skrank.persistence._pickling import older_defaults, warn_if_other_version
from skrank.persistence._schema import (
    ESTIMATORS,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_TENSOR_BYTES,
    SchemaError,
    _shown,
    check_header_length,
    estimator_of,
    read_contents,
)
from skrank.persistence._schema_compat import RemovedVariantError
from skrank.persistence._schema_json import _no_duplicate_keys
from skrank.persistence._schema_tensors import (
    check_tensor_table,
    check_values,
    expected_tensors,
    tensor_table,
)

__all__ = ["FORMAT_VERSION", "load", "load_with_cli", "save", "save_with_cli"]

# The estimators a file may hold; ``load`` builds the one a file names.
_CLASSES = {cls.__name__: cls for cls in (CLIPRanker, CLIPPreferenceRanker)}
_SAVED = "CLIPRanker or CLIPPreferenceRanker"  # what save writes, in its messages


def _defaults() -> dict:
    """The parameters a file may lack, by estimator (``older_defaults`` of each)."""
    return {name: older_defaults(cls) for name, cls in _CLASSES.items()}


def _metadata(ranker, cli: dict | None = None) -> dict:
    """The file's metadata strings; raises SchemaError for values JSON cannot hold."""
    kind = estimator_of(type(ranker))
    params = ranker.get_params(deep=False)
    if isinstance(params.get("random_state"), np.random.RandomState):
        warnings.warn(
            "random_state is a RandomState, whose position a skrank file cannot hold: "
            "it is saved as None (predictions are unchanged; a refit of the loaded "
            "ranker is not reproducible). Pass an integer random_state to keep it.",
            UserWarning,
            stacklevel=3,
        )
    fitted = {k: getattr(ranker, k) for k in kind.fitted if hasattr(ranker, k)}
    return metadata_of(kind, params, ranker.adapter_.cfg.to_dict(), fitted, cli)


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


def save(ranker, path: str | os.PathLike) -> None:
    """Write a fitted ranker to ``path`` (a safetensors file; no pickle inside).

    A :class:`~skrank.CLIPRanker` or a :class:`~skrank.CLIPPreferenceRanker`;
    the file says which, and :func:`load` builds that class.

    The file holds the adapter's float32 tensors and, as JSON, the parameters,
    the adapter config and the fitted attributes. ``save`` checks what it is
    about to write exactly as :func:`load` will check it, so a saved file always
    loads; the write is atomic (a temporary in the same folder, renamed), leaves
    nothing behind if it fails, and gives the file the permissions of the umask.

    Parameters
    ----------
    ranker : CLIPRanker or CLIPPreferenceRanker
        Fitted. Not a Pipeline or a search: save their ranker (see Raises).
    path : str or path
        The file to write (replaced if it exists). Its folder must exist.

    Raises
    ------
    TypeError
        ``ranker`` is not one of those: a ``Pipeline``, a ``GridSearchCV`` or
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
    """The refusal of ``save(obj)`` for anything but the estimators a file holds: what to
    do instead."""
    savable = tuple(_CLASSES.values())

    def ranker_last(pipeline) -> bool:
        steps = getattr(pipeline, "steps", None)
        return isinstance(pipeline, Pipeline) and bool(steps) and isinstance(pipeline[-1], savable)

    if isinstance(obj, type):
        return TypeError(
            f"skrank.save writes a fitted {_SAVED}, not the class {obj.__name__}: fit an "
            "instance and save that"
        )
    if isinstance(obj, CLIPZeroShotRanker):
        return TypeError(
            f"skrank.save writes a fitted {_SAVED}; a CLIPZeroShotRanker trains nothing to "
            "save: rebuild it from its parameters, CLIPZeroShotRanker(**params).fit(), or "
            "pickle it, joblib.dump(obj, 'model.joblib')"
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
        what = "the fitted ranker it holds"
    kind = type(obj).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return TypeError(
        f"skrank.save writes a fitted {_SAVED}, not {article} {kind}: save {what}; or "
        f"pickle the whole object, joblib.dump({name}, 'model.joblib') (a ranker pickles "
        "without its backbone, which is rebuilt when loaded, and with its adapter on the CPU; "
        "load pickles only from sources you trust)"
    )


def save_with_cli(ranker, path: str | os.PathLike, cli: dict | None = None) -> None:
    """:func:`save`, plus the command line's optional ``cli`` record (``skrank fit``).

    ``cli`` maps keys of :data:`skrank.persistence._schema.CLI_KEYS` to column names; it is
    checked as :func:`load` checks it. Empty or None: the file is :func:`save`'s.
    """

    if not isinstance(ranker, tuple(_CLASSES.values())):
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
    CLIPRanker or CLIPPreferenceRanker
        The estimator the file holds, fitted, with the file's parameters (and
        ``params``), adapter and fitted attributes.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a skrank model, is truncated or corrupt, was written
        by a newer format version, holds an estimator this skrank does not
        know, or breaks the schema: one error naming the file and the field.
        A file made with one of skrank 0.1's architecture variants
        (``fusion="one_mlp"`` and the like; ``docs/model.md``) is refused by
        one error naming the option and its value: refit it.

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
    path = os.fspath(path)
    defaults = _defaults()
    _check_arguments(params, defaults)
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
    own = defaults[contents.estimator]
    local = {k: own[k] for k in LOCAL_PARAMS if k in own and k not in params}
    ranker = _CLASSES[contents.estimator](**{**contents.params, **local})
    ranker.adapter_ = adapter
    for key, value in contents.fitted.items():
        setattr(ranker, key, value)
    return ranker, dict(contents.cli)


def _check_arguments(params: dict, defaults: dict) -> None:
    """Refuse, before the file is read, the caller's own mistakes, named as theirs: a
    parameter no estimator takes, or a value refused by the table of each estimator that
    takes all of ``params``. One a file's estimator lacks is refused once it is read."""
    if not params:
        return
    tables = {name: ESTIMATORS[name].parameters for name in defaults}
    unknown = sorted(set(params).difference(*tables.values()))
    if unknown:
        raise TypeError(f"load() got unknown parameter(s) {unknown}; see {_SAVED}")
    for name, table in tables.items():
        if set(params) <= set(table):
            validate_params({**defaults[name], **params}, table)


def _check_device(path: str, device) -> None:
    """Warn, naming the fix, when this machine lacks the device a file was saved for.

    The file still loads (its parameters and history can be read anywhere);
    ``predict`` would fail, and its error cannot say how the model was loaded.
    """
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

    try:
        return load_bytes(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ValueError(f"{unreadable}: {exc}") from None
