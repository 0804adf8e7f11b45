"""Frozen-feature token sources (DESIGN §3).

Both CLIP towers are frozen, so an image's tokens never change during a fit.
:class:`MemoryCache` encodes each image once (and its horizontally flipped twin
when augmenting), keeps the tokens in fp16 and serves training batches from
them. :class:`LiveEncoder` (``cache=None``) decodes and encodes every batch
again: the reference code's cost model, kept for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from skrank.backbone import Backbone
from skrank.images import ImageLoadError, Preprocessor, iter_pixel_batches

__all__ = ["LiveEncoder", "MemoryCache", "embed_images", "encode_images"]


def encode_images(
    backbone: Backbone,
    items: Sequence,
    batch_size: int,
    num_workers: int = 0,
    with_flips: bool = False,
    indices: Sequence[int] | None = None,
    progress=None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor | None, list]]:
    """Stream frozen tokens batch by batch: ``(ok_indices, tokens, flipped, failures)``.

    ``tokens`` is (n_ok, L, C) float32 on the backbone's device; ``flipped`` the
    same for the mirrored images (or None). Memory stays flat in ``len(items)``.
    """
    preprocess = Preprocessor.from_info(backbone.info)
    for ok, pixels, failures in iter_pixel_batches(
        items, preprocess, batch_size, num_workers, indices
    ):
        tokens = flipped = None
        if len(ok):
            tokens = backbone.image_tokens(pixels)
            if with_flips:
                flipped = backbone.image_tokens(pixels.flip(-1))
        if progress is not None:
            progress.update(len(ok) + len(failures))
        yield ok, tokens, flipped, failures


def embed_images(backbone: Backbone, items: Sequence, batch_size: int = 64) -> np.ndarray:
    """CLIP's pooled image embeddings (n, embed_dim) as float32 numpy, for baselines."""
    preprocess = Preprocessor.from_info(backbone.info)
    parts, failures = [], []
    for _, pixels, bad in iter_pixel_batches(items, preprocess, batch_size):
        failures += bad
        if len(pixels):
            parts.append(backbone.image_embeddings(pixels).cpu().numpy())
    if failures:
        raise ImageLoadError(failures)
    return np.concatenate(parts)


class MemoryCache:
    """Every training image's tokens (and flipped twin) in fp16, in host memory."""

    def __init__(
        self,
        backbone: Backbone,
        items: Sequence,
        *,
        augment: bool,
        batch_size: int,
        num_workers: int = 0,
        progress=None,
    ):
        n, L, C = len(items), backbone.n_image_tokens, backbone.image_dim
        self._tokens = torch.empty(n, L, C, dtype=torch.float16)
        self._flipped = torch.empty(n, L, C, dtype=torch.float16) if augment else None
        failures: list = []
        for ok, tokens, flipped, bad in encode_images(
            backbone, items, batch_size, num_workers, augment, progress=progress
        ):
            failures += bad
            if len(ok):
                self._tokens[ok] = tokens.half().cpu()
                if augment:
                    self._flipped[ok] = flipped.half().cpu()
        if failures:
            raise ImageLoadError(failures)
        encoded = n * (2 if augment else 1)
        self.info = {
            "kind": "memory",
            "hits": 0,
            "misses": n,
            "images_encoded": encoded,
            "bytes": int(self._tokens.nbytes * (2 if augment else 1)),
        }

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        """Tokens (B, L, C) float32 for rows ``idx``, mirrored where ``flip``."""
        out = self._tokens[torch.from_numpy(idx)]
        if self._flipped is not None and flip.any():
            out[torch.from_numpy(flip)] = self._flipped[torch.from_numpy(idx[flip])]
        return out.to(device, non_blocking=True).float()


class LiveEncoder:
    """``cache=None``: decode and encode every batch through the frozen backbone."""

    def __init__(self, backbone: Backbone, items: Sequence, *, num_workers: int = 0, progress=None):
        preprocess = Preprocessor.from_info(backbone.info)
        failures: list = []
        # One decode pass up front so unreadable images fail before training starts.
        for _, _, bad in iter_pixel_batches(items, preprocess, 64, num_workers):
            failures += bad
            if progress is not None:
                progress.update(64)
        if failures:
            raise ImageLoadError(failures)
        self._backbone, self._items, self._preprocess = backbone, items, preprocess
        self._num_workers = num_workers
        self.info = {"kind": None, "hits": 0, "misses": 0, "images_encoded": 0, "bytes": 0}

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
        _, pixels, _ = next(
            iter_pixel_batches(self._items, self._preprocess, len(idx), self._num_workers, idx)
        )
        flip_t = torch.as_tensor(flip, dtype=torch.bool)
        pixels[flip_t] = pixels[flip_t].flip(-1)
        self.info["images_encoded"] += len(idx)
        self.info["misses"] += len(idx)
        return self._backbone.image_tokens(pixels).to(device)
