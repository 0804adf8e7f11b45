"""Storing and serving frozen tokens: memory, disk, or none.

Both CLIP towers are frozen, so an image's tokens never change during a fit.
:class:`MemoryCache` encodes each image once (and its horizontally flipped twin
when augmenting), keeps the tokens in fp16 and serves training batches from
them. :class:`DiskCache` (``cache="disk"``) does the same with one fp16 file
per image and view under ``cache_dir``, keyed by the image's content, the
backbone's weights and the preprocessing, so clones, folds, fits and processes
share the work; :mod:`skrank.diskstore` stores them and verifies every read.
:class:`LiveEncoder` (``cache=None``) decodes and encodes every batch again:
the reference code's cost model, kept for comparison. :class:`TokenStream`
serves the tokens of images to predict on, through the disk cache when there
is one. Encoding itself is :mod:`skrank.backbone`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from skrank.backbone import Backbone, encode_images
from skrank.diskstore import DiskStore, cached_encode_images, content_key, ensure_cached, new_stats
from skrank.images import ImageLoadError, Preprocessor, iter_pixel_batches

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEVICE_SHARE",
    "DiskCache",
    "DiskStore",
    "LiveEncoder",
    "MemoryCache",
    "TokenStream",
    "cached_encode_images",
    "content_key",
    "ensure_cached",
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
        backbone: Backbone,
        items: Sequence,
        *,
        augment: bool,
        batch_size: int,
        num_workers: int = 0,
        progress=None,
        precision: str = "auto",
        placement: str | None = None,
    ):
        n, L, C = len(items), backbone.n_image_tokens, backbone.image_dim
        # One (views, n, L, C) tensor, filled in place: a batch is one gather, flips
        # included, and the fit never holds a second copy of its tokens.
        views = torch.empty(2 if augment else 1, n, L, C, dtype=torch.float16)
        failures: list = []
        for ok, tokens, flipped, bad in encode_images(
            backbone,
            items,
            batch_size,
            num_workers,
            augment,
            progress=progress,
            precision=precision,
        ):
            failures += bad
            if len(ok):
                views[0, ok] = tokens.half().cpu()
                if augment:
                    views[1, ok] = flipped.half().cpu()
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
            "images_encoded": n * (2 if augment else 1),
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

    def __init__(
        self,
        backbone: Backbone,
        items: Sequence,
        *,
        num_workers: int = 0,
        progress=None,
        precision: str = "auto",
    ):
        preprocess = Preprocessor.from_info(backbone.info)
        failures: list = []
        # One decode pass up front so unreadable images fail before training starts.
        for ok, _, bad in iter_pixel_batches(items, preprocess, 64, num_workers):
            failures += bad
            if progress is not None:
                progress.update(len(ok) + len(bad))  # the last batch may be short
        if failures:
            raise ImageLoadError(failures)
        self._backbone, self._items, self._preprocess = backbone, items, preprocess
        self._num_workers, self._precision = num_workers, precision
        self.info = {"kind": None, "hits": 0, "misses": 0, "images_encoded": 0, "bytes": 0}

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        _, pixels, _ = next(
            iter_pixel_batches(self._items, self._preprocess, len(idx), self._num_workers, idx)
        )
        flip_t = torch.as_tensor(flip, dtype=torch.bool)
        pixels[flip_t] = pixels[flip_t].flip(-1)
        self.info["images_encoded"] += len(idx)
        self.info["misses"] += len(idx)
        return self._backbone.image_tokens(pixels, self._precision).to(device)


class DiskCache:
    """Training token source backed by a :class:`DiskStore` (``cache="disk"``).

    Only one batch of tokens is in memory at a time, so resident memory does
    not grow with the number of images.
    """

    def __init__(
        self,
        backbone: Backbone,
        items: Sequence,
        *,
        augment: bool,
        batch_size: int,
        cache_dir: str | os.PathLike,
        num_workers: int = 0,
        progress=None,
        precision: str = "auto",
    ):
        # Tokens the store cannot write (a read-only cache) stay in memory for the fit.
        self.store = DiskStore(backbone, cache_dir, hold_unstored=True)
        views = (False, True) if augment else (False,)
        self.info = new_stats()
        keys, failures = ensure_cached(
            self.store,
            backbone,
            items,
            range(len(items)),
            views,
            batch_size,
            num_workers,
            self.info,
            progress,
            precision,
        )
        self.store.report()
        if failures:
            raise ImageLoadError(failures)
        self._keys = [keys[i] for i in range(len(items))]
        self.info["bytes"] = len(set(self._keys)) * len(views) * self.store.entry_bytes

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        """Tokens (B, L, C) float32, each entry verified again as it is read."""
        arr = np.stack([self.store.read(self._keys[i], bool(f)) for i, f in zip(idx, flip)])
        return torch.from_numpy(arr).to(device).float()


def token_source(
    backbone: Backbone,
    items: Sequence,
    *,
    cache: str | None,
    augment: bool,
    batch_size: int,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    precision: str = "auto",
    verbose: int = 0,
):
    """The training token source for ``cache``: "memory", "disk" or None.

    With ``verbose`` a progress bar counts the images encoded (or, for None,
    decoded once to check them).
    """
    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(items), desc="encoding", unit="img", leave=False)
    common = dict(num_workers=num_workers, progress=progress, precision=precision)
    try:
        if cache == "disk":
            cache_dir = resolve_cache_dir(cache_dir)
            return DiskCache(
                backbone,
                items,
                augment=augment,
                batch_size=batch_size,
                cache_dir=cache_dir,
                **common,
            )
        if cache == "memory":
            return MemoryCache(backbone, items, augment=augment, batch_size=batch_size, **common)
        return LiveEncoder(backbone, items, **common)
    finally:
        if progress is not None:
            progress.close()


class TokenStream:
    """Frozen tokens of images to predict on, batch by batch.

    With ``kind="disk"`` they are read from (and added to) the disk cache, so
    predicting on images seen in ``fit`` encodes nothing; otherwise every batch
    is encoded. One instance serves every call of one prediction.
    """

    def __init__(
        self,
        kind: str | None,
        backbone: Backbone,
        *,
        batch_size: int,
        num_workers: int = 0,
        cache_dir: str | os.PathLike | None = None,
        precision: str = "auto",
    ):
        self.backbone, self.batch_size, self.num_workers = backbone, batch_size, num_workers
        self.precision = precision
        self.store = DiskStore(backbone, resolve_cache_dir(cache_dir)) if kind == "disk" else None

    def __call__(self, items: Sequence, rows: np.ndarray) -> Iterator[tuple]:
        """Yield ``(ok_rows, tokens, failures)`` for ``rows`` of ``items``."""
        args = (self.backbone, items, self.batch_size, self.num_workers)
        if self.store is not None:
            stream = cached_encode_images(
                self.store, *args, indices=rows, precision=self.precision, report=False
            )
        else:
            stream = encode_images(*args, indices=rows, precision=self.precision)
        for ok, tokens, _, failures in stream:
            yield ok, tokens, failures

    def report(self) -> None:
        """One warning for every unusable or unwritable cache entry met since the last report."""
        if self.store is not None:
            self.store.report()
