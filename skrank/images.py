"""Turning user inputs into normalised pixel tensors, lazily and in batches.

Accepted images: file paths (``str`` / ``os.PathLike``), PIL images,
or numpy arrays (H×W, H×W×1, H×W×3, H×W×4; uint8, bool, or float in [0, 1]).
Every unreadable input of a call is gathered into one :class:`ImageLoadError`;
nothing else is raised for a bad image.

What "the RGB image" is, per input:

- Files are opened with Pillow; the EXIF orientation is applied (the image is
  used as a viewer shows it), and a multi-frame file (animated GIF, multi-page
  TIFF) gives its first frame. A file over ``PIL.Image.MAX_IMAGE_PIXELS`` is
  refused (Pillow itself only warns between 1× and 2× that limit), as are
  truncated or corrupt files, directories, empty files and URLs.
- PIL images are used at their current frame, EXIF orientation applied; a
  lazily opened image that fails to decode is reported like a bad file (only
  the first time: Pillow then marks it loaded, so pass untrusted files as paths).
- Modes ``1``, ``L``, ``LA``, ``La``, ``P`` (with or without transparency),
  ``PA``, ``RGBA``, ``RGBa``, ``RGBX``, ``CMYK``, ``YCbCr``, ``HSV`` and ``LAB``
  become Pillow's ``convert("RGB")``: palettes are expanded and alpha is
  dropped, not composited.
- ``I;16`` (and ``I;16L``/``B``/``N``) and ``I`` hold 16-bit intensities (what
  Pillow decodes 16-bit PNG, TIFF and PGM files to): they are scaled by
  255/65535, rounded, clipped to [0, 255] and repeated over R, G and B.
  Pillow's own ``convert("RGB")`` would clip every value above 255 to white.
- ``F`` (32-bit float) follows Pillow's convention, values on the 0–255 scale,
  clipped by Pillow's ``convert("RGB")``; NaN or infinite values are an error.
- Arrays: float arrays must be finite and in [0, 1] (scaled by 255 and
  rounded); bool is 0 or 255; any other dtype (int64, uint16, complex,
  object, ...), an empty array or another shape is an error naming the reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = [
    "ON_ERROR",
    "ImageLoadError",
    "Preprocessor",
    "as_image_list",
    "check_on_error",
    "iter_pixel_batches",
    "load_image",
    "report_failures",
]

ON_ERROR = ("raise", "nan")


class ImageLoadError(ValueError):
    """One or more images could not be read.

    Attributes
    ----------
    failures : list of (index, path or None, reason)
        Every failing input of the call, in input order.

    Examples
    --------
    >>> from skrank.images import ImageLoadError, load_image
    >>> try:
    ...     load_image("/no/such/photo.jpg")
    ... except ImageLoadError as exc:
    ...     print(exc.failures)
    [(0, '/no/such/photo.jpg', 'file not found')]
    """

    def __init__(self, failures: list[tuple[int, str | None, str]]):
        self.failures = sorted(failures, key=lambda f: f[0])
        shown = self.failures[:50]
        lines = [
            f"  [{i}] {path}: {reason}" if path else f"  [{i}]: {reason}"
            for i, path, reason in shown
        ]
        more = len(self.failures) - len(shown)
        if more > 0:
            lines.append(f"  ... and {more} more")
        super().__init__(f"{len(self.failures)} image(s) could not be read:\n" + "\n".join(lines))

    @property
    def indices(self) -> list[int]:
        return [f[0] for f in self.failures]

    def __reduce__(self):
        return type(self), (self.failures,)


def check_on_error(on_error) -> str:
    """``on_error`` if it is "raise" or "nan"; else ``ValueError``."""
    if not (isinstance(on_error, str) and on_error in ON_ERROR):
        raise ValueError(f"on_error={on_error!r} is not valid; expected 'raise' or 'nan'")
    return on_error


def report_failures(failures: list, on_error: str = "raise", stacklevel: int = 3) -> None:
    """Raise one :class:`ImageLoadError` for ``failures``, or (``"nan"``) warn once."""
    if not failures:
        return
    if on_error == "raise":
        raise ImageLoadError(failures)
    warnings.warn(
        str(ImageLoadError(failures)) + "\n(their predictions are NaN)",
        UserWarning,
        stacklevel=stacklevel,
    )


class _BadImage(Exception):
    """Internal: why one input could not be turned into an image."""


def as_image_list(images) -> list:
    """Normalise the container of images into a Python list (no decoding).

    A pandas Series gives its values; a 4-D array (N, H, W, C) or a 3-D array
    of object dtype gives one image per leading index.
    """
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(images, pd.DataFrame):
        raise TypeError("a DataFrame must be handled by the caller (select its image column)")
    if pd is not None and isinstance(images, pd.Series):
        return images.tolist()
    if isinstance(images, (str, bytes, os.PathLike, Image.Image)):
        raise TypeError(
            "images must be a sequence of images (e.g. a list of paths); got a single "
            f"{type(images).__name__}: wrap it in a list"
        )
    if isinstance(images, np.ndarray):
        if images.dtype == object or images.ndim == 4:
            return list(images)
        if images.ndim in (1,) and images.dtype.kind in "US":
            return images.tolist()
        raise ValueError(
            f"an array of images must be 4-D (N, H, W, C) or 1-D of paths/objects; got shape "
            f"{images.shape} and dtype {images.dtype}. To pass one image, use [array]"
        )
    if isinstance(images, Sequence):
        return list(images)
    if hasattr(images, "__iter__"):
        return list(images)
    raise TypeError(
        "images must be a list, tuple, ndarray or pandas Series of paths, PIL images or "
        f"arrays; got {type(images).__name__}"
    )


def describe(item) -> str | None:
    """The path of an input, when it has one (for error messages)."""
    if isinstance(item, (str, os.PathLike)):
        return os.fsdecode(item)
    return getattr(item, "filename", None) or None


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    if arr.size == 0:
        raise _BadImage(f"empty array of shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise _BadImage(f"array of shape {arr.shape}: expected H×W, H×W×1, H×W×3 or H×W×4")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise _BadImage("float array contains NaN or inf")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise _BadImage(
                f"float array has values in [{lo:.4g}, {hi:.4g}]; floats must lie in [0, 1] "
                "(divide uint8-range data by 255)"
            )
        # float64 so that float16 input rounds to the nearest level, not float16's.
        arr = np.round(arr.astype(np.float64) * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise _BadImage(
            f"array dtype {arr.dtype} is not supported; use uint8, bool or float in [0, 1]"
        )
    return Image.fromarray(np.ascontiguousarray(arr))


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@contextlib.contextmanager
def _quiet_bomb_warning():
    """Silence PIL's decompression-bomb warning: skrank refuses such files itself.

    ``catch_warnings`` swaps process-wide state, which is only safe from the main
    thread; decoding threads (``num_workers``) leave the warning visible.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _decode_or_fail(img: Image.Image) -> None:
    """Decode the pixels of an opened image, turning any decoder failure into _BadImage."""
    try:
        img.load()
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, zlib.error, ...
        raise _BadImage(f"cannot decode ({type(exc).__name__}: {exc})") from None


def _open_path(path: str) -> Image.Image:
    """Decode the file at ``path`` to an RGB image that no longer depends on the file."""
    if _URL.match(path):
        raise _BadImage("URLs are not supported: download the file and pass its local path")
    if not os.path.exists(path):
        raise _BadImage("file not found")
    if os.path.isdir(path):
        raise _BadImage("is a directory, not an image file")
    if not os.path.isfile(path):  # a FIFO or device could block or never end
        raise _BadImage("not a regular file")
    if os.path.getsize(path) == 0:
        raise _BadImage("file is empty (0 bytes)")
    with _quiet_bomb_warning():
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise _BadImage(f"image too large (decompression-bomb limit): {exc}") from None
        except Image.UnidentifiedImageError:
            raise _BadImage("not an image file PIL can read") from None
        except MemoryError:
            raise
        except Exception as exc:
            raise _BadImage(f"cannot open ({type(exc).__name__}: {exc})") from None
    with img:
        limit = Image.MAX_IMAGE_PIXELS
        if limit and img.width * img.height > limit:
            raise _BadImage(
                f"image too large (decompression-bomb limit): {img.width}×{img.height} = "
                f"{img.width * img.height} pixels exceeds PIL.Image.MAX_IMAGE_PIXELS={limit}"
            )
        return _to_rgb(img)


def load_image(item) -> Image.Image:
    """Decode one input to an RGB PIL image, EXIF orientation applied.

    Raises ``ImageLoadError`` (for index 0) when the input cannot be read.
    """
    try:
        return _load_rgb(item)
    except _BadImage as exc:
        raise ImageLoadError([(0, describe(item), str(exc))]) from None


def _load_rgb(item) -> Image.Image:
    if isinstance(item, (str, os.PathLike)):
        return _open_path(os.fsdecode(item))
    if isinstance(item, Image.Image):
        return _to_rgb(item)
    if isinstance(item, np.ndarray):
        return _to_rgb(_array_to_pil(item))
    raise _BadImage(
        f"unsupported input type {type(item).__name__}; use a path, a PIL image or an array"
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """A new RGB image from ``img`` (decoded, EXIF-oriented), as the module docstring says."""
    _decode_or_fail(img)
    if img.width < 1 or img.height < 1:
        raise _BadImage(f"image has size {img.width}×{img.height}")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a corrupt EXIF block should not make a readable image unusable
        pass
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        levels = np.clip(np.rint(np.asarray(img, dtype=np.float64) / 257.0), 0, 255)
        return Image.fromarray(levels.astype(np.uint8)).convert("RGB")
    if mode == "F" and not np.isfinite(np.asarray(img)).all():
        raise _BadImage("float (mode F) image contains NaN or inf")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "La":  # Pillow has no direct La → RGB conversion
        img = img.convert("LA")
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise _BadImage(f"image mode {mode!r} cannot be converted to RGB ({exc})") from None


@dataclass(frozen=True)
class Preprocessor:
    """Squash-resize (no crop, bicubic) and normalise with the backbone's mean/std."""

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_info(cls, info: dict) -> Preprocessor:
        return cls(tuple(info["image_size"]), tuple(info["mean"]), tuple(info["std"]))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        h, w = self.size
        arr = np.asarray(img.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        x = torch.from_numpy(arr).permute(2, 0, 1).div_(255.0)  # (3, H, W)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std


def _decode(item, preprocess: Preprocessor):
    try:
        return preprocess(_load_rgb(item)), None
    except _BadImage as exc:
        return None, str(exc)


def iter_pixel_batches(
    items: Sequence,
    preprocess: Preprocessor,
    batch_size: int,
    num_workers: int = 0,
    indices: Sequence[int] | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, list[tuple[int, str | None, str]]]]:
    """Decode ``items`` lazily, ``batch_size`` at a time.

    Yields ``(ok_indices, pixels, failures)``: the positions that decoded, their
    (n_ok, 3, H, W) tensor, and ``(index, path, reason)`` for those that did not.
    Only one batch of decoded images is alive at a time (plus what the
    ``num_workers`` threads have in flight).
    """
    order = np.arange(len(items)) if indices is None else np.asarray(indices, dtype=np.int64)
    pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = [items[i] for i in chunk]
            if pool is None:
                results = [_decode(item, preprocess) for item in batch]
            else:
                results = list(pool.map(_decode, batch, [preprocess] * len(batch)))
            ok = [(i, px) for i, (px, _) in zip(chunk, results) if px is not None]
            failures = [
                (int(i), describe(item), err)
                for i, item, (_, err) in zip(chunk, batch, results)
                if err is not None
            ]
            ok_idx = np.array([i for i, _ in ok], dtype=np.int64)
            pixels = (
                torch.stack([px for _, px in ok]) if ok else torch.empty(0, 3, *preprocess.size)
            )
            yield ok_idx, pixels, failures
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
