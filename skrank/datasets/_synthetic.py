"""Synthetic ranking tasks: bundled photos degraded by a known, graded amount."""

from __future__ import annotations

import numbers
import os

import numpy as np
from sklearn.utils import Bunch, check_random_state

from skrank.datasets._degradations import _DEGRADATIONS, KINDS, _Degradation
from skrank.datasets._photos import _PHOTOS, _load_sources

__all__ = ["KINDS", "make_ranking_task"]


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _available_bytes() -> int | None:
    """Memory the system can still give (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _check_fits(n_images: int, image_size: int) -> None:
    """Refuse, before any pixel is made, a task larger than the memory left for it."""
    needed = n_images * image_size * image_size * 3
    available = _available_bytes()
    if available is not None and needed > available:
        raise ValueError(
            f"the task would hold {n_images} images of {image_size}x{image_size} pixels "
            f"({needed / 2**30:.3g} GiB), more than the {available / 2**30:.3g} GiB of "
            "memory available; ask for fewer n_sources or n_levels, or a smaller image_size."
        )


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
name, `levels` the level index, `photos` the bundled photo a source was cut from.

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
        more adds distinct random square crops of the photos (``photos`` tells which), so
        a few thousand images for learning curves are ``n_sources=500``. A task that
        would not fit in the memory left (``n_sources * n_levels`` images of
        ``image_size**2 * 3`` bytes) is refused with a ``ValueError`` before any is made.

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
        photos : ndarray of shape (n_images,), dtype int64
            Index of the bundled photo the source was cut from. Sources beyond the
            bundled photos are crops of them, so two sources can share content: split
            by ``photos`` (``GroupKFold(...).split(..., groups=task.photos)``) when no
            photo may be seen in training and in testing.
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
    _check_fits(int(n_levels) * (len(_PHOTOS) if n_sources is None else int(n_sources)), image_size)

    degradation = _DEGRADATIONS[kind]
    values = degradation.levels(int(n_levels), int(image_size)).astype(np.float64)
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    names, sources, parents = _load_sources(
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
        photos=np.repeat(np.asarray(parents, dtype=np.int64), len(values)),
        instruction=degradation.instruction,
        source_names=names,
        DESCR=_describe(kind, degradation, values, names, int(image_size)),
    )
