"""Synthetic ranking tasks and loaders of public ranking datasets."""

from skrank.datasets._loaders import (
    load_adience,
    load_ava,
    load_hci,
    load_koniq10k,
    load_utkface,
)
from skrank.datasets._split import holdout_by_source
from skrank.datasets._synthetic import KINDS, make_ranking_task

__all__ = [
    "KINDS",
    "holdout_by_source",
    "make_ranking_task",
    "load_koniq10k",
    "load_ava",
    "load_adience",
    "load_hci",
    "load_utkface",
]
