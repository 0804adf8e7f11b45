"""Storing and serving frozen tokens: memory, disk, or none.

Both CLIP towers are frozen, so an image's tokens never change during a fit.
:class:`MemoryCache` encodes each image once (and its horizontally flipped twin
when augmenting), keeps the tokens in fp16 and serves training batches from
them. :class:`DiskCache` (``cache="disk"``) does the same with one fp16 file
per image and view under ``cache_dir``, keyed by the image's content, the
backbone's weights and the preprocessing, so clones, folds, fits and processes
share the work; :mod:`skrank._encoding.diskstore` stores them and verifies every read, and
:meth:`skrank._encoding.encoder.Encoder.fill` encodes what a store lacks.
:class:`LiveEncoder` (``cache=None``) decodes and encodes every batch again:
the reference code's cost model, kept for comparison. :class:`TokenStream`
serves the tokens of images to predict on, through the disk cache when there
is one. Encoding itself is :class:`skrank._encoding.encoder.Encoder`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from skrank._encoding.diskstore import DiskStore, new_stats
from skrank._encoding.encoder import BOTH, PLAIN, Encoder
from skrank._encoding.images import ImageLoadError, Preprocessor, iter_pixel_batches
from skrank._progress import bar

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEVICE_SHARE",
    "DiskCache",
    "LiveEncoder",
    "MemoryCache",
    "TokenStream",
    "resolve_cache_dir",
    "token_placement",
    "token_source",
]

DEFAULT_CACHE_DIR = os.environ.get("SKRANK_CACHE_DIR", os.path.join("~", ".cache", "skrank"))


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> str | os.PathLike:
    """``cache_dir``, or ``$SKRANK_CACHE_DIR`` / ``~/.cache/skrank`` for None."""
    return DEFAULT_CACHE_DIR if cache_dir is None else cache_dir


DEVICE_SHARE = 0.5  # MemoryCache holds tokens on the GPU when they take at most this share


def token_placement(nbytes: int, device: torch.device, share: float = DEVICE_SHARE) -> str:
    """Where a fit's cached tokens live: "device", "pinned" host memory, or "host".

    On CUDA the tokens go to the device when they take at most ``share`` of its
    free memory, so batches are gathered there with no copy; otherwise they stay
    in pinned host memory, copied without blocking. Elsewhere: plain host memory.
    """
    if device.type != "cuda":
        return "host"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes <= share * free else "pinned"


class MemoryCache:
    """Every training image's tokens (and flipped twin) in fp16, where training runs.

    Tokens are gathered on the device that holds them (see :func:`token_placement`);
    from pinned host memory a batch is copied without blocking the host, which
    meanwhile gathers the next batch while the device computes this one.
    """

    def __init__(
        self,
        encoder: Encoder,
        items: Sequence,
        *,
        augment: bool,
        progress=None,
        placement: str | None = None,
    ):
        backbone = encoder.backbone
        n, L, C = len(items), backbone.n_image_tokens, backbone.image_dim
        # One (views, n, L, C) tensor, filled in place: a batch is one gather, flips
        # included, and the fit never holds a second copy of its tokens.
        wanted = BOTH if augment else PLAIN
        views = torch.empty(len(wanted), n, L, C, dtype=torch.float16)
        failures: list = []
        for batch in encoder.stream(items, views=wanted, progress=progress):
            failures += batch.failures
            if len(batch.rows):
                for v, tokens in enumerate(batch.views):
                    views[v, batch.rows] = tokens.half().cpu()
        if failures:
            raise ImageLoadError(failures)
        nbytes = int(views.nbytes)
        self.placement = placement or token_placement(nbytes, backbone.device)
        if self.placement == "device":
            views = views.to(backbone.device)
        elif self.placement == "pinned":
            views = views.pin_memory()
        self._views = views
        self.info = {
            "kind": "memory",
            "hits": 0,
            "misses": n,
            "images_encoded": n * len(wanted),
            "bytes": nbytes,
            "placement": self.placement,
        }

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        """Tokens (B, L, C) float32 for rows ``idx``, mirrored where ``flip``."""
        view = np.asarray(flip, dtype=np.int64) if self._views.shape[0] > 1 else 0 * idx
        where = self._views.device
        out = self._views[torch.as_tensor(view, device=where), torch.as_tensor(idx, device=where)]
        if self.placement == "pinned":  # a gather makes pageable memory: stage it pinned
            out = out.pin_memory()
        return out.to(device, non_blocking=True).float()


class LiveEncoder:
    """``cache=None``: decode and encode every batch through the frozen backbone."""

    def __init__(self, encoder: Encoder, items: Sequence, *, progress=None):
        preprocess = Preprocessor.from_info(encoder.backbone.info)
        failures: list = []
        # One decode pass up front so unreadable images fail before training starts.
        for ok, _, bad in iter_pixel_batches(items, preprocess, 64, encoder.num_workers):
            failures += bad
            if progress is not None:
                progress.update(len(ok) + len(bad))  # the last batch may be short
        if failures:
            raise ImageLoadError(failures)
        self._encoder, self._items, self._preprocess = encoder, items, preprocess
        self.info = {"kind": None, "hits": 0, "misses": 0, "images_encoded": 0, "bytes": 0}

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        workers = self._encoder.num_workers
        _, pixels, _ = next(
            iter_pixel_batches(self._items, self._preprocess, len(idx), workers, idx)
        )
        flip_t = torch.as_tensor(flip, dtype=torch.bool)
        pixels[flip_t] = pixels[flip_t].flip(-1)
        self.info["images_encoded"] += len(idx)
        self.info["misses"] += len(idx)
        return self._encoder.forward(pixels).to(device)


class DiskCache:
    """Training token source backed by a :class:`DiskStore` (``cache="disk"``).

    Only one batch of tokens is in memory at a time, so resident memory does
    not grow with the number of images.
    """

    def __init__(
        self,
        encoder: Encoder,
        items: Sequence,
        *,
        augment: bool,
        cache_dir: str | os.PathLike,
        progress=None,
    ):
        # Tokens the store cannot write (a read-only cache) stay in memory for the fit.
        self.store = DiskStore(encoder.backbone, cache_dir, hold_unstored=True)
        views = BOTH if augment else PLAIN
        filled = encoder.fill(self.store, items, range(len(items)), views=views, progress=progress)
        self.store.report()
        if filled.failures:
            raise ImageLoadError(filled.failures)
        self._keys = [filled.keys[i] for i in range(len(items))]
        self.info = {
            **new_stats(),
            "hits": filled.hits,
            "misses": filled.misses,
            "images_encoded": filled.views_encoded,
            "bytes": len(set(self._keys)) * len(views) * self.store.entry_bytes,
        }

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        """Tokens (B, L, C) float32, each entry verified again as it is read."""
        arr = np.stack([self.store.read(self._keys[i], bool(f)) for i, f in zip(idx, flip)])
        return torch.from_numpy(arr).to(device).float()


def token_source(
    encoder: Encoder,
    items: Sequence,
    *,
    cache: str | None,
    augment: bool,
    cache_dir: str | os.PathLike | None = None,
    verbose: int | str = 0,
):
    """The training token source for ``cache``: "memory", "disk" or None.

    A progress bar as ``verbose`` asks (:func:`skrank._progress.bar`) counts the
    images encoded (or, for None, decoded once to check them).
    """
    progress = bar(verbose, len(items), "encoding", "img")
    try:
        if cache == "disk":
            cache_dir = resolve_cache_dir(cache_dir)
            return DiskCache(
                encoder, items, augment=augment, cache_dir=cache_dir, progress=progress
            )
        if cache == "memory":
            return MemoryCache(encoder, items, augment=augment, progress=progress)
        return LiveEncoder(encoder, items, progress=progress)
    finally:
        if progress is not None:
            progress.close()


class TokenStream:
    """Frozen tokens of images to predict on, batch by batch.

    With ``cache="disk"`` they are read from (and added to) the disk cache
    under ``cache_dir``, so predicting on images seen in ``fit`` encodes
    nothing; otherwise every batch is encoded. One instance serves every call
    of one prediction.
    """

    def __init__(self, encoder: Encoder, cache: str | None, cache_dir=None):
        self.encoder = encoder
        self.store = None
        if cache == "disk":
            self.store = DiskStore(encoder.backbone, resolve_cache_dir(cache_dir))

    def __call__(self, items: Sequence, rows: np.ndarray) -> Iterator[tuple]:
        """Yield ``(ok_rows, tokens, failures)`` for ``rows`` of ``items``: tokens
        (n_ok, L, C) float32 on the backbone's device, or None when n_ok is 0."""
        if self.store is None:
            for batch in self.encoder.stream(items, indices=rows):
                yield batch.rows, batch.views[0], batch.failures
            return
        order = np.asarray(rows, dtype=np.int64)
        device = self.encoder.backbone.device
        for start in range(0, len(order), self.encoder.batch_size):
            chunk = order[start : start + self.encoder.batch_size]
            filled = self.encoder.fill(self.store, items, chunk, keep=True)
            ok = np.array([i for i in chunk if int(i) in filled.keys], dtype=np.int64)
            tokens = None
            if len(ok):
                arr = np.stack([filled.found[(int(i), False)] for i in ok])
                tokens = torch.from_numpy(arr).to(device).float()
            yield ok, tokens, filled.failures

    def report(self) -> None:
        """One warning for every unusable or unwritable cache entry met since the last report."""
        if self.store is not None:
            self.store.report()
