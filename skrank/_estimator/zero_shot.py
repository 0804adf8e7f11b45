"""CLIPZeroShotRanker: rank images by an instruction alone, with nothing trained.

The baseline to try before labelling anything. Each image's score is the cosine
similarity of its frozen CLIP embedding to the text of the instruction or, with
``prompts=(positive, negative)``, its similarity to the positive prompt minus its
similarity to the negative one (as CLIP-IQA ranks quality by "Good photo." against
"Bad photo."). The image embeddings come from the function
:class:`~skrank.CLIPEmbedder` computes its own with, so they are decoded,
preprocessed and cached exactly as the embedder's are.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from skrank._encoding.backbone import load_backbone
from skrank._estimator.embedder import _TABLE as _EMBEDDER_TABLE
from skrank._estimator.embedder import embed_images
from skrank._estimator.params import PARAMETERS, TEXT, Kind, validate_params
from skrank._instruction import DEFAULT_INSTRUCTION
from skrank._version import API_PAGE

__all__ = ["CLIPZeroShotRanker"]

PROMPTS = Kind(
    "None, one prompt (a non-empty string) or a pair (positive, negative) of them, "
    "such as ('a sharp photo.', 'a blurry photo.')",
    lambda v: (
        v is None
        or TEXT.accepts(v)
        or (isinstance(v, (tuple, list)) and len(v) == 2 and all(TEXT.accepts(p) for p in v))
    ),
    lambda v: v if v is None or isinstance(v, str) else tuple(v),
)
_EMBEDDER = tuple(name for name in _EMBEDDER_TABLE if name != "normalize")
_TABLE = {
    "instruction": PARAMETERS["instruction"],
    "prompts": [PROMPTS],
    **{name: _EMBEDDER_TABLE[name] for name in _EMBEDDER},
}


def _validate(params: dict) -> dict:
    return validate_params(params, _TABLE)


def prompt_texts(instruction: str | None, prompts) -> tuple[str, ...]:
    """The texts an image is compared with: (positive,) or (positive, negative)."""
    if prompts is None:
        return (instruction or DEFAULT_INSTRUCTION,)
    if isinstance(prompts, str):
        return (prompts,)
    return tuple(prompts)


class CLIPZeroShotRanker(RegressorMixin, BaseEstimator):
    """Rank images by an instruction alone: CLIP's image–text similarity, untrained.

    ``predict`` gives each image the cosine similarity of its frozen CLIP image
    embedding to the embedded ``instruction`` or, with a pair of ``prompts``, the
    similarity to the positive prompt minus that to the negative one. A higher
    score means "more" of what the text says. ``fit`` only checks the
    parameters, loads the backbone and embeds the text: no image and no target
    is read, so the estimator sits in the same ``cross_val_score`` and
    ``GridSearchCV`` (over ``prompts``, say) as :class:`~skrank.CLIPRanker`, as
    the score to beat before labelling anything.

    It helps where the property is something CLIP's captions named (objects,
    scenes, styles, "a blurry photo" for a CLIP that saw such captions), and
    cannot help where they did not: a count it was never told, a quality
    nobody wrote about, or a property whose words mean something else to it.
    A pair of opposite prompts is usually steadier than one, since it cancels
    what both texts share ("a photo").

    Parameters
    ----------
    instruction : str or None, default=None
        The text each image is compared with when ``prompts`` is None; None
        uses ``"Rank the images."``, which names no property (give one).
    prompts : str, (str, str) or None, default=None
        One prompt, or a (positive, negative) pair, used instead of
        ``instruction``: ``("a sharp photo.", "a blurry photo.")`` ranks
        sharpness.
    backbone : str, default="ViT-B-16"
        An open_clip model name, an ``"hf-hub:org/repo"`` id, or
        ``"skrank-tiny"`` (built-in and tiny: for tests and offline use).
    pretrained : str, path or None, default="openai"
        An open_clip tag, a local checkpoint file, or None (seeded random
        weights, with a warning: their similarities mean nothing). For
        ``"skrank-tiny"``, ``"synthetic"`` is its pretrained tag.
    batch_size : int, default=64
        Images per forward pass.
    device : str, default="auto"
        "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N" or "mps".
    precision : {"auto", "fp32", "bf16"}, default="auto"
        As :class:`~skrank.CLIPEmbedder`'s.
    num_workers : int, default=0
        Threads decoding images in parallel.
    cache : {"memory", "disk", None}, default="memory"
        Where image embeddings are kept: as :class:`~skrank.CLIPEmbedder`'s
        (the memory cache is process-wide, so folds compute each image once).
    cache_dir : str or path, default=None
        Folder of the disk cache; None uses ``$SKRANK_CACHE_DIR`` or
        ``~/.cache/skrank``.
    image_column : str, default="image"
        Column read when ``X`` is a DataFrame.

    Attributes
    ----------
    prompts_ : tuple of str
        The texts compared with: (positive,) or (positive, negative).
    direction_ : ndarray of shape (embed_dim,), float32
        What a unit image embedding is multiplied by: the unit text embedding,
        or the positive's minus the negative's.
    backbone_info_ : dict
        The backbone's name, weights identity and preprocessing; ``predict``
        refuses another backbone.

    See Also
    --------
    skrank.CLIPRanker : trained on labelled images; usually far better once
        there are a few hundred of them.
    skrank.CLIPEmbedder : the embeddings alone, for a linear probe.

    Examples
    --------
    >>> import numpy as np
    >>> from skrank import CLIPZeroShotRanker
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in (0, 120, 240)]
    >>> ranker = CLIPZeroShotRanker(
    ...     prompts=("a white background", "a black background"),
    ...     backbone="skrank-tiny", pretrained="synthetic", device="cpu",
    ... ).fit()
    >>> np.argsort(ranker.predict(images)).tolist()  # darkest first
    [0, 1, 2]
    """

    _doc_link_module = "skrank"
    _doc_link_template = API_PAGE

    def __init__(
        self,
        instruction=None,
        *,
        prompts=None,
        backbone="ViT-B-16",
        pretrained="openai",
        batch_size=64,
        device="auto",
        precision="auto",
        num_workers=0,
        cache="memory",
        cache_dir=None,
        image_column="image",
    ):
        self.instruction = instruction
        self.prompts = prompts
        self.backbone = backbone
        self.pretrained = pretrained
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.cache = cache
        self.cache_dir = cache_dir
        self.image_column = image_column

    def fit(self, X=None, y=None):
        """Check the parameters, load the backbone and embed the prompts.

        Parameters
        ----------
        X : ignored
            Accepted (images, or None) so the ranker fits in pipelines and
            searches; no image is read.
        y : ignored
            Accepted for the same reason: nothing is learnt from it.

        Returns
        -------
        self : CLIPZeroShotRanker
        """
        params = _validate(self.get_params(deep=False))
        texts = prompt_texts(params["instruction"], params["prompts"])
        backbone = load_backbone(self.backbone, self.pretrained, params["device_"])
        text = backbone.text_embeddings(list(texts), params["precision"]).cpu().numpy()
        text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), np.finfo(np.float32).tiny)
        direction = text[0] if len(text) == 1 else text[0] - text[1]
        self.prompts_ = texts
        self.direction_ = direction.astype(np.float32)
        self.backbone_info_ = backbone.info
        return self

    def predict(self, X) -> np.ndarray:
        """The similarity score of every image of ``X`` (higher: more of the property).

        Parameters
        ----------
        X : sequence of images, pandas Series, array or DataFrame
            As :meth:`skrank.CLIPEmbedder.transform` reads it.

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Cosine similarities, in [-1, 1] for one prompt and in [-2, 2] for a
            pair: an order, not a target's units.

        Raises
        ------
        ImageLoadError
            Naming every image of ``X`` that could not be read.
        """
        check_is_fitted(self, "direction_")
        params = {**_validate(self.get_params(deep=False)), "normalize": True}
        unit = embed_images(self, params, X, "this CLIPZeroShotRanker")
        return (unit @ self.direction_).astype(np.float64)

    def score(self, X, y, sample_weight=None) -> float:
        """Spearman's rank correlation of ``predict(X)`` with ``y``.

        Parameters
        ----------
        X : images
        y : array-like of shape (n_samples,)
        sample_weight : ignored
            Accepted for scikit-learn's signature; Spearman is unweighted.

        Returns
        -------
        float
        """
        from skrank.metrics import spearman_score

        return spearman_score(y, self.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        tags.target_tags.required = False
        return tags
