"""skrank: rank images by a plain-language instruction.

A scikit-learn estimator around the ranking-aware CLIP adapter (Yu et al.,
ICLR 2025): ``CLIPRanker(instruction=...).fit(images, y).predict(images)``.
"""

__version__ = "0.1.0"

from skrank.images import ImageLoadError  # noqa: E402
from skrank.params import InvalidParameterError  # noqa: E402
from skrank.persistence import load, save  # noqa: E402
from skrank.ranker import CLIPRanker  # noqa: E402

__all__ = [
    "CLIPRanker",
    "ImageLoadError",
    "InvalidParameterError",
    "load",
    "save",
    "__version__",
]
