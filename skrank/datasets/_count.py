"""The ``count`` task: a known number of filled circles drawn on each source."""

from __future__ import annotations

import numpy as np

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
