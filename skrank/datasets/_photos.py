"""Source images of the synthetic tasks: clean squares cut from bundled photos.

The photos ship with scikit-image, scikit-learn and matplotlib, so no download is needed.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image


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
        return np.asarray(Image.open(f, formats=["JPEG", "PNG"]).convert("RGB"))


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
) -> tuple[list[str], list[np.ndarray], list[int]]:
    """Names, clean (S, S, 3) uint8 images and photo indices of the sources a task degrades.

    The first sources are the centre squares of the bundled photos, in `_PHOTOS` order;
    sources beyond those are distinct random square crops (40-80 % of the shorter side),
    cycling through the photos, drawn from `seed`. The third list holds, per source, the
    index of the photo it was cut from (crops of one photo share content).
    """
    photos = _load_photos()
    squares = _centre_squares(image_size)
    n_sources = len(photos) if n_sources is None else n_sources
    names = [name for name, _ in photos[:n_sources]]
    images = list(squares[:n_sources])
    parents = list(range(len(images)))

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
        parents.append(index)
    return names, images, parents
