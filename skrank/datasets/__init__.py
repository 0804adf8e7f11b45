"""Synthetic ranking tasks and loaders of public ranking datasets."""

from skrank.datasets._adience import load_adience
from skrank.datasets._ava import load_ava
from skrank.datasets._coco_counts import coco_annotations_file, load_coco_counts
from skrank.datasets._degradations import KINDS
from skrank.datasets._hci import load_hci
from skrank.datasets._koniq10k import load_koniq10k
from skrank.datasets._split import holdout_by_source
from skrank.datasets._synthetic import make_ranking_task
from skrank.datasets._utkface import load_utkface

__all__ = [
    "KINDS",
    "holdout_by_source",
    "make_ranking_task",
    "load_koniq10k",
    "load_ava",
    "load_adience",
    "load_hci",
    "load_utkface",
    "load_coco_counts",
    "coco_annotations_file",
]
