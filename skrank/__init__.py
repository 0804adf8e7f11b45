"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``;
and ``CLIPEmbedder``, the frozen CLIP image embeddings as a transformer, for
the linear-probe baseline ``make_pipeline(CLIPEmbedder(), RidgeCV())``.

This is the package's public face, with :mod:`skrank.metrics`,
:mod:`skrank.datasets`, :mod:`skrank.plotting`, :mod:`skrank.parallel` and
the ``skrank`` command line; modules whose names start with ``_`` are its
plumbing (``docs/architecture.md``).
"""

from skrank._encoding.images import ImageLoadError
from skrank._encoding.weights import WeightsUnavailableError
from skrank._estimator.embedder import CLIPEmbedder
from skrank._estimator.params import InvalidParameterError
from skrank._estimator.ranker import CLIPRanker
from skrank._model.training import TrainingDivergedError
from skrank._version import __version__
from skrank.persistence._io import load, save

__all__ = [
    "CLIPEmbedder",
    "CLIPRanker",
    "ImageLoadError",
    "InvalidParameterError",
    "TrainingDivergedError",
    "WeightsUnavailableError",
    "load",
    "save",
    "__version__",
]
