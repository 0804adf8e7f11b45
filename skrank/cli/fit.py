"""``skrank fit``: fit a ranker on the images and targets of a CSV file and save it.

With ``--image-a-column``, ``--image-b-column`` and ``--winner-column`` instead of
``--image-column`` and ``--target-column``, the CSV's rows are comparisons of two
images and the model is a CLIPPreferenceRanker.
"""

from __future__ import annotations

import os
import time

from skrank._estimator.presets import PRESETS
from skrank._instruction import DEFAULT_INSTRUCTION
from skrank._quote import shown
from skrank.cli._common import (
    COMMANDS,
    HELP_FORMAT,
    RELATIVE_PATHS,
    CLIError,
    add_threads_option,
    image_paths,
    labels,
    prepare_out,
    read_csv,
    targets,
    writing_stdout,
)
from skrank.cli._comparisons import OPTIONS as COMPARISON_OPTIONS
from skrank.cli._comparisons import WINNER_HELP, ComparisonImages, given_options, winners

# Shown in --help only (the estimator's own defaults apply when an option is not
# given); tests/test_cli_commands.py checks they match CLIPRanker's.
FIT_DEFAULTS = {
    "preset": "auto",
    "lr": "auto",
    "batch_size": 64,
    "max_epochs": None,
    "pair_scope": "all",
}


def _lr(text: str):
    """``--lr``: "auto" or a float."""
    return "auto" if text == "auto" else float(text)


def _unused(name: str, columns) -> str:
    """``name``, or ``name`` with underscores appended until none of ``columns`` has it."""
    while name in columns:
        name += "_"
    return name


def add_parser(sub) -> None:
    """Add the ``fit`` command to the sub-parsers ``sub``."""
    f = sub.add_parser(
        "fit",
        help=COMMANDS["fit"],
        description=(
            "Fit a CLIPRanker on the images and numeric targets listed in a CSV file, and\n"
            "save it as one safetensors file (no pickle) for `skrank predict` and\n"
            "`skrank evaluate`; the file records the target column's name, which\n"
            "`skrank evaluate` reads unless given --target-column.\n"
            "Larger targets mean more of what the instruction asks for.\n"
            "With --image-a-column, --image-b-column and --winner-column instead, each row\n"
            "is a comparison of two images and the model a CLIPPreferenceRanker, which\n"
            "scores single images (`skrank predict`) and comparisons (`skrank evaluate`);\n"
            "the file records the winner column's name.\n" + RELATIVE_PATHS
        ),
        epilog=(
            "examples:\n"
            "  skrank fit --csv photos.csv --image-column file --target-column quality \\\n"
            '      --instruction "Sort the images by image quality." --out quality.skrank\n'
            "  skrank fit --csv votes.csv --image-a-column left --image-b-column right \\\n"
            '      --winner-column winner --instruction "Sort the images by image quality." \\\n'
            "      --out votes.skrank    # winner cells: a, b, tie, or a number in [0, 1]"
        ),
        formatter_class=HELP_FORMAT,
    )
    data = f.add_argument_group("data")
    data.add_argument("--csv", required=True, metavar="FILE", help="CSV file with a header row")
    data.add_argument(
        "--image-column", metavar="COL", help="column of image paths (with --target-column)"
    )
    data.add_argument("--target-column", metavar="COL", help="column of numeric targets")
    # Neither given: CLIPRanker's own default instruction, as CLIPRanker() fits with.
    what = data.add_mutually_exclusive_group()
    what.add_argument(
        "--instruction",
        metavar="TEXT",
        help='what to rank by, e.g. "Sort the images by sharpness." (default, with no '
        f"--instruction-column: {shown(DEFAULT_INSTRUCTION)}, a neutral request: the "
        "targets alone say what to rank by)",
    )
    what.add_argument(
        "--instruction-column",
        metavar="COL",
        help="column with one instruction per row (several tasks in one model)",
    )
    data.add_argument(
        "--group-column",
        metavar="COL",
        help="column of query groups (used by --pair-scope group; `skrank evaluate` "
        "averages metrics over them)",
    )
    data.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    pairs = f.add_argument_group(
        "comparisons (instead of --image-column and --target-column; no --group-column)"
    )
    pairs.add_argument(
        "--image-a-column", metavar="COL", help="column of the first image of each comparison"
    )
    pairs.add_argument("--image-b-column", metavar="COL", help="column of the second image")
    pairs.add_argument("--winner-column", metavar="COL", help=WINNER_HELP)
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
        "--preset",
        choices=("auto", *PRESETS),
        help="settings of the depth, head, loss weights, lr and step floor: the paper's "
        "model, or the shallow adapter for random towers; auto picks paper with "
        f"pretrained weights (default: {FIT_DEFAULTS['preset']})",
    )
    model.add_argument(
        "--epochs",
        dest="max_epochs",
        type=int,
        metavar="N",
        help="training epochs (default: 30, raised on small data to the preset's floor of "
        "optimiser steps)",
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
        help="peak learning rate, or auto: the preset's (the paper's 5e-5, from its "
        "reference's training command, or measured by "
        f"adapter width and depth for small-data) (default: {FIT_DEFAULTS['lr']})",
    )
    model.add_argument(
        "--pair-scope",
        choices=("all", "group"),
        help="pairs the ranking loss compares: all, or only within a group (default: all; "
        "not for comparisons)",
    )
    model.add_argument("--random-state", type=int, metavar="N", help="seed, for repeatable fits")
    model.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    add_threads_option(model)
    output = model.add_mutually_exclusive_group()
    output.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars and no training summary"
    )
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="one line per epoch (losses, validation, learning rate, seconds)",
    )
    # --pretrained none is the estimator's pretrained=None: messages say it so.
    f.set_defaults(func=run, none_words={"pretrained": "none"})


def run(args) -> int:
    """Fit a ranker on the images and targets (or comparisons) of a CSV file and save it."""
    t0 = time.perf_counter()
    comparisons = _comparisons(args)
    df = read_csv(args.csv)
    if comparisons:
        model, described = _fit_comparisons(args, df)
    else:
        model, described = _fit_ranker(args, df)
    with writing_stdout():
        if args.quiet:  # the one line: the estimator printed no summary
            print(
                f"fitted {model.n_iter_} epoch(s) on {described} in "
                f"{time.perf_counter() - t0:.1f} s; saved to {args.out}"
            )
        else:  # after the estimator's summary line (epochs, the epoch kept, seconds)
            print(f"{described}; saved to {args.out}")
    return 0


_RANKER = {"image_column": "--image-column", "target_column": "--target-column"}
_RANKER_ONLY = {"group_column": "--group-column", "pair_scope": "--pair-scope"}


def _comparisons(args) -> bool:
    """Whether ``args`` fit on comparisons; refuses a mix of the two ways, or half of one."""
    given = given_options(args)
    if not given:
        missing = [flag for dest, flag in _RANKER.items() if getattr(args, dest) is None]
        if missing:
            raise CLIError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                "(or, to fit on comparisons, --image-a-column, --image-b-column and "
                "--winner-column)"
            )
        return False
    for dest, flag in {**_RANKER, **_RANKER_ONLY}.items():
        if getattr(args, dest) is not None:
            raise CLIError(
                f"{flag} cannot go with {given[0]}: a ranker is fitted on --image-column and "
                "--target-column, a preference model on --image-a-column, --image-b-column "
                "and --winner-column"
            )
    missing = [flag for flag in COMPARISON_OPTIONS.values() if flag not in given]
    if missing:
        raise CLIError(
            f"{given[0]} needs {' and '.join(missing)}: a comparison names two images and "
            "which one ranks above"
        )
    return True


def _check_distinct(named: list, harmless=()) -> None:
    """No two options of ``named`` (``(option, column)`` pairs) name one column, but the
    pairs of options in ``harmless``."""
    for i, (option, name) in enumerate(named):
        for other, other_name in named[i + 1 :]:
            if name is not None and name == other_name and {option, other} not in harmless:
                raise CLIError(f"{other} {shown(name)} is also the {option}")


def _fit_ranker(args, df):
    """A CLIPRanker fitted on the images and targets of ``df``, saved; and what it saw."""
    import pandas as pd

    from skrank import CLIPRanker
    from skrank.persistence._io import save_with_cli

    named = [
        ("--image-column", args.image_column),
        ("--instruction-column", args.instruction_column),
        ("--group-column", args.group_column),
        ("--target-column", args.target_column),
    ]
    # A group column may hold the targets (odd but harmless); nothing else may repeat.
    _check_distinct(named, harmless=[{"--group-column", "--target-column"}])
    if args.pair_scope == "group" and args.group_column is None:
        raise CLIError("--pair-scope group needs --group-column (the column of the groups)")
    images = image_paths(df, args.image_column, "--image-column", args.csv)
    paths = images.paths
    # object, not pandas' string dtype: that refuses folder names that are not UTF-8.
    data = {args.image_column: pd.Series(paths, dtype=object)}
    if args.instruction_column is not None:
        data[args.instruction_column] = labels(
            df, args.instruction_column, "--instruction-column", args.csv
        ).to_numpy()
    if args.group_column is not None:
        groups = labels(df, args.group_column, "--group-column", args.csv)
        # Integer codes: group labels are only compared, and the pair mask needs numbers.
        data[args.group_column] = pd.factorize(groups)[0]
    y = targets(df, args.target_column, args.csv)
    _check_spread(y, data.get(args.instruction_column), args)
    params = _params(args, paths, data)
    params.update(image_column=args.image_column, group_column=args.group_column)
    if args.pair_scope is not None:
        params["pair_scope"] = args.pair_scope
    with images.reading():
        ranker = CLIPRanker(**params).fit(pd.DataFrame(data), y)
    save_with_cli(ranker, args.out, cli={"target_column": args.target_column})
    return ranker, f"{len(paths)} images"


def _fit_comparisons(args, df):
    """A CLIPPreferenceRanker fitted on the comparisons of ``df``, saved; and what it saw."""
    from skrank import CLIPPreferenceRanker
    from skrank.persistence._io import save_with_cli

    columns = (args.image_a_column, args.image_b_column)
    named = [
        ("--image-a-column", args.image_a_column),
        ("--image-b-column", args.image_b_column),
        ("--winner-column", args.winner_column),
        ("--instruction-column", args.instruction_column),
    ]
    _check_distinct(named)
    images = ComparisonImages.of(df, columns, ("--image-a-column", "--image-b-column"), args.csv)
    texts = None
    if args.instruction_column is not None:
        texts = labels(df, args.instruction_column, "--instruction-column", args.csv)
        texts = (args.instruction_column, texts.to_numpy())
    y = winners(df, args.winner_column, args.csv)
    X = images.frame(columns, texts)
    params = _params(args, images.paths, X.columns)
    params["image_columns"] = columns
    with images.reading():
        model = CLIPPreferenceRanker(**params).fit(X, y)
    save_with_cli(model, args.out, cli={"winner_column": args.winner_column})
    n_images = len(set(images.paths))
    return model, f"{len(y)} comparisons of {n_images} images"


def _params(args, paths: list, columns) -> dict:
    """The parameters both estimators take from the options, once ``--out`` is checked
    writable (``paths``: the images read; ``columns``: those the estimator gets)."""
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    inputs = [("--csv", args.csv)]
    if pretrained is not None and os.path.isfile(pretrained):
        inputs.append(("--pretrained checkpoint", pretrained))
    inputs += [("image listed in --csv", path) for path in paths]
    prepare_out(args.out, inputs=inputs)
    params = {
        "instruction": args.instruction,
        "backbone": args.backbone,
        "pretrained": pretrained,
        "device": args.device,
        "verbose": 0 if args.quiet else 2 if args.verbose else 1,
        # With --instruction, no column of the table may be read as instructions (the
        # estimator's default instruction_column, "instruction", could be an image column).
        "instruction_column": args.instruction_column or _unused("instruction", columns),
    }
    for param in ("preset", "max_epochs", "batch_size", "lr", "random_state"):
        if getattr(args, param) is not None:
            params[param] = getattr(args, param)
    return params


def _check_spread(y, row_instructions, args) -> None:
    """Every instruction needs two targets that differ to rank by (what fit would refuse)."""
    import numpy as np

    texts = np.full(len(y), "", dtype=object) if row_instructions is None else row_instructions
    for text in dict.fromkeys(texts):
        values = np.unique(y[texts == text])
        if len(values) < 2:
            which = f" for the instruction {shown(text)}" if row_instructions is not None else ""
            raise CLIError(
                f"--target-column {shown(args.target_column)} has {len(values)} distinct value(s)"
                f"{which} ({int((texts == text).sum())} row(s)); a ranking needs at least 2 "
                "different targets"
            )
