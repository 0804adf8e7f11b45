"""``skrank demo``: fit a ranker on a synthetic task, compare with a ridge probe, report."""

from __future__ import annotations

import base64
import html
import io
import os
import time

from skrank._files import atomic_write
from skrank.cli._common import COMMANDS, CLIError, add_threads_option, format_table, prepare_out

_DEMO_REAL = ("ViT-B-32", "openai")
# Images on the report's contact sheet.
_SHEET = 24

# Printed and put in the report for the offline fallback, skrank-tiny pretrained on
# synthetic scenes: what its fit can show and what it cannot.
SYNTHETIC_WEIGHTS_NOTE = (
    "skrank-tiny's synthetic weights are a 64-pixel CLIP that this project pretrained on "
    "generated scenes whose captions name shapes, colours, counts and what a photo shows, "
    "never image quality: its text means something, so the instruction matters, but it is "
    "no stand-in for a real CLIP's scale, and it was never told about blur, which it learns "
    "here from the targets. The numbers show the machinery working, not CLIP's quality."
)
# Printed and put in the report when the towers are random (--backbone skrank-tiny
# without --pretrained): what such a fit can show and what it cannot.
RANDOM_WEIGHTS_NOTE = (
    "With random weights (skrank-tiny, used when no pretrained CLIP weights are cached) "
    "the instruction's text means nothing to the model: it learns the task from the targets "
    "alone, through low-level cues, and some photos get nearly flat predictions, whose order "
    "the smallest difference in the fit decides: within-photo SRCC changes with the number "
    "of torch threads (--threads; it changes the float rounding), though it repeats from run "
    "to run at one thread count. The numbers show the machinery working, not CLIP's quality."
)


def add_parser(sub) -> None:
    """Add the ``demo`` command to the sub-parsers ``sub``."""
    d = sub.add_parser("demo", help=COMMANDS["demo"])
    d.add_argument("--out", default="skrank-demo", help="folder for report.html")
    d.add_argument(
        "--backbone", help="open_clip model name (default: ViT-B-32 if cached, else skrank-tiny)"
    )
    d.add_argument("--pretrained", help="open_clip tag or checkpoint file for --backbone")
    d.add_argument("--kind", default="blur", help="synthetic task kind (default: blur)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_threads_option(d)
    d.set_defaults(func=run)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _metrics_row(name, y, pred, groups, in_units: bool = True):
    """The report's row of ``name``; MAE only for predictions in the units of ``y``."""
    from skrank.metrics import evaluation

    table = evaluation(y, pred, groups=groups)
    pooled = table["pooled"]
    return {
        "method": name,
        "SRCC within photo": table["per_group_mean"]["srcc"],
        "SRCC pooled": pooled["srcc"],
        "PLCC": pooled["plcc"],
        "MAE": pooled["mae"] if in_units else "-",
    }


def _choose_backbone(args) -> tuple[str, str | None, str]:
    from skrank._encoding.backbone import TINY, weights_on_disk
    from skrank._encoding.weights import SYNTHETIC

    if args.backbone:
        return args.backbone, args.pretrained, "asked for on the command line"
    if weights_on_disk(*_DEMO_REAL):
        return (*_DEMO_REAL, "its weights are already in the local cache")
    return (
        TINY,
        SYNTHETIC,
        (
            f"{_DEMO_REAL[0]}/{_DEMO_REAL[1]} weights are not on this machine (offline demo); "
            "skrank-tiny's built-in pretraining on captioned synthetic scenes stands in"
        ),
    )


def run(args) -> int:
    """Fit a ranker on a synthetic blur task, compare with a ridge probe, write a report."""
    import numpy as np
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline

    from skrank import CLIPEmbedder, CLIPRanker, CLIPZeroShotRanker
    from skrank._encoding.backbone import load_backbone
    from skrank.datasets import holdout_by_source, make_ranking_task
    from skrank.plotting import plot_history, plot_predictions, plot_ranking

    t0 = time.perf_counter()
    if args.pretrained and not args.backbone:
        raise CLIError("--pretrained needs --backbone (the model its weights are for)")
    checkpoint = args.pretrained if args.pretrained and os.path.isfile(args.pretrained) else None
    inputs = [("--pretrained checkpoint", checkpoint)] if checkpoint else []
    prepare_out(args.out, inputs=inputs, folder=True, writes=("report.html",))
    name, pretrained, why = _choose_backbone(args)
    print(f"backbone: {name} (pretrained={pretrained}): {why}")
    probe_device = "cpu" if args.device == "auto" else args.device
    backbone = load_backbone(name, pretrained, probe_device)
    size = backbone.image_size[0]
    task = make_ranking_task(args.kind, image_size=size, random_state=0)
    groups = np.asarray(task.groups)
    test = holdout_by_source(groups)
    X = task.images
    X_train = [x for x, t in zip(X, test) if not t]
    X_test = [x for x, t in zip(X, test) if t]
    y_train, y_test = task.target[~test], task.target[test]
    print(
        f"task: {task.instruction!r}: {len(X)} images of {len(np.unique(groups))} photos at "
        f"{size} px; {len(X_train)} train / {len(X_test)} test, split by photo"
    )
    # 200 steps (50 epochs of 112 images at batch 32) keep the demo under a minute on
    # 2 CPU cores; the default budget (300 steps at batch 64) takes about twice as long.
    # Measured with skrank-tiny's synthetic weights on 2 CPU cores: within-photo SRCC
    # 0.738 with one torch thread and 0.827 with two, pooled 0.513 and 0.557, each the
    # same on every run (float rounding orders the test photos whose predictions are
    # nearly flat).
    # The small-data preset even with cached pretrained weights: the paper's deeper
    # model at its lr of 5e-5 needs thousands of steps, not a minute's 200.
    ranker = CLIPRanker(
        task.instruction,
        backbone=name,
        pretrained=pretrained,
        preset="small-data",
        device=args.device,
        batch_size=32,
        max_epochs=50,
        random_state=0,
        verbose=1,
    )
    ranker.fit(X_train, y_train)
    pred = ranker.predict(X_test)

    probe = make_pipeline(
        CLIPEmbedder(name, pretrained, device=probe_device),
        RidgeCV(alphas=np.logspace(-3, 3, 13)),
    )
    ridge_pred = probe.fit(X_train, y_train).predict(X_test)

    zero_shot = CLIPZeroShotRanker(
        task.instruction, backbone=name, pretrained=pretrained, device=probe_device
    )
    zero_pred = zero_shot.fit().predict(X_test)

    rows = [
        _metrics_row("CLIPRanker", y_test, pred, groups[test]),
        _metrics_row("ridge probe", y_test, ridge_pred, groups[test]),
        _metrics_row("zero-shot", y_test, zero_pred, groups[test], in_units=False),
    ]
    print()
    print(format_table(rows))
    print(
        "\nSRCC pooled over photos is bounded by how the photos differ to begin with;"
        " within-photo SRCC is the fair measure. report.html says what each column means."
    )
    note = _weights_note(name, pretrained)
    if note:
        print(f"\nNote: {note}")
    os.makedirs(args.out, exist_ok=True)
    figures = {
        "Test images in predicted order (highest first), with their true level": plot_ranking(
            X_test, pred, y_true=y_test, n=_SHEET
        ),
        "Predicted vs true (test set, colour = source photo)": plot_predictions(
            y_test, pred, groups=groups[test]
        ),
        "Training curves": plot_history(ranker.history_),
    }
    report = os.path.join(args.out, "report.html")
    key = _legend(len(X_test), _target(args.kind))
    _write_report(report, task, (name, pretrained, why), rows, figures, key)
    print(f"\nreport: {report}  ({time.perf_counter() - t0:.0f} s in all)")
    return 0


def _weights_note(name: str, pretrained) -> str | None:
    """What a fit on these weights can show and cannot, for the tiny backbone's two."""
    from skrank._encoding.weights import SYNTHETIC, TINY

    if pretrained is None:
        return RANDOM_WEIGHTS_NOTE
    if name == TINY and pretrained == SYNTHETIC:
        return SYNTHETIC_WEIGHTS_NOTE
    return None


def _target(kind: str) -> str:
    """What the targets of the synthetic task ``kind`` measure."""
    from skrank.datasets._degradations import _DEGRADATIONS

    return _DEGRADATIONS[kind].target


def _legend(n_test: int, target: str) -> list[str]:
    """The report's key: the methods, the metrics and the figures' labels."""
    terms = {
        "CLIPRanker": "the ranking adapter, trained on the training photos' images and "
        "targets, on top of the frozen CLIP towers.",
        "ridge probe": "the linear-probe baseline: ridge regression (RidgeCV) on the frozen "
        "CLIP image embeddings (CLIPEmbedder), trained on the same images.",
        "zero-shot": "CLIPZeroShotRanker: no training at all, each test image scored by its "
        "CLIP similarity to the instruction's text: an order, not the units of y, so it has "
        "no MAE. Near 0, or below, where the CLIP was never told of the property.",
        "y (true target)": f"the {target}. A larger target means more of what the "
        "instruction asks for.",
        "SRCC within photo": "Spearman's rank correlation between predicted and true "
        "targets, computed among the test images of each source photo (within a photo only "
        "the synthetic change differs) and averaged over the test photos: can the method "
        "order one scene's images? 1 is the true order, 0 no relation, -1 reversed.",
        "SRCC pooled": "Spearman's rank correlation over all test images at once, across "
        "photos: it also asks whether a degraded image of one scene ranks against another "
        "scene, which the photos' own differences (one is softer or busier than another "
        "before any change) bound below 1.",
        "PLCC": "Pearson's linear correlation between predicted and true targets, pooled: "
        "whether the predictions are linear in the targets, not just in the right order.",
        "MAE": "mean absolute error of the predictions, pooled, in the units of the targets "
        "(predictions are in the units of y).",
        "Contact sheet": f"test images sorted by predicted score, highest first, left to "
        f"right and top to bottom ({_SHEET} of the {n_test}, evenly spaced over the ranking, "
        "when there are more). Above each: #k, its rank among the test images by predicted "
        "score (#1 highest); s=, its predicted score, in the units of y; y=, its true "
        "target.",
        "Predicted vs true": "one dot per test image, coloured by source photo; the dashed "
        "line is predicted = true. The title gives Spearman pooled and within group.",
        "Training curves": "per epoch, the training loss (loss) and its parts: the "
        "regression loss on the score (reg_loss) and the pairwise ranking loss of the pair "
        "branch (rank_loss).",
    }
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in terms.items()
    )
    return ["<h2 id='key'>How to read this report</h2>", f"<dl>{items}</dl>"]


def _write_report(path, task, backbone, rows, figures, key):
    """The report: the backbone, the metrics table, the figures, then ``key`` (the legend)."""
    name, pretrained, why = backbone
    cells = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(v) if isinstance(v, str) else f'{v:.3f}'}</td>" for v in r.values()
        )
        + "</tr>"
        for r in rows
    )
    parts = [
        "<!doctype html><meta charset='utf-8'><title>skrank demo</title>",
        # Figures scale down to the page's width: the contact sheet (about 1,230 px wide)
        # would otherwise run past the 1,100 px column, its right edge cut off in a window
        # narrower than about 1,370 px.
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        "img{max-width:100%;height:auto}dt{font-weight:bold;margin-top:.5em}</style>",
        f"<h1>skrank demo: {html.escape(task.instruction)}</h1>",
        f"<p>Backbone <b>{html.escape(name)}</b> (pretrained={html.escape(str(pretrained))}):"
        f" {html.escape(why)}.</p>",
    ]
    note = _weights_note(name, pretrained)
    if note:
        parts.append(f"<p><b>Note:</b> {html.escape(note)}</p>")
    parts.append(f"<table><tr>{cells}</tr>{body}</table>")
    parts.append("<p>What each method, column and label means: <a href='#key'>below</a>.</p>")
    for title, fig in figures.items():
        parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{_png(fig)}'>")
    parts += key
    # Atomic, like every output: an interrupted demo leaves no half report, and a
    # device or a pipe put there since prepare_out is refused, not replaced.
    atomic_write(path, "\n".join(parts).encode("utf-8"))
