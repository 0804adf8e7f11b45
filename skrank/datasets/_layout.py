"""What the loaders of public datasets share: finding files in a published layout.

Nothing is downloaded: each loader reads a dataset in the layout its authors publish,
checks that the images named by the metadata exist (one directory listing per folder,
not one ``stat`` per file) and returns a :class:`~sklearn.utils.Bunch` whose ``frame``
holds absolute image paths, the target and the official split or folds. Every error
about a missing file, folder or column ends with the layout the loader expects.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from skrank._quote import shown

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _layout_error(
    problem: str, dataset: str, layout: str, error: type[Exception] = FileNotFoundError
) -> Exception:
    """Return an ``error`` stating ``problem``, then the layout ``dataset`` expects.

    Parameters
    ----------
    problem : str
        What is wrong, naming the file, folder or column.
    dataset : str
        Name of the dataset, as in the messages.
    layout : str
        The expected folder layout, one path a line.
    error : type of Exception, default=FileNotFoundError
        Class of the returned exception.

    Returns
    -------
    exception : Exception
        The exception, for the caller to raise.
    """
    return error(f"{problem}\nExpected {dataset} layout:\n{layout.rstrip()}")


def _root_dir(root: str | os.PathLike[str], dataset: str, layout: str) -> Path:
    """Absolute path of ``root`` (``~`` expanded); raise if it is not a folder."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.is_dir():
        raise _layout_error(
            f"{dataset} root directory {shown(str(path))} does not exist.", dataset, layout
        )
    return path


def _require(path: Path, dataset: str, layout: str, *, directory: bool = False) -> Path:
    """Return ``path``; raise if it is not a file (a folder when ``directory``)."""
    found = path.is_dir() if directory else path.is_file()
    if not found:
        kind = "folder" if directory else "file"
        raise _layout_error(f"{dataset}: {kind} {shown(str(path))} not found.", dataset, layout)
    return path


def _require_columns(
    frame: pd.DataFrame, columns: Iterable[str], source: Path, dataset: str, layout: str
) -> None:
    """Raise a ValueError naming the ``columns`` that ``frame``, read from ``source``, lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise _layout_error(
            f"{dataset}: {source.name} has no column(s) {missing}; found {list(frame.columns)}.",
            dataset,
            layout,
            ValueError,
        )


def _read_csv(path: Path, dataset: str, layout: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)``; a file pandas cannot parse (ragged rows, bad
    quoting, not text, empty) raises a ValueError naming the file, then the layout."""
    try:
        return pd.read_csv(path, **kwargs)
    except MemoryError:
        raise
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OverflowError) as exc:
        # pandas' EmptyDataError and ParserError are ValueErrors; its messages are short.
        lines = str(exc).strip().splitlines()
        problem = shown(lines[0] if lines else "", 200)
        raise _layout_error(
            f"{dataset}: cannot parse {path.name} ({type(exc).__name__}: {problem}).",
            dataset,
            layout,
            ValueError,
        ) from None


def _numeric_column(
    frame: pd.DataFrame,
    column: str,
    source: Path,
    dataset: str,
    layout: str,
    *,
    integer: bool = False,
) -> pd.Series:
    """``frame[column]`` as finite float64 (``integer``: int64) numbers, or a ValueError
    naming the file, the column, how many values are not such numbers, and the first
    one with its row (counted from 1, after any header).

    Empty cells count as not numbers: a target must not be NaN.
    """
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    array = numbers.to_numpy()
    good = np.isfinite(array)
    if integer:
        limit = float(2**53)  # integers float64 holds exactly
        with np.errstate(invalid="ignore"):
            good &= (array == np.round(array)) & (np.abs(array) <= limit)
    if not good.all():
        bad = np.flatnonzero(~good)
        first = bad[0]
        value = values.iloc[first]
        value = value.item() if isinstance(value, np.generic) else value  # inf, not np.float64
        raise _layout_error(
            f"{dataset}: cannot parse {source.name}: column {column!r} has {len(bad)} of "
            f"{len(values)} "
            f"value(s) that are not {'whole' if integer else 'finite'} numbers, the first "
            f"{shown(value, 60)} (data row {first + 1}).",
            dataset,
            layout,
            ValueError,
        )
    return numbers.astype(np.int64) if integer else numbers


def _file_names(directory: Path) -> set[str]:
    """Names of the regular files in ``directory`` (one listing, no per-file ``stat``)."""
    with os.scandir(directory) as entries:
        return {e.name for e in entries if e.is_file()}


def _image_names(directory: Path) -> list[str]:
    """Sorted names of the visible image files in ``directory``."""
    return sorted(
        name
        for name in _file_names(directory)
        if not name.startswith(".") and name.lower().endswith(_IMAGE_SUFFIXES)
    )


def _drop_missing_images(
    frame: pd.DataFrame,
    present: pd.Series,
    *,
    dataset: str,
    metadata: str,
    image_dir: Path,
    layout: str,
    note: str = "",
) -> pd.DataFrame:
    """Keep the rows whose image exists; raise if none does, warn with the count otherwise.

    The warning is attributed to the caller of the loader that calls this function.
    """
    n_missing = int((~present).sum())
    if n_missing == len(frame):
        raise _layout_error(
            f"{dataset}: none of the {len(frame)} images listed in {metadata} "
            f"was found in {shown(str(image_dir))}.",
            dataset,
            layout,
        )
    if n_missing:
        warnings.warn(
            f"{dataset}: {n_missing} of {len(frame)} images listed in {metadata} are missing "
            f"from {shown(str(image_dir))}; their rows were dropped.{note}",
            UserWarning,
            stacklevel=3,
        )
    return frame.loc[present.to_numpy()]


def _make_bunch(frame: pd.DataFrame, instruction: str, descr: str) -> Bunch:
    """Bunch of ``frame`` (``image`` and ``target`` first, fresh index) and its target."""
    columns = ["image", "target"] + [c for c in frame.columns if c not in ("image", "target")]
    frame = frame[columns].reset_index(drop=True)
    return Bunch(
        frame=frame, target=frame["target"].to_numpy(), instruction=instruction, DESCR=descr
    )
