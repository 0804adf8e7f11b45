"""Helpers shared by the commands: CSV reading, column checks, image paths, output files."""

from __future__ import annotations

import argparse
import os

# The sub-parsers keep the line breaks of their descriptions and examples.
HELP_FORMAT = argparse.RawDescriptionHelpFormatter


class CLIError(Exception):
    """An error reported as one line on stderr with a non-zero exit code."""


def add_instruction_option(parser) -> None:
    """Add ``--instruction`` to the parser of a command that scores with a saved model."""
    parser.add_argument(
        "--instruction",
        metavar="TEXT",
        help="which of the model's instructions to score by (for multi-instruction models)",
    )


def format_table(rows) -> str:
    """``rows`` (dicts with the same keys) as an aligned text table; numbers to 3 decimals."""
    keys = list(rows[0])
    cells = [[r[k] if isinstance(r[k], str) else f"{r[k]:.3f}" for k in keys] for r in rows]
    widths = [max(len(k), 10, *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths))
    out = [line, "-" * len(line)]
    for row in cells:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(out)


def _rows(index) -> str:
    """Positions in a CSV as row numbers (1 = the first row after the header)."""
    shown = ", ".join(str(int(i) + 1) for i in index[:10])
    return f"row(s) {shown}{', ...' if len(index) > 10 else ''} (1 = first row after the header)"


def read_csv(path: str):
    """The CSV file at ``path`` as a DataFrame of text cells."""
    import pandas as pd

    if os.path.isdir(path):
        raise CLIError(f"--csv {path!r} is a folder, not a CSV file")
    if not os.path.isfile(path):
        raise CLIError(f"no CSV file at {path!r}")
    try:
        return pd.read_csv(path, dtype=str)  # as text: '007.png' stays '007.png'
    except (ValueError, pd.errors.EmptyDataError) as exc:  # parser and decoding errors
        raise CLIError(f"cannot read {path!r} as CSV: {exc}") from None


def column(df, name: str, what: str, csv: str):
    """Column ``name`` of ``df``, which the option ``what`` named; an error lists the columns."""
    if name not in df.columns:
        raise CLIError(
            f"{what} {name!r} is not a column of {csv!r}; its columns are {list(df.columns)}"
        )
    return df[name]


def image_paths(df, name: str, what: str, csv: str) -> tuple[list[str], list[str]]:
    """(paths as written in the CSV, paths resolved against the CSV's folder)."""
    values = column(df, name, what, csv)
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


def targets(df, name: str, csv: str):
    """The numeric targets of column ``name`` (--target-column) as a float array."""
    import numpy as np
    import pandas as pd

    raw = column(df, name, "--target-column", csv)
    y = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise CLIError(
            f"--target-column {name!r} has {len(bad)} missing or non-numeric value(s), "
            f"first {raw.iloc[bad[0]]!r}: {_rows(bad)}"
        )
    return y


def prepare_out(path: str, option: str = "--out") -> None:
    """Fail before any long computation if ``path`` cannot be written; make its folder."""
    if os.path.isdir(path):
        raise CLIError(f"{option} {path!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option} {path!r}: the folder {folder!r} is not writable")


def instructions(ranker, n: int, instruction: str | None, df=None):
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


def predict_scores(ranker, paths: list[str], row_instructions, on_error: str):
    """The ranker's scores of the images at ``paths``, by ``row_instructions`` if not None."""
    import pandas as pd

    ranker.set_params(group_column=None)  # groups play no part in predictions
    if row_instructions is None:
        return ranker.predict(paths, on_error=on_error)
    X = pd.DataFrame({ranker.image_column: paths, ranker.instruction_column: row_instructions})
    return ranker.predict(X, on_error=on_error)


def model_images(args, ranker, df) -> tuple[list[str], list[str]]:
    """Image paths of the CSV, from --image-column or else the column the model was fitted on."""
    if args.image_column is not None:
        return image_paths(df, args.image_column, "--image-column", args.csv)
    what = "image column (the model's; set --image-column)"
    return image_paths(df, ranker.image_column, what, args.csv)
