"""Object counts per category from COCO instance annotations: one ranking task per category."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from skrank.datasets._layout import (
    _file_names,
    _layout_error,
    _make_bunch,
    _require,
    _root_dir,
)

__all__ = ["coco_annotations_file", "load_coco_counts"]

# The instruction of the reference code's counting data (examples/example-count-df.csv of
# github.com/uynaes/RankingAwareCLIP, column "title").
COUNT_INSTRUCTION = "Rank the numbers of {category}."
_CROWD = ("drop", "ignore")
# COCO-ReM (github.com/kdexd/coco-rem, huggingface.co/datasets/kdexd/coco-rem): refined
# instance annotations of the same COCO 2017 images, in COCO's JSON format, released as
# instances_trainrem.json.zip and instances_valrem.json.zip; the reference code's demo
# (demo.ipynb of github.com/uynaes/RankingAwareCLIP) counts on instances_valrem.json.
COCO_REM_FILES = {"train2017": "instances_trainrem.json", "val2017": "instances_valrem.json"}
_SOURCES = ("coco", "coco-rem")
_COCO_LAYOUT = """\
  <images_root>/<file_name>   the images of one COCO split, e.g. train2017/000000000009.jpg
  <annotations_json>          COCO instance annotations of that split, e.g.
      annotations/instances_train2017.json: {"images": [{"id", "file_name", ...}],
      "annotations": [{"image_id", "category_id", "iscrowd", ...}],
      "categories": [{"id", "name", ...}]}
      or COCO-ReM's refined annotations of the same images (same format):
      coco_rem/instances_trainrem.json, coco_rem/instances_valrem.json
"""

_COCO_DESCR = f"""\
COCO object counts: how many instances of a category an image holds
--------------------------------------------------------------------

Counts read from the instance annotations of Microsoft COCO (80 object categories;
2017 release: 118,287 training and 5,000 validation images): for each category, every
image with at least one instance of it, and how many it has. Each category is its own
ranking task, with the instruction "Rank the numbers of <category>." (the reference
code's wording).

Source: https://cocodataset.org (train2017.zip, val2017.zip and
annotations_trainval2017.zip). COCO-ReM's refined annotations of the same images
(instances_trainrem.json, instances_valrem.json: https://github.com/kdexd/coco-rem)
are read the same way; their file names are the COCO images' (train2017/, val2017/).

Citation: T.-Y. Lin, M. Maire, S. Belongie et al. "Microsoft COCO: Common objects in
context." ECCV 2014. COCO-ReM: S. Singh, A. Yadav, J. Jain, H. Shi, J. Johnson and
K. Desai. "Benchmarking object detectors with COCO: a new path forward." 2024.

Expected layout:
{_COCO_LAYOUT}
Frame columns: image, target (the count), instruction, category (name), category_id,
image_id, file_name. An image holding several categories has one row per category.
Images without an instance of a category have no row for it: negatives (count 0) are
images of the other categories, drawn at training time.

Crowd annotations: COCO outlines a group of objects it did not separate with one
annotation marked iscrowd=1, whose number of objects is unknown. crowd="drop" (the
default) leaves an image out of a category when it holds a crowd annotation of that
category, so every count kept is exact; crowd="ignore" counts only the separate
(iscrowd=0) instances, a lower bound for those images. The reference code does not
say which of the two the paper used.
"""


def _field(records: list, key: str, what: str, source: Path, default=None) -> list:
    """``record[key]`` of each record; a ValueError naming the record when one lacks it."""
    try:
        return [r[key] if default is None else r.get(key, default) for r in records]
    except (KeyError, TypeError, AttributeError):
        raise _layout_error(
            f"COCO: an entry of {what!r} in {source.name} has no {key!r}.",
            "COCO",
            _COCO_LAYOUT,
            ValueError,
        ) from None


def coco_annotations_file(
    folder: str | os.PathLike[str], split: str, *, source: str = "coco"
) -> Path:
    """The instance annotations file of a COCO 2017 split, from COCO or COCO-ReM.

    Parameters
    ----------
    folder : str or os.PathLike
        Where to look: the file itself may be in it or in its ``annotations/``
        subfolder (COCO's ``coco/``, or COCO-ReM's ``coco_rem/``).
    split : str
        The image folder's name, ``"train2017"`` or ``"val2017"`` (any other name for
        COCO's own annotations, ``instances_<split>.json``).
    source : {"coco", "coco-rem"}, default="coco"
        ``"coco"``: ``instances_<split>.json``; ``"coco-rem"``: COCO-ReM's refined
        annotations of the same images, ``instances_trainrem.json`` or
        ``instances_valrem.json``.

    Returns
    -------
    path : pathlib.Path
        The absolute path of the file, to pass to :func:`load_coco_counts` with the
        split's image folder.

    Raises
    ------
    ValueError
        If ``source`` is not allowed, or COCO-ReM has no file for ``split``.
    FileNotFoundError
        If the file is in neither place (its ``.zip`` is named when only that is there).

    Examples
    --------
    >>> from skrank.datasets import coco_annotations_file, load_coco_counts
    >>> rem = coco_annotations_file("~/data/coco_rem", "val2017",
    ...                             source="coco-rem")  # doctest: +SKIP
    >>> rem.name  # doctest: +SKIP
    'instances_valrem.json'
    >>> counts = load_coco_counts("~/data/coco/val2017", rem)  # doctest: +SKIP
    """
    dataset = "COCO" if source == "coco" else "COCO-ReM"
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {_SOURCES}, got {source!r}.")
    if source == "coco-rem":
        if split not in COCO_REM_FILES:
            raise ValueError(
                f"COCO-ReM annotates the 2017 splits only ({sorted(COCO_REM_FILES)}), "
                f"got split={split!r}."
            )
        name = COCO_REM_FILES[split]
    else:
        name = f"instances_{split}.json"
    base = _root_dir(folder, dataset, _COCO_LAYOUT)
    places = [base / name, base / "annotations" / name]
    for path in places:
        if path.is_file():
            return path
    zipped = [
        p.with_name(p.name + ".zip") for p in places if p.with_name(p.name + ".zip").is_file()
    ]
    hint = f" ({zipped[0].name} is there: unzip it)" if zipped else ""
    raise _layout_error(
        f"{dataset}: {name} is in neither {str(base)!r} nor its annotations/ folder{hint}.",
        dataset,
        _COCO_LAYOUT,
    )


def load_coco_counts(
    images_root: str | os.PathLike[str],
    annotations_json: str | os.PathLike[str],
    *,
    categories=None,
    max_count: int | None = None,
    crowd: str = "drop",
) -> Bunch:
    """Load per-image object counts of each category from COCO instance annotations.

    Parameters
    ----------
    images_root : str or os.PathLike
        Folder of the images the annotations describe (``train2017/``, ``val2017/``).
    annotations_json : str or os.PathLike
        The COCO instance annotations file (``annotations/instances_train2017.json``),
        or COCO-ReM's refined annotations of the same images
        (``instances_trainrem.json``, ``instances_valrem.json``; see
        :func:`coco_annotations_file`): JSON with ``images``, ``annotations`` and
        ``categories``.
    categories : list of str, default=None
        Category names to keep (``["horse", "apple"]``); None keeps every category
        that has an instance.
    max_count : int, default=None
        Drop the rows whose count exceeds it; None keeps every count.
    crowd : {"drop", "ignore"}, default="drop"
        ``"drop"`` leaves an image out of a category when a crowd annotation
        (``iscrowd=1``, an unknown number of objects) of that category is on it;
        ``"ignore"`` counts only the separate instances.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``instruction``,
        ``category``, ``category_id``, ``image_id`` and ``file_name``: one row per
        image and category it holds), ``target`` (ndarray of int, the counts),
        ``instruction`` (None: each row has its own, in ``frame["instruction"]``),
        ``instructions`` and ``categories`` (one per kept category, in the file's
        order) and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``images_root`` or the annotations file is missing, or no annotated image
        exists.
    ValueError
        If the annotations are not COCO instance annotations, a category is unknown,
        ``max_count`` or ``crowd`` is not allowed, or no row is left.

    Warns
    -----
    UserWarning
        When some annotated images are missing from ``images_root``; their rows are
        dropped.

    Examples
    --------
    >>> from skrank import CLIPRanker
    >>> from skrank.datasets import load_coco_counts
    >>> coco = load_coco_counts("~/data/coco/val2017",
    ...                         "~/data/coco/annotations/instances_val2017.json",
    ...                         categories=["horse", "apple"])  # doctest: +SKIP
    >>> coco.frame[["instruction", "target"]].head(2)  # doctest: +SKIP
    >>> CLIPRanker().fit(coco.frame, coco.target)  # doctest: +SKIP
    """
    dataset = "COCO"
    if crowd not in _CROWD:
        raise ValueError(f"crowd must be one of {_CROWD}, got {crowd!r}.")
    if max_count is not None and (
        isinstance(max_count, bool) or not isinstance(max_count, (int, np.integer)) or max_count < 1
    ):
        raise ValueError(f"max_count must be an integer >= 1 or None, got {max_count!r}.")
    if isinstance(categories, str):
        categories = [categories]
    base = _root_dir(images_root, dataset, _COCO_LAYOUT)
    source = Path(os.path.abspath(os.path.expanduser(os.fspath(annotations_json))))
    _require(source, dataset, _COCO_LAYOUT)
    try:
        content = json.loads(source.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _layout_error(
            f"{dataset}: {source.name} is not JSON: {exc}", dataset, _COCO_LAYOUT, ValueError
        ) from exc
    missing = [
        key
        for key in ("images", "annotations", "categories")
        if not isinstance(content, dict) or not isinstance(content.get(key), list)
    ]
    if missing:
        raise _layout_error(
            f"{dataset}: {source.name} has no list(s) {missing}: not COCO instance annotations.",
            dataset,
            _COCO_LAYOUT,
            ValueError,
        )

    cats = content["categories"]
    names = pd.Series(
        _field(cats, "name", "categories", source), index=_field(cats, "id", "categories", source)
    ).astype(str)
    if categories is not None:
        unknown = [c for c in categories if c not in set(names)]
        if unknown:
            raise ValueError(
                f"{dataset}: categories {unknown} are not in {source.name}; it has "
                f"{list(names)[:12]}{' ...' if len(names) > 12 else ''}."
            )
        names = names[names.isin(categories)]

    anns = content["annotations"]
    pairs = pd.DataFrame(
        {
            "image_id": _field(anns, "image_id", "annotations", source),
            "category_id": _field(anns, "category_id", "annotations", source),
            "iscrowd": _field(anns, "iscrowd", "annotations", source, default=0),
        }
    )
    pairs = pairs[pairs["category_id"].isin(names.index)]
    crowded = pairs["iscrowd"].astype(bool)
    counts = pairs[~crowded].groupby(["category_id", "image_id"]).size().rename("target")
    if crowd == "drop":
        with_crowd = pd.MultiIndex.from_frame(
            pairs.loc[crowded, ["category_id", "image_id"]].drop_duplicates()
        )
        counts = counts[~counts.index.isin(with_crowd)]
    if max_count is not None:
        counts = counts[counts <= max_count]
    frame = counts.reset_index()
    if frame.empty:
        raise ValueError(
            f"{dataset}: no image in {source.name} holds an instance of the categories asked "
            f"for (categories={categories!r}, max_count={max_count!r}, crowd={crowd!r})."
        )

    images = content["images"]
    file_names = pd.Series(
        _field(images, "file_name", "images", source),
        index=_field(images, "id", "images", source),
    ).astype(str)
    file_names = file_names[~file_names.index.duplicated()]
    frame["file_name"] = frame["image_id"].map(file_names)
    unknown_images = frame["file_name"].isna()
    if unknown_images.any():
        example = frame["image_id"][unknown_images].iloc[0]
        raise _layout_error(
            f"{dataset}: annotations in {source.name} refer to "
            f"{frame['image_id'][unknown_images].nunique()} image id(s) missing from its "
            f"'images' (e.g. {example}).",
            dataset,
            _COCO_LAYOUT,
            ValueError,
        )
    if frame["file_name"].str.contains("/", regex=False).any():
        present = frame["file_name"].map(lambda name: (base / name).is_file())
    else:
        present = frame["file_name"].isin(_file_names(base))
    missing_images = frame.loc[~present.to_numpy(), "file_name"].nunique()
    n_images = frame["file_name"].nunique()
    if missing_images == n_images:
        raise _layout_error(
            f"{dataset}: none of the {n_images} annotated images of {source.name} was found "
            f"in {str(base)!r}.",
            dataset,
            _COCO_LAYOUT,
        )
    if missing_images:
        warnings.warn(
            f"{dataset}: {missing_images} of {n_images} images annotated in {source.name} are "
            f"missing from {str(base)!r}; their {int((~present).sum())} rows were dropped.",
            UserWarning,
            stacklevel=2,
        )
        frame = frame[present.to_numpy()]

    order = {cid: k for k, cid in enumerate(names.index)}
    frame = frame.assign(_order=frame["category_id"].map(order))
    frame = frame.sort_values(["_order", "image_id"], kind="stable").drop(columns="_order")
    frame["category"] = frame["category_id"].map(names)
    frame["instruction"] = [COUNT_INSTRUCTION.format(category=c) for c in frame["category"]]
    frame["image"] = [os.path.normpath(base / name) for name in frame["file_name"]]
    frame["target"] = frame["target"].astype(np.int64)
    columns = ["image", "target", "instruction", "category", "category_id", "image_id"]
    frame = frame[columns + ["file_name"]]
    kept = [c for c in names if c in set(frame["category"])]
    bunch = _make_bunch(frame, None, _COCO_DESCR)
    bunch.categories = kept
    bunch.instructions = [COUNT_INSTRUCTION.format(category=c) for c in kept]
    return bunch
