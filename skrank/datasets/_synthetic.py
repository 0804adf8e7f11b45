"""Synthetic ranking tasks: bundled photos degraded by a known, graded amount."""

from __future__ import annotations

import functools
import io
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.utils import Bunch, check_random_state

KINDS = ("blur", "noise", "jpeg", "brightness", "contrast", "pixelate", "count")


# --------------------------------------------------------------------------- source photos


def _skimage_photo(name: str) -> np.ndarray:
    # Imported here, not at module level, so that `import skrank` stays fast.
    import skimage.data

    image = getattr(skimage.data, name)()
    # stereo_motorcycle returns (left, right, disparity): keep the left view.
    return image[0] if isinstance(image, tuple) else image


def _sklearn_photo(file_name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(file_name)


def _matplotlib_photo(file_name: str) -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data(file_name) as f:
        return np.asarray(Image.open(f).convert("RGB"))


# A fixed list, checked to load with no network (scikit-image 0.26, scikit-learn 1.9,
# matplotlib 3.11), so the sources do not depend on what happens to be cached. Other
# `skimage.data` photos (brain, eagle, lily, ...) are downloaded on first use and are left
# out; synthetic drawings (checkerboard, colorwheel, logo, ...) too. Colour photos come
# first so that a small `n_sources` still gets varied, natural images.
_PHOTOS: tuple[tuple[str, Callable[[], np.ndarray]], ...] = (
    ("astronaut", functools.partial(_skimage_photo, "astronaut")),
    ("chelsea", functools.partial(_skimage_photo, "chelsea")),
    ("coffee", functools.partial(_skimage_photo, "coffee")),
    ("rocket", functools.partial(_skimage_photo, "rocket")),
    ("motorcycle", functools.partial(_skimage_photo, "stereo_motorcycle")),
    ("china", functools.partial(_sklearn_photo, "china.jpg")),
    ("flower", functools.partial(_sklearn_photo, "flower.jpg")),
    ("grace_hopper", functools.partial(_matplotlib_photo, "grace_hopper.jpg")),
    ("camera", functools.partial(_skimage_photo, "camera")),
    ("coins", functools.partial(_skimage_photo, "coins")),
    ("moon", functools.partial(_skimage_photo, "moon")),
    ("clock", functools.partial(_skimage_photo, "clock")),
    ("horse", functools.partial(_skimage_photo, "horse")),
    ("page", functools.partial(_skimage_photo, "page")),
    ("text", functools.partial(_skimage_photo, "text")),
    ("brick", functools.partial(_skimage_photo, "brick")),
    ("grass", functools.partial(_skimage_photo, "grass")),
    ("gravel", functools.partial(_skimage_photo, "gravel")),
    ("hubble_deep_field", functools.partial(_skimage_photo, "hubble_deep_field")),
    ("immunohistochemistry", functools.partial(_skimage_photo, "immunohistochemistry")),
    ("retina", functools.partial(_skimage_photo, "retina")),
    ("cell", functools.partial(_skimage_photo, "cell")),
)

# Binary masks (horse) are drawn dark and light grey rather than black and white: a
# multiplicative gain leaves black black and a contrast stretch leaves a black-and-white
# image unchanged, so those degradations would be invisible on a pure 0/255 mask.
_BINARY_GREYS = (48, 208)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """Return `image` as an (H, W, 3) uint8 array."""
    image = np.asarray(image)
    if image.dtype == bool:
        dark, light = _BINARY_GREYS
        image = np.where(image, light, dark).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)


@functools.lru_cache(maxsize=1)
def _load_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """Load the bundled photos once per process, as read-only RGB uint8 arrays."""
    photos = []
    for name, load in _PHOTOS:
        try:
            image = _to_rgb(load())
        except (ImportError, OSError) as exc:
            # Another version of a package may have moved a photo to its download list.
            warnings.warn(f"skipping source photo {name!r}: {exc}", RuntimeWarning, stacklevel=3)
            continue
        image.setflags(write=False)
        photos.append((name, image))
    if not photos:
        raise RuntimeError(
            "none of the photos bundled with scikit-image, scikit-learn and "
            "matplotlib could be loaded."
        )
    return tuple(photos)


def _square(photo: np.ndarray, top: int, left: int, side: int, size: int) -> np.ndarray:
    """Crop the square `photo[top:top+side, left:left+side]` and resize it to `size` px."""
    crop = Image.fromarray(photo[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS))


@functools.lru_cache(maxsize=8)
def _centre_squares(size: int) -> tuple[np.ndarray, ...]:
    """Centre square of every photo at `size` px (cached: resizing dominates small calls)."""
    squares = []
    for _, photo in _load_photos():
        height, width = photo.shape[:2]
        side = min(height, width)
        square = _square(photo, (height - side) // 2, (width - side) // 2, side, size)
        square.setflags(write=False)
        squares.append(square)
    return tuple(squares)


def _load_sources(
    image_size: int, n_sources: int | None, seed: int
) -> tuple[list[str], list[np.ndarray]]:
    """Names and clean (S, S, 3) uint8 images of the sources a task degrades.

    The first sources are the centre squares of the bundled photos, in `_PHOTOS` order;
    sources beyond those are distinct random square crops (40-80 % of the shorter side),
    cycling through the photos, drawn from `seed`.
    """
    photos = _load_photos()
    squares = _centre_squares(image_size)
    n_sources = len(photos) if n_sources is None else n_sources
    names = [name for name, _ in photos[:n_sources]]
    images = list(squares[:n_sources])

    rng = np.random.default_rng([seed, 0])
    seen = set()
    while len(images) < n_sources:
        index = len(images) % len(photos)
        name, photo = photos[index]
        height, width = photo.shape[:2]
        short = min(height, width)
        side = int(rng.integers(int(0.4 * short), int(0.8 * short) + 1))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        if (index, top, left, side) in seen:
            continue
        seen.add((index, top, left, side))
        names.append(f"{name}[{top}:{top + side}, {left}:{left + side}]")
        images.append(_square(photo, top, left, side, image_size))
    return names, images


# --------------------------------------------------------------------------- degradations


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
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


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
    exposed = gains * linear / (1 + np.maximum(gains - 1, 0) * linear)  # (L, S, S, 3)
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
    stretched = factors * t / (1 + np.maximum(factors - 1, 0) * t)  # (L, S, S, 3)
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


# Saturated colours, white and black: one of them always stands out from the photo.
_PALETTE = np.array(
    [
        [255, 255, 255],
        [0, 0, 0],
        [230, 25, 25],
        [25, 200, 25],
        [30, 60, 230],
        [255, 225, 0],
        [230, 0, 230],
        [0, 220, 230],
    ],
    dtype=np.uint8,
)

# Smallest circle radius, in pixels, that still reads as a drawn object.
_MIN_RADIUS = 2.0


def _circle_radius(max_count: int, image_size: int) -> float:
    # The most crowded image covers about 15 % of its area with circles, leaving room to
    # place them apart at random; few circles are capped so they do not dominate.
    return min(0.12 * image_size, image_size * np.sqrt(0.15 / (np.pi * max_count)))


def _count_levels(n_levels: int, image_size: int) -> np.ndarray:
    radius = _circle_radius(n_levels, image_size)
    if radius < _MIN_RADIUS:
        raise ValueError(
            f"kind='count' cannot draw n_levels={n_levels} visible circles on "
            f"image_size={image_size} images (radius {radius:.1f} px < {_MIN_RADIUS} px): "
            "use fewer levels or larger images."
        )
    return np.arange(1.0, n_levels + 1)


def _place_circles(count: int, radius: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Centres (count, 2) of circles that lie inside the image and never touch.

    Random sequential placement: each circle takes the first random candidate far enough
    from those already placed; if the image jams, start over.
    """
    # At least 2 px of photo between circles keeps them separate 8-connected components.
    min_distance = 2 * radius + max(2.0, radius / 2)
    low, high = radius, size - 1 - radius
    for _ in range(100):
        centres = np.empty((0, 2))
        for _ in range(count):
            candidates = rng.uniform(low, high, size=(256, 2))
            distances = np.linalg.norm(candidates[:, None] - centres[None], axis=2)  # (256, k)
            free = np.all(distances >= min_distance, axis=1)
            if not free.any():
                break
            centres = np.vstack([centres, candidates[np.argmax(free)]])
        if len(centres) == count:
            return centres
    raise RuntimeError(f"could not place {count} separate circles of radius {radius:.1f} px.")


def _count(base: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = base.shape[0]
    # Same radius at every level of a task, so circle size says nothing about the count.
    radius = _circle_radius(int(counts.max()), size)
    palette = _PALETTE.astype(np.float32)
    out = []
    for count in counts:
        image = base.copy()
        for row, col in _place_circles(int(count), radius, size, rng):
            # Work in the circle's bounding box: many circles on a large image add up.
            box = (
                slice(int(row - radius), min(size, int(row + radius) + 2)),
                slice(int(col - radius), min(size, int(col + radius) + 2)),
            )
            rows, cols = np.ogrid[box]
            disk = (rows - row) ** 2 + (cols - col) ** 2 <= radius**2  # (box_h, box_w)
            # The palette colour whose nearest photo pixel under the circle is farthest:
            # the farthest from the mean colour could match half of a two-tone patch.
            under = base[box][disk].astype(np.float32)  # (P, 3)
            distances = np.linalg.norm(under[:, None] - palette[None], axis=2)  # (P, colours)
            image[box][disk] = _PALETTE[np.argmax(distances.min(axis=0))]
        out.append(image)
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


# --------------------------------------------------------------------------- public function


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _describe(
    kind: str, degradation: _Degradation, values: np.ndarray, names: list[str], image_size: int
) -> str:
    levels = ", ".join(f"{v:.4g}" for v in values)
    return f"""\
Synthetic ranking task: {kind}
{"=" * (24 + len(kind))}

Instruction: "{degradation.instruction}"
Target: {degradation.target}. A larger target means more of what the instruction asks for.
Levels ({len(values)}): {levels}
Images: {len(names) * len(values)} RGB uint8 images of {image_size}x{image_size} px,
{len(names)} sources x {len(values)} levels, ordered source by source.

Each source is a photo bundled with scikit-image, scikit-learn or matplotlib (no
download), centre-cropped to a square and resized to {image_size} px with a Lanczos filter;
sources beyond the bundled photos are distinct random square crops of them. Every source
appears once at every level. `groups` holds the source index, `source_names[group]` its
name, `levels` the level index.

Sources: {", ".join(names)}.

Evaluation: the photos differ before any degradation (one is darker, softer or busier
than another at every level), so a rank correlation pooled over all images is bounded
below 1 even for a perfect judge of the attribute as it appears in the image. Within one
source only the degradation changes: the rank correlation computed within each group and
averaged over groups is the fair measure. Report both.
"""


def make_ranking_task(
    kind: str,
    n_levels: int = 8,
    image_size: int = 224,
    random_state: int | np.random.RandomState | None = 0,
    *,
    n_sources: int | None = None,
) -> Bunch:
    """Make a ranking task by degrading bundled photos by known, graded amounts.

    Every source photo appears at every level of one degradation (blur, noise, JPEG
    compression, brightness, contrast, pixelation) or with a known number of circles drawn
    on it, so the target is exact and no download is needed.

    Parameters
    ----------
    kind : {"blur", "noise", "jpeg", "brightness", "contrast", "pixelate", "count"}
        What varies. The target grows with the attribute the instruction asks about:

        - ``"blur"``: Gaussian sigma in pixels, 0 then 0.5 to ``image_size / 32``
          (at least 1.5), geometrically;
        - ``"noise"``: standard deviation of Gaussian noise in grey levels, 0 to 40;
        - ``"jpeg"``: ``100 - quality``, quality from 95 down to 10 (geometric);
        - ``"brightness"``: exposure gain in linear light, 0.25 to 2 (-2 to +1 stop);
        - ``"contrast"``: contrast factor about the mean grey level, 0.25 to 2;
        - ``"pixelate"``: block size in pixels, 1 to ``image_size / 16`` (16 cells
          across; about 3 px on images under 48 px);
        - ``"count"``: number of filled circles drawn, 1 to ``n_levels``.

    n_levels : int, default=8
        Number of levels (at least 2); every source yields one image per level.
    image_size : int, default=224
        Side, in pixels, of the square images (at least 8). Blur, pixelation and circle
        sizes scale with it so the degradation stays visible on small images.
    random_state : int, RandomState instance or None, default=0
        Seeds the noise fields, the circle positions and the extra crops. The same value
        gives byte-identical images.
    n_sources : int or None, default=None
        Number of source photos (groups). None uses each bundled photo once (22 with the
        package versions this was written against); fewer takes the first ``n_sources``;
        more adds distinct random square crops of the photos.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With attributes

        images : list of ndarray of shape (image_size, image_size, 3), dtype uint8
            ``n_sources * n_levels`` images, source by source, level by level.
        target : ndarray of shape (n_images,), dtype float64
            The degradation amount (see ``kind``).
        groups : ndarray of shape (n_images,), dtype int64
            Index of the source photo; use it for ``GroupKFold`` and to score within
            sources.
        levels : ndarray of shape (n_images,), dtype int64
            Level index, 0 to ``n_levels - 1``.
        instruction : str
            The plain-language instruction for this task.
        source_names : list of str
            Name of each source, indexed by ``groups``.
        DESCR : str
            Description of the task, its sources and how to evaluate on it.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, an integer argument is out of range, or ``n_levels``
        asks for more distinct levels than ``kind`` can make at ``image_size``.

    See Also
    --------
    sklearn.model_selection.GroupKFold : Split so that no source is in train and test.

    Notes
    -----
    Sources differ before they are degraded, so rank correlation pooled over sources is
    bounded below 1 for every judge of the image itself; the rank correlation within each
    source (``groups``), averaged, is the fair measure.

    Examples
    --------
    >>> from skrank.datasets import make_ranking_task
    >>> task = make_ranking_task("blur", n_levels=4, image_size=64, n_sources=3)
    >>> len(task.images), task.images[0].shape, task.images[0].dtype
    (12, (64, 64, 3), dtype('uint8'))
    >>> task.instruction
    'Sort the images by how blurry they are.'
    >>> task.target[:4].round(3)
    array([0. , 0.5, 1. , 2. ])
    >>> task.groups
    array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    >>> task.source_names
    ['astronaut', 'chelsea', 'coffee']
    """
    if not isinstance(kind, str) or kind not in _DEGRADATIONS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    _check_int("n_levels", n_levels, 2)
    _check_int("image_size", image_size, 8)
    if n_sources is not None:
        _check_int("n_sources", n_sources, 1)

    degradation = _DEGRADATIONS[kind]
    values = degradation.levels(int(n_levels), int(image_size)).astype(np.float64)
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    names, sources = _load_sources(
        int(image_size), None if n_sources is None else int(n_sources), seed
    )

    images = []
    for group, source in enumerate(sources):
        # Seeded per source so that a source's images do not depend on how many precede it.
        rng = np.random.default_rng([seed, 1, group])
        images.extend(degradation.apply(source, values, rng))

    n_groups = len(sources)
    return Bunch(
        images=images,
        target=np.tile(values, n_groups),
        groups=np.repeat(np.arange(n_groups, dtype=np.int64), len(values)),
        levels=np.tile(np.arange(len(values), dtype=np.int64), n_groups),
        instruction=degradation.instruction,
        source_names=names,
        DESCR=_describe(kind, degradation, values, names, int(image_size)),
    )
