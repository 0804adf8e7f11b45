"""One-off experiment: global colour and tone changes against a ridge on raw pixels.

Asked: what does a ridge on 16 x 16 pixels rank nearly perfectly and the small-data preset not?
Found: place: a square's position 0.06 / 0.05 against the ridge's 1.00 / 0.97 (folds 0 / 1).
Changed: image_positions="sincos" (vignette to 1.00 / 0.99; position still lost): an option only.

Question: is there a synthetic kind of the learning curves' sort, outside the seven
of ``make_ranking_task``, that a ridge on the 16 x 16 downsampled pixels ranks
nearly perfectly within each photo while ``CLIPRanker`` on ``skrank-tiny`` (the
small-data preset, the settings a random tower gets) does not? Such a kind is a
change of the whole image along one direction of pixel space (a colour cast, a
haze), which a linear readout of the pixels sees directly, or a change *where* in
the image (a vignette, a ramp, an object's position), which the pixels' positions
give a ridge and which the adapter's head, pooling over tokens, sees only through
what the tower's position embedding left in them.

Each kind grades the learning curves' sources (the bundled photos and crops of
them, 8 levels each); folds split by photo (``learning_curves.fold_rows``), 200
training images, within-photo Spearman on the test photos. Rows: CLIPRanker with
the small-data preset, the same with ``probe="ridge"`` (groups given, so the probe's
weight is chosen on held-out photos), and RidgeCV on the 16 x 16 x 3 pixels.

Run from the repository root:
``OMP_NUM_THREADS=1 python -m benchmarks.experiments.pixel_ridge [--kinds ...]``
(writes ``benchmarks/results/experiment-pixel-ridge.json``). The conclusion is in
``docs/model.md`` ("Where in the image"): with ``image_positions="sincos"``
(``results/experiment-pixel-ridge-positions.json``, a prototype commit) vignette
went from 0.83 / 0.59 to 1.00 / 0.99 and ramp from 0.77 / 0.83 to 0.89 / 0.85, but
on the demo's blur task (200 steps) within-photo Spearman fell from 0.99 to 0.42,
so no preset sets it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from PIL import Image
from sklearn.linear_model import RidgeCV
from sklearn.utils import Bunch

from benchmarks._common import RESULTS, git_commit, metrics, write_json
from benchmarks.learning_curves import N_LEVELS, fold_rows
from skrank import CLIPRanker
from skrank.datasets._photos import _load_sources

STRENGTH = np.linspace(0.0, 1.0, N_LEVELS)


def _tint(x: np.ndarray, s: float) -> np.ndarray:
    """A warm colour cast: red up, blue down, by up to 60 of 255."""
    return x + s * np.array([60.0, 0.0, -60.0])


def _desaturate(x: np.ndarray, s: float) -> np.ndarray:
    """Towards the pixel's grey (the mean of its channels), fully grey at s = 1."""
    grey = x.mean(axis=2, keepdims=True)
    return x + s * (grey - x)


def _haze(x: np.ndarray, s: float) -> np.ndarray:
    """Blended with white, up to 60 %."""
    return x + 0.6 * s * (255.0 - x)


def _vignette(x: np.ndarray, s: float) -> np.ndarray:
    """Darkened towards the corners, by up to 80 % there."""
    n = x.shape[0]
    r = np.hypot(*np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))) / np.sqrt(2)
    return x * (1.0 - 0.8 * s * r**2)[:, :, None]


def _ramp(x: np.ndarray, s: float) -> np.ndarray:
    """Darkened from left to right, by up to 80 % at the right edge."""
    n = x.shape[1]
    return x * (1.0 - 0.8 * s * np.linspace(0, 1, n))[None, :, None]


def _position(x: np.ndarray, s: float) -> np.ndarray:
    """A white square of a quarter of the side, from the left edge (s = 0) to the right."""
    n = x.shape[0]
    side = n // 4
    left = int(round(s * (n - side)))
    top = (n - side) // 2
    out = x.copy()
    out[top : top + side, left : left + side] = 255.0
    return out


KINDS = {
    "tint": _tint,
    "desaturate": _desaturate,
    "haze": _haze,
    "vignette": _vignette,
    "ramp": _ramp,
    "position": _position,
}
N_SOURCES = 96  # as the learning curves' 200-image task (sizes 50 and 200, 2 folds)


def make_task(kind: str, image_size: int) -> Bunch:
    """``kind`` applied at 8 strengths to each source, as ``make_ranking_task`` lays out."""
    names, sources, parents = _load_sources(image_size, N_SOURCES, seed=0)
    images = [
        np.clip(KINDS[kind](src.astype(np.float64), s), 0, 255).round().astype(np.uint8)
        for src in sources
        for s in STRENGTH
    ]
    n = len(sources)
    return Bunch(
        images=images,
        target=np.tile(STRENGTH, n),
        groups=np.repeat(np.arange(n), N_LEVELS),
        photos=np.repeat(np.asarray(parents), N_LEVELS),
        instruction=f"Sort the images by {kind}.",
    )


def pixels(images: list[np.ndarray]) -> np.ndarray:
    """Each image downsampled to 16 x 16 (box filter), flattened, in [0, 1]."""
    small = [np.asarray(Image.fromarray(im).resize((16, 16), Image.BOX)) for im in images]
    return np.stack(small).reshape(len(images), -1) / 255.0


def within(y, pred, groups) -> float:
    """Spearman within each source's 8 images, averaged: the learning curves' metric."""
    return float(metrics(y, pred, groups, synthetic=True)["SRCC_within"])


def run(kind: str, fold: int, n_train: int) -> list[dict]:
    task = make_task(kind, 64)
    folds = list(fold_rows(task, 2, [50, n_train], max_test=40))
    _, train_sets, test = folds[fold]
    train = train_sets[n_train]
    X = task.images
    y, g = task.target, task.groups
    Xtr, Xte = [X[i] for i in train], [X[i] for i in test]
    rows = []
    for method, extra in (("small-data", {}), ("small-data,probe=ridge", {"probe": "ridge"})):
        t0 = time.perf_counter()
        r = CLIPRanker(
            task.instruction, backbone="skrank-tiny", device="cpu", random_state=0, **extra
        )
        r.fit(Xtr, y[train], groups=g[train])
        rows.append(_row(kind, fold, n_train, method, y[test], r.predict(Xte), g[test], t0))
    t0 = time.perf_counter()
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(pixels(Xtr), y[train])
    pred = ridge.predict(pixels(Xte))
    rows.append(_row(kind, fold, n_train, "ridge-16px", y[test], pred, g[test], t0))
    return rows


def _row(kind, fold, n_train, method, y, pred, groups, t0) -> dict:
    row = {
        "kind": kind,
        "fold": fold,
        "n_train": n_train,
        "method": method,
        "SRCC_within": within(y, pred, groups),
        "seconds": time.perf_counter() - t0,
    }
    print(f"{kind:10s} fold {fold} {method:24s} within {row['SRCC_within']:.3f}", flush=True)
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--folds", nargs="*", type=int, default=[0, 1])
    args = p.parse_args(argv)
    commit = git_commit()
    out = RESULTS / "experiment-pixel-ridge.json"
    rows = json.loads(out.read_text()) if out.exists() else []
    for kind in args.kinds:
        for fold in args.folds:
            for row in run(kind, fold, 200):
                key = (kind, fold, row["method"])
                rows = [r for r in rows if (r["kind"], r["fold"], r["method"]) != key]
                rows.append({**row, "commit": commit})
                write_json(out, rows, indent=1)


if __name__ == "__main__":
    main()
