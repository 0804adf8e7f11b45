"""``skrank predict``: score the images of a folder or a CSV file with a saved ranker."""

from __future__ import annotations

import os
import sys

from skrank._quote import shown
from skrank.cli._common import (
    COMMANDS,
    HELP_FORMAT,
    RELATIVE_PATHS,
    CLIError,
    add_instruction_option,
    add_threads_option,
    check_stdout,
    instructions,
    load_model,
    model_images,
    predict_scores,
    prepare_out,
    read_csv,
    writing_stdout,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def find_images(folder: str) -> list[str]:
    """Image files under ``folder``, recursively, in sorted order; hidden entries are skipped."""
    if not os.path.isdir(folder):
        raise CLIError(f"no folder at {shown(folder)}")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(root, f)
            for f in sorted(files)
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    if not found:
        raise CLIError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {shown(folder)}")
    return found


def add_parser(sub) -> None:
    """Add the ``predict`` command to the sub-parsers ``sub``."""
    p = sub.add_parser(
        "predict",
        help=COMMANDS["predict"],
        description=(
            "Score images with a model written by `skrank fit`, and write a CSV file of\n"
            "path,score rows (higher score: more of what the instruction asks for).\n"
            "A FOLDER is searched recursively for image files, in any letter case:\n"
            + " ".join(e[1:] for e in IMAGE_EXTENSIONS)
            + " (hidden files and folders are skipped).\nWith --csv, the paths are "
            "written as they appear in the CSV.\n"
            "A preference model (`skrank fit --winner-column`) scores each image alone:\n"
            "higher ranks above, and a difference of two scores is the log-odds that the\n"
            "first ranks above the second (with --csv, name the column: --image-column).\n"
            + RELATIVE_PATHS
        ),
        epilog=(
            "examples:\n"
            "  skrank predict quality.skrank photos/ --out scores.csv --sort\n"
            "  skrank predict quality.skrank --csv new.csv --image-column file --out scores.csv"
        ),
        formatter_class=HELP_FORMAT,
    )
    p.add_argument("model", metavar="MODEL", help="model file written by `skrank fit`")
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="folder of images to score")
    p.add_argument("--csv", metavar="FILE", help="score the images listed in this CSV file instead")
    p.add_argument(
        "--image-column",
        metavar="COL",
        help="column of image paths in --csv (default: the column the model was fitted on; "
        "needed for a model fitted on comparisons)",
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
    add_instruction_option(p)
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Score the images of a folder or a CSV file and write path,score rows."""
    import numpy as np
    import pandas as pd

    from skrank._files import atomic_write

    if (args.csv is None) == (args.folder is None):
        raise CLIError("give either a FOLDER of images or --csv FILE (one of them)")
    if args.image_column is not None and args.csv is None:
        raise CLIError("--image-column is read from --csv; a FOLDER needs none")
    if args.out == "-":
        check_stdout("the scores (--out -)")
    ranker, _ = load_model(args.model, args.device)
    if args.csv is not None:
        df = read_csv(args.csv)
        images = model_images(args, ranker, df)
        shown, paths = images.given, images.paths
    else:
        df, paths = None, find_images(args.folder)
        shown = images = paths
    row_instructions = instructions(ranker, len(paths), args.instruction, df, args.csv)
    if args.out != "-":
        inputs = [("MODEL", args.model), ("--csv", args.csv)]
        if isinstance(ranker.pretrained, str) and os.path.isfile(ranker.pretrained):
            inputs.append(("model's --pretrained checkpoint", ranker.pretrained))
        inputs += [("image", path) for path in paths]
        prepare_out(args.out, inputs=inputs)
    scores = predict_scores(ranker, images, row_instructions, args.on_error)
    # object, not pandas' string dtype: that refuses file names that are not UTF-8.
    table = pd.DataFrame({"path": pd.Series(shown, dtype=object), "score": scores})
    if args.sort:
        table = table.sort_values("score", ascending=False, na_position="last", kind="stable")
    if args.out == "-":
        with writing_stdout():  # before saying so: the scores may not have reached it
            table.to_csv(sys.stdout, index=False, na_rep="NaN")
    else:
        text = table.to_csv(index=False, na_rep="NaN")
        # surrogateescape: a file name that is not UTF-8 is written back as its own bytes.
        atomic_write(args.out, text.encode("utf-8", "surrogateescape"))
    n_nan = int(np.isnan(scores).sum())
    note = f" ({n_nan} NaN: unreadable image(s))" if n_nan else ""
    where = "stdout" if args.out == "-" else args.out
    print(
        f"wrote {len(table)} score(s) to {where}{note}",
        file=sys.stderr if args.out == "-" else sys.stdout,
    )
    return 0
