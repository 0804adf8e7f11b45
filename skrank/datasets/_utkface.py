"""UTKFace: faces with the age, gender and race written in their file names."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from skrank._quote import shown
from skrank.datasets._layout import _file_names, _layout_error, _make_bunch, _root_dir

__all__ = ["load_utkface"]

_UTK_PATTERN = r"^(?P<age>\d+)_(?P<gender>[01])_(?P<race>[0-4])_(?P<date>\d+)\.jpg(?:\.chip\.jpg)?$"
_MAX_AGE = 150  # the oldest face is 116: a larger age field is a corrupt name
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
        raise _layout_error(
            f"{dataset}: no image named [age]_[gender]_[race]_[date&time].jpg found in "
            f"{str(folder)!r}.",
            dataset,
            _UTK_LAYOUT,
        )
    if not valid.all():
        examples = ", ".join(names[~valid].head(3))
        warnings.warn(
            f"{dataset}: skipped {int((~valid).sum())} of {len(names)} files whose name "
            f"is not [age]_[gender]_[race]_[date&time].jpg (e.g. {examples}).",
            UserWarning,
            stacklevel=2,
        )
    fields, names = fields[valid], names[valid]
    # The age field is digits of any length: more than 3 is no age (and would overflow).
    absurd = (fields["age"].str.len() > 3) | (fields["age"].str.slice(0, 3).astype(int) > _MAX_AGE)
    if absurd.all():
        raise _layout_error(
            f"{dataset}: every face file in {str(folder)!r} has an age over {_MAX_AGE} in its "
            f"name (the age field), e.g. {shown(names[absurd].iloc[0])}.",
            dataset,
            _UTK_LAYOUT,
            ValueError,
        )
    if absurd.any():
        examples = ", ".join(shown(n) for n in names[absurd].head(3))
        warnings.warn(
            f"{dataset}: skipped {int(absurd.sum())} file(s) whose age field is over "
            f"{_MAX_AGE} (e.g. {examples}).",
            UserWarning,
            stacklevel=2,
        )
        fields, names = fields[~absurd], names[~absurd]
    age = fields["age"].astype(np.int64)
    frame = pd.DataFrame(
        {
            "image": str(folder) + os.sep + names,
            "target": age,
            "age": age,
            "gender": fields["gender"].astype(np.int64),
            "race": fields["race"].astype(np.int64),
            "date": fields["date"].astype(str),
        }
    )
    return _make_bunch(frame, "Sort the faces by age.", _UTK_DESCR)
