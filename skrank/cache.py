"""Storing and serving frozen tokens: memory, disk, or none.

Both CLIP towers are frozen, so an image's tokens never change during a fit.
:class:`MemoryCache` encodes each image once (and its horizontally flipped twin
when augmenting), keeps the tokens in fp16 and serves training batches from
them. :class:`DiskCache` (``cache="disk"``) does the same with one fp16 file
per image and view under ``cache_dir``, keyed by the image's content, the
backbone's weights and the preprocessing, so clones, folds, fits and processes
share the work. :class:`LiveEncoder` (``cache=None``) decodes and encodes every
batch again: the reference code's cost model, kept for comparison.
:class:`TokenStream` serves the tokens of images to predict on, through the
disk cache when there is one. Encoding itself is :mod:`skrank.backbone`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skrank.backbone import Backbone, encode_images
from skrank.images import (
    ImageLoadError,
    Preprocessor,
    describe,
    iter_pixel_batches,
    load_image,
)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DiskCache",
    "DiskStore",
    "LiveEncoder",
    "MemoryCache",
    "TokenStream",
    "cached_encode_images",
    "content_key",
    "ensure_cached",
    "resolve_cache_dir",
    "token_source",
]

_CACHE_FORMAT = 1  # bump when the stored tokens' meaning changes
DEFAULT_CACHE_DIR = os.environ.get("SKRANK_CACHE_DIR", os.path.join("~", ".cache", "skrank"))


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> str | os.PathLike:
    """``cache_dir``, or ``$SKRANK_CACHE_DIR`` / ``~/.cache/skrank`` for None."""
    return DEFAULT_CACHE_DIR if cache_dir is None else cache_dir


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
        precision: str = "auto",
    ):
        n, L, C = len(items), backbone.n_image_tokens, backbone.image_dim
        self._tokens = torch.empty(n, L, C, dtype=torch.float16)
        self._flipped = torch.empty(n, L, C, dtype=torch.float16) if augment else None
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


# --------------------------------------------------------------------------- on disk


def content_key(item) -> str | None:
    """SHA-256 of an image input's content: file bytes, array bytes, or decoded RGB pixels.

    Two inputs with the same content share cache entries wherever they live.
    Returns None for a path that is not a readable regular file (the decoder
    then reports why); raises ``ImageLoadError`` for a PIL image that fails to
    decode.
    """
    h = hashlib.sha256()
    if isinstance(item, (str, os.PathLike)):
        if not os.path.isfile(item):  # never read a FIFO or device: the decoder says why
            return None
        try:
            with open(item, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            return None
        h.update(b"file")
    elif isinstance(item, np.ndarray):
        h.update(f"array{item.dtype.str}{item.shape}".encode())
        h.update(np.ascontiguousarray(item).tobytes())
    elif isinstance(item, Image.Image):
        # Hash what the model sees: palette, EXIF orientation and mode all applied.
        rgb = load_image(item)
        h.update(f"pil{rgb.size}".encode())
        h.update(rgb.tobytes())
    else:
        return None
    return h.hexdigest()


class DiskStore:
    """Token files under ``cache_dir``: one fp16 ``.npy`` per image and view.

    Writes go to a temporary file in the same folder, then ``os.replace``, so a
    reader never sees a torn file and concurrent writers of the same entry
    (GridSearchCV workers) can only replace identical bytes with identical bytes.
    """

    def __init__(self, backbone: Backbone, cache_dir: str | os.PathLike):
        info = backbone.info
        spec = {k: info[k] for k in ("name", "weights_identity", "image_size", "mean", "std")}
        spec["format"] = _CACHE_FORMAT
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        self.root = Path(cache_dir).expanduser() / "tokens" / f"{info['name']}-{digest}"
        self.root.mkdir(parents=True, exist_ok=True)
        spec_file = self.root / "spec.json"
        if not spec_file.exists():
            self._atomic_write(spec_file, json.dumps(spec, indent=1).encode())

    def path(self, key: str, flip: bool) -> Path:
        return self.root / key[:2] / f"{key}{'.flip' if flip else ''}.npy"

    def has(self, key: str, flip: bool) -> bool:
        return self.path(key, flip).is_file()

    def read(self, key: str, flip: bool) -> np.ndarray:
        return np.load(self.path(key, flip), mmap_mode="r")  # (L, C) float16

    def write(self, key: str, flip: bool, tokens: np.ndarray) -> None:
        path = self.path(key, flip)
        path.parent.mkdir(exist_ok=True)
        buf = _npy_bytes(tokens.astype(np.float16))
        self._atomic_write(path, buf)

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _new_stats() -> dict:
    return {"kind": "disk", "hits": 0, "misses": 0, "images_encoded": 0, "bytes": 0}


def ensure_cached(
    store, backbone, items, rows, views, batch_size, num_workers, stats, progress, precision="auto"
):
    """Encode the views of ``rows`` that the store lacks. Returns (keys, failures).

    Rows are grouped by what they lack (both views, only the plain one, only
    the mirrored one), so no view is ever encoded twice.
    """
    keys: dict[int, str] = {}
    hashes: dict[int, str | None] = {}
    failures: list = []
    lacking: dict[tuple[bool, ...], list[int]] = {}
    for i in map(int, rows):
        item = items[i]
        try:
            key = hashes[i] = content_key(item)
        except ImageLoadError as exc:  # a PIL image that fails to decode; PIL won't fail twice
            failures += [(i, describe(item), reason) for _, _, reason in exc.failures]
            continue
        if key is None and not isinstance(item, (str, os.PathLike)):
            failures.append(
                (
                    i,
                    describe(item),
                    "unsupported input type "
                    f"{type(item).__name__}; use a path, a PIL image or an array",
                )
            )
            continue
        # Unreadable paths (key None) go to the decoder, which reports why.
        need = tuple(v for v in views if key is None or not store.has(key, v))
        if need:
            lacking.setdefault(need, []).append(i)
            continue
        keys[i] = key
        stats["hits"] += 1
        if progress is not None:
            progress.update(1)
    for need, missing in lacking.items():
        mirror_only = need == (True,)
        for ok, tokens, flipped, bad in encode_images(
            backbone,
            items,
            batch_size,
            num_workers,
            with_flips=len(need) == 2,
            indices=missing,
            progress=progress,
            mirror=mirror_only,
            precision=precision,
        ):
            failures += bad
            for n, i in enumerate(ok.tolist()):
                store.write(hashes[i], mirror_only, tokens[n].cpu().numpy())
                if flipped is not None:
                    store.write(hashes[i], True, flipped[n].cpu().numpy())
                keys[i] = hashes[i]
            stats["misses"] += len(ok)
            stats["images_encoded"] += len(ok) * len(need)
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
) -> Iterator[tuple[np.ndarray, torch.Tensor | None, None, list]]:
    """Like :func:`encode_images` (unflipped only), through the disk cache."""
    stats = _new_stats() if stats is None else stats
    order = np.arange(len(items)) if indices is None else np.asarray(indices, dtype=np.int64)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        keys, failures = ensure_cached(
            store, backbone, items, rows, (False,), batch_size, num_workers, stats, None, precision
        )
        ok = np.array([i for i in rows if int(i) in keys], dtype=np.int64)
        tokens = None
        if len(ok):
            arr = np.stack([store.read(keys[int(i)], False) for i in ok])
            tokens = torch.from_numpy(arr).to(backbone.device).float()
        yield ok, tokens, None, failures


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
        self.store = DiskStore(backbone, cache_dir)
        views = (False, True) if augment else (False,)
        self.info = _new_stats()
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
        if failures:
            raise ImageLoadError(failures)
        self._keys = [keys[i] for i in range(len(items))]
        self.info["bytes"] = sum(
            self.store.path(k, f).stat().st_size for k in set(self._keys) for f in views
        )

    def tokens(self, idx: np.ndarray, flip: np.ndarray, device) -> torch.Tensor:
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
            stream = cached_encode_images(self.store, *args, indices=rows, precision=self.precision)
        else:
            stream = encode_images(*args, indices=rows, precision=self.precision)
        for ok, tokens, _, failures in stream:
            yield ok, tokens, failures
