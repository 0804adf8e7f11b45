"""Loaders of public image-ranking datasets already on local disk.

Nothing is downloaded: each loader reads a dataset in the layout its authors publish,
checks that the images named by the metadata exist (one directory listing per folder,
not one ``stat`` per file) and returns a :class:`~sklearn.utils.Bunch` whose ``frame``
holds absolute image paths, the target and the official split or folds.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_adience", "load_ava", "load_hci", "load_koniq10k", "load_utkface"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------


def _layout_message(problem: str, dataset: str, layout: str) -> str:
    return f"{problem}\nExpected {dataset} layout:\n{layout.rstrip()}"


def _root_dir(root: str | os.PathLike[str], dataset: str, layout: str) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.is_dir():
        raise FileNotFoundError(
            _layout_message(
                f"{dataset} root directory {str(path)!r} does not exist.", dataset, layout
            )
        )
    return path


def _require(path: Path, dataset: str, layout: str, *, directory: bool = False) -> Path:
    found = path.is_dir() if directory else path.is_file()
    if not found:
        kind = "folder" if directory else "file"
        raise FileNotFoundError(
            _layout_message(f"{dataset}: {kind} {str(path)!r} not found.", dataset, layout)
        )
    return path


def _require_columns(
    frame: pd.DataFrame, columns: Iterable[str], source: Path, dataset: str, layout: str
) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            _layout_message(
                f"{dataset}: {source.name} has no column(s) {missing}; "
                f"found {list(frame.columns)}.",
                dataset,
                layout,
            )
        )


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
    """Keep the rows whose image exists; raise if none does, warn with the count otherwise."""
    n_missing = int((~present).sum())
    if n_missing == len(frame):
        raise FileNotFoundError(
            _layout_message(
                f"{dataset}: none of the {len(frame)} images listed in {metadata} "
                f"was found in {str(image_dir)!r}.",
                dataset,
                layout,
            )
        )
    if n_missing:
        warnings.warn(
            f"{dataset}: {n_missing} of {len(frame)} images listed in {metadata} are missing "
            f"from {str(image_dir)!r}; their rows were dropped.{note}",
            UserWarning,
            stacklevel=3,
        )
    return frame.loc[present.to_numpy()]


def _make_bunch(frame: pd.DataFrame, instruction: str, descr: str) -> Bunch:
    columns = ["image", "target"] + [c for c in frame.columns if c not in ("image", "target")]
    frame = frame[columns].reset_index(drop=True)
    return Bunch(
        frame=frame, target=frame["target"].to_numpy(), instruction=instruction, DESCR=descr
    )


# ---------------------------------------------------------------------------------------
# KonIQ-10k
# ---------------------------------------------------------------------------------------

_KONIQ_SCORES = "koniq10k_scores_and_distributions.csv"
_KONIQ_SETS = "koniq10k_distributions_sets.csv"
_KONIQ_RESOLUTIONS = ("1024x768", "512x384")
_KONIQ_SPLITS = {"training": "train", "validation": "val", "test": "test"}
_KONIQ_LAYOUT = f"""\
  <root>/
    {_KONIQ_SCORES}   columns image_name, c1..c5, c_total, MOS, SD, MOS_zscore
    {_KONIQ_SETS}         optional; columns image_name, ..., set
    1024x768/<image_name>   (or 512x384/<image_name>)
"""

_KONIQ_DESCR = f"""\
KonIQ-10k in-the-wild image quality database
--------------------------------------------

10,073 photos sampled from YFCC100M, each rated on a 1-5 absolute category scale by
about 120 crowd workers (1.2 million ratings from 1,459 workers).

Source: https://database.mmsp-kn.de/koniq-10k-database.html
Split file: https://github.com/subpic/koniq (metadata/{_KONIQ_SETS})

Citation: V. Hosu, H. Lin, T. Sziranyi and D. Saupe. "KonIQ-10k: An ecologically valid
database for deep learning of blind image quality assessment." IEEE Transactions on
Image Processing 29:4041-4056, 2020.

Expected layout:
{_KONIQ_LAYOUT}
Frame columns: image, target (the ``target`` column of the scores file: MOS on the 1-5
scale by default, or MOS_zscore, a rescaled z-score on 0-100), image_name, the vote
fractions or counts c1..c5, c_total, MOS, SD, MOS_zscore and, when {_KONIQ_SETS} is
present, split ("train", "val" or "test", from its ``set`` column). Only ``image_name``
and ``set`` are read from the split file: its ``MOS`` column is on the 0-100 scale.

Protocol: the official random split (7,058 training, 1,000 validation, 2,015 test
images); report SROCC and PLCC on the test set. Many papers instead average over random
80/20 splits; say which one you use.
"""


def load_koniq10k(
    root: str | os.PathLike[str], *, resolution: str | None = None, target: str = "MOS"
) -> Bunch:
    """Load the KonIQ-10k image quality dataset from a local folder.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding ``koniq10k_scores_and_distributions.csv`` and the image folder.
    resolution : {"1024x768", "512x384"} or None, default=None
        Which image folder to use. ``None`` takes ``1024x768/`` when it exists and
        ``512x384/`` otherwise.
    target : {"MOS", "MOS_zscore"}, default="MOS"
        Column of the scores file used as the target: the mean opinion score on the
        1-5 scale, or its rescaled z-score on 0-100.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, the columns of the scores file
        and ``split`` when ``koniq10k_distributions_sets.csv`` is present), ``target``
        (ndarray of float), ``instruction`` (str) and ``DESCR`` (str).

    Raises
    ------
    FileNotFoundError
        If ``root``, the scores file or the image folder is missing, or no listed image
        exists.
    ValueError
        If ``resolution`` or ``target`` is not allowed, or a CSV lacks a needed column.

    Warns
    -----
    UserWarning
        When some listed images are missing; their rows are dropped.

    See Also
    --------
    load_ava : Aesthetic scores of photos.

    Examples
    --------
    >>> from skrank.datasets import load_koniq10k
    >>> koniq = load_koniq10k("~/data/koniq10k")  # doctest: +SKIP
    >>> train = koniq.frame[koniq.frame["split"] == "train"]  # doctest: +SKIP
    >>> koniq.instruction  # doctest: +SKIP
    'Sort the photos by image quality.'
    """
    dataset = "KonIQ-10k"
    if resolution is not None and resolution not in _KONIQ_RESOLUTIONS:
        raise ValueError(
            f"resolution must be one of {_KONIQ_RESOLUTIONS} or None, got {resolution!r}."
        )
    if target not in ("MOS", "MOS_zscore"):
        raise ValueError(f"target must be 'MOS' or 'MOS_zscore', got {target!r}.")
    base = _root_dir(root, dataset, _KONIQ_LAYOUT)
    scores_path = _require(base / _KONIQ_SCORES, dataset, _KONIQ_LAYOUT)
    if resolution is None:
        resolution = next(
            (r for r in _KONIQ_RESOLUTIONS if (base / r).is_dir()), _KONIQ_RESOLUTIONS[0]
        )
    image_dir = _require(base / resolution, dataset, _KONIQ_LAYOUT, directory=True)

    frame = pd.read_csv(scores_path)
    _require_columns(frame, ["image_name", target], scores_path, dataset, _KONIQ_LAYOUT)
    frame["image_name"] = frame["image_name"].astype(str)
    frame["target"] = frame[target].astype(float)

    sets_path = base / _KONIQ_SETS
    if sets_path.is_file():
        sets = pd.read_csv(sets_path)
        _require_columns(sets, ["image_name", "set"], sets_path, dataset, _KONIQ_LAYOUT)
        sets = sets.drop_duplicates("image_name")
        split = sets["set"].astype(str).replace(_KONIQ_SPLITS)
        frame["split"] = frame["image_name"].map(
            pd.Series(split.to_numpy(), index=sets["image_name"].astype(str))
        )

    present = frame["image_name"].isin(_file_names(image_dir))
    frame = _drop_missing_images(
        frame,
        present,
        dataset=dataset,
        metadata=_KONIQ_SCORES,
        image_dir=image_dir,
        layout=_KONIQ_LAYOUT,
    )
    frame.insert(0, "image", str(image_dir) + os.sep + frame["image_name"])
    return _make_bunch(frame, "Sort the photos by image quality.", _KONIQ_DESCR)


# ---------------------------------------------------------------------------------------
# AVA
# ---------------------------------------------------------------------------------------

_AVA_TXT = "AVA.txt"
_AVA_TEST_LIST = "aesthetics_image_lists/generic_test.jpgl"
_AVA_COLUMNS = (
    ["index", "image_id"]
    + [f"votes_{k}" for k in range(1, 11)]
    + ["semantic_tag_1", "semantic_tag_2", "challenge_id"]
)
_AVA_LAYOUT = f"""\
  <root>/
    {_AVA_TXT}        15 space-separated integers a line: index, image id, counts of the
                   votes 1..10, semantic tag ids 1 and 2 (0: none), challenge id
    {_AVA_TEST_LIST}   optional; one test image id a line
    images/<image id>.jpg
"""

_AVA_DESCR = f"""\
AVA: Aesthetic Visual Analysis
------------------------------

About 255,500 photos from the DPChallenge.com photo contests, each with the counts of
its aesthetic votes on a 1-10 scale (about 210 votes per photo), up to two semantic
tags and the id of its contest.

Source: the AVA_dataset package (AVA.txt, tags.txt, challenges.txt, aesthetic and style
image lists) from http://www.lucamarchesotti.com/, mirrored with the images at
https://github.com/imfing/ava_downloader.

Citation: N. Murray, L. Marchesotti and F. Perronnin. "AVA: A large-scale database for
aesthetic visual analysis." CVPR 2012.

Expected layout:
{_AVA_LAYOUT}
Frame columns: image, target (mean score, sum(k * votes_k) / n_votes), image_id,
votes_1..votes_10, n_votes, semantic_tag_1, semantic_tag_2, challenge_id and, when the
generic test list is present, split ("test" for the ids it lists, "train" otherwise).
Rows whose image file is missing (downloads commonly lack about 20 of the 255,530) and
rows without votes are dropped with a warning.

Protocol: train on all images outside aesthetics_image_lists/generic_test.jpgl (about
20,000 images) and test on that list; report SROCC and PLCC of the mean score and, as
in the original paper, binary accuracy with the threshold 5.
"""


def load_ava(root: str | os.PathLike[str], *, image_dir: str = "images") -> Bunch:
    """Load the AVA aesthetic quality dataset from a local folder.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding ``AVA.txt`` (and optionally ``aesthetics_image_lists/``).
    image_dir : str, default="images"
        Folder of the ``<image id>.jpg`` files, relative to ``root``.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``image_id``, the vote counts
        ``votes_1`` .. ``votes_10``, ``n_votes``, the semantic tags, ``challenge_id``
        and ``split`` when the generic test list is present), ``target`` (ndarray of
        float: the mean score on the 1-10 scale), ``instruction`` and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root``, ``AVA.txt`` or the image folder is missing, or no listed image
        exists.
    ValueError
        If ``AVA.txt`` does not hold 15 integers a line.

    Warns
    -----
    UserWarning
        When some listed images are missing, or some images have no vote; their rows are
        dropped.

    See Also
    --------
    load_koniq10k : Technical image quality scores.

    Examples
    --------
    >>> from skrank.datasets import load_ava
    >>> ava = load_ava("~/data/AVA_dataset")  # doctest: +SKIP
    >>> test = ava.frame[ava.frame["split"] == "test"]  # doctest: +SKIP
    >>> ava.instruction  # doctest: +SKIP
    'Sort the photos by aesthetic quality.'
    """
    dataset = "AVA"
    base = _root_dir(root, dataset, _AVA_LAYOUT)
    txt_path = _require(base / _AVA_TXT, dataset, _AVA_LAYOUT)
    images = _require(base / image_dir, dataset, _AVA_LAYOUT, directory=True)

    try:
        frame = pd.read_csv(txt_path, sep=r"\s+", header=None, dtype=np.int64)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(
            _layout_message(f"{dataset}: cannot parse {_AVA_TXT}: {exc}", dataset, _AVA_LAYOUT)
        ) from exc
    if frame.shape[1] != len(_AVA_COLUMNS):
        raise ValueError(
            _layout_message(
                f"{dataset}: {_AVA_TXT} has {frame.shape[1]} columns, expected "
                f"{len(_AVA_COLUMNS)}.",
                dataset,
                _AVA_LAYOUT,
            )
        )
    frame.columns = _AVA_COLUMNS
    frame = frame.drop(columns="index")

    votes = frame[[f"votes_{k}" for k in range(1, 11)]].to_numpy()
    n_votes = votes.sum(axis=1)
    frame["n_votes"] = n_votes
    has_votes = n_votes > 0
    if not has_votes.all():
        warnings.warn(
            f"{dataset}: {int((~has_votes).sum())} images in {_AVA_TXT} have no vote; "
            "their rows were dropped.",
            UserWarning,
            stacklevel=2,
        )
        frame, votes, n_votes = frame[has_votes], votes[has_votes], n_votes[has_votes]
    frame["target"] = votes @ np.arange(1.0, 11.0) / n_votes

    test_list = base / _AVA_TEST_LIST
    if test_list.is_file():
        test_ids = np.array(test_list.read_text().split(), dtype=np.int64)
        frame["split"] = np.where(frame["image_id"].isin(test_ids), "test", "train")

    file_names = frame["image_id"].astype(str) + ".jpg"
    frame = _drop_missing_images(
        frame,
        file_names.isin(_file_names(images)),
        dataset=dataset,
        metadata=_AVA_TXT,
        image_dir=images,
        layout=_AVA_LAYOUT,
        note=" AVA downloads commonly lack a few of the 255,530 images.",
    )
    frame.insert(0, "image", str(images) + os.sep + file_names.loc[frame.index])
    return _make_bunch(frame, "Sort the photos by aesthetic quality.", _AVA_DESCR)


# ---------------------------------------------------------------------------------------
# Adience
# ---------------------------------------------------------------------------------------

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
"""


def _adience_group(label: str) -> int | None:
    """Index of the age group holding ``label``, or None when none or several do."""
    label = label.strip()
    if label in _ADIENCE_TYPOS:
        return _ADIENCE_TYPOS[label]
    match = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)|(\d+)", label)
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
    root: str | os.PathLike[str], *, alignment: str = "landmark", frontal: bool = False
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

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``fold``, ``user_id``,
        ``face_id``, ``age``, ``age_group`` and ``gender``), ``target`` (ndarray of int,
        the ordinal age group), ``instruction`` and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root``, a fold file or the image folder is missing, or no listed image
        exists.
    ValueError
        If ``alignment`` is not allowed or a fold file lacks a needed column.

    Warns
    -----
    UserWarning
        When age labels outside the eight groups are mapped or dropped (with counts per
        label), and when listed images are missing (their rows are dropped).

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
        raise FileNotFoundError(
            _layout_message(
                f"{dataset}: fold file(s) {missing} not found in {str(base)!r}.",
                dataset,
                _ADIENCE_LAYOUT,
            )
        )
    image_root = _require(base / folder, dataset, _ADIENCE_LAYOUT, directory=True)

    folds = []
    for k, path in enumerate(fold_paths):
        fold = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        fold.columns = fold.columns.str.strip()
        _require_columns(fold, _ADIENCE_COLUMNS, path, dataset, _ADIENCE_LAYOUT)
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
    frame["face_id"] = frame["face_id"].astype(np.int64)
    columns = ["image", "target", "fold", "user_id", "face_id", "age", "age_group", "gender"]
    return _make_bunch(frame[columns], "Sort the faces by age.", _ADIENCE_DESCR)


# ---------------------------------------------------------------------------------------
# Historical Color Images (HCI)
# ---------------------------------------------------------------------------------------

_HCI_DECADES = ("1930s", "1940s", "1950s", "1960s", "1970s")
_HCI_SUBDIRS = (
    ".",
    "decade_database",
    "data/imgs/decade_database",
    "HistoricalColor-ECCV2012/data/imgs/decade_database",
)
_HCI_LAYOUT = """\
  <root>/HistoricalColor-ECCV2012/data/imgs/decade_database/{1930s,1940s,1950s,1960s,1970s}/*.jpg
  (root may also be HistoricalColor-ECCV2012/, or decade_database/ itself)
"""

_HCI_DESCR = f"""\
Historical Color Images (HCI): dating colour photos by decade
-------------------------------------------------------------

Colour photographs taken from the 1930s to the 1970s, 265 per decade, collected from
Flickr for dating historical photos.

Source: http://graphics.cs.cmu.edu/projects/historicalColor/
(HistoricalColor-ECCV2012-DecadeDatabase.tar).

Citation: F. Palermo, J. Hays and A. A. Efros. "Dating historical color images."
ECCV 2012.

Expected layout:
{_HCI_LAYOUT}
Frame columns: image, target (ordinal decade 0-4 for the 1930s to the 1970s), decade
(1930, 1940, 1950, 1960 or 1970). Hidden files and non-image files are ignored.

Protocol: no official split. The usual one (Palermo et al.; OrdinalCLIP, L2RCLIP) draws
210 training and 55 test photos per decade at random, ten times, and reports mean
accuracy and MAE in decades.
"""


def load_hci(root: str | os.PathLike[str]) -> Bunch:
    """Load the Historical Color Images dataset (decade 0-4 for the 1930s-1970s).

    Parameters
    ----------
    root : str or os.PathLike
        The ``decade_database`` folder holding ``1930s/`` ... ``1970s/``, or a folder
        above it in the published archive (``HistoricalColor-ECCV2012/`` or the folder
        it was extracted into).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target`` and ``decade``), ``target``
        (ndarray of int, 0 for the 1930s to 4 for the 1970s), ``instruction`` and
        ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root`` or a decade folder is missing, or a decade folder holds no image.

    Examples
    --------
    >>> from skrank.datasets import load_hci
    >>> hci = load_hci("~/data/HistoricalColor-ECCV2012")  # doctest: +SKIP
    >>> hci.frame["decade"].value_counts().sort_index()  # doctest: +SKIP
    >>> hci.instruction  # doctest: +SKIP
    'Sort the photos by the decade they were taken in.'
    """
    dataset = "HCI"
    base = _root_dir(root, dataset, _HCI_LAYOUT)
    candidates = [os.path.normpath(base / sub) for sub in _HCI_SUBDIRS]
    database = next(
        (Path(c) for c in candidates if any((Path(c) / d).is_dir() for d in _HCI_DECADES)),
        None,
    )
    if database is None:
        raise FileNotFoundError(
            _layout_message(
                f"{dataset}: no decade folder ({', '.join(_HCI_DECADES)}) found under "
                f"{str(base)!r}.",
                dataset,
                _HCI_LAYOUT,
            )
        )
    missing = [d for d in _HCI_DECADES if not (database / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            _layout_message(
                f"{dataset}: decade folder(s) {missing} not found in {str(database)!r}.",
                dataset,
                _HCI_LAYOUT,
            )
        )
    parts = []
    for k, decade in enumerate(_HCI_DECADES):
        names = _image_names(database / decade)
        if not names:
            raise FileNotFoundError(
                _layout_message(
                    f"{dataset}: no image found in {str(database / decade)!r}.",
                    dataset,
                    _HCI_LAYOUT,
                )
            )
        folder = str(database / decade) + os.sep
        parts.append(
            pd.DataFrame(
                {"image": [folder + n for n in names], "target": k, "decade": int(decade[:4])}
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    return _make_bunch(frame, "Sort the photos by the decade they were taken in.", _HCI_DESCR)


# ---------------------------------------------------------------------------------------
# UTKFace
# ---------------------------------------------------------------------------------------

_UTK_PATTERN = r"^(?P<age>\d+)_(?P<gender>[01])_(?P<race>[0-4])_(?P<date>\d+)\.jpg(?:\.chip\.jpg)?$"
_UTK_LAYOUT = """\
  <root>/UTKFace/[age]_[gender]_[race]_[date&time].jpg.chip.jpg   (aligned and cropped)
  or <root>/[age]_[gender]_[race]_[date&time].jpg                  (any one folder of faces)
  age: 0-116, gender: 0 male / 1 female, race: 0-4, date&time: yyyymmddHHMMSSFFF
"""

_UTK_DESCR = f"""\
UTKFace: faces labelled with age, gender and race
-------------------------------------------------

Over 20,000 faces aged 0 to 116, with the labels written in each file name; released as
aligned and cropped faces (UTKFace.tar.gz), as in-the-wild photos (part1-3) and as
cropped in-the-wild faces (crop_part1).

Source: https://susanqq.github.io/UTKFace/

Citation: Z. Zhang, Y. Song and H. Qi. "Age progression/regression by conditional
adversarial autoencoder." CVPR 2017.

Expected layout:
{_UTK_LAYOUT}
Frame columns: image, target (age in years), age, gender (0 male, 1 female), race
(0 White, 1 Black, 2 Asian, 3 Indian, 4 Others), date (the date&time field). Files ending
in "jpg" whose name does not follow the pattern are skipped with a warning; the official
archive has three (39_1_20170116174525125, 61_1_20170109142408075 and
61_1_20170109150557335 lack the race field). Other files are ignored.

Protocol: no official split. Papers use random splits (often 80/20) of all faces or of
an age range (CORAL, Cao et al. 2020: ages 21-60) and report MAE; fix and report the
split and its seed.
"""


def load_utkface(root: str | os.PathLike[str]) -> Bunch:
    """Load UTKFace, the target being the age parsed from each file name.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding ``UTKFace/`` or, if it has no such subfolder, the face files
        themselves (e.g. ``crop_part1/``).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``age``, ``gender``, ``race``
        and ``date``), ``target`` (ndarray of int, the age in years), ``instruction``
        and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root`` is missing or holds no well-named face image.

    Warns
    -----
    UserWarning
        When files ending in "jpg" with a malformed name are skipped (with their count).

    Examples
    --------
    >>> from skrank.datasets import load_utkface
    >>> utk = load_utkface("~/data/utkface")  # doctest: +SKIP
    >>> utk.frame["age"].describe()  # doctest: +SKIP
    >>> utk.instruction  # doctest: +SKIP
    'Sort the faces by age.'
    """
    dataset = "UTKFace"
    base = _root_dir(root, dataset, _UTK_LAYOUT)
    folder = base / "UTKFace" if (base / "UTKFace").is_dir() else base
    names = pd.Series(
        sorted(n for n in _file_names(folder) if n.lower().endswith("jpg")), dtype=object
    )
    fields = names.str.extract(_UTK_PATTERN, flags=re.IGNORECASE)
    valid = fields["age"].notna().to_numpy()
    if not valid.any():
        raise FileNotFoundError(
            _layout_message(
                f"{dataset}: no image named [age]_[gender]_[race]_[date&time].jpg found in "
                f"{str(folder)!r}.",
                dataset,
                _UTK_LAYOUT,
            )
        )
    if not valid.all():
        examples = ", ".join(names[~valid].head(3))
        warnings.warn(
            f"{dataset}: skipped {int((~valid).sum())} of {len(names)} files whose name "
            f"is not [age]_[gender]_[race]_[date&time].jpg (e.g. {examples}).",
            UserWarning,
            stacklevel=2,
        )
    fields = fields[valid]
    age = fields["age"].astype(np.int64)
    frame = pd.DataFrame(
        {
            "image": str(folder) + os.sep + names[valid],
            "target": age,
            "age": age,
            "gender": fields["gender"].astype(np.int64),
            "race": fields["race"].astype(np.int64),
            "date": fields["date"].astype(str),
        }
    )
    return _make_bunch(frame, "Sort the faces by age.", _UTK_DESCR)
