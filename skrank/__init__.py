"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``;
and ``CLIPEmbedder``, the frozen CLIP image embeddings as a transformer, for
the linear-probe baseline ``make_pipeline(CLIPEmbedder(), RidgeCV())``;
``CLIPZeroShotRanker``, the ranking by the instruction alone, untrained.

This is the package's public face, with :mod:`skrank.metrics`,
:mod:`skrank.datasets`, :mod:`skrank.plotting`, :mod:`skrank.parallel` and
the ``skrank`` command line; modules whose names start with ``_`` are its
plumbing (``docs/architecture.md``).

The public names are imported on first use (PEP 562), not by ``import skrank``:
they pull in torch, open_clip and scikit-learn (seconds), which the command
line's ``skrank --version`` and ``--help`` have no use for (``skrank.cli`` is a
subpackage, so importing it runs this file first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from skrank._version import __version__

# Each public name and the module that defines it.
_PUBLIC = {
    "CLIPEmbedder": "skrank._estimator.embedder",
    "CLIPPreferenceRanker": "skrank._estimator.preference_ranker",
    "CLIPRanker": "skrank._estimator.ranker",
    "CLIPZeroShotRanker": "skrank._estimator.zero_shot",
    "ImageLoadError": "skrank._encoding.images",
    "InvalidParameterError": "skrank._estimator.params",
    "TrainingDivergedError": "skrank._model.training",
    "WeightsUnavailableError": "skrank._encoding.weights",
    "load": "skrank.persistence._io",
    "save": "skrank.persistence._io",
}

__all__ = [
    "CLIPEmbedder",
    "CLIPPreferenceRanker",
    "CLIPRanker",
    "CLIPZeroShotRanker",
    "ImageLoadError",
    "InvalidParameterError",
    "TrainingDivergedError",
    "WeightsUnavailableError",
    "load",
    "save",
    "__version__",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from skrank._encoding.images import ImageLoadError
    from skrank._encoding.weights import WeightsUnavailableError
    from skrank._estimator.embedder import CLIPEmbedder
    from skrank._estimator.params import InvalidParameterError
    from skrank._estimator.preference_ranker import CLIPPreferenceRanker
    from skrank._estimator.ranker import CLIPRanker
    from skrank._estimator.zero_shot import CLIPZeroShotRanker
    from skrank._model.training import TrainingDivergedError
    from skrank.persistence._io import load, save


def __getattr__(name: str):
    """A public name, imported from its module on first use and kept here after."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'skrank' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
