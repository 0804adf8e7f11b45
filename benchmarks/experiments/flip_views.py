"""Does the mirrored view of ``augment=True`` earn its second encoding pass?

Asked: ``CLIPRanker(augment=True)`` (the default) encodes every training image twice
through the frozen image tower, as it is and mirrored, and training draws one of
the two views per row per step. The mirror doubles a fit's encoding cost. Does it
rank held-out images better than ``augment=False``, on the pretrained tiny CLIP
(``backbone="skrank-tiny", pretrained="synthetic"``), the closest we have to a
pretrained CLIP?
Found: no difference the folds can tell from a change of seed. ``flip - plain``,
mean over 3 folds: triangle count +0.010, blur +0.005, jpeg -0.011 (E1, pooled;
500 training images), photo blur +0.059 (+0.000, +0.000, +0.177), photo brightness
-0.014 (within photo; ~117 training images). Over the 15 folds: mean +0.010, std
0.061, 6 folds for flip, 7 for plain, 2 ties; ``flip - flip-reseed`` (the same
setting, another seed): mean -0.016, std 0.056. Every per-target mean difference is
smaller than the fold-to-fold std of the scores it compares. On skrank-tiny the
mirror's encoding costs ~0.15 s of a ~34 s fit (encoding and set-up 0.40 s against
0.25 s; the rest is the 300 steps), so here it is cheap either way; on a large
tower the second pass would cost a fit's encoding again (not measured here).
Changed: nothing (the default stays ``augment=True``); docs/model.md states the
measurement next to ``augment=True``.

Each fit is ``CLIPRanker(instruction, backbone="skrank-tiny", pretrained="synthetic",
preset="small-data", device="cpu", random_state=fold, augment=...)`` (30 epochs
raised to the preset's 300 steps, no ``groups``, so no early stopping), on the
same training and test rows for every setting:

- ``flip``: ``augment=True``; ``plain``: ``augment=False``;
- ``flip-reseed`` (the noise control, ``--no-control`` drops it): ``augment=True``
  with ``random_state = fold + 1000``. The same ``random_state`` does not give the
  two settings the same batches: ``augment=True`` draws its flips from the
  generator that also draws the batches, so from the second step on they differ.
  ``flip`` minus ``flip-reseed`` is what a change of batches and initialisation
  alone moves the score by, the yardstick for ``flip`` minus ``plain``.

Targets, 3 folds each (disjoint test blocks):

- ``e1/<target>``: E1's targets (``benchmarks.e1_proxy.target_data``: ``triangle
  count``, ``blur``, ``jpeg``, 64 px scenes, each image a scene of its own) and its
  folds (``fold_rows``): a pool of 3 x 300 test images + 500, fold k tests on its
  block of 300 and trains on 500 of the other images; Spearman pooled over the block.
- ``photo/<kind>``: ``make_ranking_task(kind)`` (the 22 bundled photos x 8 levels,
  224 px), 3 folds by source photo (``GroupKFold``, shuffled, seed 0; about 117
  training and 59 test images); Spearman within each held-out photo, averaged.

Per fit: the score, the fit's seconds, its training epochs' seconds (the rest is
encoding and set-up) and the views it encoded (``cache_info_["images_encoded"]``).
Per target: mean ± std (ddof=1) over folds per setting, and the per-fold paired
difference ``flip - plain`` (and ``flip - flip-reseed``), its mean and the folds it
favours each way.

    OMP_NUM_THREADS=1 python -m benchmarks.experiments.flip_views

Results: ``benchmarks/results/experiment-flip-views.json``; the conclusion is in
``benchmarks/results/README.md`` and ``docs/model.md`` (next to ``augment=True``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from typing import NamedTuple

import numpy as np

from benchmarks._common import RESULTS, git_commit, splits, write_json

E1_TARGETS = ("triangle count", "blur", "jpeg")
PHOTO_KINDS = ("blur", "brightness")
# setting -> (augment, random_state offset added to the fold)
SETTINGS = {"flip": (True, 0), "plain": (False, 0), "flip-reseed": (True, 1000)}
RESEED = "flip-reseed"


class Task(NamedTuple):
    name: str  # "e1/<target>" or "photo/<kind>"
    instruction: str
    images: list
    y: np.ndarray
    folds: list  # (fold, train rows, test rows, test rows' photos or None)


def e1_task(target: str, folds: int = 3, n_train: int = 500, n_test: int = 300, image_size=64):
    """E1's ``target`` on its own folds: pooled over each test block."""
    from benchmarks import e1_proxy as e1

    n_pool = e1.pool_size([n_train], folds, n_test)
    images, y = e1.target_data(target, n_pool, image_size)
    split = [
        (k, train[n_train], test, None)
        for k, train, test in e1.fold_rows(n_pool, folds, [n_train], n_test)
    ]
    return Task(f"e1/{target}", e1.INSTRUCTIONS[target], images, y, split)


def photo_task(kind: str, folds: int = 3, image_size: int = 224, n_sources=None):
    """``make_ranking_task(kind)`` in folds by source photo: scored within photo."""
    from skrank.datasets import make_ranking_task

    task = make_ranking_task(kind, image_size=image_size, random_state=0, n_sources=n_sources)
    groups = np.asarray(task.groups)
    split = [
        (k, np.sort(train), np.sort(test), groups[np.sort(test)])
        for k, (train, test) in enumerate(splits(groups, None, folds))
    ]
    return Task(f"photo/{kind}", task.instruction, task.images, task.target, split)


def digest(rows) -> str:
    """A short name of a set of row indices (the same rows, the same name)."""
    return hashlib.sha256(np.sort(np.asarray(rows, np.int64)).tobytes()).hexdigest()[:12]


def fit_one(task: Task, fold, train, test, test_groups, setting: str, max_epochs=None) -> dict:
    """One fit of ``setting`` on ``train``, scored on ``test``."""
    from skrank import CLIPRanker
    from skrank.metrics import spearman_score

    augment, offset = SETTINGS[setting]
    ranker = CLIPRanker(
        task.instruction,
        backbone="skrank-tiny",
        pretrained="synthetic",
        preset="small-data",
        device="cpu",
        random_state=fold + offset,
        augment=augment,
        max_epochs=max_epochs,
        verbose=0,
    )
    t0 = time.perf_counter()
    ranker.fit([task.images[i] for i in train], task.y[train])
    seconds = time.perf_counter() - t0
    pred = ranker.predict([task.images[i] for i in test])
    train_seconds = float(sum(h["seconds"] for h in ranker.history_))
    return {
        "task": task.name,
        "fold": int(fold),
        "setting": setting,
        "augment": augment,
        "random_state": int(fold + offset),
        "n_train": len(train),
        "n_test": len(test),
        "score": "pooled" if test_groups is None else "within photo",
        "srcc": float(spearman_score(task.y[test], pred, groups=test_groups)),
        "fit_seconds": round(seconds, 2),
        "train_seconds": round(train_seconds, 2),  # the epochs; the rest encodes
        "views_encoded": int(ranker.cache_info_["images_encoded"]),
        "epochs": int(ranker.n_iter_),
        "train_digest": digest(train),
        "test_digest": digest(test),
    }


def run_task(task: Task, settings=tuple(SETTINGS), max_epochs=None, say=print) -> list[dict]:
    """Every setting on every fold of ``task``: a row per fit."""
    rows = []
    for fold, train, test, test_groups in task.folds:
        for setting in settings:
            row = fit_one(task, fold, train, test, test_groups, setting, max_epochs)
            say(
                f"  {task.name:20s} fold {fold} {setting:11s} SRCC {row['srcc']:.3f} "
                f"({row['fit_seconds']:.1f} s, {row['views_encoded']} views)"
            )
            rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Per task: each setting's mean ± std (ddof=1) over folds and mean fit seconds; the
    paired differences ``flip - plain`` and ``flip - flip-reseed`` per fold."""
    out: dict = {}
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        by = {(r["setting"], r["fold"]): r for r in mine}
        folds = sorted({r["fold"] for r in mine})
        cell: dict = {"score": mine[0]["score"], "folds": len(folds), "settings": {}}
        for setting in dict.fromkeys(r["setting"] for r in mine):
            scores = [by[setting, k]["srcc"] for k in folds]
            cell["settings"][setting] = {
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
                "per_fold": scores,
                "fit_seconds_mean": float(np.mean([by[setting, k]["fit_seconds"] for k in folds])),
                "train_seconds_mean": float(
                    np.mean([by[setting, k]["train_seconds"] for k in folds])
                ),
            }
        for other in ("plain", RESEED):
            if other not in cell["settings"]:
                continue
            diffs = [by["flip", k]["srcc"] - by[other, k]["srcc"] for k in folds]
            cell[f"flip_minus_{other}"] = {
                "per_fold": diffs,
                "mean": float(np.mean(diffs)),
                "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
                "favours_flip": int(sum(d > 0 for d in diffs)),
                "favours_other": int(sum(d < 0 for d in diffs)),
                "ties": int(sum(d == 0 for d in diffs)),
            }
        out[name] = cell
    return out


def table(summary: dict) -> str:
    """The summary as a markdown table."""

    def ms(c):
        return f"{c['mean']:.3f} ± {c['std']:.3f}" if c["std"] is not None else f"{c['mean']:.3f}"

    def diff(d):
        per = " ".join(f"{x:+.3f}" for x in d["per_fold"])
        return f"{d['mean']:+.3f} ({per}; {d['favours_flip']}:{d['favours_other']})"

    has_control = any(RESEED in c["settings"] for c in summary.values())
    head = ["task", "score", "flip", "plain", "flip − plain (per fold; folds flip:plain)"]
    if has_control:
        head += ["flip-reseed", "flip − flip-reseed (per fold)"]
    head += ["fit s flip / plain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, c in summary.items():
        s = c["settings"]
        cells = [name, c["score"], ms(s["flip"]), ms(s["plain"]), diff(c["flip_minus_plain"])]
        if has_control:
            control = c.get(f"flip_minus_{RESEED}")
            cells += [ms(s[RESEED]), diff(control)] if control else ["", ""]
        cells.append(f"{s['flip']['fit_seconds_mean']:.1f} / {s['plain']['fit_seconds_mean']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--e1-targets", nargs="*", default=list(E1_TARGETS))
    p.add_argument("--photo-kinds", nargs="*", default=list(PHOTO_KINDS))
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--n-train", type=int, default=500, help="E1 training images per fold")
    p.add_argument("--n-test", type=int, default=300, help="E1 test images per fold")
    p.add_argument("--no-control", action="store_true", help=f"skip the {RESEED} fits")
    p.add_argument("--max-epochs", type=int, default=None, help="a smoke check (default: None)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # fit times on one thread, as reported
    warnings.filterwarnings("ignore", message="preset='small-data' with pretrained weights")
    settings = [s for s in SETTINGS if not (args.no_control and s == RESEED)]
    commit = git_commit()
    t0 = time.perf_counter()
    tasks = [lambda t=t: e1_task(t, args.folds, args.n_train, args.n_test) for t in args.e1_targets]
    tasks += [lambda k=k: photo_task(k, args.folds) for k in args.photo_kinds]
    rows: list[dict] = []
    for make in tasks:
        rows += run_task(make(), settings, args.max_epochs, say=lambda s: print(s, flush=True))
    summary = summarise(rows)
    out = {
        "commit": commit,
        "backbone": "skrank-tiny",
        "pretrained": "synthetic",
        "config": (
            "CLIPRanker(instruction, backbone='skrank-tiny', pretrained='synthetic', "
            "preset='small-data', device='cpu', random_state=fold (+1000 for flip-reseed), "
            "augment=...), max_epochs=None (30 epochs raised to 300 steps), no groups, "
            "1 torch thread"
        ),
        "e1": {
            "targets": args.e1_targets,
            "n_train": args.n_train,
            "n_test": args.n_test,
            "image_size": 64,
            "score": "Spearman pooled over the test block",
        },
        "photo": {
            "kinds": args.photo_kinds,
            "image_size": 224,
            "folds": "GroupKFold by photo",
            "score": "Spearman within held-out photo, averaged",
        },
        "folds": args.folds,
        "max_epochs": args.max_epochs,
        "settings": {
            s: {"augment": SETTINGS[s][0], "seed_offset": SETTINGS[s][1]} for s in settings
        },
        "std": "over folds, ddof=1",
        "total_seconds": round(time.perf_counter() - t0, 1),
        "summary": summary,
        "rows": rows,
    }
    write_json(RESULTS / "experiment-flip-views.json", out)
    print("\n" + table(summary))
    print(json.dumps({"total_seconds": out["total_seconds"], "commit": commit}))


if __name__ == "__main__":
    main()
