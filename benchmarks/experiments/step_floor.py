"""Does the small-data preset's 300-step floor earn its cost on tiny training sets?

Asked: with ``max_epochs=None`` a fit trains 30 epochs raised to the preset's floor of
optimiser steps (300 for ``small-data``): on 40 images at batch 64 that is 300
epochs of one step, ten times the 30 epochs, and a newcomer measured the same
held-out Spearman for both (0.988) at twenty times the time. Is the floor paying
anywhere on little data, and would a lower one (100 steps) keep its gain?

Each cell fits ``CLIPRanker(backbone="skrank-tiny")`` (random towers: the regime
the small-data preset is for, and the one its floor was measured in) with the
preset's settings, changing only ``max_epochs``: 30 epochs (no floor), the epochs
that reach 100 steps, and those that reach 300 (today's ``max_epochs=None``).
Tasks are made by degrading bundled photos (``make_ranking_task``); training
photos and held-out photos differ; the score is Spearman within each held-out
photo, averaged.

    python -m benchmarks.experiments.step_floor

The conclusion is in ``benchmarks/results/README.md`` and ``docs/model.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from benchmarks._common import RESULTS, git_commit, write_json

FLOORS = (0, 100, 300)  # optimiser steps; 0: 30 epochs, no floor


def split(task, n_train_photos: int, seed: int):
    """Rows of ``n_train_photos`` random source photos, and the rows of all the others."""
    groups = np.asarray(task.groups)
    photos = np.unique(groups)
    chosen = np.random.default_rng(seed).choice(photos, n_train_photos, replace=False)
    train = np.flatnonzero(np.isin(groups, chosen))
    return train, np.flatnonzero(~np.isin(groups, chosen))


def fit_cell(task, train, test, floor: int, seed: int, batch_size: int) -> dict:
    from skrank import CLIPRanker
    from skrank.metrics import spearman_score

    steps_per_epoch = math.ceil(len(train) / batch_size)
    epochs = max(30, math.ceil(floor / steps_per_epoch))
    ranker = CLIPRanker(
        task.instruction,
        backbone="skrank-tiny",
        pretrained=None,
        max_epochs=epochs,
        batch_size=batch_size,
        device="cpu",
        random_state=seed,
        verbose=0,
    )
    images = [task.images[i] for i in train]
    t0 = time.perf_counter()
    ranker.fit(images, task.target[train])
    seconds = time.perf_counter() - t0
    pred = ranker.predict([task.images[i] for i in test])
    groups = np.asarray(task.groups)[test]
    return {
        "floor": floor,
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "fit_seconds": round(seconds, 2),
        "srcc_within": float(spearman_score(task.target[test], pred, groups=groups)),
    }


def main(argv=None) -> None:
    import warnings

    from skrank.datasets import make_ranking_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=["blur", "jpeg", "brightness", "count"])
    p.add_argument("--photos", nargs="+", type=int, default=[5, 12])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    commit = git_commit()  # a dirty tree is named by the hash of its diff
    warnings.filterwarnings("ignore", message=".*random .*weights")
    rows = []
    for kind in args.kinds:
        task = make_ranking_task(kind, image_size=64, random_state=0)
        for n_photos in args.photos:
            for seed in args.seeds:
                train, test = split(task, n_photos, seed)
                for floor in FLOORS:
                    row = fit_cell(task, train, test, floor, seed, args.batch_size)
                    row.update(kind=kind, n_train=len(train), seed=seed)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = {}
    for n_photos in args.photos:
        for floor in FLOORS:
            cells = [r for r in rows if r["floor"] == floor and r["n_train"] == 8 * n_photos]
            summary[f"n={8 * n_photos} floor={floor}"] = {
                "srcc_within_mean": round(float(np.mean([r["srcc_within"] for r in cells])), 4),
                "fit_seconds_mean": round(float(np.mean([r["fit_seconds"] for r in cells])), 2),
            }
    out = {
        "commit": commit,
        "backbone": "skrank-tiny (random)",
        "config": "preset small-data (lr auto = 1e-3), batch 64, max_epochs from the floor",
        "kinds": args.kinds,
        "rows": rows,
        "summary": summary,
    }
    write_json(RESULTS / "experiment-step-floor.json", out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
