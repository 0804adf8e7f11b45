"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``;
and ``CLIPEmbedder``, the frozen CLIP image embeddings as a transformer, for
the linear-probe baseline ``make_pipeline(CLIPEmbedder(), RidgeCV())``.
"""

__version__ = "0.1.0"

from skrank.embedder import CLIPEmbedder  # noqa: E402
from skrank.images import ImageLoadError  # noqa: E402
from skrank.params import InvalidParameterError  # noqa: E402
from skrank.persistence import load, save  # noqa: E402
from skrank.ranker import CLIPRanker  # noqa: E402

__all__ = [
    "CLIPEmbedder",
    "CLIPRanker",
    "ImageLoadError",
    "InvalidParameterError",
    "load",
    "save",
    "__version__",
]
