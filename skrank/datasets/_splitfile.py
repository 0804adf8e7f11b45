"""The train/test split files released with the paper's reference code, read by path.

The reference implementation of the ranking-aware adapter (github.com/uynaes/RankingAwareCLIP,
``examples/*-split.json``) publishes one JSON object per dataset::

    {"train_id": ["<id>", ...], "test_id": ["<id>", ...]}

Each loader says what an id is for its dataset (an image name without its extension, an
AVA image id, an Adience face file name without its extension, an HCI ``decade_<hex>``
name) and turns it into a ``split`` column: ``"train"``, ``"test"``, or missing for the
rows the file does not list.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from skrank._quote import shown
from skrank.datasets._layout import _layout_error

_SPLIT_KEYS = {"train_id": "train", "test_id": "test"}
SPLIT_FILE_FORMAT = """\
  split file (--split-file / split_file=): JSON {"train_id": [id, ...], "test_id": [id, ...]},
  as the reference code releases it (examples/<dataset>-split.json)
"""


def read_split_file(path: str | os.PathLike[str], dataset: str, layout: str) -> dict[str, str]:
    """Map each id of a reference split file to ``"train"`` or ``"test"``.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.
    dataset : str
        Name of the dataset, as in the messages.
    layout : str
        The layout the loader expects, appended to every error.

    Returns
    -------
    split : dict
        ``{id: "train" | "test"}``; ids are strings (integers in the file are
        converted).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not JSON of that shape, or an id is on both sides.
    """
    file = Path(os.path.expanduser(os.fspath(path)))
    layout = layout.rstrip() + "\n" + SPLIT_FILE_FORMAT
    if not file.is_file():
        raise _layout_error(f"{dataset}: split file {str(file)!r} not found.", dataset, layout)
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _layout_error(
            f"{dataset}: split file {shown(file.name)} is not UTF-8 text (byte {exc.start}).",
            dataset,
            layout,
            ValueError,
        ) from None
    except OSError as exc:
        raise _layout_error(
            f"{dataset}: split file {shown(str(file))} cannot be read "
            f"({type(exc).__name__}: {exc.strerror or exc}).",
            dataset,
            layout,
            ValueError,
        ) from None
    try:
        content = json.loads(text)
    except RecursionError:  # arrays or objects nested thousands deep
        raise _layout_error(
            f"{dataset}: split file {shown(file.name)} is nested too deeply to be a split file.",
            dataset,
            layout,
            ValueError,
        ) from None
    except ValueError as exc:  # JSONDecodeError, or an integer of over 4300 digits
        raise _layout_error(
            f"{dataset}: split file {shown(file.name)} is not JSON: {shown(str(exc), 200)}",
            dataset,
            layout,
            ValueError,
        ) from None
    if not isinstance(content, dict) or any(
        not isinstance(content.get(key), list) for key in _SPLIT_KEYS
    ):
        found = shown(sorted(content)[:10]) if isinstance(content, dict) else type(content).__name__
        raise _layout_error(
            f"{dataset}: split file {file.name} must hold the lists 'train_id' and 'test_id'; "
            f"found {found}.",
            dataset,
            layout,
            ValueError,
        )
    split: dict[str, str] = {}
    for key, name in _SPLIT_KEYS.items():
        for item in content[key]:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise _layout_error(
                    f"{dataset}: split file {file.name}: {key} holds {shown(item)} "
                    f"({type(item).__name__}); ids are strings.",
                    dataset,
                    layout,
                    ValueError,
                )
            split[str(item)] = name
    n_listed = len(content["train_id"]) + len(content["test_id"])
    if len(split) < n_listed:
        both = set(map(str, content["train_id"])) & set(map(str, content["test_id"]))
        if both:
            raise _layout_error(
                f"{dataset}: split file {file.name} lists {len(both)} id(s) in both train_id and "
                f"test_id (e.g. {sorted(both)[0]!r}).",
                dataset,
                layout,
                ValueError,
            )
    return split


class SplitIds(NamedTuple):
    """How a dataset's split file names its images."""

    dataset: str  # the dataset's name, in messages
    layout: str  # the dataset's expected layout, shown when the file does not match
    description: str  # what an id is, e.g. "AVA image ids, e.g. '953619'"
    normalize: object = None  # maps each id of the file to the loader's terms, or None


def apply_split_file(
    frame: pd.DataFrame,
    keys: pd.Series,
    path: str | os.PathLike[str],
    ids: SplitIds,
    *,
    split: dict[str, str] | None = None,
) -> pd.DataFrame:
    """``frame`` with its ``split`` column set from the split file at ``path``.

    ``keys`` gives each row's id in the split file's terms; ``ids.normalize``, when
    given, maps each id of the file to those terms first. ``split`` is the file as
    :func:`read_split_file` returned it, when the caller has read it already. Rows the
    file does not list get a missing ``split``. Ids of the file that match no row are
    counted in a warning (attributed to the caller of the loader); when no id matches
    at all, the file is for another dataset or the ids are read wrongly, and a
    ValueError says so.
    """
    dataset, layout, id_description, normalize = ids
    if split is None:
        split = read_split_file(path, dataset, layout)
    if normalize is not None:
        split = {normalize(key): value for key, value in split.items()}
    keys = keys.astype(str)
    matched = keys.map(split)
    n_matched_ids = len(set(keys[matched.notna()]))
    name = Path(os.fspath(path)).name
    if n_matched_ids == 0:
        example = next(iter(split), "")
        raise _layout_error(
            f"{dataset}: none of the {len(split)} ids in split file {name} matches a loaded "
            f"image (ids are {id_description}; the file's first id is {example!r}, a loaded "
            f"image's is {keys.iloc[0] if len(keys) else ''!r}).",
            dataset,
            layout.rstrip() + "\n" + SPLIT_FILE_FORMAT,
            ValueError,
        )
    n_unmatched = len(split) - n_matched_ids
    if n_unmatched:
        warnings.warn(
            f"{dataset}: {n_unmatched} of the {len(split)} ids in split file {name} match no "
            "loaded image (missing files or rows); the split is used without them.",
            UserWarning,
            stacklevel=3,
        )
    frame = frame.copy()
    frame["split"] = matched.to_numpy()  # missing (NaN) where the file lists no id
    return frame
