"""Label efficiency of CLIPPreferenceRanker: how many noisy comparisons match true scores.

Preferences are simulated from the known targets of the synthetic tasks
(``make_ranking_task``, 22 photos x 8 levels, 64 px, random ``skrank-tiny`` towers).
Per draw, ``--train-photos`` photos (16 of 22: 128 images) are the training photos
and the others are held out. One list of random comparisons is drawn per draw:
two distinct training images (one instruction), uniform over ordered pairs, a pair
may come again (another annotator); a budget of ``n`` comparisons is the list's first
``n``, so the budgets are nested (the list is as long as the largest ``--sizes``: a
run with another largest size draws other comparisons). A comparison (a, b) is labelled

- P(a above b) = sigmoid((y_a - y_b) / T), T = ``--temperature`` x the standard
  deviation of the training images' targets (0.1 unless told),
- sampled to a verdict 1 or 0 (0.5 when y_a == y_b: a tie, so same-level images of
  two photos are ties),
- then flipped (1 - label) with probability ``--flip`` (0.1: annotator noise).

Methods, all trained on the images of the same comparisons and scored on the held-out
photos' images:

- ``CLIPPreferenceRanker``: the estimator with nothing set but
  ``backbone="skrank-tiny", pretrained=None, device="cpu", verbose=0,
  random_state=<draw>`` (``preset="auto"`` gives random towers the small-data preset:
  lr 1e-3, 30 epochs raised to at least 300 steps); its ``score_images``;
- ``bt-pooled`` / ``bt-tokens``: the linear Bradley-Terry model, a logistic
  regression without intercept on the differences of frozen features of the two
  images (each comparison both ways, a soft label by weights), C chosen by log loss
  in 4 folds of the training photos (validated on the comparisons among a fold's
  photos); features: CLIP's pooled image embedding (``CLIPEmbedder``) / the mean and
  standard deviation over tokens of the frozen tokens the adapter reads, each scaled
  by the differences' RMS; an image's score is w . features;
- ``CLIPRanker-true``: the upper bound, ``CLIPRanker(instruction, backbone=
  "skrank-tiny", pretrained=None, device="cpu", verbose=0, random_state=<draw>)``
  fitted on the TRUE targets of exactly the images that appear in the comparisons
  (about 100 of the 128 at 100 comparisons, all or nearly all from 300 on);
- ``CLIPPreferenceRanker-active`` (budgets in ``--active``): a first fit on the first
  half of the random comparisons, then the other half chosen among all pairs of
  training images not yet compared as those whose predicted P(a above b) is nearest
  0.5, labelled by the same simulator, and a new fit on both halves.

Metric: Spearman of each method's per-image score against the true target within
each held-out photo (averaged over photos, ``srcc_within``) and pooled over the
held-out images (``srcc_pooled``).

    python -m benchmarks.bench_preferences
    python -m benchmarks.bench_preferences --kinds blur --sizes 100 500 --folds 1

Rows go to ``benchmarks/results/preferences-<tag>.json`` as they arrive (a rerun
replaces the rows of the cells it runs and keeps the others), with a markdown table
(``.md``) and a plot (``.png``); ``--render`` redraws those from the JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks._common import (
    RESULTS,
    curves_of,
    embeddings,
    frozen_tokens,
    git_commit,
    metrics,
    plot_curves,
    write_json,
)

PREFERENCE = "CLIPPreferenceRanker"
ACTIVE = "CLIPPreferenceRanker-active"
TRUE = "CLIPRanker-true"
BT = ("bt-pooled", "bt-tokens")
METHODS = (PREFERENCE, *BT, TRUE)
ORDER = (PREFERENCE, ACTIVE, *BT, TRUE)

# --------------------------------------------------------------------------- simulation


def split(groups: np.ndarray, n_train_photos: int, draw: int):
    """(training rows, held-out rows): ``n_train_photos`` random photos and the rest."""
    photos = np.unique(groups)
    chosen = np.random.default_rng([17, draw]).choice(photos, n_train_photos, replace=False)
    train = np.flatnonzero(np.isin(groups, chosen))
    return train, np.flatnonzero(~np.isin(groups, chosen))


def random_pairs(n_images: int, n: int, rng: np.random.Generator):
    """``n`` ordered pairs of distinct indices below ``n_images``, uniform, with repeats."""
    a = rng.integers(0, n_images, n)
    b = (a + rng.integers(1, n_images, n)) % n_images
    return a, b


def label(y: np.ndarray, a, b, temperature: float, flip: float, rng: np.random.Generator):
    """Simulated verdicts on (a, b): a draw of sigmoid((y_a - y_b) / temperature), 0.5 on
    equal targets, then each flipped with probability ``flip``."""
    a, b = np.asarray(a), np.asarray(b)
    p = 1.0 / (1.0 + np.exp(-(y[a] - y[b]) / temperature))
    verdict = (rng.random(len(a)) < p).astype(float)
    verdict[y[a] == y[b]] = 0.5
    flipped = rng.random(len(a)) < flip
    verdict[flipped] = 1.0 - verdict[flipped]
    return verdict


def label_agreement(y, a, b, labels) -> float:
    """Share of the non-tied comparisons whose label orders them as the targets do."""
    a, b = np.asarray(a), np.asarray(b)
    strict = (y[a] != y[b]) & (labels != 0.5)
    return float(np.mean((labels[strict] > 0.5) == (y[a][strict] > y[b][strict])))


# --------------------------------------------------------------------------- methods


CS = np.logspace(-4, 2, 13)  # the Bradley-Terry baseline's penalties (inverse)


def _logistic(d, labels, C):
    """A logistic regression without intercept on differences ``d`` with soft labels:
    each comparison both ways, a label's share as the weight of each outcome."""
    from sklearn.linear_model import LogisticRegression

    n = len(labels)
    X = np.concatenate([d, d, -d, -d])
    target = np.repeat([1, 0, 1, 0], n)
    weight = np.concatenate([labels, 1 - labels, 1 - labels, labels])
    keep = weight > 0
    model = LogisticRegression(C=C, fit_intercept=False, max_iter=3000)
    return model.fit(X[keep], target[keep], sample_weight=weight[keep]).coef_.ravel()


def _log_loss(d, labels, w) -> float:
    z = d @ w
    return float(np.mean(labels * np.logaddexp(0, -z) + (1 - labels) * np.logaddexp(0, z)))


def bradley_terry(features, a, b, labels, photos, n_folds: int = 4):
    """Weights ``w`` of the linear Bradley-Terry model P(a above b) =
    sigmoid(w . (f_a - f_b)), and its C.

    The penalty is chosen by cross-validation over the training *photos*: per fold a
    quarter of the photos is held out, the model trained on the comparisons of the
    other photos' images and scored (log loss) on those among the held-out photos'
    images. Comparisons split at random would validate on the images it trained on,
    and choose a C that memorises them (on blur, 8,000 comparisons: C = 100 and 0.59
    within photo against 1.00 at C = 1e-3).
    """
    d = features[a] - features[b]
    scale = np.sqrt(np.mean(d**2, axis=0)) + 1e-12
    d = d / scale
    pa, pb = photos[a], photos[b]
    parts = np.array_split(np.random.default_rng(0).permutation(np.unique(photos)), n_folds)
    losses = np.zeros(len(CS))
    for held in parts:
        inside = np.isin(pa, held) & np.isin(pb, held)
        outside = ~np.isin(pa, held) & ~np.isin(pb, held)
        if not inside.any() or not outside.any():
            continue
        for c, C in enumerate(CS):
            w = _logistic(d[outside], labels[outside], C)
            losses[c] += inside.sum() * _log_loss(d[inside], labels[inside], w)
    C = float(CS[int(np.argmin(losses))])
    return _logistic(d, labels, C) / scale, C


def preference_ranker(task, draw: int, max_epochs):
    from skrank import CLIPPreferenceRanker

    return CLIPPreferenceRanker(task.instruction, **tiny_settings(draw, max_epochs))


def tiny_settings(draw: int, max_epochs) -> dict:
    """What both adapters are given: the random skrank-tiny towers on the CPU, silent,
    seeded by the draw; everything else their defaults."""
    return dict(
        backbone="skrank-tiny",
        pretrained=None,
        device="cpu",
        verbose=0,
        random_state=draw,
        max_epochs=max_epochs,
    )


def fit_preferences(task, images, a, b, labels, draw: int, max_epochs):
    """A fitted CLIPPreferenceRanker on the comparisons (a, b) of ``images``, and seconds."""
    model = preference_ranker(task, draw, max_epochs)
    t0 = time.perf_counter()
    model.fit([(images[i], images[j]) for i, j in zip(a, b)], labels)
    return model, time.perf_counter() - t0


def fit_true(task, images, y, rows, draw: int, max_epochs):
    """A fitted CLIPRanker on ``rows`` with their true targets, and seconds."""
    from skrank import CLIPRanker

    model = CLIPRanker(task.instruction, **tiny_settings(draw, max_epochs))
    t0 = time.perf_counter()
    model.fit([images[i] for i in rows], y[rows])
    return model, time.perf_counter() - t0


def nearest_half(scores, a, b, n: int, rng: np.random.Generator):
    """``n`` pairs of training images not among (a, b) in either order, those whose
    predicted P(a above b) = sigmoid(score_a - score_b) is nearest 0.5; random order."""
    m = len(scores)
    i, j = np.triu_indices(m, k=1)
    seen = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    fresh = np.array([(p, q) not in seen for p, q in zip(i.tolist(), j.tolist())])
    i, j = i[fresh], j[fresh]
    gap = np.abs(scores[i] - scores[j]) + 1e-9 * rng.random(len(i))  # ties broken at random
    take = np.argsort(gap)[:n]
    i, j = i[take], j[take]
    swap = rng.random(len(i)) < 0.5
    return np.where(swap, j, i), np.where(swap, i, j)


# --------------------------------------------------------------------------- the run


def configuration(method: str, args) -> dict:
    """What a row ran: the method's settings and the simulation's."""
    common = {
        "backbone": "skrank-tiny (pretrained=None: random towers)",
        "image_size": args.image_size,
        "train_photos": f"{args.train_photos} of 22 (x 8 levels)",
        "temperature": f"{args.temperature} x std of the training targets",
        "flip": args.flip,
        "pairs": "uniform random ordered pairs of distinct training images, repeats allowed, "
        "nested budgets",
    }
    epochs = "30 raised to 300 steps" if args.max_epochs is None else args.max_epochs
    settings = {
        PREFERENCE: f"CLIPPreferenceRanker, preset auto (small-data), lr auto, "
        f"max_epochs {epochs}, batch 64, score_weight 1, rank_weight 1",
        ACTIVE: f"as {PREFERENCE}; first half random, second half nearest P=0.5 among "
        "uncompared pairs, refit from scratch on both",
        "bt-pooled": "LogisticRegression on pooled-embedding differences (scaled by their "
        "RMS), no intercept, both ways, C in 1e-4..1e2 by log loss, 4 folds of training "
        "photos",
        "bt-tokens": "as bt-pooled on the frozen tokens' mean and std over tokens",
        TRUE: f"CLIPRanker, preset auto (small-data), max_epochs {epochs}, on the true "
        "targets of the images in the comparisons, no groups",
    }
    return {"method": settings[method], **common}


def result_row(cell: dict, n: int, method: str, scores, seconds: float, a, b, labels, **extra):
    """The row of one method's held-out ``scores`` in ``cell`` (a draw of one kind)."""
    test = cell["test"]
    m = metrics(cell["y"][test], scores, cell["groups"][test], synthetic=True)
    row = {
        "kind": cell["kind"],
        "fold": cell["draw"],
        "n_comparisons": int(n),
        "method": method,
        "srcc_within": m["SRCC_within"],
        "srcc_pooled": m["SRCC"],
        "fit_seconds": round(seconds, 2),
        "n_images": len(np.unique(np.concatenate([a, b]))),
        "label_agreement": round(label_agreement(cell["y_train"], a, b, labels), 4),
        "ties": round(float(np.mean(labels == 0.5)), 4),
        **extra,
        "commit": cell["commit"],
        "configuration": configuration(method, cell["args"]),
    }
    print(
        f"  draw {cell['draw']} n={n:5d} {method:28s} within {row['srcc_within']:.3f} "
        f"pooled {row['srcc_pooled']:.3f} ({seconds:.0f} s)",
        flush=True,
    )
    return row


def run_kind(args, kind: str, commit: str):
    """Yield a row per (draw, budget, method)."""
    from skrank._encoding.backbone import load_backbone
    from skrank.datasets import make_ranking_task

    task = make_ranking_task(kind, image_size=args.image_size, random_state=0)
    images, y = task.images, np.asarray(task.target, dtype=float)
    groups = np.asarray(task.groups)
    backbone = load_backbone("skrank-tiny", None, "cpu")
    t0 = time.perf_counter()
    tokens = frozen_tokens(backbone, images)
    features = {
        "bt-pooled": np.asarray(embeddings(backbone, images), dtype=np.float64),
        "bt-tokens": np.concatenate([tokens.mean(1).numpy(), tokens.std(1).numpy()], 1).astype(
            np.float64
        ),
    }
    del tokens
    print(f"\n{kind}: {len(images)} images, features {time.perf_counter() - t0:.1f} s", flush=True)
    for draw in range(args.folds):
        train, test = split(groups, args.train_photos, draw)
        tr_images = [images[i] for i in train]
        te_images = [images[i] for i in test]
        y_tr = y[train]
        cell = {"kind": kind, "draw": draw, "test": test, "y": y, "groups": groups,
                "y_train": y_tr, "commit": commit, "args": args}  # fmt: skip
        temperature = args.temperature * float(y_tr.std())
        rng = np.random.default_rng([kind_seed(kind), draw])
        a_all, b_all = random_pairs(len(train), max(args.sizes), rng)
        labels_all = label(y_tr, a_all, b_all, temperature, args.flip, rng)
        fitted: dict = {}  # n -> fitted preference model (the active rows' first half)
        true_fits: dict = {}  # image set -> (test scores, seconds)
        for n in sorted(args.sizes):
            a, b, labels = a_all[:n], b_all[:n], labels_all[:n]
            for method in args.methods:
                if method == PREFERENCE:
                    model, seconds = fit_preferences(
                        task, tr_images, a, b, labels, draw, args.max_epochs
                    )
                    fitted[n] = model
                    scores = model.score_images(te_images)
                    yield result_row(cell, n, method, scores, seconds, a, b, labels,
                                     epochs=model.n_iter_, lr=model.lr_)  # fmt: skip
                elif method in BT:
                    t0 = time.perf_counter()
                    w, C = bradley_terry(features[method][train], a, b, labels, groups[train])
                    seconds = time.perf_counter() - t0
                    scores = features[method][test] @ w
                    yield result_row(cell, n, method, scores, seconds, a, b, labels, C=C)
                elif method == TRUE:
                    rows = np.unique(np.concatenate([a, b]))
                    key = tuple(rows)
                    if key not in true_fits:
                        model, seconds = fit_true(
                            task, images, y, train[rows], draw, args.max_epochs
                        )
                        true_fits[key] = (model.predict(te_images), seconds)
                    scores, seconds = true_fits[key]
                    yield result_row(cell, n, method, scores, seconds, a, b, labels)
            if n in args.active:
                yield active_row(cell, task, tr_images, te_images, n, a_all, b_all, labels_all,
                                 fitted.get(n // 2), temperature)  # fmt: skip


def active_row(cell, task, tr_images, te_images, n, a_all, b_all, labels_all, first, temperature):
    """The active row at budget ``n``: the first half random (``first``: its fitted model,
    or None to fit it), the second half nearest P = 0.5 under it, a fit on both."""
    args, draw = cell["args"], cell["draw"]
    half = n // 2
    first_seconds = 0.0
    if first is None:
        first, first_seconds = fit_preferences(
            task, tr_images, a_all[:half], b_all[:half], labels_all[:half], draw, args.max_epochs
        )
    t0 = time.perf_counter()
    scores_tr = first.score_images(tr_images)
    rng = np.random.default_rng([kind_seed(cell["kind"]), draw, n])
    a2, b2 = nearest_half(scores_tr, a_all[:half], b_all[:half], n - half, rng)
    l2 = label(cell["y_train"], a2, b2, temperature, args.flip, rng)
    choose_seconds = time.perf_counter() - t0
    a, b = np.concatenate([a_all[:half], a2]), np.concatenate([b_all[:half], b2])
    labels = np.concatenate([labels_all[:half], l2])
    model, seconds = fit_preferences(task, tr_images, a, b, labels, draw, args.max_epochs)
    return result_row(
        cell, n, ACTIVE, model.score_images(te_images), seconds, a, b, labels,
        epochs=model.n_iter_, first_fit_seconds=round(first_seconds, 2),
        choose_seconds=round(choose_seconds, 2), active_ties=round(float(np.mean(l2 == 0.5)), 4),
        active_agreement=round(label_agreement(cell["y_train"], a2, b2, l2), 4),
    )  # fmt: skip


def kind_seed(kind: str) -> int:
    """A stable seed per kind (``hash`` of a str changes between processes)."""
    return sum(ord(c) * 31**i for i, c in enumerate(kind)) % (2**31)


# --------------------------------------------------------------------------- tables and plots


def summarise(rows: list[dict]) -> dict:
    """{(kind, n, method): {"srcc_within": (mean, std, folds), "srcc_pooled": ...}}."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["kind"], r["n_comparisons"], r["method"]), []).append(r)
    return {
        key: {
            stat: (
                float(np.mean([r[stat] for r in rs])),
                float(np.std([r[stat] for r in rs])),
                len(rs),
            )
            for stat in ("srcc_within", "srcc_pooled", "fit_seconds")
        }
        for key, rs in cells.items()
    }


TIE = 0.005  # within-photo SRCCs closer than this are a tie (one swap in one photo: ~0.002)


def acceptance(summary: dict, kind: str, n: int) -> tuple[float | None, str]:
    """(CLIPPreferenceRanker's within-photo SRCC over CLIPRanker-true's, a verdict):
    ``ok`` when the ratio is at least 0.9 and the preference score beats both
    Bradley-Terry rows by more than :data:`TIE`, else what fails: ``ties BT`` within
    it, ``below BT`` under it (no ratio where CLIPRanker-true is not above 0)."""
    ours, true = summary.get((kind, n, PREFERENCE)), summary.get((kind, n, TRUE))
    if ours is None or true is None:
        return None, ""
    if true["srcc_within"][0] <= 0:
        return None, "no upper bound (true <= 0)"
    ratio = ours["srcc_within"][0] / true["srcc_within"][0]
    bts = [summary[(kind, n, m)]["srcc_within"][0] for m in BT if (kind, n, m) in summary]
    fails = []
    if ratio < 0.9:
        fails.append("< 0.9 of true")
    if bts and ours["srcc_within"][0] < max(bts) - TIE:
        fails.append("below BT")
    elif bts and ours["srcc_within"][0] <= max(bts) + TIE:
        fails.append("ties BT")
    return ratio, "ok" if not fails else "**" + ", ".join(fails) + "**"


def methods_in(rows: list[dict]) -> list[str]:
    present = {r["method"] for r in rows}
    return [m for m in ORDER if m in present]


def markdown(rows: list[dict], command: str) -> str:
    summary = summarise(rows)
    methods = methods_in(rows)
    r0 = rows[0]["configuration"]
    folds = sorted({r["fold"] for r in rows})
    lines = [
        f"Label efficiency of CLIPPreferenceRanker on simulated preferences: {r0['backbone']}, "
        f"{r0['image_size']} px, {r0['train_photos']} training photos, the other photos held "
        f"out; labels sigmoid((y_a - y_b) / T) with T = {r0['temperature']}, sampled, "
        f"{100 * r0['flip']:.0f}% flipped. Within-photo Spearman on the held-out photos "
        f"(pooled in brackets), mean ± std over {len(folds)} draw(s) of the training photos. "
        f"`{command}` made them (commit {', '.join(sorted({r['commit'] for r in rows}))}).",
        "",
        "`ratio`: CLIPPreferenceRanker / CLIPRanker-true (within photo); `verdict`: `ok` "
        "when the ratio is at least 0.9 and CLIPPreferenceRanker beats both Bradley-Terry "
        f"rows by more than {TIE} (closer: `ties BT`). CLIPRanker-true is fitted on the true "
        "targets of the images in the comparisons (`images`: how many of the 128 training "
        "images that is, per draw).",
        "",
    ]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        lines += [
            f"### {kind}",
            "",
            "| comparisons | images | " + " | ".join(methods) + " | ratio | verdict |",
            "|---" * (len(methods) + 4) + "|",
        ]
        for n in sorted({r["n_comparisons"] for r in rows if r["kind"] == kind}):
            cell = (kind, n, PREFERENCE)
            images = [r["n_images"] for r in rows
                      if (r["kind"], r["n_comparisons"], r["method"]) == cell]  # fmt: skip
            cells = [_cell(summary.get((kind, n, m))) for m in methods]
            ratio, verdict = acceptance(summary, kind, n)
            ratio_text = "" if ratio is None else f"{ratio:.2f}"
            images_text = "/".join(str(i) for i in images)
            lines.append(
                f"| {n} | {images_text} | " + " | ".join(cells) + f" | {ratio_text} | {verdict} |"
            )
        lines.append("")
    lines += ["Fit seconds (mean over draws, 2 shared CPU cores, one thread):", ""]
    lines += ["| kind | comparisons | " + " | ".join(methods) + " |",
              "|---" * (len(methods) + 2) + "|"]  # fmt: skip
    for kind in dict.fromkeys(r["kind"] for r in rows):
        for n in sorted({r["n_comparisons"] for r in rows if r["kind"] == kind}):
            cells = []
            for m in methods:
                s = summary.get((kind, n, m))
                cells.append("" if s is None else f"{s['fit_seconds'][0]:.1f}")
            lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(s: dict | None) -> str:
    if s is None:
        return ""
    mean, std, folds = s["srcc_within"]
    spread = f" ± {std:.2f}" if folds > 1 else ""
    return f"{mean:.3f}{spread} ({s['srcc_pooled'][0]:.2f})"


def plot(rows: list[dict], path: Path) -> None:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    curves = curves_of(summarise(rows), kinds, methods_in(rows), lambda s: s["srcc_within"][:2])
    plot_curves(
        curves,
        path,
        ylabel="SRCC within held-out photo",
        title="skrank-tiny: score vs number of simulated comparisons (10% flipped)",
        xlabel="comparisons",
        dashed=(TRUE,),
        panel=(3.2, 2.7),
    )


def write(rows: list[dict], stem: Path, command: str, plots: bool = True) -> None:
    write_json(stem.with_suffix(".json"), rows, indent=1)
    stem.with_suffix(".md").write_text(markdown(rows, command))
    if plots:
        plot(rows, stem.with_suffix(".png"))


def main(argv=None) -> None:
    import json
    import shlex
    import sys
    import warnings

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kinds", nargs="+", default=["blur", "jpeg", "count", "brightness"])
    p.add_argument("--sizes", nargs="+", type=int, default=[100, 300, 1000, 4000])
    p.add_argument("--folds", type=int, default=2, help="draws of the training photos")
    p.add_argument("--train-photos", type=int, default=16)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--flip", type=float, default=0.1)
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--active", nargs="*", type=int, default=[], help="budgets with active rows")
    p.add_argument("--max-epochs", type=int, default=None, help="None: the estimators' default")
    p.add_argument("--tag", default="skrank-tiny")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--render", action="store_true", help="only redraw .md and .png")
    p.add_argument("--made-by", help="with --render: the command(s) the .md names")
    args = p.parse_args(argv)
    if not set(args.active) <= set(args.sizes):
        raise SystemExit(f"--active {args.active} must be among --sizes {args.sizes}")
    stem = RESULTS / f"preferences-{args.tag}"
    command = "python -m benchmarks.bench_preferences " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    path = stem.with_suffix(".json")
    old = json.loads(path.read_text()) if path.exists() else []
    if args.render:
        write(old, stem, args.made_by or command, not args.no_plot)
        return
    warnings.filterwarnings("ignore", message=".*random .*weights")
    commit = git_commit()
    cells = {(k, d, n, m) for k in args.kinds for d in range(args.folds) for n in args.sizes
             for m in [*args.methods, *([ACTIVE] if n in args.active else [])]}  # fmt: skip
    # A rerun replaces the rows of the cells it runs, keeps the others.
    rows = [r for r in old if (r["kind"], r["fold"], r["n_comparisons"], r["method"]) not in cells]
    t_start = time.perf_counter()
    for kind in args.kinds:
        for row in run_kind(args, kind, commit):
            rows.append(row)
            write_json(path, rows, indent=1)
    write(rows, stem, command, not args.no_plot)
    print(f"\n{time.perf_counter() - t_start:.0f} s; {stem.with_suffix('.md')}")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
