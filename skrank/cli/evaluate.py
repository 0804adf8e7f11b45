"""``skrank evaluate``: predict the images of a CSV file and print metrics against its targets.

With a preference model (fitted on comparisons), the CSV's rows are comparisons and
the metrics say how its predictions agree with their winners.
"""

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
    is_preference,
    labels,
    load_model,
    model_images,
    predict_scores,
    read_csv,
    targets,
    writing_stdout,
)
from skrank.cli._comparisons import WINNER_HELP, ComparisonImages, given_options, metrics, winners

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
# ... and of a preference model's comparisons (skrank.cli._comparisons.metrics).
COMPARISON_METRICS = {
    "pairwise_accuracy": "pairwise accuracy (ties half)",
    "log_loss": "log loss (0.693: chance)",
    "brier": "Brier score (0.25: chance)",
}
_RANKER_ONLY = {
    "image_column": "--image-column",
    "target_column": "--target-column",
    "group_column": "--group-column",
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
            "the model was fitted on by `skrank fit`.\n"
            "With a preference model (`skrank fit --winner-column`), the CSV's rows are\n"
            "comparisons: it prints the pairwise accuracy (the share ordered as the winner\n"
            "column says; a tie counts half), the log loss and the Brier score of the\n"
            "predicted probabilities. Its image and winner columns default to the model's.\n"
            + RELATIVE_PATHS
        ),
        epilog=(
            "examples:\n"
            "  skrank evaluate quality.skrank --csv test.csv\n"
            "  skrank evaluate quality.skrank --csv test.csv --image-column file \\\n"
            "      --target-column quality --group-column photo\n"
            "  skrank evaluate votes.skrank --csv test-votes.csv --winner-column winner"
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
    pairs = e.add_argument_group("comparisons (with a model fitted on them)")
    pairs.add_argument(
        "--image-a-column",
        metavar="COL",
        help="column of each comparison's first image (default: the model's first)",
    )
    pairs.add_argument(
        "--image-b-column",
        metavar="COL",
        help="column of the second image (default: the model's second)",
    )
    pairs.add_argument(
        "--winner-column",
        metavar="COL",
        help=WINNER_HELP + " (default: the column the model was fitted on)",
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
    _check_options(args, is_preference(ranker))
    df = read_csv(args.csv)
    if is_preference(ranker):
        return _evaluate_comparisons(args, ranker, record, df)
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


def _check_options(args, preference: bool) -> None:
    """Refuse the options of the other kind of model, naming the model's kind."""
    if preference:
        wrong = [flag for dest, flag in _RANKER_ONLY.items() if getattr(args, dest) is not None]
        kind = "a preference model (fitted on comparisons): give --winner-column"
    else:
        wrong = given_options(args)
        kind = "a ranker (fitted on targets): give --image-column and --target-column"
    if wrong:
        raise CLIError(f"{wrong[0]} does not apply: MODEL {shown(args.model)} is {kind}")


def _evaluate_comparisons(args, model, record: dict, df) -> int:
    """Predict the comparisons of ``df`` with a preference model and print the metrics."""
    images = _comparison_images(args, model, df)
    winner, what = _winner_column(args, record)
    y = winners(df, winner, args.csv, what)
    texts = instructions(model, len(y), args.instruction, df, args.csv)
    if texts is not None:  # the rows say their instruction: the model's own is not used
        model.set_params(instruction=None)
        texts = (model.instruction_column, texts)
    with images.reading():
        p = model.predict_proba(images.frame(model.image_columns, texts))[:, 1]
    result = metrics(y, p)
    with writing_stdout():
        if args.json:
            print(json.dumps({"n_comparisons": len(y), **result}, indent=2))
            return 0
        print(f"{len(y)} comparisons; model {args.model}; winners {shown(winner)}")
        named = COMPARISON_METRICS.items()
        print(format_table([{"metric": label, "value": result[k]} for k, label in named]))
    return 0


def _comparison_images(args, model, df) -> ComparisonImages:
    """The CSV's two image columns: the options', else those the model was fitted on."""
    names, whats = [], []
    for flag, given, fitted, which in zip(
        ("--image-a-column", "--image-b-column"),
        (args.image_a_column, args.image_b_column),
        model.image_columns,
        ("first", "second"),
    ):
        names.append(fitted if given is None else given)
        whats.append(
            flag if given is not None else f"{which} image column (the model's; set {flag})"
        )
    if names[0] == names[1]:
        raise CLIError(f"{whats[1]} {shown(names[1])} is also the {whats[0]}")
    return ComparisonImages.of(df, tuple(names), tuple(whats), args.csv)


def _winner_column(args, record: dict) -> tuple[str, str]:
    """The winner column, and how to name it: --winner-column's, else the model's record."""
    if args.winner_column is not None:
        return args.winner_column, "--winner-column"
    if record.get("winner_column") is not None:
        return record["winner_column"], "winner column (the model's; set --winner-column)"
    raise CLIError(
        f"{shown(args.model)} records no winner column (it was saved by skrank.save): "
        "pass --winner-column COL"
    )
