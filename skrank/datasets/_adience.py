"""Adience unfiltered faces: ordinal age group and subject-exclusive folds."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from skrank.datasets._layout import (
    _drop_missing_images,
    _file_names,
    _layout_error,
    _make_bunch,
    _numeric_column,
    _read_csv,
    _require,
    _require_columns,
    _root_dir,
)
from skrank.datasets._splitfile import SplitIds, apply_split_file

__all__ = ["load_adience"]

_ADIENCE_LABELS = (
    "(0, 2)",
    "(4, 6)",
    "(8, 12)",
    "(15, 20)",
    "(25, 32)",
    "(38, 43)",
    "(48, 53)",
    "(60, 100)",
)
# Bounds used to place labels that are not one of the eight above. The paper names the
# third group 8-13 although the fold files label it "(8, 12)".
_ADIENCE_BOUNDS = ((0, 2), (4, 6), (8, 13), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
# A typo of the fold files, corrected as in Levi & Hassner's own preparation script.
_ADIENCE_TYPOS = {"(25, 23)": 4}
_ADIENCE_ALIGNMENTS = {
    "landmark": ("aligned", "landmark_aligned_face"),
    "coarse": ("faces", "coarse_tilt_aligned_face"),
}
_ADIENCE_COLUMNS = ("user_id", "original_image", "face_id", "age")
_ADIENCE_LAYOUT = """\
  <root>/
    fold_0_data.txt ... fold_4_data.txt   tab-separated, header user_id, original_image,
        face_id, age, gender, x, y, dx, dy, tilt_ang, fiducial_yaw_angle, fiducial_score
    aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>
        (alignment="coarse": faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>)
"""

_ADIENCE_DESCR = f"""\
Adience unfiltered faces: age groups
------------------------------------

26,580 Flickr photos of 2,284 people labelled with one of eight age groups and a gender;
the five fold files list 19,370 faces with subject-exclusive folds.

Source: https://talhassner.github.io/home/projects/Adience/Adience-data.html
(aligned.tar.gz or faces.tar.gz, and fold_0_data.txt ... fold_4_data.txt).

Citation: E. Eidinger, R. Enbar and T. Hassner. "Age and gender estimation of unfiltered
faces." IEEE Transactions on Information Forensics and Security 9(12):2170-2179, 2014.

Expected layout:
{_ADIENCE_LAYOUT}
Frame columns: image, target (ordinal age group 0-7 for (0, 2), (4, 6), (8, 12),
(15, 20), (25, 32), (38, 43), (48, 53), (60, 100)), fold (0-4, from the fold file),
user_id, face_id, age (label as written in the fold file), age_group (label of the
group) and gender ("m", "f", "u" or "").

Age labels outside the eight groups: a single age or a range is mapped to the group
whose bounds contain it when exactly one does (the group written "(8, 12)" is taken as
the paper's 8-13), so "(38, 42)" -> (38, 43), "(27, 32)" -> (25, 32), "2" -> (0, 2),
"13" -> (8, 12), "29" or "32" -> (25, 32), "42" -> (38, 43); the typo "(25, 23)" is
read as (25, 32). Labels between groups or spanning two ("3", "22", "23", "34", "35",
"36", "45", "46", "55" to "58", "(8, 23)", "(38, 48)") and "None" are dropped. A warning
gives the count of each.

Protocol: 5-fold cross-validation over the given folds (train on four, test on the
fifth), reporting mean accuracy and MAE over the age groups (Levi and Hassner, CVPR
Workshops 2015). Use sklearn.model_selection.PredefinedSplit(frame["fold"]).

Split file: ``split_file=`` reads a single train/test split as the ranking-aware
adapter's reference code releases it (github.com/uynaes/RankingAwareCLIP,
examples/Adience-split.json: {{"train_id": [...], "test_id": [...]}}, 8,698 and 4,320
faces named by their file name without ".jpg", e.g.
"landmark_aligned_face.1004.8469357784_ac74572242_o"). Ids are matched on the face id and
original image, so the landmark-named file also splits the coarse faces; the ``split``
column is "train", "test" or missing for faces the file does not list.
"""


def _adience_group(label: str) -> int | None:
    """Index of the age group holding ``label``, or None when none or several do."""
    label = label.strip()
    if label in _ADIENCE_TYPOS:
        return _ADIENCE_TYPOS[label]
    # At most 6 digits: a longer number is no age, and int() of a huge one raises.
    match = re.fullmatch(r"\(\s*(\d{1,6})\s*,\s*(\d{1,6})\s*\)|(\d{1,6})", label)
    if match is None:
        return None
    if match[3] is not None:
        low = high = int(match[3])
    else:
        low, high = int(match[1]), int(match[2])
    hits = [k for k, (a, b) in enumerate(_ADIENCE_BOUNDS) if a <= low <= high <= b]
    return hits[0] if len(hits) == 1 else None


def _count_labels(labels: pd.Series) -> str:
    counts = labels.value_counts()
    return ", ".join(f"{label!r}: {n}" for label, n in counts.items())


def load_adience(
    root: str | os.PathLike[str],
    *,
    alignment: str = "landmark",
    frontal: bool = False,
    split_file: str | os.PathLike[str] | None = None,
) -> Bunch:
    """Load the Adience faces with their age group (0-7) and fold (0-4).

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the fold files and the ``aligned/`` (or ``faces/``) folder.
    alignment : {"landmark", "coarse"}, default="landmark"
        ``"landmark"`` reads ``aligned/<user_id>/landmark_aligned_face.*`` (from
        ``aligned.tar.gz``), ``"coarse"`` reads
        ``faces/<user_id>/coarse_tilt_aligned_face.*`` (from ``faces.tar.gz``).
    frontal : bool, default=False
        Read the near-frontal subset ``fold_frontal_<k>_data.txt`` instead of
        ``fold_<k>_data.txt``.
    split_file : str or os.PathLike, default=None
        A single train/test split released with the paper's reference code
        (``Adience-split.json``: ``{"train_id": [...], "test_id": [...]}`` of face file
        names without ``.jpg``), read into a ``split`` column ("train", "test", or
        missing for faces it does not list). The folds are kept.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``fold``, ``user_id``,
        ``face_id``, ``age``, ``age_group``, ``gender`` and, with ``split_file``,
        ``split``), ``target`` (ndarray of int, the ordinal age group), ``instruction``
        and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root``, a fold file or the image folder is missing, or no listed image
        exists.
    ValueError
        If ``alignment`` is not allowed, a fold file lacks a needed column, or the split
        file is malformed or matches no face.

    Warns
    -----
    UserWarning
        When age labels outside the eight groups are mapped or dropped (with counts per
        label), when listed images are missing (their rows are dropped), and when some
        ids of ``split_file`` match no loaded face.

    Notes
    -----
    An age label outside the eight groups is mapped to the group whose bounds contain
    it when exactly one does, and dropped otherwise; see ``DESCR`` for the full table.

    Examples
    --------
    >>> from sklearn.model_selection import PredefinedSplit
    >>> from skrank.datasets import load_adience
    >>> adience = load_adience("~/data/adience")  # doctest: +SKIP
    >>> cv = PredefinedSplit(adience.frame["fold"])  # doctest: +SKIP
    >>> adience.instruction  # doctest: +SKIP
    'Sort the faces by age.'
    """
    dataset = "Adience"
    if alignment not in _ADIENCE_ALIGNMENTS:
        raise ValueError(
            f"alignment must be one of {sorted(_ADIENCE_ALIGNMENTS)}, got {alignment!r}."
        )
    folder, prefix = _ADIENCE_ALIGNMENTS[alignment]
    base = _root_dir(root, dataset, _ADIENCE_LAYOUT)
    stem = "fold_frontal" if frontal else "fold"
    fold_paths = [base / f"{stem}_{k}_data.txt" for k in range(5)]
    missing = [p.name for p in fold_paths if not p.is_file()]
    if missing:
        raise _layout_error(
            f"{dataset}: fold file(s) {missing} not found in {str(base)!r}.",
            dataset,
            _ADIENCE_LAYOUT,
        )
    image_root = _require(base / folder, dataset, _ADIENCE_LAYOUT, directory=True)

    folds = []
    for k, path in enumerate(fold_paths):
        fold = _read_csv(path, dataset, _ADIENCE_LAYOUT, sep="\t", dtype=str, keep_default_na=False)
        fold.columns = fold.columns.str.strip()
        _require_columns(fold, _ADIENCE_COLUMNS, path, dataset, _ADIENCE_LAYOUT)
        # Whole numbers (as text: they name the image files), or an error naming the file.
        _numeric_column(fold, "face_id", path, dataset, _ADIENCE_LAYOUT, integer=True)
        folds.append(fold.assign(fold=k))
    frame = pd.concat(folds, ignore_index=True)
    for column in ("user_id", "original_image", "face_id", "age"):
        frame[column] = frame[column].str.strip()
    if "gender" not in frame.columns:
        frame["gender"] = ""

    groups = {label: _adience_group(label) for label in frame["age"].unique()}
    group = frame["age"].map(groups)
    standard = frame["age"].isin(_ADIENCE_LABELS)
    mapped, dropped = ~standard & group.notna(), group.isna()
    if mapped.any() or dropped.any():
        warnings.warn(
            f"{dataset}: {int(mapped.sum())} rows have an age label outside the 8 groups "
            f"and were mapped to the group containing it ({_count_labels(frame['age'][mapped])}"
            f"); {int(dropped.sum())} rows with an age that fits no single group were "
            f"dropped ({_count_labels(frame['age'][dropped])}).",
            UserWarning,
            stacklevel=2,
        )
    frame = frame[~dropped.to_numpy()].copy()
    frame["target"] = group.loc[frame.index].astype(np.int64)
    frame["age_group"] = np.asarray(_ADIENCE_LABELS, dtype=object)[frame["target"].to_numpy()]

    relative = (
        frame["user_id"] + "/" + prefix + "." + frame["face_id"] + "." + frame["original_image"]
    )
    existing = set()
    for user in frame["user_id"].unique():
        if (image_root / user).is_dir():
            existing.update(f"{user}/{name}" for name in _file_names(image_root / user))
    frame = _drop_missing_images(
        frame,
        relative.isin(existing),
        dataset=dataset,
        metadata=f"{stem}_*_data.txt",
        image_dir=image_root,
        layout=_ADIENCE_LAYOUT,
    )
    frame["image"] = str(image_root) + os.sep + relative.loc[frame.index].str.replace("/", os.sep)
    frame["face_id"] = pd.to_numeric(frame["face_id"]).astype(np.int64)  # checked per fold
    columns = ["image", "target", "fold", "user_id", "face_id", "age", "age_group", "gender"]
    frame = frame[columns]
    if split_file is not None:
        stem = relative.loc[frame.index].str.rsplit(".", n=1).str[0].str.split("/").str[-1]
        frame = apply_split_file(
            frame,
            stem.map(_adience_split_id),
            split_file,
            SplitIds(
                dataset,
                _ADIENCE_LAYOUT,
                "face file names without '.jpg', e.g. "
                "'landmark_aligned_face.1004.8469357784_ac74572242_o'",
                normalize=_adience_split_id,
            ),
        )
    return _make_bunch(frame, "Sort the faces by age.", _ADIENCE_DESCR)


def _adience_split_id(face: str) -> str:
    """``<face_id>.<original image>`` of a face file name: no alignment prefix or ``.jpg``."""
    for _, prefix in _ADIENCE_ALIGNMENTS.values():
        if face.startswith(prefix + "."):
            face = face[len(prefix) + 1 :]
            break
    return face[:-4] if face.lower().endswith(".jpg") else face
