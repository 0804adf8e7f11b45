"""Pixels to frozen tokens or embeddings, and a store filled with what it lacks.

An :class:`Encoder` is a frozen :class:`~skrank._encoding.backbone.Backbone` with the
settings every encoding pass shares: ``batch_size``, ``num_workers`` (decode
threads) and ``precision``. It is built once from the validated parameters of
a :class:`~skrank.CLIPRanker` or a :class:`~skrank.CLIPEmbedder` (or from the
arguments of :func:`skrank.parallel.encode`) and passed whole.

- :meth:`Encoder.stream` decodes images ``batch_size`` at a time and yields a
  :class:`Batch` of tokens (or pooled embeddings), per view (the image as it
  is, and mirrored), for the images that decoded.
- :meth:`Encoder.embed` is every embedding of a list of images, or one
  ``ImageLoadError`` naming each image that failed.
- :meth:`Encoder.fill` is the one place that encodes what a store lacks: the
  disk token cache (training, prediction, :func:`skrank.parallel.encode`),
  the disk embedding cache and the embedder's in-memory LRU. It returns a
  :class:`Filled`.

A store is anything with ``load(key, view) -> (array or None, why)``,
``write(key, view, array)``, ``kind`` ("tokens" or "embeddings") and
``dtype`` (what it keeps): :class:`~skrank._encoding.diskstore.DiskStore` is one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from skrank._encoding.backbone import Backbone
from skrank._encoding.diskstore import keyed
from skrank._encoding.images import ImageLoadError, Preprocessor, describe, iter_pixel_batches

__all__ = ["Batch", "Encoder", "Filled"]

PLAIN = (False,)  # the image as it is
BOTH = (False, True)  # the image and its horizontal mirror


class Batch(NamedTuple):
    """One decoded and encoded batch of :meth:`Encoder.stream`."""

    rows: np.ndarray  # positions in ``items`` of the images encoded, in order
    views: tuple  # per view asked: (n, L, C) tokens or (n, D) embeddings, float32; None if n = 0
    failures: list  # (position, path, reason) of the images that did not decode


class Filled(NamedTuple):
    """What :meth:`Encoder.fill` did for the rows it was given."""

    keys: dict  # row -> content key, for the rows whose every view is now available
    found: dict  # (row, view) -> array as stored, for every view available (keep=True)
    failures: list  # (row, path, reason) of the rows that could not be read
    hits: int  # rows whose every view the store already held
    misses: int  # rows encoded
    views_encoded: int  # forward passes (a mirrored view counts as one)


@dataclass(frozen=True)
class Encoder:
    """A frozen backbone and how to run it: the one owner of pixels → tokens or embeddings.

    Parameters
    ----------
    backbone : Backbone
        The frozen towers (:func:`skrank._encoding.backbone.load_backbone`).
    batch_size : int, default=64
        Images per forward pass.
    num_workers : int, default=0
        Threads decoding images in parallel.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        As :func:`skrank._devices.autocast` reads it.

    Examples
    --------
    >>> import numpy as np
    >>> from skrank._encoding.backbone import load_backbone
    >>> from skrank._encoding.encoder import Encoder
    >>> encoder = Encoder(load_backbone("skrank-tiny", None), batch_size=4)
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 50)]
    >>> encoder.embed(images).shape
    (5, 64)
    >>> [batch.views[0].shape[0] for batch in encoder.stream(images)]
    [4, 1]
    """

    backbone: Backbone
    batch_size: int = 64
    num_workers: int = 0
    precision: str = "auto"

    def forward(self, pixels: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        """Normalised pixels (N, 3, H, W) → tokens (N, L, C), or pooled embeddings (N, D)."""
        if pooled:
            return self.backbone.image_embeddings(pixels, self.precision)
        return self.backbone.image_tokens(pixels, self.precision)

    def stream(
        self,
        items: Sequence,
        *,
        indices: Sequence[int] | None = None,
        views: tuple[bool, ...] = PLAIN,
        pooled: bool = False,
        progress=None,
    ) -> Iterator[Batch]:
        """Decode and encode ``items`` (or those at ``indices``) batch by batch.

        ``views`` says which views to encode, in order: False the image as it
        is, True its horizontal mirror. ``pooled`` gives CLIP's pooled
        embeddings instead of tokens. ``progress`` (a tqdm bar) advances by one
        per image. Memory stays flat in ``len(items)``.
        """
        preprocess = Preprocessor.from_info(self.backbone.info)
        for ok, pixels, failures in iter_pixel_batches(
            items, preprocess, self.batch_size, self.num_workers, indices
        ):
            out = (None,) * len(views)
            if len(ok):
                out = tuple(self.forward(pixels.flip(-1) if v else pixels, pooled) for v in views)
            if progress is not None:
                progress.update(len(ok) + len(failures))
            yield Batch(ok, out, failures)

    def embed(self, items: Sequence) -> np.ndarray:
        """CLIP's pooled image embeddings (n, embed_dim), float32 numpy.

        Every unreadable image of ``items`` is named in one ``ImageLoadError``.
        """
        parts = [np.empty((0, self.backbone.embed_dim), np.float32)]
        failures: list = []
        for batch in self.stream(items, pooled=True):
            failures += batch.failures
            if len(batch.rows):
                parts.append(batch.views[0].cpu().numpy())
        if failures:
            raise ImageLoadError(failures)
        return np.concatenate(parts)

    def fill(
        self,
        store,
        items: Sequence,
        rows: Sequence[int],
        *,
        views: tuple[bool, ...] = PLAIN,
        keep: bool = False,
        progress=None,
    ) -> Filled:
        """Encode the views of ``rows`` of ``items`` that ``store`` lacks or holds unusable.

        Every entry present is read and verified by the store. Rows are
        grouped by what they lack (both views, only the plain one, only the
        mirror), so no view is encoded twice, and each group is encoded
        ``batch_size`` rows at a time as it fills: at most three batches of
        file bytes are held at once. With ``keep``, :attr:`Filled.found` holds
        every available view of every row that succeeded, as stored.
        ``progress`` advances by one per row.
        """
        run = _Fill(self, store, items, keep, progress)
        for i in map(int, rows):
            run.look(i, views)
        run.flush()
        return Filled(run.keys, run.found, run.failures, run.hits, run.misses, run.encoded)


class _Fill:
    """The state of one :meth:`Encoder.fill`: rows pending by what they lack, and results."""

    def __init__(self, encoder: Encoder, store, items: Sequence, keep: bool, progress):
        self.encoder, self.store, self.items = encoder, store, items
        self.keep, self.progress = keep, progress
        self.pooled = store.kind == "embeddings"
        self.keys: dict[int, str] = {}
        self.found: dict = {}
        self.failures: list = []
        self.pending: dict[tuple[bool, ...], list] = {}
        self.hits = self.misses = self.encoded = 0

    def look(self, i: int, views: tuple[bool, ...]) -> None:
        """Row ``i``: counted a hit, or queued (encoded once its group holds a batch)."""
        item = self.items[i]
        try:
            # A file is read once: its key hashes the very bytes then decoded.
            key, source = keyed(item)
        except ImageLoadError as exc:
            self.failures += [(i, describe(item), why) for _, _, why in exc.failures]
            self._advance(1)
            return
        need = []
        for view in views:
            stored = None if key is None else self.store.load(key, view)[0]
            if stored is None:
                need.append(view)
            elif self.keep:
                self.found[(i, view)] = stored
        if not need:
            self.keys[i] = key
            self.hits += 1
            self._advance(1)
            return
        # Inputs without a key go to the decoder, which says why (or decodes them).
        group = self.pending.setdefault(tuple(need), [])
        group.append((i, key, source))
        if len(group) == self.encoder.batch_size:
            self._encode(tuple(need), self.pending.pop(tuple(need)))

    def flush(self) -> None:
        """Encode every group still pending."""
        for need, group in list(self.pending.items()):
            self._encode(need, group)
        self.pending.clear()

    def _encode(self, need: tuple[bool, ...], group: list) -> None:
        sources = [source for _, _, source in group]
        for batch in self.encoder.stream(
            sources, views=need, pooled=self.pooled, progress=self.progress
        ):
            self.failures += [
                (group[j][0], describe(self.items[group[j][0]]), why)
                for j, _, why in batch.failures
            ]
            if not len(batch.rows):
                continue
            arrays = [t.float().cpu().numpy().astype(self.store.dtype) for t in batch.views]
            for n, j in enumerate(batch.rows.tolist()):
                i, key, _ = group[j]
                for view, arr in zip(need, arrays):
                    if key is not None:
                        self.store.write(key, view, arr[n])
                    if self.keep:
                        self.found[(i, view)] = arr[n]
                self.keys[i] = key
            self.misses += len(batch.rows)
            self.encoded += len(batch.rows) * len(need)

    def _advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(n)
