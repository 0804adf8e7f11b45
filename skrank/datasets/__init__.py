"""Synthetic ranking tasks and loaders of public ranking datasets."""

from skrank.datasets._loaders import (
    load_adience,
    load_ava,
    load_hci,
    load_koniq10k,
    load_utkface,
)
from skrank.datasets._synthetic import KINDS, make_ranking_task

__all__ = [
    "KINDS",
    "make_ranking_task",
    "load_koniq10k",
    "load_ava",
    "load_adience",
    "load_hci",
    "load_utkface",
]
