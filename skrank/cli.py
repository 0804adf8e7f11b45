"""The ``skrank`` command line."""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import sys
import time
import warnings

__all__ = ["main"]

_DEMO_REAL = ("ViT-B-32", "openai")


class CLIError(Exception):
    """An error reported as one line on stderr with a non-zero exit code."""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _metrics_row(name, y, pred, groups):
    from sklearn.metrics import mean_absolute_error

    from skrank.metrics import plcc_score, spearman_score

    return {
        "method": name,
        "SRCC within photo": spearman_score(y, pred, groups=groups),
        "SRCC pooled": spearman_score(y, pred),
        "PLCC": plcc_score(y, pred),
        "MAE": mean_absolute_error(y, pred),
    }


def _table(rows) -> str:
    keys = list(rows[0])
    cells = [[r[k] if isinstance(r[k], str) else f"{r[k]:.3f}" for k in keys] for r in rows]
    widths = [max(len(k), 10, *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths))
    out = [line, "-" * len(line)]
    for row in cells:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(out)


def _choose_backbone(args) -> tuple[str, str | None, str]:
    from skrank.backbone import TINY, weights_on_disk

    if args.backbone:
        return args.backbone, args.pretrained, "asked for on the command line"
    if weights_on_disk(*_DEMO_REAL):
        return (*_DEMO_REAL, "its weights are already in the local cache")
    return (
        TINY,
        None,
        (
            f"{_DEMO_REAL[0]}/{_DEMO_REAL[1]} weights are not on this machine (offline demo); "
            "skrank-tiny is random, so it can learn low-level cues like blur but knows no semantics"
        ),
    )


def demo(args) -> int:
    """Fit a ranker on a synthetic blur task, compare with a ridge probe, write a report."""
    import numpy as np
    from sklearn.linear_model import RidgeCV

    from skrank import CLIPRanker
    from skrank.backbone import load_backbone
    from skrank.cache import embed_images
    from skrank.datasets import make_ranking_task
    from skrank.plotting import plot_history, plot_predictions, plot_ranking

    t0 = time.perf_counter()
    name, pretrained, why = _choose_backbone(args)
    print(f"backbone: {name} (pretrained={pretrained}): {why}")
    backbone = load_backbone(name, pretrained, "cpu" if args.device == "auto" else args.device)
    size = backbone.image_size[0]
    task = make_ranking_task(args.kind, image_size=size, random_state=0)
    groups = np.asarray(task.groups)
    sources = np.unique(groups)
    test = np.isin(groups, sources[::3])
    X = task.images
    X_train = [x for x, t in zip(X, test) if not t]
    X_test = [x for x, t in zip(X, test) if t]
    y_train, y_test = task.target[~test], task.target[test]
    print(
        f"task: {task.instruction!r}: {len(X)} images of {len(sources)} photos at {size} px; "
        f"{len(X_train)} train / {len(X_test)} test, split by photo"
    )
    ranker = CLIPRanker(
        task.instruction,
        backbone=name,
        pretrained=pretrained,
        device=args.device,
        random_state=0,
        verbose=1,
    )
    ranker.fit(X_train, y_train)
    pred = ranker.predict(X_test)

    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13))
    ridge.fit(embed_images(backbone, X_train), y_train)
    ridge_pred = ridge.predict(embed_images(backbone, X_test))

    rows = [
        _metrics_row("CLIPRanker", y_test, pred, groups[test]),
        _metrics_row("ridge probe", y_test, ridge_pred, groups[test]),
    ]
    print()
    print(_table(rows))
    print(
        "\nSRCC pooled over photos is bounded by how the photos differ before blurring;"
        " within-photo SRCC is the fair measure."
    )
    os.makedirs(args.out, exist_ok=True)
    figures = {
        "Test images in predicted order (highest first), with their true level": plot_ranking(
            X_test, pred, y_true=y_test, n=24
        ),
        "Predicted vs true (test set, colour = source photo)": plot_predictions(
            y_test, pred, groups=groups[test]
        ),
        "Training curves": plot_history(ranker.history_),
    }
    report = os.path.join(args.out, "report.html")
    _write_report(report, task, name, pretrained, why, rows, figures)
    print(f"\nreport: {report}  ({time.perf_counter() - t0:.0f} s in all)")
    return 0


def _write_report(path, task, name, pretrained, why, rows, figures):
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
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd}</style>",
        f"<h1>skrank demo: {html.escape(task.instruction)}</h1>",
        f"<p>Backbone <b>{html.escape(name)}</b> (pretrained={html.escape(str(pretrained))}):"
        f" {html.escape(why)}.</p>",
        f"<table><tr>{cells}</tr>{body}</table>",
    ]
    for title, fig in figures.items():
        parts.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{_png(fig)}'>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))


# ---------------------------------------------------------------------------
# fit / predict / evaluate: reading CSV files and folders

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Shown in --help only (the estimator's own defaults apply when an option is not
# given); tests/test_cli_commands.py checks they match CLIPRanker's.
FIT_DEFAULTS = {"lr": "auto", "batch_size": 64, "max_epochs": None, "pair_scope": "all"}


def _lr(text: str):
    """``--lr``: "auto" or a float."""
    return "auto" if text == "auto" else float(text)


def _rows(index) -> str:
    """Positions in a CSV as row numbers (1 = the first row after the header)."""
    shown = ", ".join(str(int(i) + 1) for i in index[:10])
    return f"row(s) {shown}{', ...' if len(index) > 10 else ''} (1 = first row after the header)"


def _read_csv(path: str):
    import pandas as pd

    if os.path.isdir(path):
        raise CLIError(f"--csv {path!r} is a folder, not a CSV file")
    if not os.path.isfile(path):
        raise CLIError(f"no CSV file at {path!r}")
    try:
        return pd.read_csv(path, dtype=str)  # as text: '007.png' stays '007.png'
    except (ValueError, pd.errors.EmptyDataError) as exc:  # parser and decoding errors
        raise CLIError(f"cannot read {path!r} as CSV: {exc}") from None


def _column(df, name: str, what: str, csv: str):
    if name not in df.columns:
        raise CLIError(
            f"{what} {name!r} is not a column of {csv!r}; its columns are {list(df.columns)}"
        )
    return df[name]


def _image_paths(df, name: str, what: str, csv: str) -> tuple[list[str], list[str]]:
    """(paths as written in the CSV, paths resolved against the CSV's folder)."""
    values = _column(df, name, what, csv)
    missing = values.isna().to_numpy().nonzero()[0]
    if len(missing):
        raise CLIError(f"{what} {name!r} has {len(missing)} empty cell(s): {_rows(missing)}")
    given = values.astype(str).tolist()
    folder = os.path.dirname(csv)
    resolved = []
    for path in given:
        path = os.path.expanduser(path)
        # URLs are left as they are: the image reader explains they are not supported.
        resolved.append(
            path if os.path.isabs(path) or "://" in path else os.path.join(folder, path)
        )
    return given, resolved


def _targets(df, name: str, csv: str):
    import numpy as np
    import pandas as pd

    raw = _column(df, name, "--target-column", csv)
    y = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise CLIError(
            f"--target-column {name!r} has {len(bad)} missing or non-numeric value(s), "
            f"first {raw.iloc[bad[0]]!r}: {_rows(bad)}"
        )
    return y


def find_images(folder: str) -> list[str]:
    """Image files under ``folder``, recursively, in sorted order; hidden entries are skipped."""
    if not os.path.isdir(folder):
        raise CLIError(f"no folder at {folder!r}")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(root, f)
            for f in sorted(files)
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    if not found:
        raise CLIError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder!r}")
    return found


def _prepare_out(path: str, option: str = "--out") -> None:
    """Fail before any long computation if ``path`` cannot be written; make its folder."""
    if os.path.isdir(path):
        raise CLIError(f"{option} {path!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option} {path!r}: the folder {folder!r} is not writable")


def _instructions(ranker, n: int, instruction: str | None, df=None):
    """Per-row instructions to predict with; None means the model's own single instruction."""
    import numpy as np

    if instruction is not None:
        return np.full(n, instruction, dtype=object)
    if ranker.instruction is not None:
        return None
    if df is not None and ranker.instruction_column in df.columns:
        return df[ranker.instruction_column].to_numpy(dtype=object)
    if len(ranker.instructions_) == 1:
        return np.full(n, ranker.instructions_[0], dtype=object)
    raise CLIError(
        f"the model knows {len(ranker.instructions_)} instructions {ranker.instructions_}; "
        f"choose one with --instruction, or give a CSV with a {ranker.instruction_column!r} column"
    )


def _predict(ranker, paths: list[str], instructions, on_error: str):
    import pandas as pd

    ranker.set_params(group_column=None)  # groups play no part in predictions
    if instructions is None:
        return ranker.predict(paths, on_error=on_error)
    X = pd.DataFrame({ranker.image_column: paths, ranker.instruction_column: instructions})
    return ranker.predict(X, on_error=on_error)


def _model_images(args, ranker, df) -> tuple[list[str], list[str]]:
    """Image paths of the CSV, from --image-column or else the column the model was fitted on."""
    if args.image_column is not None:
        return _image_paths(df, args.image_column, "--image-column", args.csv)
    what = "image column (the model's; set --image-column)"
    return _image_paths(df, ranker.image_column, what, args.csv)


# ---------------------------------------------------------------------------
# The commands


def fit(args) -> int:
    """Fit a ranker on the images and targets of a CSV file and save it."""
    import pandas as pd

    from skrank import CLIPRanker, save

    t0 = time.perf_counter()
    df = _read_csv(args.csv)
    _, paths = _image_paths(df, args.image_column, "--image-column", args.csv)
    data = {args.image_column: paths}
    for option, name in (
        ("--instruction-column", args.instruction_column),
        ("--group-column", args.group_column),
    ):
        if name is not None and name == args.image_column:
            raise CLIError(f"{option} {name!r} is also the --image-column")
    if args.instruction_column is not None:
        data[args.instruction_column] = _column(
            df, args.instruction_column, "--instruction-column", args.csv
        ).to_numpy()
    if args.group_column is not None:
        labels = _column(df, args.group_column, "--group-column", args.csv)
        # Integer codes: group labels are only compared, and the pair mask needs numbers.
        data[args.group_column] = pd.factorize(labels, use_na_sentinel=False)[0]
    y = _targets(df, args.target_column, args.csv)
    _prepare_out(args.out)
    params = {
        "instruction": args.instruction,
        "backbone": args.backbone,
        "pretrained": None if args.pretrained.lower() == "none" else args.pretrained,
        "device": args.device,
        "verbose": 0 if args.quiet else 1,
        "image_column": args.image_column,
        "group_column": args.group_column,
    }
    if args.instruction_column is not None:
        params["instruction_column"] = args.instruction_column
    for param in ("max_epochs", "batch_size", "lr", "random_state", "pair_scope"):
        if getattr(args, param) is not None:
            params[param] = getattr(args, param)
    ranker = CLIPRanker(**params).fit(pd.DataFrame(data), y)
    save(ranker, args.out)
    print(
        f"fitted {ranker.n_iter_} epoch(s) on {len(paths)} images in "
        f"{time.perf_counter() - t0:.1f} s; saved to {args.out}"
    )
    return 0


def predict(args) -> int:
    """Score the images of a folder or a CSV file and write path,score rows."""
    import numpy as np
    import pandas as pd

    from skrank import load

    if (args.csv is None) == (args.folder is None):
        raise CLIError("give either a FOLDER of images or --csv FILE (one of them)")
    if args.image_column is not None and args.csv is None:
        raise CLIError("--image-column is read from --csv; a FOLDER needs none")
    if args.out != "-":
        _prepare_out(args.out)
    ranker = load(args.model)
    if args.csv is not None:
        df = _read_csv(args.csv)
        shown, paths = _model_images(args, ranker, df)
    else:
        df, paths = None, find_images(args.folder)
        shown = paths
    scores = _predict(
        ranker, paths, _instructions(ranker, len(paths), args.instruction, df), args.on_error
    )
    table = pd.DataFrame({"path": shown, "score": scores})
    if args.sort:
        table = table.sort_values("score", ascending=False, na_position="last", kind="stable")
    table.to_csv(sys.stdout if args.out == "-" else args.out, index=False, na_rep="NaN")
    n_nan = int(np.isnan(scores).sum())
    note = f" ({n_nan} NaN: unreadable image(s))" if n_nan else ""
    where = "stdout" if args.out == "-" else args.out
    print(
        f"wrote {len(table)} score(s) to {where}{note}",
        file=sys.stderr if args.out == "-" else sys.stdout,
    )
    return 0


METRICS = {
    "srcc": "SRCC (Spearman)",
    "krcc": "KRCC (Kendall tau-b)",
    "plcc": "PLCC (Pearson)",
    "pairwise_accuracy": "pairwise accuracy",
    "mae": "MAE",
}


def _mae(y, pred, groups=None) -> float:
    import numpy as np

    if groups is None:
        return float(np.mean(np.abs(y - pred)))
    return float(np.mean([_mae(y[groups == g], pred[groups == g]) for g in np.unique(groups)]))


def evaluation(y, pred, groups=None) -> dict:
    """Every metric of ``METRICS``: pooled, and (with groups) the unweighted mean over groups."""
    from skrank.metrics import kendall_score, pairwise_accuracy, plcc_score, spearman_score

    def scores(g):
        return {
            "srcc": spearman_score(y, pred, groups=g),
            "krcc": kendall_score(y, pred, groups=g),
            "plcc": plcc_score(y, pred, groups=g),
            "pairwise_accuracy": pairwise_accuracy(y, pred, groups=g),
            "mae": _mae(y, pred, g),
        }

    return {
        "pooled": scores(None),
        **({"per_group_mean": scores(groups)} if groups is not None else {}),
    }


def evaluate(args) -> int:
    """Predict the images of a CSV file and print every metric against its targets."""
    import math

    import numpy as np

    from skrank import load

    ranker = load(args.model)
    df = _read_csv(args.csv)
    _, paths = _model_images(args, ranker, df)
    y = _targets(df, args.target_column, args.csv)
    groups = None
    if args.group_column is not None:
        groups = _column(df, args.group_column, "--group-column", args.csv).astype(str).to_numpy()
    pred = _predict(ranker, paths, _instructions(ranker, len(paths), args.instruction, df), "raise")
    result = evaluation(y, pred, groups)
    n_groups = None if groups is None else len(np.unique(groups))
    if args.json:
        clean = {
            part: {k: None if math.isnan(v) else v for k, v in values.items()}
            for part, values in result.items()
        }
        print(json.dumps({"n_images": len(y), "n_groups": n_groups, **clean}, indent=2))
        return 0
    columns = {"pooled": "pooled", "per_group_mean": "per-group mean"}
    rows = [
        {"metric": label, **{columns[part]: result[part][key] for part in result}}
        for key, label in METRICS.items()
    ]
    in_groups = f" in {n_groups} group(s)" if n_groups is not None else ""
    print(f"{len(y)} images{in_groups}; model {args.model}; targets {args.target_column!r}")
    print(_table(rows))
    return 0


# ---------------------------------------------------------------------------
# Parser and entry point


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: ``skrank fit: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


_FORMAT = argparse.RawDescriptionHelpFormatter


def _add_fit(sub) -> None:
    f = sub.add_parser(
        "fit",
        help="fit a ranker on images and targets listed in a CSV file, and save it",
        description=(
            "Fit a CLIPRanker on the images and numeric targets listed in a CSV file, and\n"
            "save it as one safetensors file (no pickle) for `skrank predict` and\n"
            "`skrank evaluate`. Relative image paths are read from the CSV's folder.\n"
            "Larger targets mean more of what the instruction asks for."
        ),
        epilog=(
            "example:\n"
            "  skrank fit --csv photos.csv --image-column file --target-column quality \\\n"
            '      --instruction "Sort the images by image quality." --out quality.skrank'
        ),
        formatter_class=_FORMAT,
    )
    data = f.add_argument_group("data")
    data.add_argument("--csv", required=True, metavar="FILE", help="CSV file with a header row")
    data.add_argument("--image-column", required=True, metavar="COL", help="column of image paths")
    data.add_argument(
        "--target-column", required=True, metavar="COL", help="column of numeric targets"
    )
    what = data.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--instruction",
        metavar="TEXT",
        help='what to rank by, e.g. "Sort the images by sharpness."',
    )
    what.add_argument(
        "--instruction-column",
        metavar="COL",
        help="column with one instruction per row (several tasks in one model)",
    )
    data.add_argument(
        "--group-column",
        metavar="COL",
        help="column of query groups (used by --pair-scope group)",
    )
    data.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    model = f.add_argument_group("model and training")
    model.add_argument(
        "--backbone", default="ViT-B-16", help="open_clip model name (default: ViT-B-16)"
    )
    model.add_argument(
        "--pretrained",
        default="openai",
        metavar="TAG",
        help="open_clip tag, checkpoint file, or 'none' for random weights (default: openai)",
    )
    model.add_argument(
        "--epochs",
        dest="max_epochs",
        type=int,
        metavar="N",
        help="training epochs (default: 30, raised on small data to 300 optimiser steps)",
    )
    model.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"images per step (default: {FIT_DEFAULTS['batch_size']})",
    )
    model.add_argument(
        "--lr",
        type=_lr,
        metavar="X",
        help="peak learning rate, or auto: 1e-4 * sqrt(512 / adapter width) "
        f"(default: {FIT_DEFAULTS['lr']})",
    )
    model.add_argument(
        "--pair-scope",
        choices=("all", "group"),
        help="pairs the ranking loss compares: all, or only within a group (default: all)",
    )
    model.add_argument("--random-state", type=int, metavar="N", help="seed, for repeatable fits")
    model.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    model.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=fit)


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="score images (a folder or a CSV file) with a saved ranker",
        description=(
            "Score images with a model written by `skrank fit`, and write a CSV file of\n"
            "path,score rows (higher score: more of what the instruction asks for).\n"
            "A FOLDER is searched recursively for image files, in any letter case:\n"
            + " ".join(e[1:] for e in IMAGE_EXTENSIONS)
            + " (hidden files and folders are skipped).\nWith --csv, relative image paths "
            "are read from the CSV's folder and written\nas they appear in the CSV."
        ),
        epilog=(
            "examples:\n"
            "  skrank predict quality.skrank photos/ --out scores.csv --sort\n"
            "  skrank predict quality.skrank --csv new.csv --image-column file --out scores.csv"
        ),
        formatter_class=_FORMAT,
    )
    p.add_argument("model", metavar="MODEL", help="model file written by `skrank fit`")
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="folder of images to score")
    p.add_argument("--csv", metavar="FILE", help="score the images listed in this CSV file instead")
    p.add_argument(
        "--image-column",
        metavar="COL",
        help="column of image paths in --csv (default: the column the model was fitted on)",
    )
    p.add_argument(
        "--out", required=True, metavar="FILE", help="CSV file to write ('-': standard output)"
    )
    p.add_argument("--sort", action="store_true", help="highest score first (NaN last)")
    p.add_argument(
        "--on-error",
        choices=("raise", "nan"),
        default="raise",
        help="unreadable images: stop with an error, or score them NaN (default: raise)",
    )
    p.add_argument(
        "--instruction",
        metavar="TEXT",
        help="which of the model's instructions to score by (for multi-instruction models)",
    )
    p.set_defaults(func=predict)


def _add_evaluate(sub) -> None:
    e = sub.add_parser(
        "evaluate",
        help="score the images of a CSV file and print ranking metrics against its targets",
        description=(
            "Predict the images listed in a CSV file with a model written by `skrank fit`\n"
            "and print every metric against the CSV's targets: SRCC (Spearman), KRCC\n"
            "(Kendall tau-b), PLCC (Pearson), pairwise accuracy and MAE. With\n"
            "--group-column, each metric is also computed within every group and averaged\n"
            "over groups (unweighted). Relative image paths are read from the CSV's folder."
        ),
        epilog=(
            "example:\n"
            "  skrank evaluate quality.skrank --csv test.csv --image-column file \\\n"
            "      --target-column quality --group-column photo"
        ),
        formatter_class=_FORMAT,
    )
    e.add_argument("model", metavar="MODEL", help="model file written by `skrank fit`")
    e.add_argument("--csv", required=True, metavar="FILE", help="CSV file with a header row")
    e.add_argument(
        "--image-column",
        metavar="COL",
        help="column of image paths (default: the column the model was fitted on)",
    )
    e.add_argument(
        "--target-column", required=True, metavar="COL", help="column of true numeric targets"
    )
    e.add_argument("--group-column", metavar="COL", help="column of groups for per-group means")
    e.add_argument(
        "--instruction",
        metavar="TEXT",
        help="which of the model's instructions to score by (for multi-instruction models)",
    )
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=evaluate)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="skrank", description="Rank images by an instruction.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="fit a ranker on a synthetic task and write a report")
    d.add_argument("--out", default="skrank-demo", help="folder for report.html")
    d.add_argument(
        "--backbone", help="open_clip model name (default: ViT-B-32 if cached, else skrank-tiny)"
    )
    d.add_argument("--pretrained", help="open_clip tag or checkpoint file for --backbone")
    d.add_argument("--kind", default="blur", help="synthetic task kind (default: blur)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    d.set_defaults(func=demo)
    _add_fit(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    return p


def _one_line(text: str) -> str:
    """A message as one line: its first line, plus the first entry when a list follows."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return str(text)
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0][:-1]}; first: {lines[1]}"
    return lines[0]


def main(argv=None) -> int:
    """Run ``skrank COMMAND ...``; return the exit status (0: success)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed (2)
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "demo":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never downloads
    from skrank.images import ImageLoadError

    prefix = f"skrank {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():  # restores showwarning on exit
        warnings.showwarning = show_warning
        try:
            return args.func(args)
        except ImageLoadError as exc:
            hint = " (--on-error nan scores them NaN instead)" if args.command == "predict" else ""
            print(f"{prefix}: error: {_one_line(exc)}{hint}", file=sys.stderr)
            return 2
        except (CLIError, ValueError, TypeError, OSError, RuntimeError) as exc:
            print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
