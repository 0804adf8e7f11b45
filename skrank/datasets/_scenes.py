"""Captioned scenes: the image–text pairs skrank-tiny's ``"synthetic"`` weights learn from.

Each scene is a background (a crop of one of the bundled photos, a flat colour or a
texture) with one or two groups of drawn shapes on it, and a caption that says what is
there: the shapes' kind, colour, size, where the group sits, how many there are, and
the background. For example ``"three small red circles on the left and some blue
triangles at the top, on a photo of a cat"``.

What the captions never say is what the tiny CLIP is later *evaluated* on as
ranking targets it was not taught: no word of image quality (blur, noise, JPEG,
brightness, contrast), though a share of the scenes are degraded at random, as photos
on the web are; and never how many triangles there are (:data:`HELD_OUT_KIND`: its
groups are "some triangles" whatever their number). So zero-shot ranking by those
targets should be near chance, and any skill on them has to come from training.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from skrank.datasets._photos import _load_photos

__all__ = ["HELD_OUT_KIND", "Scenes", "make_scenes", "degrade"]

KINDS = ("circle", "square", "triangle")
HELD_OUT_KIND = "triangle"  # captions never count it
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 190, 40),
    "blue": (35, 70, 230),
    "yellow": (250, 220, 20),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
    "purple": (150, 40, 200),
    "orange": (250, 140, 20),
}
SIZES = {"small": 0.055, "large": 0.11}  # radius as a share of the image side
PLACES = {  # where a group's shapes may sit: (rows, cols) as shares of the side
    "on the left": ((0.0, 1.0), (0.0, 0.5)),
    "on the right": ((0.0, 1.0), (0.5, 1.0)),
    "at the top": ((0.0, 0.5), (0.0, 1.0)),
    "at the bottom": ((0.5, 1.0), (0.0, 1.0)),
    "": ((0.0, 1.0), (0.0, 1.0)),
}
NUMBERS = ("no", "one", "two", "three", "four", "five", "six")
MAX_COUNT = 6
# What each bundled photo shows, in a caption's words; photos missing here are not used.
PHOTO_WORDS = {
    "astronaut": "an astronaut",
    "chelsea": "a cat",
    "coffee": "a cup of coffee",
    "rocket": "a rocket",
    "motorcycle": "a motorcycle",
    "china": "a temple",
    "flower": "a flower",
    "grace_hopper": "a woman in uniform",
    "camera": "a man with a camera",
    "coins": "coins",
    "moon": "the moon",
    "clock": "a clock",
    "horse": "a horse",
    "page": "a page of text",
    "brick": "a brick wall",
    "grass": "grass",
    "gravel": "gravel",
    "hubble_deep_field": "stars in the night sky",
    "retina": "a retina",
}
TEXTURES = ("striped", "checkered", "dotted")
DEGRADATIONS = ("blur", "jpeg", "noise", "brightness", "contrast")
_DEGRADED_SHARE = 0.4  # scenes degraded at random, never said in the caption


@dataclass(frozen=True)
class Scenes:
    """``n`` captioned scenes.

    Attributes
    ----------
    images : list of ndarray
        (S, S, 3) uint8 images.
    captions : list of str
    background : ndarray of str
        The background's words (``"a cat"``, ``"a green background"``, ...).
    counts : dict of str to ndarray of int
        Shapes of each kind in each scene (:data:`HELD_OUT_KIND`'s included).
    """

    images: list
    captions: list
    background: np.ndarray
    counts: dict


@functools.lru_cache(maxsize=4)
def _photos(size: int) -> tuple[tuple[str, np.ndarray], ...]:
    """The captioned photos, shrunk so that their shorter side is ``2 * size``."""
    out = []
    for name, photo in _load_photos():
        if name not in PHOTO_WORDS:
            continue
        h, w = photo.shape[:2]
        scale = 2 * size / min(h, w)
        small = Image.fromarray(photo).resize(
            (max(2 * size, round(w * scale)), max(2 * size, round(h * scale))),
            Image.Resampling.BILINEAR,
        )
        out.append((name, np.asarray(small)))
    return tuple(out)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A background and its words: a photo crop (most), a flat colour or a texture."""
    kind = rng.random()
    if kind < 0.6:
        photos = _photos(size)
        name, photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(rng.integers(size, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        image = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
        return image.copy(), f"a photo of {PHOTO_WORDS[name]}"
    names = list(COLOURS)
    colour = names[rng.integers(len(names))]
    image = np.empty((size, size, 3), np.uint8)
    image[:] = COLOURS[colour]
    if kind < 0.8:
        return image, f"{_article(colour)} {colour} background"
    other = names[(names.index(colour) + 1 + rng.integers(len(names) - 1)) % len(names)]
    texture = TEXTURES[rng.integers(len(TEXTURES))]
    period = int(rng.integers(4, 9)) * size // 64 or 2
    rows, cols = np.indices((size, size))
    if texture == "striped":
        mask = (cols // period) % 2 == 1
    elif texture == "checkered":
        mask = ((rows // period) + (cols // period)) % 2 == 1
    else:
        mask = ((rows % period) < period // 2) & ((cols % period) < period // 2)
    image[mask] = COLOURS[other]
    return image, f"a {texture} {colour} and {other} background"


def _shape_mask(kind: str, centre, radius: float, size: int) -> np.ndarray:
    rows, cols = np.indices((size, size), dtype=np.float32)
    dy, dx = rows - centre[0], cols - centre[1]
    if kind == "circle":
        return dx * dx + dy * dy <= radius * radius
    if kind == "square":
        half = 0.85 * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # An upward triangle: apex at -radius, base at +0.7 radius, half-width radius there.
    depth = dy + radius
    return (dy <= 0.7 * radius) & (depth >= 0) & (np.abs(dx) <= depth / 1.7)


def _place(rng, n, radius, box, taken, size) -> list | None:
    """``n`` centres inside ``box`` (shares of the side) clear of ``taken`` ones."""
    (r0, r1), (c0, c1) = box
    margin, far = radius / 2, size - 1 - radius
    low_r, high_r = max(radius, r0 * size + margin), min(far, r1 * size - margin)
    low_c, high_c = max(radius, c0 * size + margin), min(far, c1 * size - margin)
    placed = []
    for _ in range(n):
        for _try in range(60):
            c = (rng.uniform(low_r, high_r), rng.uniform(low_c, high_c))
            if all(np.hypot(c[0] - t[0], c[1] - t[1]) >= radius + t[2] + 2 for t in taken):
                placed.append(c)
                taken.append((c[0], c[1], radius))
                break
        else:
            return None
    return placed


def _group_words(count: int, size: str, colour: str, kind: str, place: str) -> str:
    noun = kind if count == 1 else kind + "s"
    number = "some" if kind == HELD_OUT_KIND else NUMBERS[count]
    if kind == HELD_OUT_KIND and count == 1:
        noun = kind + "s"  # "some triangles" whatever the number: never counted
    words = f"{number} {size} {colour} {noun}"
    return f"{words} {place}" if place else words


def _plan(rng: np.random.Generator) -> list[tuple]:
    """The groups of a scene: (kind, size word, colour, place, count) each."""
    n_groups = int(rng.integers(1, 3))
    plan = []
    for g, k in enumerate(rng.choice(len(KINDS), n_groups, replace=False)):
        size_word = list(SIZES)[rng.integers(len(SIZES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        place = list(PLACES)[rng.integers(len(PLACES))] if n_groups == 1 or g == 0 else ""
        plan.append((KINDS[k], size_word, colour, place, int(rng.integers(1, MAX_COUNT + 1))))
    return plan


def _recount(plan: list[tuple], rng: np.random.Generator) -> list[tuple] | None:
    """``plan`` with another count for its first counted group (None: none is counted)."""
    for g, (kind, size_word, colour, place, count) in enumerate(plan):
        if kind != HELD_OUT_KIND:
            other = 1 + (count - 1 + int(rng.integers(1, MAX_COUNT))) % MAX_COUNT
            return plan[:g] + [(kind, size_word, colour, place, other)] + plan[g + 1 :]
    return None


def _scene(rng: np.random.Generator, size: int, twin_rng: np.random.Generator | None = None):
    """A scene drawn from ``rng``; with ``twin_rng``, its twin: the same background and
    groups, one count changed (None when the scene counts nothing)."""
    image, background = _background(rng, size)
    plan = _plan(rng)
    if twin_rng is not None:
        plan = _recount(plan, twin_rng)
        if plan is None:
            return None
    counts = dict.fromkeys(KINDS, 0)
    groups, taken = [], []
    for kind, size_word, colour, place, count in plan:
        radius = SIZES[size_word] * size
        centres = None
        while centres is None and count > 0:
            centres = _place(rng, count, radius, PLACES[place], list(taken), size)
            if centres is None:
                count -= 1  # the region is full: fewer shapes, and the caption says so
        if not count:
            continue
        taken += [(c[0], c[1], radius) for c in centres]
        for c in centres:
            image[_shape_mask(kind, c, radius, size)] = COLOURS[colour]
        counts[kind] += count
        groups.append(_group_words(count, size_word, colour, kind, place))
    caption = " and ".join(groups) + f", on {background}"
    return image, caption, background, counts


def degrade(image: np.ndarray, kind: str, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` degraded by ``kind`` at ``amount`` in [0, 1] (0 leaves it as it is).

    blur: Gaussian sigma up to 2.5 px at 64 px; jpeg: quality 95 down to 8; noise:
    standard deviation up to 30 grey levels; brightness and contrast: a factor from 0.4
    (amount 0) to 1.6 (amount 1), 1 at amount 0.5.
    """
    x = image.astype(np.float32)
    size = image.shape[0]
    if kind == "blur":
        sigma = 2.5 * amount * size / 64
        out = ndimage.gaussian_filter(x, (sigma, sigma, 0)) if sigma > 0 else x
    elif kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=int(round(95 - 87 * amount)))
        out = np.asarray(Image.open(buf).convert("RGB"), np.float32)
    elif kind == "noise":
        out = x + rng.normal(0, 30 * amount, x.shape)
    elif kind == "brightness":
        out = x * (0.4 + 1.2 * amount)
    elif kind == "contrast":
        mean = x.mean()
        out = mean + (x - mean) * (0.4 + 1.2 * amount)
    else:
        raise ValueError(f"unknown degradation {kind!r}; known: {DEGRADATIONS}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_scenes(
    n: int, image_size: int = 64, seed: int = 0, degraded: bool = True, twins: bool = False
) -> Scenes:
    """``n`` captioned scenes drawn from ``seed`` (the same seed, the same scenes).

    With ``degraded``, a share of them (40 %) is degraded by one of
    :data:`DEGRADATIONS` at a random amount, which the caption does not say. With
    ``twins``, scenes come in pairs (rows 2k and 2k + 1) that share their background
    and groups but differ in one stated count: in a contrastive batch, the twin is
    the caption that only counting tells apart.
    """
    rng = np.random.default_rng([seed, 31])
    images, captions, backgrounds = [], [], []
    counts = {k: np.zeros(n, int) for k in KINDS}
    last = 0  # the seed of the pair's first scene
    for i in range(n):
        state = int(rng.integers(2**63))
        drawn = None
        if twins and i % 2 == 1:
            drawn = _scene(np.random.default_rng(last), image_size, rng)
        if drawn is None:  # a first of a pair, or a scene with no count to change
            drawn = _scene(np.random.default_rng(state), image_size)
            last = state
        image, caption, background, c = drawn
        if degraded and rng.random() < _DEGRADED_SHARE:
            kind = DEGRADATIONS[rng.integers(len(DEGRADATIONS))]
            image = degrade(image, kind, float(rng.random()), rng)
        images.append(image)
        captions.append(caption)
        backgrounds.append(background)
        for k in KINDS:
            counts[k][i] = c[k]
    return Scenes(images, captions, np.asarray(backgrounds), counts)
