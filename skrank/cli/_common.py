"""Helpers shared by the commands: CSV reading, column checks, image paths, output files.

The command line's vocabulary (option checks, the library's messages in the
command's words) is in :mod:`skrank.cli._words`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass

from skrank._quote import shown

# The sub-parsers keep the line breaks of their descriptions and examples.
HELP_FORMAT = argparse.RawDescriptionHelpFormatter

# How every command that reads a CSV finds its images; each --help says it in these words.
RELATIVE_PATHS = (
    "Relative image paths are resolved against the CSV's folder and, where no file\n"
    "is there, against the current folder."
)

# The commands, in the order `skrank --help` lists them, with the line it shows for each.
# Each is defined, parser and all, in the module skrank.cli.<name>, which skrank.cli._main
# imports only to run that command (or show its --help): `skrank --version` and
# `skrank --help` need this table alone.
COMMANDS = {
    "demo": "fit a ranker on a synthetic task and write a report",
    "fit": "fit a ranker on images and targets (or comparisons) listed in a CSV file; save it",
    "predict": "score images (a folder or a CSV file) with a saved ranker",
    "evaluate": "score the images (or comparisons) of a CSV file and print ranking metrics",
}


class CLIError(Exception):
    """An error reported as one line on stderr with a non-zero exit code."""


class UnreadableImages(CLIError):
    """Images listed in a CSV could not be read (``ImageLoadError``, in the CSV's terms)."""


def add_instruction_option(parser) -> None:
    """Add ``--instruction`` and ``--device`` to a command that scores with a saved model."""
    parser.add_argument(
        "--instruction",
        metavar="TEXT",
        help="which of the model's instructions to score by (for multi-instruction models)",
    )
    parser.add_argument(
        "--device",
        metavar="DEV",
        help="where to score: auto, cpu, cuda, cuda:N or mps (default: the model's own; "
        "a model fitted on a GPU scores on a CPU-only machine with --device cpu)",
    )


# --threads: more than this is a typo, not a machine.
MAX_THREADS = 1024


def add_threads_option(parser) -> None:
    """Add ``--threads`` to a command that fits or predicts (:func:`torch_threads` applies it)."""
    parser.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help="CPU threads for torch's computations (default: torch's own, about one per "
        "core); on a machine shared with other work, 1 is often fastest",
    )


def thread_count(text: str) -> int:
    """``--threads``: an integer in [1, MAX_THREADS]."""
    expected = f"an integer in [1, {MAX_THREADS}]"
    if text == "":
        raise argparse.ArgumentTypeError(f"is empty; expected {expected}")
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not {expected}") from None
    if not 1 <= n <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not valid; expected {expected}")
    return n


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Torch's intra-op threads set to ``n`` inside the block (unchanged for None), then restored.

    Restored so that ``main`` called in a process (tests, a notebook) leaves it as it was.
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    """The CSV file at ``path`` as a DataFrame of text cells, with at least one row.

    The header's names as written (pandas renames a repeated ``x`` to ``x.1``)
    are kept in ``df.attrs["header"]`` so that :func:`column` can refuse a
    name that is not unique.
    """
    import pandas as pd

    if not path:
        raise CLIError("--csv is empty; give a CSV file name")
    if os.path.isdir(path):
        raise CLIError(f"--csv {shown(path)} is a folder, not a CSV file")
    if not os.path.isfile(path):
        raise CLIError(f"no CSV file at {shown(path)}")
    with open(path, "rb") as fh:
        if b"\0" in fh.read(1 << 16):
            raise CLIError(
                f"cannot read {shown(path)} as CSV: it is a binary file (it holds NUL bytes)"
            )
    try:
        with warnings.catch_warnings():
            # index_col=False: a row longer than the header is not silently read as an
            # index (which shifts every cell); pandas warns instead, and that is an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # As text: '007.png' stays '007.png'.
            df = pd.read_csv(path, dtype=str, encoding="utf-8", index_col=False)
        header = pd.read_csv(path, dtype=str, encoding="utf-8", header=None, nrows=1)
    except UnicodeDecodeError as exc:  # its offset is within pandas' chunk: not shown
        raise CLIError(
            f"cannot read {shown(path)} as CSV: it is not UTF-8 text (byte "
            f"{exc.object[exc.start]:#04x} is no UTF-8); save it as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise CLIError(
            f"cannot read {shown(path)} as CSV: the file is empty (no header row)"
        ) from None
    except pd.errors.ParserWarning:
        raise CLIError(
            f"cannot read {shown(path)} as CSV: a row has more cells than the header has names"
        ) from None
    except ValueError as exc:  # pandas' ParserError is one
        raise CLIError(f"cannot read {shown(path)} as CSV: {_one_line_text(exc)}") from None
    if df.empty:
        raise CLIError(f"{shown(path)} has a header row but no data rows")
    df.attrs["header"] = ["" if pd.isna(h) else str(h) for h in header.iloc[0].tolist()]
    return df


def _one_line_text(exc) -> str:
    """A dependency's message on one line (pandas' parser errors span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def column(df, name: str, what: str, csv: str):
    """Column ``name`` of ``df``, which the option ``what`` named; an error lists the columns.

    A name the CSV's header repeats is refused (pandas would quietly read the
    first and call the others ``name.1``, ...): which column was meant cannot be told.
    """
    columns = list(df.columns)
    header = df.attrs.get("header", columns)
    if name not in columns:
        raise CLIError(
            f"{what} {shown(name)} is not a column of {shown(csv)}; its columns are {shown(header)}"
        )
    position = columns.index(name)
    written = header[position] if position < len(header) and header[position] else name
    if header.count(written) > 1:
        raise CLIError(
            f"{what} {shown(name)}: the header of {shown(csv)} has {header.count(written)} "
            f"columns named {shown(written)}; give the columns unique names"
        )
    return df[name]


def resolve_image_path(path: str, folder: str) -> tuple[str, bool]:
    """Where the image a CSV names as ``path`` is, and whether it is relative.

    A relative path is looked for in the CSV's ``folder`` first, then in the
    current folder; found in neither, it stays the CSV-folder one (so the
    missing-file error names it there). ``~`` is expanded; absolute paths and
    URLs (which the image reader refuses, saying why) are kept as they are.
    """
    path = os.path.expanduser(path)
    if os.path.isabs(path) or "://" in path:
        return path, False
    beside = os.path.join(folder, path)
    if os.path.lexists(beside) or not os.path.lexists(path):
        return beside, True
    return path, True


class CSVReading:
    """``reading()`` for the image columns of a CSV: an ``ImageLoadError`` raised inside
    the block becomes one line in the CSV's terms, by the class's ``unreadable``."""

    @contextlib.contextmanager
    def reading(self):
        """Report an ``ImageLoadError`` inside the block in the CSV's terms (rows, cells)."""
        from skrank._encoding.images import ImageLoadError

        try:
            yield
        except ImageLoadError as exc:
            if not exc.failures:
                raise
            raise UnreadableImages(self.unreadable(exc.failures)) from None

    def unreadable(self, failures) -> str:  # pragma: no cover - each class has its own
        raise NotImplementedError


@dataclass
class CSVImages(CSVReading):
    """The images of a CSV column: as written, where they were found, and how to name them."""

    what: str  # the option that named the column, or how the default is described
    name: str
    csv: str
    given: list  # the cells, as written in the CSV
    paths: list  # where each was found (resolve_image_path)
    relative: list  # whether each cell is a relative path

    def unreadable(self, failures) -> str:
        """One line: how many could not be read, and the first, by CSV row and cell."""
        i, _, reason = failures[0]
        reason = " ".join(str(reason).split())
        if i < len(self.given) and reason == "file not found" and self.relative[i]:
            reason = "file not found in the CSV's folder or in the current folder"
        cell = shown(self.given[i]) if i < len(self.given) else f"[{i}]"
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return (
            f"{self.what} {shown(self.name)} of {shown(self.csv)}: {len(failures)} image(s) "
            f"could not be read; first: row {i + 1} {cell}: {reason}{more}"
        )


def image_paths(df, name: str, what: str, csv: str) -> CSVImages:
    """The image paths of column ``name`` (which ``what`` named), found as RELATIVE_PATHS says."""
    values = column(df, name, what, csv)
    missing = values.isna().to_numpy().nonzero()[0]
    if len(missing):
        raise CLIError(f"{what} {shown(name)} has {len(missing)} empty cell(s): {_rows(missing)}")
    given = values.astype(str).tolist()
    folder = os.path.dirname(csv)
    found = [resolve_image_path(path, folder) for path in given]
    return CSVImages(
        what, name, csv, given, [p for p, _ in found], [relative for _, relative in found]
    )


def labels(df, name: str, what: str, csv: str, hint: str = ""):
    """Column ``name`` (an instruction or group column) with every cell filled.

    A cell of only spaces is as empty as a blank one.
    """
    values = column(df, name, what, csv)
    blank = values.isna() | (values.astype(str).str.strip() == "")
    missing = blank.to_numpy().nonzero()[0]
    if len(missing):
        raise CLIError(
            f"{what} {shown(name)} has {len(missing)} empty or blank cell(s): "
            f"{_rows(missing)}{hint}"
        )
    return values


def targets(df, name: str, csv: str, what: str = "--target-column"):
    """The numeric targets of column ``name`` (which ``what`` named) as a float array."""
    import numpy as np
    import pandas as pd

    raw = column(df, name, what, csv)
    y = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise CLIError(
            f"{what} {shown(name)} has {len(bad)} missing or non-numeric value(s), "
            f"first {shown(raw.iloc[bad[0]])}: {_rows(bad)}"
        )
    return y


def prepare_out(
    path: str, option: str = "--out", inputs=(), folder: bool = False, writes=()
) -> None:
    """Fail now, before any long computation, if the output ``path`` cannot be written.

    Refused: an empty name; a folder where a file is expected (or a file where a
    folder is); a location whose folder is a file, cannot be created or is not
    writable; a special file (a device or a pipe); and an output that is one of
    the command's ``inputs`` (``(what, path)`` pairs), through a symbolic or
    hard link too, or (``folder=True``) a folder that holds one. Missing folders
    are created. ``writes`` names the files a folder output will hold.
    """
    kind = "folder" if folder else "file"
    if not path or not path.strip():
        raise CLIError(f"{option} is empty; give a {kind} name")
    if "\0" in path:
        raise CLIError(f"{option} {shown(path)} contains a NUL character")
    if folder:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise CLIError(f"{option} {shown(path)} is a file; give a folder name")
        target_folder = path
    else:
        if os.path.isdir(path):
            raise CLIError(f"{option} {shown(path)} is a folder; give a file name")
        if path.endswith(tuple(s for s in (os.sep, os.altsep) if s)):
            raise CLIError(f"{option} {shown(path)} ends with a path separator; give a file name")
        target_folder = os.path.dirname(os.path.abspath(path))
    _check_folder(target_folder, option, path)
    _refuse_inputs(path, option, inputs, folder)
    try:
        os.makedirs(target_folder, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{option} {shown(path)}: cannot create the folder: {exc}") from None
    files = [os.path.join(path, name) for name in writes] if folder else [path]
    for file in files:
        _probe(file, option, path)


def check_stdout(what: str) -> None:
    """Fail now, before any work, if standard output (where ``what`` goes) is closed.

    Python replaces a stdout closed at start-up (``>&-``) by None, and ``print``
    then writes nothing without an error: the command would succeed silently.
    A descriptor opened for reading only is refused for the same reason. A
    stream without a descriptor (captured, in tests) is taken as writable.
    """
    stream = sys.stdout
    if stream is None:
        raise CLIError(f"standard output is closed: nowhere to write {what}")
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return
    try:
        os.fstat(fd)
    except OSError:
        raise CLIError(f"standard output is closed: nowhere to write {what}") from None
    try:
        import fcntl
    except ImportError:  # Windows: no access mode to read
        return
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
        raise CLIError(f"standard output is open for reading only: nowhere to write {what}")


@contextlib.contextmanager
def writing_stdout():
    """Write to standard output in the block, then flush it; a failed write is an error.

    A full disk (``> /dev/full``) fails a write or the flush with an
    ``OSError``: it becomes a :class:`CLIError` saying so, where it would
    otherwise surface at exit or not at all. ``BrokenPipeError`` (the reader
    left: ``| head``) passes through unchanged.
    """
    try:
        yield
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CLIError(f"cannot write to standard output: {exc.strerror or exc}") from None


def flush_stdout() -> None:
    """Flush standard output at the end of a command, as :func:`writing_stdout` does."""
    with writing_stdout():
        pass


def _check_folder(folder: str, option: str, path: str) -> None:
    """The nearest existing folder above (or at) ``folder`` must be a writable directory."""
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CLIError(f"{option} {shown(path)}: {shown(existing)} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {shown(path)}: the folder {shown(existing)} is not writable")


def _probe(file: str, option: str, path: str) -> None:
    """Check that ``file`` can be written in place, without changing what exists."""
    from skrank._files import NotRegularFileError, check_destination

    if os.path.isdir(file):
        raise CLIError(f"{option} {shown(path)}: {shown(file)} is a folder; it must be a file")
    try:
        check_destination(file)
    except NotRegularFileError:
        raise CLIError(
            f"{option} {shown(path)} is not a regular file (a device or a pipe); "
            "give a file name ('-' where standard output is accepted)"
        ) from None
    if os.path.exists(file):
        if not os.access(file, os.W_OK):
            raise CLIError(f"{option} {shown(path)} is read-only")
        try:  # the file is replaced through a temporary in its folder
            with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(file))):
                pass
        except OSError as exc:
            raise CLIError(
                f"{option} {shown(path)} cannot be written: {exc.strerror or exc}"
            ) from None
        return
    try:  # create and remove the file itself: this also checks its name's length
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by someone else: it exists, so it is nameable
        return
    except OSError as exc:
        raise CLIError(f"{option} {shown(path)} cannot be written: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(file)


def _refuse_inputs(path: str, option: str, inputs, folder: bool) -> None:
    """Refuse an output that is, or (a folder) holds, one of the ``inputs``.

    A file output that does not exist yet cannot be an existing input, so
    comparing inodes (which sees through symbolic and hard links) suffices;
    a folder output also compares resolved paths, to find inputs inside it.
    """
    out_stat = _stat(path)
    out_real = os.path.normcase(os.path.realpath(path)).rstrip(os.sep) + os.sep
    for what, given in inputs:
        if not given:
            continue
        if out_stat is not None and _same(out_stat, _stat(given)):
            raise CLIError(
                f"{option} {shown(path)} is the {what} {shown(given)}: writing it would "
                "destroy the input; give another output name"
            )
        if folder and os.path.normcase(os.path.realpath(given)).startswith(out_real):
            raise CLIError(
                f"{option} {shown(path)} holds the {what} {shown(given)}; give a folder that holds "
                "none of the inputs"
            )


def _stat(path: str):
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _same(a, b) -> bool:
    """Whether two ``os.stat`` results are one file (``os.path.samefile`` without re-stat)."""
    return b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def load_model(path: str, device: str | None = None):
    """``(ranker, cli record)`` of the model file MODEL (on ``device`` when given); a
    refusal is about the file, as written."""
    from skrank._devices import resolve_device
    from skrank.persistence._io import load_with_cli

    if device is not None:
        resolve_device(device)  # a device this machine lacks is the option's fault, not the file's
    try:
        return load_with_cli(path, **({} if device is None else {"device": device}))
    except (ValueError, FileNotFoundError) as exc:  # the file's fault: no option to name
        raise CLIError(str(exc)) from None


def instructions(ranker, n: int, instruction: str | None, df=None, csv: str | None = None):
    """Per-row instructions to predict with; None means the model's own single instruction.

    An instruction the model was not fitted on (from --instruction or from the
    model's instruction column) is refused here, naming where it came from.
    """
    import numpy as np

    known = list(ranker.instructions_)
    if instruction is not None:
        if instruction not in known:
            raise CLIError(
                f"--instruction {shown(instruction)} is not an instruction of the model; it knows "
                f"{_listed(known)}"
            )
        return np.full(n, instruction, dtype=object)
    if ranker.instruction is not None:
        return None
    if df is not None and ranker.instruction_column in df.columns:
        what = "instruction column (the model's)"
        texts = labels(df, ranker.instruction_column, what, csv, hint=_ONE_INSTRUCTION)
        unknown = sorted(set(texts) - set(known))
        if unknown:
            raise CLIError(
                f"{what} {shown(ranker.instruction_column)} of {shown(csv)} holds {len(unknown)} "
                f"instruction(s) the model was not fitted on, first {shown(unknown[0])}; it knows "
                f"{_listed(known)}{_ONE_INSTRUCTION}"
            )
        return texts.to_numpy(dtype=object)
    if len(known) == 1:
        return np.full(n, known[0], dtype=object)
    raise CLIError(
        f"the model knows {len(known)} instructions {shown(known)}; choose one with "
        f"--instruction, or give a CSV with a {shown(ranker.instruction_column)} column"
    )


_ONE_INSTRUCTION = " (or score every row by one of them with --instruction)"


def _listed(items, limit: int = 5) -> str:
    """``'a', 'b'``, or, for many, ``12 instructions: 'a', 'b', ...``."""
    listed = ", ".join(shown(t) for t in items[:limit])
    return listed if len(items) <= limit else f"{len(items)} instructions: {listed}, ..."


def is_preference(model) -> bool:
    """Whether a loaded model is a CLIPPreferenceRanker (fitted on comparisons)."""
    from skrank._estimator.preference_ranker import CLIPPreferenceRanker

    return isinstance(model, CLIPPreferenceRanker)


def predict_scores(ranker, images, row_instructions, on_error: str):
    """The ranker's scores of ``images`` (paths, or CSVImages), by ``row_instructions`` if given.

    A preference model's are its per-image scores (``score_images``).
    """
    import pandas as pd

    if is_preference(ranker):
        score, column = ranker.score_images, "image"  # the column score_images reads
    else:
        ranker.set_params(group_column=None)  # groups play no part in predictions
        score, column = ranker.predict, ranker.image_column
    paths = images.paths if isinstance(images, CSVImages) else images
    reading = images.reading() if isinstance(images, CSVImages) else contextlib.nullcontext()
    with reading:
        if row_instructions is None:
            return score(paths, on_error=on_error)
        paths = pd.Series(paths, dtype=object)  # pandas' string dtype refuses non-UTF-8 names
        X = pd.DataFrame({column: paths, ranker.instruction_column: row_instructions})
        # The rows say their instruction (--instruction chose it): the model's own
        # instruction= is not overridden by surprise, so no warning is due.
        ranker.set_params(instruction=None)
        return score(X, on_error=on_error)


def model_images(args, ranker, df) -> CSVImages:
    """Image paths of the CSV, from --image-column or else the column the model was fitted on."""
    if args.image_column is not None:
        return image_paths(df, args.image_column, "--image-column", args.csv)
    if is_preference(ranker):  # fitted on two columns: which one to score is the user's choice
        raise CLIError(
            f"--image-column is needed: the model was fitted on comparisons, of the columns "
            f"{shown(ranker.image_columns[0])} and {shown(ranker.image_columns[1])}; name the "
            "column of --csv whose images to score"
        )
    what = "image column (the model's; set --image-column)"
    return image_paths(df, ranker.image_column, what, args.csv)
