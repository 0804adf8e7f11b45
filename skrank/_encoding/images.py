"""Turning user inputs into normalised pixel tensors, lazily and in batches.

Accepted images: file paths (``str`` / ``os.PathLike``), PIL images,
or numpy arrays (H×W, H×W×1, H×W×3, H×W×4; uint8, bool, or float in [0, 1]).
Every unreadable input of a call is gathered into one :class:`ImageLoadError`;
nothing else is raised for a bad image.

What "the RGB image" is, per input:

- Files are read into memory once and decoded from those bytes, by Pillow, in
  one of the :data:`DECODED_FORMATS` only: JPEG (and MPO, the multi-picture
  JPEG of many cameras), PNG, WebP, TIFF, BMP, GIF and PNM (PBM, PGM, PPM).
  Whatever the file's name, any other content is refused with a reason naming
  the format found (EPS, PDF, SVG, HEIC, ...), recognised from its first bytes
  without handing it to another Pillow plugin: some (EPS) run Ghostscript, an
  external program, and a ranking library needs none of them.
- The EXIF orientation is applied (the image is used as a viewer shows it), and
  a multi-frame file (animated GIF, multi-page TIFF) gives its first frame. A
  file over ``PIL.Image.MAX_IMAGE_PIXELS`` is refused (Pillow itself only warns
  between 1× and 2× that limit), as are files larger than any image within that
  limit could be, truncated or corrupt files, directories, empty files and URLs.
- PIL images are used at their current frame, EXIF orientation applied; a
  lazily opened image that fails to decode is reported like a bad file (only
  the first time: Pillow then marks it loaded, so pass untrusted files as paths).
  A lazily opened image of a format outside :data:`DECODED_FORMATS` is refused
  before its pixels are loaded (loading an EPS runs Ghostscript); an image
  whose pixels are already loaded is used whatever its format.
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

import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from skrank._encoding.containers import as_image_list
from skrank._encoding.imagefiles import (
    DECODED_FORMATS,
    decodable,
    open_image,
    read_path,
    truncation,
    unsupported,
)
from skrank._encoding.imagefiles import BadImage as _BadImage
from skrank._quote import MAX_SHOWN, shown

__all__ = [
    "DECODED_FORMATS",
    "ON_ERROR",
    "EncodedFile",
    "ImageLoadError",
    "Preprocessor",
    "as_image_list",
    "check_on_error",
    "iter_pixel_batches",
    "load_image",
    "read_file",
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
    >>> from skrank._encoding.images import ImageLoadError, load_image
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
            f"  [{i}] {_shown_path(path)}: {_one_line(reason)}"
            if path is not None
            else f"  [{i}]: {_one_line(reason)}"
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


def _shown_path(path: str) -> str:
    """``path`` as written, or its ``repr`` when it could be misread in a message.

    A newline, another control character, a lone surrogate (undecodable bytes),
    surrounding blanks or an empty name would break the one-line-per-failure
    layout or hide where the name ends. A long name is cut (a CSV cell can
    hold megabytes), saying how long it was.
    """
    if path and len(path) <= MAX_SHOWN and path.isprintable() and path == path.strip():
        return path
    return shown(path)


def _one_line(text: str) -> str:
    """``text`` with control characters escaped, so each failure stays on its own line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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


def _decode_or_fail(img: Image.Image) -> None:
    """Decode the pixels of an opened image, turning any decoder failure into _BadImage."""
    try:
        img.load()
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, zlib.error, ...
        raise _BadImage(f"cannot decode ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True, eq=False, repr=False)
class EncodedFile:
    """The bytes of an image file, read once (:func:`read_file`).

    Decoding an ``EncodedFile`` decodes exactly the bytes that were read, so
    whatever was computed from them (the disk cache's content key) describes
    the image decoded, even if the file changes meanwhile.

    Attributes
    ----------
    filename : str
        The path, under the name PIL images give it (see ``describe``).
    data : bytes
        The file's content.
    """

    filename: str
    data: bytes


def read_file(item: str | os.PathLike) -> EncodedFile:
    """Read the image file at ``item`` into memory, checking that it is one.

    Parameters
    ----------
    item : str or os.PathLike
        The file's path.

    Returns
    -------
    EncodedFile
        Its path and bytes; pass it where an image is expected to decode them.

    Raises
    ------
    ImageLoadError
        For index 0: a URL, a missing or unreadable path, a directory, a FIFO
        or device, an empty file, or a file larger than any image within
        ``PIL.Image.MAX_IMAGE_PIXELS`` could be.
    """
    path = os.fsdecode(item)
    try:
        return EncodedFile(path, read_path(path))
    except _BadImage as exc:
        raise ImageLoadError([(0, path, str(exc))]) from None


def _decode_file(data: bytes) -> Image.Image:
    """Decode file bytes, in an allow-listed format only, to an RGB image; a truncated
    file is refused (``_imagefiles.truncation``), whatever
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says."""
    with open_image(data) as img:
        problem = truncation(data, img.format)
        if problem is not None:
            raise _BadImage(problem)
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
        return _decode_file(read_path(os.fsdecode(item)))
    if isinstance(item, EncodedFile):
        return _decode_file(item.data)
    if isinstance(item, Image.Image):
        # Pending tiles mean the pixels are still to be decoded by the image's own
        # plugin, which for EPS runs Ghostscript: refuse before anything loads them.
        if getattr(item, "tile", None) and not decodable(item.format):
            raise _BadImage(
                unsupported(str(item.format))
                + "; this PIL image is not loaded yet and loading it would run that decoder"
            )
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
        # float32 whatever torch's default dtype (torch.set_default_dtype in the session)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
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
            empty = torch.empty(0, 3, *preprocess.size, dtype=torch.float32)
            pixels = torch.stack([px for _, px in ok]) if ok else empty
            yield ok_idx, pixels, failures
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
