"""Storing and serving frozen tokens: memory, disk, or none.

Both CLIP towers are frozen, so an image's tokens never change during a fit.
:class:`MemoryCache` encodes each image once (and its horizontally flipped twin
when augmenting), keeps the tokens in fp16 and serves training batches from
them. :class:`DiskCache` (``cache="disk"``) does the same with one fp16 file
per image and view under ``cache_dir``, keyed by the image's content, the
backbone's weights and the preprocessing, so clones, folds, fits and processes
share the work; :mod:`skrank.diskstore` stores them and verifies every read, and
:func:`ensure_cached` / :func:`cached_encode_images` encode what a store lacks.
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
from skrank.diskstore import DiskStore, content_key, keyed, new_stats
from skrank.images import ImageLoadError, Preprocessor, describe, iter_pixel_batches

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


# ---------------------------------------------------------------- encoding into a disk store


def ensure_cached(
    store,
    backbone,
    items,
    rows,
    views,
    batch_size,
    num_workers,
    stats,
    progress,
    precision="auto",
    found: dict | None = None,
):
    """Encode the views of ``rows`` the store lacks or holds unusable.

    Every entry present is read and verified. Rows are grouped by what they
    lack (both views, only the plain one, only the mirrored one), so no view
    is encoded twice, and each group is encoded ``batch_size`` rows at a time
    as it fills: at most three batches of file bytes are held at once.

    Parameters
    ----------
    store, backbone, items, rows
        Where to look and encode, and which of ``items`` to look at.
    views : tuple of bool
        The views wanted: ``(False,)`` or ``(False, True)`` (with mirrors).
    batch_size, num_workers, precision
        As in :func:`~skrank.backbone.encode_images`.
    stats : dict
        Counters ``hits``, ``misses`` and ``images_encoded``, updated.
    progress : tqdm or None
        Advanced by one per row.
    found : dict, optional
        Receives ``(row, view) -> tokens`` (L, C float16, as stored) for every
        view of every row that succeeded.

    Returns
    -------
    keys : dict
        Row -> content key, for the rows whose every view is now available.
    failures : list of (index, path, reason)
        The rows that could not be read.
    """
    keys: dict[int, str] = {}
    failures: list = []
    pending: dict[tuple[bool, ...], list] = {}

    def encode(need: tuple[bool, ...], group: list) -> None:
        mirror_only = need == (True,)
        for ok, tokens, flipped, bad in encode_images(
            backbone,
            [source for _, _, source in group],
            batch_size,
            num_workers,
            with_flips=len(need) == 2,
            progress=progress,
            mirror=mirror_only,
            precision=precision,
        ):
            failures.extend((group[j][0], describe(items[group[j][0]]), why) for j, _, why in bad)
            if not len(ok):
                continue
            done = [(mirror_only, tokens)] + ([(True, flipped)] if flipped is not None else [])
            done = [(view, t.float().cpu().numpy().astype(np.float16)) for view, t in done]
            for n, j in enumerate(ok.tolist()):
                i, key, _ = group[j]
                for view, arr in done:
                    store.write(key, view, arr[n])
                    if found is not None:
                        found[(i, view)] = arr[n]
                keys[i] = key
            stats["misses"] += len(ok)
            stats["images_encoded"] += len(ok) * len(need)

    for i in map(int, rows):
        item = items[i]
        try:
            key, source = keyed(item)
        except ImageLoadError as exc:
            failures += [(i, describe(item), why) for _, _, why in exc.failures]
            if progress is not None:
                progress.update(1)
            continue
        need = []
        for view in views:
            tokens = None if key is None else store.load(key, view)[0]
            if tokens is None:
                need.append(view)
            elif found is not None:
                found[(i, view)] = tokens
        if need:  # inputs without a key go to the decoder, which says why
            group = pending.setdefault(tuple(need), [])
            group.append((i, key, source))
            if len(group) == batch_size:
                encode(tuple(need), pending.pop(tuple(need)))
            continue
        keys[i] = key
        stats["hits"] += 1
        if progress is not None:
            progress.update(1)
    for need, group in pending.items():
        encode(need, group)
    return keys, failures


def cached_encode_images(
    store: DiskStore,
    backbone: Backbone,
    items: Sequence,
    batch_size: int,
    num_workers: int = 0,
    indices: Sequence[int] | None = None,
    stats: dict | None = None,
    precision: str = "auto",
    report: bool = True,
) -> Iterator[tuple[np.ndarray, torch.Tensor | None, None, list]]:
    """Like :func:`~skrank.backbone.encode_images` (unflipped only), through the disk cache.

    Warns once for the whole pass (see :meth:`DiskStore.report`), before the
    last batch is yielded; ``report=False`` leaves that to the caller.
    """
    stats = new_stats() if stats is None else stats
    order = np.arange(len(items)) if indices is None else np.asarray(indices, dtype=np.int64)
    starts = range(0, len(order), batch_size)
    for start in starts:
        rows = order[start : start + batch_size]
        found: dict = {}
        args = (store, backbone, items, rows, (False,), batch_size, num_workers, stats, None)
        keys, failures = ensure_cached(*args, precision, found=found)
        ok = np.array([i for i in rows if int(i) in keys], dtype=np.int64)
        tokens = None
        if len(ok):
            arr = np.stack([found[(int(i), False)] for i in ok])
            tokens = torch.from_numpy(arr).to(backbone.device).float()
        if report and start == starts[-1]:
            store.report()
        yield ok, tokens, None, failures
