"""KonIQ-10k in-the-wild image quality database: MOS of crowd ratings."""

from __future__ import annotations

import os

import pandas as pd
from sklearn.utils import Bunch

from skrank.datasets._layout import (
    _drop_missing_images,
    _file_names,
    _make_bunch,
    _numeric_column,
    _read_csv,
    _require,
    _require_columns,
    _root_dir,
)
from skrank.datasets._splitfile import SplitIds, apply_split_file

__all__ = ["load_koniq10k"]

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

Split file: ``split_file=`` reads the reference code's examples/koniqa-split.json
(github.com/uynaes/RankingAwareCLIP), {{"train_id": [...], "test_id": [...]}} of image
names without ".jpg": 8,058 training (the official training and validation sets) and
2,015 test images. Its ``split`` ("train" or "test", missing for unlisted images)
replaces the one of {_KONIQ_SETS}.
"""


def load_koniq10k(
    root: str | os.PathLike[str],
    *,
    resolution: str | None = None,
    target: str = "MOS",
    split_file: str | os.PathLike[str] | None = None,
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
    split_file : str or os.PathLike, default=None
        A split released with the paper's reference code (``koniqa-split.json``:
        ``{"train_id": [...], "test_id": [...]}``, image names without ``.jpg``). Its
        ``"train"`` / ``"test"`` replace the ``split`` of the official sets file; images
        it does not list get a missing ``split``.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, the columns of the scores file
        and ``split`` when ``koniq10k_distributions_sets.csv`` or ``split_file`` is
        given), ``target`` (ndarray of float), ``instruction`` (str) and ``DESCR`` (str).

    Raises
    ------
    FileNotFoundError
        If ``root``, the scores file or the image folder is missing, or no listed image
        exists.
    ValueError
        If ``resolution`` or ``target`` is not allowed, a CSV lacks a needed column, or
        the split file is malformed or matches no image.

    Warns
    -----
    UserWarning
        When some listed images are missing (their rows are dropped), or some ids of
        ``split_file`` match no loaded image.

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

    frame = _read_csv(scores_path, dataset, _KONIQ_LAYOUT)
    _require_columns(frame, ["image_name", target], scores_path, dataset, _KONIQ_LAYOUT)
    frame["image_name"] = frame["image_name"].astype(str)
    frame["target"] = _numeric_column(frame, target, scores_path, dataset, _KONIQ_LAYOUT)

    sets_path = base / _KONIQ_SETS
    if sets_path.is_file():
        sets = _read_csv(sets_path, dataset, _KONIQ_LAYOUT)
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
    if split_file is not None:
        frame = apply_split_file(
            frame,
            frame["image_name"].str.rsplit(".", n=1).str[0],
            split_file,
            SplitIds(
                dataset,
                _KONIQ_LAYOUT,
                "image names without their extension, e.g. '10004473376'",
            ),
        )
    return _make_bunch(frame, "Sort the photos by image quality.", _KONIQ_DESCR)
