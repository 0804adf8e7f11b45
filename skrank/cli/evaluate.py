"""``skrank evaluate``: predict the images of a CSV file and print metrics against its targets."""

from __future__ import annotations

import json
import math

from skrank.cli._common import (
    HELP_FORMAT,
    add_instruction_option,
    format_table,
    instructions,
    labels,
    model_images,
    predict_scores,
    read_csv,
    targets,
)

# The keys of skrank.metrics.evaluation's tables, with the labels printed for them.
METRICS = {
    "srcc": "SRCC (Spearman)",
    "krcc": "KRCC (Kendall tau-b)",
    "plcc": "PLCC (Pearson)",
    "pairwise_accuracy": "pairwise accuracy",
    "mae": "MAE",
}


def add_parser(sub) -> None:
    """Add the ``evaluate`` command to the sub-parsers ``sub``."""
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
        formatter_class=HELP_FORMAT,
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
    add_instruction_option(e)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=run)


def run(args) -> int:
    """Predict the images of a CSV file and print every metric against its targets."""
    import numpy as np

    from skrank import load
    from skrank.metrics import evaluation

    ranker = load(args.model)
    df = read_csv(args.csv)
    _, paths = model_images(args, ranker, df)
    y = targets(df, args.target_column, args.csv)
    groups = None
    if args.group_column is not None:
        groups = labels(df, args.group_column, "--group-column", args.csv).astype(str).to_numpy()
    row_instructions = instructions(ranker, len(paths), args.instruction, df, args.csv)
    pred = predict_scores(ranker, paths, row_instructions, "raise")
    result = evaluation(y, pred, groups=groups)
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
    print(format_table(rows))
    return 0
