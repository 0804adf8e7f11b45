"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``;
and ``CLIPEmbedder``, the frozen CLIP image embeddings as a transformer, for
the linear-probe baseline ``make_pipeline(CLIPEmbedder(), RidgeCV())``.
"""

from skrank._version import __version__
from skrank.embedder import CLIPEmbedder
from skrank.images import ImageLoadError
from skrank.params import InvalidParameterError
from skrank.persistence import load, save
from skrank.ranker import CLIPRanker

__all__ = [
    "CLIPEmbedder",
    "CLIPRanker",
    "ImageLoadError",
    "InvalidParameterError",
    "load",
    "save",
    "__version__",
]
