"""E1: learning curves on the pretrained tiny CLIP proxy, on targets its captions never taught.

``skrank-tiny``'s ``"synthetic"`` weights are a small CLIP trained contrastively on
captioned scenes (``skrank.datasets._scenes``): a stand-in for a pretrained CLIP
that runs on a CPU. Every target here is one those captions never state, so any
skill on it comes from the ranker's training, not from the text tower having been
told (as for a real CLIP and a property nobody writes captions about):

- ``triangle count``: scenes that hold triangles, ranked by how many
  (``counts["triangle"]``; captions say "some triangles" whatever their number):
  a *semantic* target the image tower has to count for;
- ``blur`` and ``jpeg``: each image a scene of its own, degraded at a random amount
  in [0, 1] (the target): *low-level* targets (the pretraining saw such
  degradations at random but never a word of them).

The scenes are drawn with seeds from ``SEED`` on (the pretraining drew seed 0), clean
(``degraded=False``) before the target's degradation. Every image is its own scene,
so a split by scene is a split by image: per target, ``--folds`` disjoint test
blocks of ``--test`` images, and for fold k the training part is every other image
of the pool; the training sets of ``--sizes`` are nested (the first n of one shuffled
order of that part), and every method sees the same rows. The metric is Spearman's
correlation over the whole test block (*pooled* across content, not within a
photo), mean ± std over folds.

Methods (rows; CLIPRanker's on ``backbone="skrank-tiny"`` with ``--pretrained``, on
the CPU, ``random_state`` = the fold, no ``groups`` (so no early stopping)):

- ``small-data``: ``CLIPRanker(preset="small-data")`` (1 fusion layer, no post
  layers, the mean-and-spread head, ``reg_weight=1``, ``lr="auto"`` by width, at
  least 300 steps);
- ``paper``: the paper's model at its 30 epochs (``_common.REFERENCE``, with
  ``preset="paper"``: 2 + 2 layers, the mean head, ``lr=5e-5``, ``reg_weight=0.2``,
  no step floor);
- ``paper@matched``: the same model and rate with as many epochs as make about
  3,800 optimiser steps, the paper's budget on KonIQ-10k (``learning_curves``'
  ``paper@3800-steps``);
- ``paper-preset``: ``CLIPRanker(preset="paper")`` as a user with pretrained weights
  gets it: the paper's model and rate, 30 epochs raised to at least 1,000 optimiser
  steps (no groups, so no early stopping);
- ``deep@small-data-lr``: the reference's depth (2 + 2) with every other setting
  the small-data preset's, its rate included (``learning_curves``'
  ``deep@shallow-lr``, the small-data preset named since pretrained weights make
  ``"auto"`` the paper's);
- ``ridge-tokens``: ``RidgeCV`` on the mean and standard deviation over tokens of
  the frozen tokens the adapter reads; ``ridge-pooled``: on CLIP's pooled image
  embedding;
- ``zero-shot``: ``CLIPZeroShotRanker`` with the target's instruction;
  ``zero-shot-prompts``: with a (positive, negative) prompt pair (``PROMPTS``).
  Nothing is trained: the same test score is written at every size;
- ``multi-instruction``: ONE ``CLIPRanker(preset="small-data")`` per fold and size,
  fitted on the union of the targets' training sets (each row carrying its target's
  instruction in an ``instruction`` column, ``docs/inputs.md``) and scored per
  target: what sharing one adapter across targets costs or gains against the
  ``small-data`` rows.

Usage (from the repository root; each process on one thread, ``OMP_NUM_THREADS=1``)::

    python -m benchmarks.e1_proxy                    # everything: ~18 h on one thread
    # the same on two cores (~10 h): paper@matched apart, then the two gathered
    python -m benchmarks.e1_proxy --methods paper@matched --tag synthetic-matched
    python -m benchmarks.e1_proxy --methods small-data paper deep@small-data-lr \
        ridge-tokens ridge-pooled zero-shot zero-shot-prompts multi-instruction \
        --tag synthetic-rest
    python -m benchmarks.e1_proxy --render --tag synthetic \
        --merge-from synthetic-matched synthetic-rest
    # a smoke check (2 epochs a fit)
    python -m benchmarks.e1_proxy --pretrained /tmp/pilotB.safetensors --sizes 40 \
        --folds 2 --test 40 --quick --tag smoke

One thread, 2-core x86_64, a fit at 500 images: ``small-data`` 34 s (304 steps),
``paper`` 67 s (240), ``deep@small-data-lr`` 85 s (304), ``multi-instruction``
79 s (3 x 500 images, 720 steps), ``paper@matched`` ~1,060 s (3,800 steps, from
the paper's 2.2 s per 8-step epoch); the probes and zero-shot under a second.
A step costs about 0.11 s (shallow) and 0.28 s (2 + 2 layers) whatever n.

Rows are written to ``benchmarks/results/e1-proxy-<tag>.json`` as they arrive
(``--merge`` keeps the rows already there and skips them; ``--fold-ids`` and
``--only-sizes`` run some folds and sizes only, so that processes can split a run
under separate tags, which ``--merge-from`` then gathers), with a markdown table
(``.md``) and a plot (``.png``); ``--render`` redraws those from the JSON. The
largest size, the folds and the test size set each target's pool (``n_pool`` in
each row): rows of another pool are of another test set, so give them another tag.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks._common import (
    REFERENCE,
    RESULTS,
    curves_of,
    embeddings,
    frozen_tokens,
    git_commit,
    metrics,
    plot_curves,
    ridge,
    write_json,
)
from benchmarks.learning_curves import (
    PAPER_STEPS,
    add_fold_options,
    check_only_sizes,
    variant_params,
)

SEED = 20_000  # the pretraining drew seed 0; these scenes are other ones
INSTRUCTIONS = {
    "triangle count": "Count the triangles.",
    "blur": "Sort the images by how blurry they are.",
    "jpeg": "Sort the images by how strongly they are JPEG compressed.",
}
PROMPTS = {  # zero-shot-prompts: (positive, negative), words the captions never use
    "triangle count": ("many triangles.", "one triangle."),
    "blur": ("a blurry photo.", "a sharp photo."),
    "jpeg": ("a heavily compressed jpeg photo.", "a high quality photo."),
}
TARGETS = tuple(INSTRUCTIONS)
PROBES = ("ridge-tokens", "ridge-pooled")
ZERO_SHOT = ("zero-shot", "zero-shot-prompts")
MULTI = "multi-instruction"
# CLIPRanker methods fitted on one target's training set.
RANKERS = ("small-data", "paper", "paper@matched", "deep@small-data-lr", "paper-preset")
METHODS = (*RANKERS, *PROBES, *ZERO_SHOT, MULTI)
QUICK_EPOCHS = 2  # --quick: every CLIPRanker fit runs this many epochs (a smoke check)
# The small-data preset on pretrained weights warns above 3,000 images of one
# instruction; here that is the point of the comparison.
LARGE_DATA_WARNING = "preset='small-data' with pretrained weights"


# --------------------------------------------------------------------------- data


def target_data(target: str, n: int, image_size: int = 64, seed: int = SEED):
    """(``n`` images, their targets as float) of ``target``, each image a scene of its own.

    ``triangle count``: the scenes (seed ``seed``) that hold triangles, in order, and
    their number of triangles. ``blur``/``jpeg``: ``n`` clean scenes (seed ``seed`` + 1
    or + 2), each degraded at its own amount drawn uniformly in [0, 1] (the target).
    The same arguments give the same images; a larger ``n`` extends the smaller one's.
    """
    from skrank.datasets._scenes import HELD_OUT_KIND, degrade, make_scenes

    if target not in INSTRUCTIONS:
        raise SystemExit(f"unknown target {target!r}; known: {list(INSTRUCTIONS)}")
    if target == "triangle count":
        drawn = max(16, math.ceil(2.3 * n))  # about half the scenes hold triangles
        while True:
            scenes = make_scenes(drawn, image_size=image_size, seed=seed, degraded=False)
            counts = scenes.counts[HELD_OUT_KIND]
            rows = np.flatnonzero(counts > 0)[:n]
            if len(rows) == n:
                return [scenes.images[i] for i in rows], counts[rows].astype(float)
            drawn *= 2  # make_scenes draws its scenes in order: the prefix is the same
    offset = TARGETS.index(target)
    scenes = make_scenes(n, image_size=image_size, seed=seed + offset, degraded=False)
    rng = np.random.default_rng([seed + offset, 1])
    amounts = rng.random(n)
    images = [degrade(im, target, float(a), rng) for im, a in zip(scenes.images, amounts)]
    return images, amounts


def pool_size(sizes: list[int], folds: int, n_test: int) -> int:
    """Images per target: ``folds`` test blocks and the largest training set beside them."""
    return folds * n_test + max(sizes)


def fold_rows(n_pool: int, folds: int, sizes: list[int], n_test: int, seed: int = 0):
    """Per fold: (k, {n: training rows}, test rows) over a pool of ``n_pool`` images.

    The test blocks are disjoint (``n_test`` images each); fold k trains on a shuffled
    order of every image outside its block, the first n for each n of ``sizes``
    (nested sets).
    """
    if folds < 2:
        raise SystemExit("--folds must be at least 2")
    need = pool_size(sizes, folds, n_test)
    if n_pool < need:
        raise SystemExit(
            f"a pool of {n_pool} images holds no {folds} x {n_test} tests + {max(sizes)}"
        )
    order = np.random.default_rng([seed, 7]).permutation(n_pool)
    blocks = order[: folds * n_test].reshape(folds, n_test)
    for k in range(folds):
        test = np.sort(blocks[k])
        rest = np.setdiff1d(np.arange(n_pool), test)
        rest = np.random.default_rng([seed, k]).permutation(rest)
        yield k, {n: np.sort(rest[:n]) for n in sorted(sizes)}, test


# --------------------------------------------------------------------------- methods


def ranker_params(method: str, d_model: int, n_train: int, quick: bool = False) -> dict:
    """CLIPRanker parameters of a CLIPRanker method (``RANKERS`` or ``MULTI``)."""
    if method in ("small-data", MULTI):
        params = {"preset": "small-data"}
    elif method == "paper-preset":  # what a user with pretrained weights gets
        params = {"preset": "paper", "early_stopping": False}
    elif method == "paper":
        params = {"preset": "paper", **REFERENCE, "early_stopping": False}
    elif method == "paper@matched":
        matched = variant_params(f"paper@{PAPER_STEPS}-steps", d_model, n_train)
        params = {"preset": "paper", **matched, "early_stopping": False}
    elif method == "deep@small-data-lr":
        params = {"preset": "small-data", **variant_params("deep@shallow-lr", d_model, n_train)}
    else:
        raise SystemExit(f"unknown method {method!r}; known: {list(METHODS)}")
    if quick:
        params["max_epochs"] = QUICK_EPOCHS
    return params


def _ranker(args, method: str, d_model: int, n_train: int, fold: int, instruction=None):
    from skrank import CLIPRanker

    return CLIPRanker(
        instruction,
        backbone=args.backbone,
        pretrained=args.pretrained,
        device=args.device,
        random_state=fold,
        verbose=0,
        **ranker_params(method, d_model, n_train, args.quick),
    )


def _fit_info(ranker) -> dict:
    return {"epochs": int(ranker.n_iter_), "lr": float(ranker.lr_)}


def _zero_shot(args, method: str, target: str):
    from skrank import CLIPZeroShotRanker

    kwargs = {"prompts": PROMPTS[target]} if method == "zero-shot-prompts" else {}
    return CLIPZeroShotRanker(
        INSTRUCTIONS[target],
        backbone=args.backbone,
        pretrained=args.pretrained,
        device=args.device,
        **kwargs,
    ).fit()


# --------------------------------------------------------------------------- the run


def _row(args, target, n_pool, n, k, method, y_test, pred, seconds, **extra) -> dict:
    m = metrics(y_test, pred, None, synthetic=False)
    return {
        "target": target,
        "n_pool": n_pool,
        "n_train": int(n),
        "n_test": len(y_test),
        "fold": k,
        "method": method,
        **m,
        "seconds": seconds,
        **extra,
        "quick": bool(args.quick),
        "weights": args.weights,
        "commit": args.commit,
    }


def _say(row: dict) -> None:
    print(
        f"  {row['target']:14s} fold {row['fold']} n={row['n_train']:5d} "
        f"{row['method']:19s} SRCC {row['SRCC']:.3f} ({row['seconds']:.1f} s)",
        flush=True,
    )


def run(args, backbone, done: set):
    """Yield a result row per (target, fold, size, method) not in ``done``."""
    n_pool = pool_size(args.sizes, args.folds, args.test)
    data, features = {}, {}
    for target in args.targets:
        t0 = time.perf_counter()
        data[target] = target_data(target, n_pool, backbone.image_size[0], args.seed)
        images = data[target][0]
        if "ridge-pooled" in args.methods:
            features[target, "ridge-pooled"] = embeddings(backbone, images)
        if "ridge-tokens" in args.methods:
            features[target, "ridge-tokens"] = token_moments(backbone, images)
        print(f"{target}: {n_pool} images ({time.perf_counter() - t0:.0f} s)", flush=True)
    d_model = backbone.embed_dim

    def todo(target, n, k, method):
        return (target, n_pool, n, k, method) not in done

    for k, train, test in fold_rows(n_pool, args.folds, args.sizes, args.test, args.seed):
        if args.fold_ids is not None and k not in args.fold_ids:
            continue
        if args.only_sizes is not None:
            train = {n: rows for n, rows in train.items() if n in args.only_sizes}
        # Nothing is trained for zero-shot: one score per fold, written at every size.
        for target in args.targets:
            images, y = data[target]
            for method in (m for m in args.methods if m in ZERO_SHOT):
                if not any(todo(target, n, k, method) for n in train):
                    continue
                t0 = time.perf_counter()
                pred = _zero_shot(args, method, target).predict([images[i] for i in test])
                seconds = time.perf_counter() - t0
                for n in train:
                    if todo(target, n, k, method):
                        row = _row(args, target, n_pool, n, k, method, y[test], pred, seconds)
                        _say(row)
                        yield row
        for n, tr in train.items():
            for target in args.targets:
                images, y = data[target]
                for method in args.methods:
                    if method in (*ZERO_SHOT, MULTI) or not todo(target, n, k, method):
                        continue
                    t0 = time.perf_counter()
                    extra = {}
                    if method in PROBES:
                        feats = features[target, method]
                        pred = ridge(feats[tr], y[tr], feats[test])
                    else:
                        ranker = _ranker(args, method, d_model, len(tr), k, INSTRUCTIONS[target])
                        ranker.fit([images[i] for i in tr], y[tr])
                        pred = ranker.predict([images[i] for i in test])
                        extra = _fit_info(ranker)
                    seconds = time.perf_counter() - t0
                    row = _row(args, target, n_pool, n, k, method, y[test], pred, seconds, **extra)
                    _say(row)
                    yield row
            if MULTI in args.methods and any(todo(t, n, k, MULTI) for t in args.targets):
                yield from multi_rows(args, data, d_model, n_pool, n, k, tr, test, todo)


def multi_frame(data: dict, targets, rows):
    """(DataFrame of image and instruction columns, y) over ``targets``' ``rows``."""
    import pandas as pd

    images, instructions, ys = [], [], []
    for target in targets:
        pool, y = data[target]
        images += [pool[i] for i in rows]
        instructions += [INSTRUCTIONS[target]] * len(rows)
        ys.append(y[rows])
    return pd.DataFrame({"image": images, "instruction": instructions}), np.concatenate(ys)


def multi_rows(args, data, d_model, n_pool, n, k, tr, test, todo):
    """One multi-instruction fit on every target's ``tr`` rows; a row per target
    that ``todo(target, n, k, method)`` still wants."""
    if len(args.targets) < 2:
        print(f"  {MULTI}: needs at least two --targets; skipped", flush=True)
        return
    t0 = time.perf_counter()
    ranker = _ranker(args, MULTI, d_model, len(tr), k)
    frame, y = multi_frame(data, args.targets, tr)
    ranker.fit(frame, y)
    fit_seconds = time.perf_counter() - t0
    for target in (t for t in args.targets if todo(t, n, k, MULTI)):
        t1 = time.perf_counter()
        test_frame, y_test = multi_frame(data, [target], test)
        pred = ranker.predict(test_frame)
        extra = {**_fit_info(ranker), "fit_targets": list(args.targets)}
        seconds = fit_seconds + time.perf_counter() - t1  # the shared fit, on every row
        row = _row(args, target, n_pool, n, k, MULTI, y_test, pred, seconds, **extra)
        _say(row)
        yield row


def token_moments(backbone, images, chunk: int = 2000) -> np.ndarray:
    """(N, 2C): the mean and standard deviation over tokens of the frozen tokens."""
    out = []
    for start in range(0, len(images), chunk):
        tokens = frozen_tokens(backbone, images[start : start + chunk])
        out.append(np.concatenate([tokens.mean(1).numpy(), tokens.std(1).numpy()], axis=1))
    return np.concatenate(out)


# --------------------------------------------------------------------------- reports


def summarise(rows: list[dict]) -> dict:
    """{(target, n, method): (mean, std, folds, mean seconds)} of pooled SRCC over folds."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["target"], r["n_train"], r["method"]), []).append(r)
    return {
        key: (
            float(np.mean([r["SRCC"] for r in rs])),
            float(np.std([r["SRCC"] for r in rs])),
            len(rs),
            float(np.mean([r["seconds"] for r in rs])),
        )
        for key, rs in cells.items()
    }


def _methods(rows: list[dict]) -> list[str]:
    present = set(r["method"] for r in rows)
    return [m for m in METHODS if m in present] + sorted(present - set(METHODS))


def _targets(rows: list[dict]) -> list[str]:
    present = dict.fromkeys(r["target"] for r in rows)
    return [t for t in TARGETS if t in present] + [t for t in present if t not in TARGETS]


def _cell(mean: float, std: float, folds: int) -> str:
    return f"{mean:.3f} ± {std:.3f}" if folds > 1 else f"{mean:.3f} (1 fold)"


def markdown(rows: list[dict], config: dict | None = None) -> str:
    """Pooled SRCC per target, size and method (mean ± std over folds), then the
    mean seconds per fit (a multi-instruction fit counted on each target's row)."""
    summary = summarise(rows)
    methods = _methods(rows)
    config = config or {}
    weights = ", ".join(f"`{w}`" for w in sorted({str(r.get("weights")) for r in rows}))
    backbone = config.get("backbone", "skrank-tiny")
    lines = [
        f"E1: learning curves on the pretrained tiny CLIP proxy (`{backbone}`, "
        f"weights {weights}), targets its captions never "
        "taught. Spearman over each fold's whole test block (pooled across content), "
        "mean ± std over folds split by scene; "
        "`python -m benchmarks.e1_proxy` made them.",
        "",
    ]
    if any(r.get("quick") for r in rows):
        lines += [
            f"**Quick rows** (every CLIPRanker fit {QUICK_EPOCHS} epochs): a smoke check.",
            "",
        ]
    for target in _targets(rows):
        lines += [
            f"### {target}",
            "",
            "| n_train | " + " | ".join(methods) + " |",
            "|---" * (len(methods) + 1) + "|",
        ]
        for n in sorted({r["n_train"] for r in rows if r["target"] == target}):
            cells = [summary.get((target, n, m)) for m in methods]
            text = ["" if s is None else _cell(*s[:3]) for s in cells]
            lines.append(f"| {n} | " + " | ".join(text) + " |")
        lines.append("")
    lines += [
        "### Seconds per fit (mean over targets and folds)",
        "",
        "| n_train | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for n in sorted({r["n_train"] for r in rows}):
        text = []
        for m in methods:
            secs = [r["seconds"] for r in rows if r["n_train"] == n and r["method"] == m]
            text.append(f"{np.mean(secs):.1f}" if secs else "")
        lines.append(f"| {n} | " + " | ".join(text) + " |")
    lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """One panel per target: pooled SRCC against training images (log x)."""
    targets = _targets(rows)
    curves = curves_of(summarise(rows), targets, _methods(rows), lambda s: s[:2])
    plot_curves(
        curves,
        path,
        ylabel="pooled SRCC",
        title="E1: the pretrained tiny CLIP proxy, held-out targets",
        xlabel="training images",
        dashed=ZERO_SHOT,
        ylim=(-0.25, 1.02),
        panel=(3.4, 2.6),
        max_cols=len(targets),
    )


def write(stem: Path, rows: list[dict], config: dict) -> None:
    write_json(stem.with_suffix(".json"), {"experiment": "E1", "config": config, "rows": rows}, 1)
    stem.with_suffix(".md").write_text(markdown(rows, config))


def read(stem: Path) -> tuple[list[dict], dict]:
    """(rows, config) of a result file; none there: ([], {})."""
    path = stem.with_suffix(".json")
    if not path.exists():
        return [], {}
    data = json.loads(path.read_text())
    return data["rows"], data.get("config", {})


# --------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="skrank-tiny")
    p.add_argument("--pretrained", default="synthetic", help="a tag or a checkpoint file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--targets", nargs="*", default=list(TARGETS))
    add_fold_options(
        p, [500, 2000, 8000], 3, "the pool, hence the test blocks, is still set by --sizes"
    )
    p.add_argument("--test", type=int, default=500, help="test images per fold")
    p.add_argument("--seed", type=int, default=SEED, help="the scenes' seed (pretraining: 0)")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument(
        "--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs per fit: a smoke check"
    )
    p.add_argument("--tag", help="result file name part (default: the weights' name)")
    p.add_argument("--merge", action="store_true", help="keep (and skip) the rows already there")
    p.add_argument("--merge-from", nargs="*", default=[], help="also gather these tags' rows")
    p.add_argument("--render", action="store_true", help="only redraw .md and .png")
    return p


def default_tag(pretrained: str) -> str:
    """``synthetic`` for the tag, ``pilotB`` for ``/tmp/pilotB.safetensors``."""
    return Path(pretrained).stem if os.sep in pretrained or "." in pretrained else pretrained


def main(argv=None):
    args = parser().parse_args(argv)
    for name in args.targets:
        if name not in INSTRUCTIONS:
            raise SystemExit(f"unknown target {name!r}; known: {list(INSTRUCTIONS)}")
    check_only_sizes(args)
    for method in args.methods:
        if method not in METHODS:
            raise SystemExit(f"unknown method {method!r}; known: {list(METHODS)}")
    stem = RESULTS / f"e1-proxy-{args.tag or default_tag(args.pretrained)}"
    rows, config = read(stem) if (args.merge or args.render) else ([], {})
    for tag in args.merge_from:
        other, other_config = read(RESULTS / f"e1-proxy-{tag}")
        keys = {_key(r) for r in rows}
        rows += [r for r in other if _key(r) not in keys]
        config = config or other_config
    if not args.render:
        import torch

        from skrank._encoding.backbone import load_backbone

        torch.set_num_threads(1)  # timings per fit on one thread, as reported
        warnings.filterwarnings("ignore", message=LARGE_DATA_WARNING)
        backbone = load_backbone(args.backbone, args.pretrained, args.device)
        args.weights, args.commit = backbone.weights_identity, git_commit()
        if {r["weights"] for r in rows} - {args.weights}:
            raise SystemExit(f"{stem}.json holds rows of other weights: use another --tag")
        config = {
            "backbone": args.backbone,
            "pretrained": args.pretrained,
            "weights": args.weights,
            "targets": args.targets,
            "sizes": args.sizes,
            "folds": args.folds,
            "fold_ids": args.fold_ids,
            "only_sizes": args.only_sizes,
            "test": args.test,
            "seed": args.seed,
            "methods": args.methods,
            "quick": args.quick,
            "instructions": {t: INSTRUCTIONS[t] for t in args.targets},
            "prompts": {t: PROMPTS[t] for t in args.targets},
            "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}-{os.cpu_count()}cpu",
            "commit": args.commit,
        }
        done = {_key(r) for r in rows}
        for row in run(args, backbone, done):
            rows.append(row)
            write(stem, rows, config)  # a long run keeps what it did
    write(stem, rows, config)
    if rows:
        plot(rows, stem.with_suffix(".png"))
    print(f"\n{markdown(rows, config)}\nwrote {stem}.json/.md/.png")


def _key(r: dict) -> tuple:
    return (r["target"], r["n_pool"], r["n_train"], r["fold"], r["method"])


if __name__ == "__main__":
    main()
