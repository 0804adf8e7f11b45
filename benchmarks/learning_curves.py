"""Learning curves: CLIPRanker against linear probes as the training set grows.

For each synthetic kind and each training size, on the same folds for every method:

- ``small-data``: ``CLIPRanker(preset="small-data")`` (1 fusion and no post-fusion
  layers, the mean-and-spread head, ``reg_weight=1``, ``lr="auto"`` by width, at
  least 300 steps): what ``preset="auto"`` gives random towers;
- ``paper``: the paper's model and settings (``_common.REFERENCE``: the
  reference architecture, mean-pooled head, ``lr=5e-5``, ``reg_weight=0.2``,
  30 epochs with no step floor, unlike ``preset="paper"``);
- ``deep``: the reference's 2 fusion and 2 post-fusion layers (``_common.DEEP``),
  everything else left to the preset: ``lr="auto"`` then gives 1e-4 · sqrt(512 / d);
- ``probe=ridge``: ``preset="auto"`` with the linear probe blended in (its weight
  chosen on held-out photos);
- ``ridge-pooled``: ``RidgeCV`` on CLIP's pooled image embedding (``CLIPEmbedder``);
- ``ridge-tokens``: ``RidgeCV`` on the mean and standard deviation over tokens of
  the frozen tokens the adapter reads;
- any ``VARIANTS`` entry named in ``--methods``: the fidelity ablation's rows
  (``_common.FIDELITY``: ``ref+lr=auto`` and the like);
- the rows that take depth, rate and budget apart (``SEPARATED``, computed for the
  backbone's width and the training size): ``deep@shallow-lr`` (the reference's depth
  at the shallow adapter's ``lr="auto"``), ``shallow@deep-lr`` (one fusion layer, no
  post layers, at the deep adapter's rate 1e-4 · sqrt(512 / d)) and
  ``paper@3800-steps`` (the paper's model and rate, with as many epochs as make
  about 3,800 optimiser steps: the paper's budget on KonIQ-10k);
- any other ``name=value[,name=value...]`` of CLIPRanker parameters: those set,
  everything else left to ``preset="auto"`` (``d_model=128``,
  ``d_model=128,n_post_layers=1``).

CLIPRanker is given each image's photo as ``groups``, the coarsest level at which
images share content (a user passes what must not be split: persons, scenes):
``probe="ridge"`` weighs its linear probe on held-out photos (with fewer than ten
training photos it holds nothing out and equals the adapter alone). Held-out *sources*
would be crops of training photos, which favours the probe (it memorises a
photo's appearance).

Folds split the bundled *photos* (``make_ranking_task(...).photos``), not only the
sources: the many sources of a large task are crops of 22 photos, and a crop of a
test photo in the training set would leak its content. Within a fold the training
sets are nested (the first sources of one shuffled list of the training photos'
crops) and the test set is the same for every size and method. SRCC within source
(averaged over test sources) and pooled over the test set; mean ± std over folds.
Usage (from the repository root)::

    python -m benchmarks.learning_curves --backbone skrank-tiny --sizes 50 200 1000 4000
    python -m benchmarks.learning_curves --backbone ViT-B-32 --kinds blur pixelate count \\
        --sizes 50 200

Rows are written to ``benchmarks/results/curves-<backbone>.json`` as they arrive
(``--merge`` keeps the rows of other kinds, sizes or methods already there), with a
markdown table (``.md``) and a plot (``.png``); ``--render`` redraws those from the JSON.
The largest size sets the task (its number of sources, hence the folds): rows of
another largest size are of another task (``n_sources`` in each row), so give them
their own ``--tag``.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import time
from pathlib import Path

import numpy as np

from benchmarks._common import (
    DEEP,
    FIDELITY,
    REFERENCE,
    RESULTS,
    SYNTHETIC,
    curves_of,
    embeddings,
    frozen_tokens,
    git_commit,
    metrics,
    plot_curves,
    ridge,
    write_json,
)

PROBES = ("ridge-pooled", "ridge-tokens")
# CLIPRanker rows: the small-data preset (the verdicts' reference), the deep adapter,
# the paper's model, the probe blended in, and the fidelity ablation's rows.
VARIANTS = {
    "small-data": {"preset": "small-data"},
    "deep": DEEP,  # the reference's depth, the rest left to the preset
    "paper": REFERENCE,
    "probe=ridge": {"probe": "ridge"},
    # The fidelity ablation's rows (_common.FIDELITY: the paper's model with one
    # departure each).
    **{name: params for name, params in FIDELITY.items() if name != "reference"},
}
# The rows the verdicts judge against the probes.
REFERENT = "small-data"
N_LEVELS = 8  # make_ranking_task's default: every source gives 8 images
PAPER_STEPS = 3800  # the paper's optimiser steps on KonIQ-10k (~7k images, batch 64, ~30 epochs)


def _separated(method: str, d_model: int, n_train: int) -> dict:
    """The parameters of a ``SEPARATED`` row for a backbone of width ``d_model``."""
    from skrank._model.training import resolve_lr

    if method == "deep@shallow-lr":
        return {**DEEP, "lr": resolve_lr("auto", d_model, 1, 0)}
    if method == "shallow@deep-lr":
        return {"n_fusion_layers": 1, "n_post_layers": 0, "lr": resolve_lr("auto", d_model, 2, 2)}
    budget = int(method.removeprefix("paper@").removesuffix("-steps"))
    steps = math.ceil(n_train / 64)  # an epoch's batches of 64 (sampling.epoch_batches)
    return {**REFERENCE, "max_epochs": math.ceil(budget / steps)}


# The paper's model at a budget of N optimiser steps is "paper@N-steps" for any N;
# these are the rows the E0 comparison ran (paper@1000-steps too).
SEPARATED = ("deep@shallow-lr", "shallow@deep-lr", f"paper@{PAPER_STEPS}-steps")


def _is_separated(method: str) -> bool:
    """A ``SEPARATED`` name, or the paper's model at a step budget: ``paper@N-steps``."""
    budget = method.removeprefix("paper@").removesuffix("-steps")
    shaped = method.startswith("paper@") and method.endswith("-steps")
    return method in SEPARATED or (shaped and budget.isdigit())


def variant_params(method: str, d_model: int = 64, n_train: int = 200) -> dict:
    """CLIPRanker parameters of a method: a ``VARIANTS`` or ``SEPARATED`` name (the
    latter for a backbone of width ``d_model`` and ``n_train`` training images), or
    ``name=value,...`` (values read as Python literals, else as strings), the rest
    left to ``preset="auto"``."""
    if method in VARIANTS:
        return VARIANTS[method]
    if _is_separated(method):
        return _separated(method, d_model, n_train)
    from skrank import CLIPRanker

    known = CLIPRanker().get_params()
    params = {}
    for part in method.split(","):
        name, sep, text = part.partition("=")
        if not sep or name not in known:
            raise SystemExit(
                f"unknown method {method!r}: not one of {[*VARIANTS, *SEPARATED, *PROBES]} "
                "nor name=value of CLIPRanker parameters"
            )
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text
    return params


def task_for(kind: str, image_size: int, sizes: list[int], folds: int, max_test: int):
    """A task with enough sources for the largest training size in every fold."""
    from skrank.datasets import make_ranking_task

    per_fold = math.ceil(max(sizes) / N_LEVELS)
    # Photos split into `folds` parts; the training photos' crops must hold the largest
    # training set, and the test photos' crops the test set (with room for uneven parts).
    n_sources = math.ceil(1.2 * max(per_fold * folds / (folds - 1), max_test * folds))
    n_sources = max(n_sources, 22)
    return make_ranking_task(kind, image_size=image_size, random_state=0, n_sources=n_sources)


def fold_rows(task, folds: int, sizes: list[int], max_test: int, seed: int = 0):
    """Per fold: (k, {n: training rows}, test rows), split by photo."""
    from sklearn.model_selection import GroupKFold

    groups, photos = np.asarray(task.groups), np.asarray(task.photos)
    split = GroupKFold(folds, shuffle=True, random_state=seed).split(groups, groups=photos)
    for k, (tr, te) in enumerate(split):
        rng = np.random.default_rng([seed, k])
        train_sources = rng.permutation(np.unique(groups[tr]))
        test_sources = rng.permutation(np.unique(groups[te]))[:max_test]
        train = {}
        for n in sizes:
            chosen = train_sources[: math.ceil(n / N_LEVELS)]
            if len(chosen) * N_LEVELS < n:
                raise SystemExit(f"fold {k}: only {len(chosen) * N_LEVELS} images for n={n}")
            train[n] = np.flatnonzero(np.isin(groups, chosen))
        yield k, train, np.flatnonzero(np.isin(groups, test_sources))


def selected_rows(task, args):
    """(fold, size, training rows, test rows) for the folds and sizes asked for
    (``--fold-ids``, ``--only-sizes``); the task and folds are set by all of ``--sizes``."""
    for k, train, test in fold_rows(task, args.folds, args.sizes, args.max_test):
        if args.fold_ids is not None and k not in args.fold_ids:
            continue
        for n, tr in train.items():
            if args.only_sizes is None or n in args.only_sizes:
                yield k, n, tr, test


def rows_parser(description: str, kinds: list[str], sizes: list[int]) -> argparse.ArgumentParser:
    """The arguments that choose the curves' rows (``task_for``, ``selected_rows``),
    shared by this script and the experiments ``head_alone`` and ``score_skip``; read them with
    :func:`parse_rows`."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--backbone", default="skrank-tiny")
    p.add_argument("--kinds", nargs="*", default=kinds)
    add_fold_options(p, sizes, 2, "the task is still set by the largest of --sizes")
    p.add_argument("--max-test", type=int, default=40, help="test sources per fold")
    return p


def add_fold_options(p: argparse.ArgumentParser, sizes: list[int], folds: int, fixed: str):
    """``--sizes``, ``--folds``, ``--fold-ids`` and ``--only-sizes`` (``fixed``: what
    ``--sizes`` still sets when only some are run); check them with
    :func:`check_only_sizes`. Shared with ``benchmarks.e1_proxy``."""
    p.add_argument("--sizes", nargs="*", type=int, default=sizes)
    p.add_argument("--folds", type=int, default=folds)
    p.add_argument("--fold-ids", nargs="*", type=int, help="run only these folds (0-based)")
    p.add_argument("--only-sizes", nargs="*", type=int, help=f"run only these of --sizes ({fixed})")


def check_only_sizes(args: argparse.Namespace) -> None:
    """Refuse ``--only-sizes`` unless among ``--sizes``."""
    if args.only_sizes is not None and not set(args.only_sizes) <= set(args.sizes):
        raise SystemExit(f"--only-sizes {args.only_sizes} must be among --sizes {args.sizes}")


def parse_rows(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``p``'s arguments, with ``--only-sizes`` refused unless among ``--sizes``."""
    args = p.parse_args(argv)
    check_only_sizes(args)
    return args


def curve_scores(tag: str, results: Path = RESULTS) -> dict:
    """{(kind, n_sources, n_train, fold): {method: within-source SRCC}} of
    ``<results>/curves-<tag>.json`` (empty when there is none)."""
    path = results / f"curves-{tag}.json"
    cells: dict = {}
    for r in json.loads(path.read_text()) if path.exists() else []:
        key = (r["kind"], r["n_sources"], r["n_train"], r["fold"])
        cells.setdefault(key, {})[r["method"]] = r["SRCC_within"]
    return cells


def run_kind(args, backbone, kind: str, done: set):
    """Yield a result row per (fold, size, method) not in ``done``."""
    from skrank import CLIPRanker

    task = task_for(kind, backbone.image_size[0], args.sizes, args.folds, args.max_test)
    images, y, groups = task.images, task.target, np.asarray(task.groups)
    photos = np.asarray(task.photos)
    n_sources = int(groups.max() + 1)
    print(f"\n{kind}: {len(images)} images, {n_sources} sources", flush=True)
    features = {}
    if "ridge-pooled" in args.methods:
        features["ridge-pooled"] = embeddings(backbone, images)
    if "ridge-tokens" in args.methods:
        tokens = frozen_tokens(backbone, images)
        features["ridge-tokens"] = np.concatenate(
            [tokens.mean(1).numpy(), tokens.std(1).numpy()], axis=1
        )
        del tokens
    for k, n, tr, test in selected_rows(task, args):
        for method in args.methods:
            if (kind, n_sources, n, k, method) in done:
                continue
            t0 = time.perf_counter()
            weight = None
            if method in PROBES:
                pred = ridge(features[method][tr], y[tr], features[method][test])
            else:
                ranker = CLIPRanker(
                    task.instruction,
                    backbone=args.backbone,
                    pretrained=args.pretrained,
                    device=args.device,
                    random_state=k,
                    **variant_params(method, backbone.embed_dim, len(tr)),
                )
                ranker.fit([images[i] for i in tr], y[tr], groups=photos[tr])
                pred = ranker.predict([images[i] for i in test])
                weight = ranker.probe_weight_
            m = metrics(y[test], pred, groups[test], synthetic=True)
            row = {
                "kind": kind,
                "n_sources": n_sources,
                "n_train": int(n),
                "n_train_images": len(tr),
                "n_test_images": len(test),
                "fold": k,
                "method": method,
                "SRCC_within": m["SRCC_within"],
                "SRCC": m["SRCC"],
                "seconds": time.perf_counter() - t0,
                "probe_weight": weight,
                "commit": args.commit,
            }
            print(
                f"  fold {k} n={n:5d} {method:14s} within {row['SRCC_within']:.3f} "
                f"pooled {row['SRCC']:.3f} ({row['seconds']:.0f} s)",
                flush=True,
            )
            yield row


def summarise(rows: list[dict]) -> dict:
    """{(kind, n, method): {key: (mean, std, folds)}} over folds."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["kind"], r["n_train"], r["method"]), []).append(r)
    return {
        key: {
            stat: (
                float(np.mean([r[stat] for r in rs])),
                float(np.std([r[stat] for r in rs])),
                len(rs),
            )
            for stat in ("SRCC_within", "SRCC")
        }
        for key, rs in cells.items()
    }


def _methods(rows: list[dict]) -> list[str]:
    """The methods in ``rows``: the named ones in their order, then any
    ``name=value`` ones in the order they first appear."""
    present = dict.fromkeys(r["method"] for r in rows)
    named = [m for m in [*VARIANTS, *PROBES] if m in present]
    return named + [m for m in present if m not in named]


def markdown(rows: list[dict], backbone: str) -> str:
    summary = summarise(rows)
    methods = _methods(rows)
    lines = [
        f"Learning curves, {backbone} (random weights: low-level cues only). Within-source "
        "SRCC (pooled SRCC in brackets), mean ± std over folds split by photo; "
        "`python -m benchmarks.learning_curves` made them.",
        "",
        "`verdict`: the `small-data` rows against the better probe minus one fold std "
        "(`ok`), and whether they beat both probes (`win`); a cell of one fold has no "
        "std, so there `ok` means at least the better probe.",
        "",
    ]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        lines += [
            f"### {kind}",
            "",
            "| n_train | " + " | ".join(methods) + " | verdict |",
            "|---" * (len(methods) + 2) + "|",
        ]
        for n in sorted({r["n_train"] for r in rows if r["kind"] == kind}):
            cells = []
            for m in methods:
                s = summary.get((kind, n, m))
                cells.append("" if s is None else _cell(s))
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {verdict(rows, kind, n)} |")
        lines.append("")
    return "\n".join(lines)


def _cell(s: dict) -> str:
    """Within-source mean ± std (pooled mean); one fold has no spread to show."""
    mean, std, folds = s["SRCC_within"]
    spread = f" ± {std:.3f}" if folds > 1 else " (1 fold)"
    return f"{mean:.3f}{spread} ({s['SRCC'][0]:.2f})"


def verdict(rows: list[dict], kind: str, n: int) -> str:
    """How the ``small-data`` rows compare with the better probe at (kind, n), on the
    folds they were run on (a probe's other folds would be another test set)."""
    folds = {
        r["fold"] for r in rows if (r["kind"], r["n_train"], r["method"]) == (kind, n, REFERENT)
    }
    summary = summarise(
        [r for r in rows if r["kind"] == kind and r["n_train"] == n and r["fold"] in folds]
    )
    ours = summary.get((kind, n, REFERENT))
    probes = [summary[(kind, n, p)] for p in PROBES if (kind, n, p) in summary]
    if ours is None or not probes:
        return ""
    best = max(probes, key=lambda s: s["SRCC_within"][0])
    mean, std = ours["SRCC_within"][:2]
    ok = mean >= best["SRCC_within"][0] - std
    win = all(mean > p["SRCC_within"][0] for p in probes)
    return ("win" if win else "ok") if ok else "**below**"


def plot(rows: list[dict], path: Path, backbone: str) -> None:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    curves = curves_of(summarise(rows), kinds, _methods(rows), lambda s: s["SRCC_within"][:2])
    plot_curves(
        curves,
        path,
        ylabel="SRCC within source",
        title=f"{backbone}: SRCC within source vs training images",
    )


def write(rows: list[dict], stem: Path, backbone: str) -> None:
    write_json(stem.with_suffix(".json"), rows, indent=1)
    stem.with_suffix(".md").write_text(markdown(rows, backbone))


def main(argv=None):
    p = rows_parser(__doc__.split("\n")[0], list(SYNTHETIC), [50, 200, 1000, 4000])
    p.add_argument("--pretrained", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", nargs="*", default=["small-data", "paper", *PROBES])
    p.add_argument("--tag", help="result file name part (default: the backbone)")
    p.add_argument("--merge", action="store_true", help="keep the rows already in the file")
    p.add_argument("--render", action="store_true", help="only redraw .md and .png")
    args = parse_rows(p, argv)
    for method in set(args.methods) - set(PROBES):
        variant_params(method)  # refuses an unknown method before any fit
    stem = RESULTS / f"curves-{args.tag or args.backbone}"
    rows = []
    if (args.merge or args.render) and stem.with_suffix(".json").exists():
        rows = json.loads(stem.with_suffix(".json").read_text())
    if not args.render:
        from skrank._encoding.backbone import load_backbone

        args.commit = git_commit()
        backbone = load_backbone(args.backbone, args.pretrained, args.device)
        done = {(r["kind"], r["n_sources"], r["n_train"], r["fold"], r["method"]) for r in rows}
        for kind in args.kinds:
            for row in run_kind(args, backbone, kind, done):
                rows.append(row)
                write(rows, stem, args.backbone)  # a long run keeps what it did
    write(rows, stem, args.backbone)
    plot(rows, stem.with_suffix(".png"), args.backbone)
    print(f"\n{markdown(rows, args.backbone)}\nwrote {stem}.json/.md/.png")


if __name__ == "__main__":
    main()
