"""CLIPEmbedder: frozen CLIP image embeddings as a scikit-learn transformer.

The first baseline of any ranking task is a linear probe on the frozen CLIP
image embedding, ``make_pipeline(CLIPEmbedder(...), RidgeCV())``. The
embedder computes the embeddings with :class:`skrank._encoding.encoder.Encoder`
(the same decoding and preprocessing as :class:`~skrank.CLIPRanker`) and
caches them, keyed by image content, so that clones in a cross-validation or
a grid search, and repeated calls, compute each image once:

- ``cache="memory"``: one process-wide LRU of at most
  :data:`MEMORY_CACHE_BYTES` (:data:`MEMORY_CACHE`), keyed by the backbone's
  spec digest (name, weights identity, preprocessing: the disk cache's
  :func:`~skrank._encoding.diskstore.spec_digest`), the autocast mode (``"bf16"`` or
  ``"fp32"``, :func:`skrank._devices.use_bf16`) and the image's content key
  (:func:`~skrank._encoding.diskstore.content_key`). A hit is the exact float32 vector
  computed before in that mode.
- ``cache="disk"``: verified float32 files under
  ``cache_dir/embeddings/<name>-<digest>/`` (a
  :class:`~skrank._encoding.diskstore.DiskStore` of ``kind="embeddings"``), keyed like
  the ranker's token files: by backbone, weights, preprocessing and image
  content, not by device or precision. A damaged entry is recomputed and
  replaced, with one warning per call.
- ``cache=None``: every call computes every embedding.

Inputs without a content key (nothing the decoder accepts) are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from skrank._devices import use_bf16
from skrank._encoding.backbone import load_backbone
from skrank._encoding.cache import resolve_cache_dir
from skrank._encoding.containers import as_image_list
from skrank._encoding.diskstore import DiskStore, spec_digest
from skrank._encoding.encoder import Encoder
from skrank._encoding.images import ImageLoadError
from skrank._estimator.inference import encoder_for, load_fitted_backbone
from skrank._estimator.inputs import image_column_of
from skrank._estimator.params import BOOL, PARAMETERS, Interval, validate_params
from skrank._version import API_PAGE

__all__ = ["MEMORY_CACHE", "MEMORY_CACHE_BYTES", "CLIPEmbedder", "embed_images"]

MEMORY_CACHE_BYTES = 512 * 2**20  # bound of the process-wide embedding LRU
_ENTRY_OVERHEAD = 256  # bytes counted per entry beyond its vector (key, dict slot)

# The parameters shared with CLIPRanker are checked by its own table (same rules,
# same messages); only batch_size (one image is a batch here) and normalize are new.
_SHARED = (
    "backbone",
    "pretrained",
    "cache",
    "cache_dir",
    "device",
    "precision",
    "num_workers",
    "image_column",
)
_TABLE = {
    **{name: PARAMETERS[name] for name in _SHARED},
    "batch_size": [Interval(int, 1, None)],
    "normalize": [BOOL],
}


class _EmbeddingLRU:
    """A thread-safe, byte-bounded LRU of read-only float32 vectors."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key) -> np.ndarray | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key, value: np.ndarray) -> None:
        value = np.array(value, dtype=np.float32, copy=True)
        value.setflags(write=False)
        size = value.nbytes + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes + _ENTRY_OVERHEAD
            self._entries[key] = value
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self.nbytes -= dropped.nbytes + _ENTRY_OVERHEAD

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


MEMORY_CACHE = _EmbeddingLRU(MEMORY_CACHE_BYTES)  # every CLIPEmbedder of the process


def _validate(params: dict) -> dict:
    """``params`` checked against ``_TABLE`` and normalised, plus the resolved ``device_``."""
    return validate_params(params, _TABLE)


class CLIPEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Frozen CLIP image embeddings of images, as a scikit-learn transformer.

    ``transform`` maps each image to the pooled, projected embedding of a
    frozen open_clip image tower (what ``model.encode_image`` returns), with
    the same decoding and preprocessing as :class:`~skrank.CLIPRanker`. Put a
    regressor after it for the linear-probe baseline,
    ``make_pipeline(CLIPEmbedder(), RidgeCV())``. Nothing is trained: ``fit``
    loads the backbone and records which one it is.

    Parameters
    ----------
    backbone : str, default="ViT-B-16"
        An open_clip model name, an ``"hf-hub:org/repo"`` id, or
        ``"skrank-tiny"`` (built-in and tiny: for tests and offline use).
    pretrained : str, path or None, default="openai"
        An open_clip tag, a local checkpoint file, or None (seeded random
        weights, with a warning). For ``"skrank-tiny"``: None or "openai" are
        its seeded random weights, ``"synthetic"`` its pretrained ones
        (contrastive pretraining on captioned synthetic scenes, shipped with
        skrank), or a checkpoint file.
    batch_size : int, default=64
        Images per forward pass; at least 1.
    device : str, default="auto"
        "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N" or "mps".
    precision : {"auto", "fp32", "bf16"}, default="auto"
        "auto" and "bf16" use bf16 autocast on CUDA; elsewhere the towers run
        in fp32 ("bf16" is accepted on a CPU that computes bf16 natively, as
        ``CLIPRanker``'s, where it speeds the adapter, which an embedder does
        not have, and refused on other CPUs).
    num_workers : int, default=0
        Threads decoding images in parallel.
    cache : {"memory", "disk", None}, default="memory"
        Where computed embeddings are kept, keyed by image content and
        backbone: ``"memory"``, a process-wide LRU of at most 512 MiB
        (``skrank._estimator.embedder.MEMORY_CACHE_BYTES``) shared by every embedder, so
        clones across folds and repeated calls compute each image once (keyed
        by precision too: a hit is the exact vector computed before);
        ``"disk"``, checksummed files under ``cache_dir`` shared with later
        processes (keyed like the ranker's token files, not by device or
        precision); None, no cache.
    cache_dir : str or path, default=None
        Folder of the disk cache; None uses ``$SKRANK_CACHE_DIR`` or
        ``~/.cache/skrank``. Embeddings go to its ``embeddings/`` subfolder.
    image_column : str, default="image"
        Column read when ``X`` is a DataFrame (a one-column frame is its
        only column, whatever its name).
    normalize : bool, default=False
        Divide each embedding by its L2 norm (what CLIP's zero-shot
        similarity uses).

    Attributes
    ----------
    backbone_info_ : dict
        The backbone's name, weights identity and preprocessing
        (``Backbone.info``); ``transform`` refuses another backbone.
    embed_dim_ : int
        Width of the embeddings.
    n_features_out_ : int
        Columns of the output of ``transform`` (``embed_dim_``).

    See Also
    --------
    skrank.CLIPRanker : The ranking-aware adapter trained on top of the same backbone.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import RidgeCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from skrank import CLIPEmbedder
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 10)]
    >>> y = np.arange(len(images), dtype=float)
    >>> embedder = CLIPEmbedder("skrank-tiny", None, device="cpu").fit()
    >>> embedder.transform(images).shape
    (25, 64)
    >>> embedder.get_feature_names_out()[:2].tolist()
    ['clipembedder0', 'clipembedder1']
    >>> probe = make_pipeline(CLIPEmbedder("skrank-tiny", None, device="cpu"), RidgeCV())
    >>> probe.fit(images, y).predict(images[:3]).shape
    (3,)
    """

    # The "?" link of the notebook repr: this class's page in skrank's API reference.
    _doc_link_module = "skrank"
    _doc_link_template = API_PAGE

    def __init__(
        self,
        backbone="ViT-B-16",
        pretrained="openai",
        *,
        batch_size=64,
        device="auto",
        precision="auto",
        num_workers=0,
        cache="memory",
        cache_dir=None,
        image_column="image",
        normalize=False,
    ):
        self.backbone = backbone
        self.pretrained = pretrained
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.cache = cache
        self.cache_dir = cache_dir
        self.image_column = image_column
        self.normalize = normalize

    def fit(self, X=None, y=None):
        """Check the parameters and load the backbone; ``X`` and ``y`` are not read.

        Parameters
        ----------
        X : ignored
            Accepted (images, or None) so the embedder fits in a pipeline.
        y : ignored
            Accepted for the same reason.

        Returns
        -------
        self : CLIPEmbedder
            Fitted. Offline, with weights that are not on this machine, a
            ``skrank.WeightsUnavailableError`` is raised within seconds.
        """
        params = _validate(self.get_params(deep=False))
        backbone = load_backbone(self.backbone, self.pretrained, params["device_"])
        self.backbone_info_ = backbone.info
        self.embed_dim_ = int(backbone.embed_dim)
        self.n_features_out_ = self.embed_dim_
        return self

    @property
    def _n_features_out(self) -> int:
        """Output width, for ``get_feature_names_out`` (``clipembedder0``, ...)."""
        return self.n_features_out_

    def transform(self, X):
        """The CLIP image embedding of every image of ``X``.

        Parameters
        ----------
        X : sequence of images, pandas Series, array or DataFrame
            Paths, PIL images or HxWxC arrays in a list, tuple or Series; a
            4-D array (N, H, W, C); an (N, 1) object array (one column, as a
            ``ColumnTransformer`` passes it); or a DataFrame, whose
            ``image_column`` (or only column) is read.

        Returns
        -------
        ndarray of shape (n_samples, ``embed_dim_``), dtype float32
            Unit rows when ``normalize=True``.

        Raises
        ------
        ImageLoadError
            Naming every image of ``X`` that could not be read.
        """
        check_is_fitted(self, "backbone_info_")
        params = _validate(self.get_params(deep=False))
        return embed_images(self, params, X, "this CLIPEmbedder")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        # transform gives float32 whatever X holds: float32 images keep their dtype,
        # and float32 is what every other input becomes (the list's first entry).
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class _MemoryStore:
    """The store face of :data:`MEMORY_CACHE` for one backbone and autocast mode."""

    kind = "embeddings"
    dtype = np.float32

    def __init__(self, encoder: Encoder):
        bf16 = use_bf16(encoder.backbone.device, encoder.precision, towers=True)
        mode = "bf16" if bf16 else "fp32"
        self.prefix = (spec_digest(encoder.backbone.info, "embeddings"), mode)

    def load(self, key: str, view: bool) -> tuple[np.ndarray | None, None]:
        return MEMORY_CACHE.get((*self.prefix, key)), None

    def write(self, key: str, view: bool, vector: np.ndarray) -> None:
        MEMORY_CACHE.put((*self.prefix, key), vector)

    def report(self) -> None:
        """Nothing to report: the LRU holds what it is given."""


def embed_images(estimator, params: dict, X, what: str) -> np.ndarray:
    """The embeddings (n, embed_dim) float32 of the images of ``X``, for a fitted
    ``estimator`` (``backbone``, ``pretrained``, ``backbone_info_``; called ``what``
    in errors) as its validated ``params`` ask: the fitted backbone, the cache, and
    unit rows when ``params["normalize"]``."""
    if isinstance(X, pd.DataFrame):
        items = image_column_of(X, params["image_column"], None).tolist()
    else:
        items = as_image_list(X)
    if not items:
        raise ValueError("X holds no images")
    backbone = load_fitted_backbone(estimator, params["device_"], what)
    encoder = encoder_for(backbone, params)
    out = _embeddings(encoder, items, params["cache"], params["cache_dir"])
    if params["normalize"]:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, np.finfo(np.float32).tiny)
    return out


def _embeddings(encoder: Encoder, items: list, cache: str | None, cache_dir) -> np.ndarray:
    """(n, embed_dim) float32 embeddings of ``items``, through the cache named ``cache``.

    The images a cache lacks are computed ``batch_size`` at a time by
    :meth:`~skrank._encoding.encoder.Encoder.fill` (with nothing cached, in the same
    batches as :meth:`~skrank._encoding.encoder.Encoder.embed` on ``items``). Every
    unreadable image is named in one ``ImageLoadError``.
    """
    if cache is None:
        return encoder.embed(items)
    if cache == "disk":
        store = DiskStore(encoder.backbone, resolve_cache_dir(cache_dir), kind="embeddings")
    else:
        store = _MemoryStore(encoder)
    filled = encoder.fill(store, items, range(len(items)), keep=True)
    store.report()
    if filled.failures:
        raise ImageLoadError(filled.failures)
    return np.stack([filled.found[(i, False)] for i in range(len(items))]).astype(
        np.float32, copy=False
    )
