"""AVA (Aesthetic Visual Analysis): mean aesthetic score of DPChallenge photos."""

from __future__ import annotations

import os
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
    _root_dir,
)
from skrank.datasets._splitfile import SplitIds, apply_split_file

__all__ = ["load_ava"]

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

Split file: the ranking-aware adapter's reference code (github.com/uynaes/RankingAwareCLIP)
releases its own split, examples/AVA-split.json: {{"train_id": [...], "test_id": [...]}}
of AVA image ids (as strings), 230,686 training and 4,692 test images. ``split_file=``
reads it; its ``split`` ("train" or "test", missing for the ids it does not list)
replaces the generic test list's.
"""


def load_ava(
    root: str | os.PathLike[str],
    *,
    image_dir: str = "images",
    split_file: str | os.PathLike[str] | None = None,
) -> Bunch:
    """Load the AVA aesthetic quality dataset from a local folder.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding ``AVA.txt`` (and optionally ``aesthetics_image_lists/``).
    image_dir : str, default="images"
        Folder of the ``<image id>.jpg`` files, relative to ``root``.
    split_file : str or os.PathLike, default=None
        A split released with the paper's reference code (``AVA-split.json``:
        ``{"train_id": [...], "test_id": [...]}`` of image ids). Its ``"train"`` /
        ``"test"`` replace the generic test list's ``split``; images it does not list
        get a missing ``split``.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``image_id``, the vote counts
        ``votes_1`` .. ``votes_10``, ``n_votes``, the semantic tags, ``challenge_id``
        and ``split`` when the generic test list or ``split_file`` is given),
        ``target`` (ndarray of float: the mean score on the 1-10 scale), ``instruction``
        and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root``, ``AVA.txt`` or the image folder is missing, or no listed image
        exists.
    ValueError
        If ``AVA.txt`` does not hold 15 integers a line, or the split file is malformed
        or matches no image.

    Warns
    -----
    UserWarning
        When some listed images are missing, or some images have no vote (their rows are
        dropped), or some ids of ``split_file`` match no loaded image.

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

    frame = _read_csv(txt_path, dataset, _AVA_LAYOUT, sep=r"\s+", header=None, dtype=str)
    if frame.shape[1] != len(_AVA_COLUMNS):
        raise _layout_error(
            f"{dataset}: {_AVA_TXT} has {frame.shape[1]} columns, expected {len(_AVA_COLUMNS)}.",
            dataset,
            _AVA_LAYOUT,
            ValueError,
        )
    frame.columns = _AVA_COLUMNS
    frame = frame.drop(columns="index")
    for column in frame.columns:  # all integers: ids, vote counts, tags
        frame[column] = _numeric_column(frame, column, txt_path, dataset, _AVA_LAYOUT, integer=True)

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
        listed = pd.DataFrame({"image_id": test_list.read_bytes().decode("latin-1").split()})
        test_ids = _numeric_column(
            listed, "image_id", test_list, dataset, _AVA_LAYOUT, integer=True
        )
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
    if split_file is not None:
        frame = apply_split_file(
            frame,
            frame["image_id"],
            split_file,
            SplitIds(
                dataset,
                _AVA_LAYOUT,
                "AVA image ids, e.g. '953619'",
            ),
        )
    return _make_bunch(frame, "Sort the photos by aesthetic quality.", _AVA_DESCR)
