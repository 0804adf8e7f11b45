"""Historical Color Images (HCI): dating colour photos by decade."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
from sklearn.utils import Bunch

from skrank.datasets._layout import _image_names, _layout_error, _make_bunch, _root_dir
from skrank.datasets._splitfile import SplitIds, apply_split_file, read_split_file

__all__ = ["load_hci"]

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

Split file: ``split_file=`` reads the single split released with the ranking-aware
adapter's reference code (github.com/uynaes/RankingAwareCLIP, examples/HCI-split.json:
{{"train_id": [...], "test_id": [...]}}, 1,060 and 265 ids of the form
"decade_<32 hex digits>"). How those ids name the archive's files is not documented
there; they are matched to the file name without its extension, read as
"decade_<name>" unless it starts so (and without a leading "<decade>_", as in
L2RCLIP's renamed copies), and, when no id matches that way, to "decade_" + the MD5
of the file's bytes. The ``split`` column is "train", "test" or missing for photos
the file does not list.
"""


def load_hci(
    root: str | os.PathLike[str], *, split_file: str | os.PathLike[str] | None = None
) -> Bunch:
    """Load the Historical Color Images dataset (decade 0-4 for the 1930s-1970s).

    Parameters
    ----------
    root : str or os.PathLike
        The ``decade_database`` folder holding ``1930s/`` ... ``1970s/``, or a folder
        above it in the published archive (``HistoricalColor-ECCV2012/`` or the folder
        it was extracted into).
    split_file : str or os.PathLike, default=None
        The split released with the paper's reference code (``HCI-split.json``:
        ``{"train_id": [...], "test_id": [...]}`` of ``decade_<hex>`` ids), read into a
        ``split`` column ("train", "test", or missing for photos it does not list);
        see ``DESCR`` for how ids are matched to files.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``frame`` (DataFrame with ``image``, ``target``, ``decade`` and, with
        ``split_file``, ``split``), ``target``
        (ndarray of int, 0 for the 1930s to 4 for the 1970s), ``instruction`` and
        ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``root`` or a decade folder is missing, or a decade folder holds no image.
    ValueError
        If the split file is malformed or none of its ids matches a photo.

    Warns
    -----
    UserWarning
        When some ids of ``split_file`` match no photo.

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
        raise _layout_error(
            f"{dataset}: no decade folder ({', '.join(_HCI_DECADES)}) found under {str(base)!r}.",
            dataset,
            _HCI_LAYOUT,
        )
    missing = [d for d in _HCI_DECADES if not (database / d).is_dir()]
    if missing:
        raise _layout_error(
            f"{dataset}: decade folder(s) {missing} not found in {str(database)!r}.",
            dataset,
            _HCI_LAYOUT,
        )
    parts = []
    for k, decade in enumerate(_HCI_DECADES):
        names = _image_names(database / decade)
        if not names:
            raise _layout_error(
                f"{dataset}: no image found in {str(database / decade)!r}.", dataset, _HCI_LAYOUT
            )
        folder = str(database / decade) + os.sep
        parts.append(
            pd.DataFrame(
                {"image": [folder + n for n in names], "target": k, "decade": int(decade[:4])}
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    if split_file is not None:
        split = read_split_file(split_file, dataset, _HCI_LAYOUT)
        keys = frame["image"].map(_hci_name_key)
        if not keys.isin(split.keys()).any():
            keys = frame["image"].map(_hci_content_key)
        frame = apply_split_file(
            frame,
            keys,
            split_file,
            SplitIds(
                dataset,
                _HCI_LAYOUT,
                "'decade_<hex>', matched to file names and to the MD5 of the files",
            ),
            split=split,
        )
    return _make_bunch(frame, "Sort the photos by the decade they were taken in.", _HCI_DESCR)


def _hci_name_key(path: str) -> str:
    """A photo's id in a split file, from its name: ``decade_<name>`` without its extension
    or a leading ``<decade>_``."""
    decade, name = Path(path).parent.name, Path(path).stem
    if name.startswith(decade + "_"):
        name = name[len(decade) + 1 :]
    return name if name.startswith("decade_") else "decade_" + name


def _hci_content_key(path: str) -> str:
    """A photo's id in a split file, from its bytes: ``decade_<MD5 of the file>``."""
    return "decade_" + hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()
