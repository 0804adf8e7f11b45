"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``;
and ``CLIPEmbedder``, the frozen CLIP image embeddings as a transformer, for
the linear-probe baseline ``make_pipeline(CLIPEmbedder(), RidgeCV())``.
"""

from skrank._encoding.images import ImageLoadError
from skrank._estimator.embedder import CLIPEmbedder
from skrank._estimator.params import InvalidParameterError
from skrank._estimator.ranker import CLIPRanker
from skrank._version import __version__
from skrank.persistence._io import load, save

__all__ = [
    "CLIPEmbedder",
    "CLIPRanker",
    "ImageLoadError",
    "InvalidParameterError",
    "load",
    "save",
    "__version__",
]
