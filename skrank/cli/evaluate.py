"""``skrank evaluate``: predict the images of a CSV file and print metrics against its targets."""

from __future__ import annotations

import json
import math

from skrank._quote import shown
from skrank.cli._common import (
    COMMANDS,
    HELP_FORMAT,
    RELATIVE_PATHS,
    CLIError,
    add_instruction_option,
    add_threads_option,
    check_stdout,
    format_table,
    instructions,
    labels,
    load_model,
    model_images,
    predict_scores,
    read_csv,
    targets,
    writing_stdout,
)

# The keys of skrank.metrics.evaluation's tables, with the labels printed for them.
METRICS = {
    "srcc": "SRCC (Spearman)",
    "krcc": "KRCC (Kendall tau-b)",
    "plcc": "PLCC (Pearson)",
    "pairwise_accuracy": "pairwise accuracy",
    "mae": "MAE",
    # Integer targets of at most 20 values (age groups, decades): the paper's ordinal metrics.
    "ordinal_accuracy": "accuracy (rounded to classes)",
    "ordinal_mae": "MAE (rounded to classes)",
}


def add_parser(sub) -> None:
    """Add the ``evaluate`` command to the sub-parsers ``sub``."""
    e = sub.add_parser(
        "evaluate",
        help=COMMANDS["evaluate"],
        description=(
            "Predict the images listed in a CSV file with a model written by `skrank fit`\n"
            "and print every metric against the CSV's targets: SRCC (Spearman), KRCC\n"
            "(Kendall tau-b), PLCC (Pearson), pairwise accuracy and MAE. With a group\n"
            "column, each metric is also computed within every group and averaged over\n"
            "groups (unweighted). The image, target and group columns default to those\n"
            "the model was fitted on by `skrank fit`.\n" + RELATIVE_PATHS
        ),
        epilog=(
            "examples:\n"
            "  skrank evaluate quality.skrank --csv test.csv\n"
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
        "--target-column",
        metavar="COL",
        help="column of true numeric targets (default: the column the model was fitted on, "
        "which `skrank fit` records in the model file; needed for a model saved otherwise)",
    )
    e.add_argument(
        "--group-column",
        metavar="COL",
        help="column of groups for per-group means (default: the group column the model "
        "was fitted on, if any and if the CSV has it)",
    )
    add_instruction_option(e)
    add_threads_option(e)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=run)


def run(args) -> int:
    """Predict the images of a CSV file and print every metric against its targets."""
    import warnings

    import numpy as np

    from skrank.metrics import evaluation

    check_stdout("the metrics")
    ranker, record = load_model(args.model, args.device)
    df = read_csv(args.csv)
    images = model_images(args, ranker, df)
    if args.target_column is not None:
        target, what = args.target_column, "--target-column"
    elif record.get("target_column") is not None:
        target, what = record["target_column"], "target column (the model's; set --target-column)"
    else:
        raise CLIError(
            f"{shown(args.model)} records no target column (it was saved by skrank.save, or by "
            "an older skrank): pass --target-column COL"
        )
    y = targets(df, target, args.csv, what)
    group, what = args.group_column, "--group-column"
    if group is None and ranker.group_column is not None:
        group, what = ranker.group_column, "group column (the model's; set --group-column)"
        if not isinstance(group, str) or group not in df.columns:
            warnings.warn(
                f"the model's group column {shown(group)} is not a column of {shown(args.csv)}: "
                "pooled metrics only (--group-column names another)",
                UserWarning,
                stacklevel=2,
            )
            group = None
    groups = None
    if group is not None:
        groups = labels(df, group, what, args.csv).astype(str).to_numpy()
    row_instructions = instructions(ranker, len(images.paths), args.instruction, df, args.csv)
    pred = predict_scores(ranker, images, row_instructions, "raise")
    result = evaluation(y, pred, groups=groups)
    n_groups = None if groups is None else len(np.unique(groups))
    if args.json:
        clean = {
            part: {k: None if math.isnan(v) else v for k, v in values.items()}
            for part, values in result.items()
        }
        with writing_stdout():
            print(json.dumps({"n_images": len(y), "n_groups": n_groups, **clean}, indent=2))
        return 0
    columns = {"pooled": "pooled", "per_group_mean": "per-group mean"}
    rows = [
        {"metric": label, **{columns[part]: result[part][key] for part in result}}
        for key, label in METRICS.items()
        if key in result["pooled"]
    ]
    in_groups = f" in {n_groups} group(s) of {shown(group)}" if n_groups is not None else ""
    with writing_stdout():
        print(f"{len(y)} images{in_groups}; model {args.model}; targets {shown(target)}")
        print(format_table(rows))
    return 0
