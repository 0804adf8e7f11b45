"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``.
"""

from skrank.images import ImageLoadError
from skrank.ranker import CLIPRanker

__version__ = "0.1.0"

__all__ = ["CLIPRanker", "ImageLoadError", "__version__"]
