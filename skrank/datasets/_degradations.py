"""The graded degradations of the synthetic tasks: their levels and how each is applied."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from skrank.datasets._count import _count, _count_levels


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _graded_integers(start: int, stop: int, n_levels: int, kind: str) -> np.ndarray:
    """`n_levels` distinct integers from `start` to `stop`, geometrically spaced.

    Geometric spacing puts more levels where a change of one unit is visible (low JPEG
    quality, few pixelation cells); where rounding makes two levels equal, fall back to
    even spacing.
    """
    available = abs(start - stop) + 1
    if n_levels > available:
        raise ValueError(
            f"n_levels={n_levels} is too many for kind={kind!r} at these settings: "
            f"at most {available} distinct levels ({start} to {stop})."
        )
    values = np.rint(np.geomspace(start, stop, n_levels)).astype(int)
    if len(np.unique(values)) < n_levels:
        values = np.rint(np.linspace(start, stop, n_levels)).astype(int)
    return values


def _blur_levels(n_levels: int, image_size: int) -> np.ndarray:
    # Level 0 is the photo; the others grow geometrically, as blur is perceived, from
    # 0.5 px (a smaller sigma hardly changes a pixel) to image_size / 32, which removes
    # the same share of detail at any size, but at least 1.5 px on small images.
    strongest = max(1.5, image_size / 32)
    # Spaced from the strong end so that two levels are the photo and the strongest blur.
    return np.concatenate([[0.0], np.geomspace(strongest, 0.5, n_levels - 1)[::-1]])


def _blur(base: np.ndarray, sigmas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = base.astype(np.float32)
    return np.stack(
        [_to_uint8(ndimage.gaussian_filter(x, (s, s, 0), mode="reflect")) for s in sigmas]
    )


def _noise_levels(n_levels: int, image_size: int) -> np.ndarray:
    return np.linspace(0.0, 40.0, n_levels)


def _noise(base: np.ndarray, stds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # One noise field per source, scaled per level: within a source only the amount of
    # noise changes, not its pattern.
    field = rng.standard_normal(base.shape, dtype=np.float32)  # (S, S, 3)
    return _to_uint8(base[None] + stds[:, None, None, None] * field[None])  # (L, S, S, 3)


def _jpeg_levels(n_levels: int, image_size: int) -> np.ndarray:
    # Target = 100 - quality, so that a larger target means stronger compression. Below
    # quality 10 libjpeg's baseline quantisation tables saturate and levels look alike.
    return 100.0 - _graded_integers(95, 10, n_levels, "jpeg")


def _jpeg(base: np.ndarray, strengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = []
    for strength in strengths:
        buffer = io.BytesIO()
        # Fixed 4:2:0 chroma subsampling: Pillow's default depends on the quality.
        Image.fromarray(base).save(
            buffer, format="JPEG", quality=int(round(100 - strength)), subsampling=2
        )
        out.append(np.asarray(Image.open(buffer, formats=["JPEG"]).convert("RGB")))
    return np.stack(out)


def _shoulder(gains: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Scale ``x`` in [0, 1] by ``gains``, with a soft shoulder above a gain of 1.

    A gain g up to 1 scales linearly; above 1, g x / (1 + (g - 1) x) replaces clipping:
    values approach 1 without flattening into it, and every value below 1 still grows.
    """
    return gains * x / (1 + np.maximum(gains - 1, 0) * x)


def _brightness_levels(n_levels: int, image_size: int) -> np.ndarray:
    # Exposure from -2 to +1 stop.
    return 2.0 ** np.linspace(-2.0, 1.0, n_levels)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(y: np.ndarray) -> np.ndarray:
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)


def _brightness(base: np.ndarray, gains: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A gain on linear light is what a longer or shorter exposure does, so images stay
    # natural, unlike adding an offset. Above a gain of 1 a highlight shoulder,
    # g x / (1 + (g - 1) x), replaces clipping: highlights approach white without
    # flattening into it, and every pixel below white still brightens.
    linear = _srgb_to_linear(base.astype(np.float32) / 255)[None]  # (1, S, S, 3)
    gains = gains.astype(np.float32)[:, None, None, None]  # (L, 1, 1, 1)
    exposed = _shoulder(gains, linear)  # (L, S, S, 3)
    return _to_uint8(255 * _linear_to_srgb(exposed))


def _contrast_levels(n_levels: int, image_size: int) -> np.ndarray:
    return np.geomspace(0.25, 2.0, n_levels)


def _contrast(base: np.ndarray, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Scale distances from the mean grey level, as PIL.ImageEnhance.Contrast does, so
    # overall brightness stays put. Above a factor of 1 the same shoulder as for
    # brightness, c t / (1 + (c - 1) t) on the distance t towards black or white, replaces
    # clipping: stretching an already contrasty photo linearly would flatten a third of it.
    x = base.astype(np.float32)[None]  # (1, S, S, 3)
    pivot = float(np.mean(x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)))
    room = np.where(x >= pivot, 255 - pivot, pivot)  # distance from pivot to white or black
    t = np.abs(x - pivot) / room  # (1, S, S, 3), in [0, 1]
    factors = factors.astype(np.float32)[:, None, None, None]  # (L, 1, 1, 1)
    stretched = _shoulder(factors, t)  # (L, S, S, 3)
    return _to_uint8(pivot + np.sign(x - pivot) * room * stretched)


def _pixelate_levels(n_levels: int, image_size: int) -> np.ndarray:
    # The coarsest level keeps 16 cells across (a third of the pixels on small images):
    # blocks are plain to see, yet the photo is still recognisable. The target is the
    # block size in pixels.
    coarsest = max(2, min(16, image_size // 3))
    cells = _graded_integers(image_size, coarsest, n_levels, "pixelate")
    return image_size / cells


def _pixelate(base: np.ndarray, blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = base.shape[0]
    image = Image.fromarray(base)
    out = []
    for block in blocks:
        cells = int(round(size / block))
        small = image.resize((cells, cells), Image.Resampling.BOX)
        out.append(np.asarray(small.resize((size, size), Image.Resampling.NEAREST)))
    return np.stack(out)


@dataclass(frozen=True)
class _Degradation:
    instruction: str
    target: str  # what the target measures, for DESCR
    levels: Callable[[int, int], np.ndarray]  # (n_levels, image_size) -> (L,) targets
    apply: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]  # (L, S, S, 3)


_DEGRADATIONS = {
    "blur": _Degradation(
        "Sort the images by how blurry they are.",
        "standard deviation, in pixels, of a Gaussian blur (0, then 0.5 to image_size / 32)",
        _blur_levels,
        _blur,
    ),
    "noise": _Degradation(
        "Sort the images by how noisy they are.",
        "standard deviation, in 8-bit grey levels, of additive Gaussian noise (0 to 40)",
        _noise_levels,
        _noise,
    ),
    "jpeg": _Degradation(
        "Sort the images by how strongly they are JPEG compressed.",
        "JPEG compression strength, 100 - quality (quality 95 down to 10)",
        _jpeg_levels,
        _jpeg,
    ),
    "brightness": _Degradation(
        "Sort the images by brightness.",
        "exposure gain applied in linear light (0.25 to 2, i.e. -2 to +1 stop)",
        _brightness_levels,
        _brightness,
    ),
    "contrast": _Degradation(
        "Sort the images by contrast.",
        "contrast factor about the mean grey level (0.25 to 2)",
        _contrast_levels,
        _contrast,
    ),
    "pixelate": _Degradation(
        "Sort the images by how pixelated they are.",
        "pixelation block size in pixels (1 up to image_size / 16, or 3 on small images)",
        _pixelate_levels,
        _pixelate,
    ),
    "count": _Degradation(
        "Count the circles drawn on the image.",
        "number of filled circles drawn at random, non-overlapping positions (1 to n_levels)",
        _count_levels,
        _count,
    ),
}


# The kinds make_ranking_task accepts: blur, noise, jpeg, brightness, contrast, pixelate, count.
KINDS = tuple(_DEGRADATIONS)
