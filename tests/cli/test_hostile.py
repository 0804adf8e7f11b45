"""The command line under hostile input: it never destroys an input, never shows a traceback.

Outputs that are inputs (also through links), output locations that cannot be
written (checked before any fitting), CSV files and model files that are not
what they claim, and every kind of error a dependency raises: each is one line
on stderr and a non-zero exit status. So is a standard output that cannot take
the results (closed, read-only, a full device); SIGTERM while the model is
written leaves no temporary; huge values are quoted short.
"""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import skrank
from skrank.cli import main
from tests.cli.helpers import assert_one_line_error, python_spellings, run

INSTRUCTION = "Sort the images by brightness."
TINY = ("--backbone", "skrank-tiny", "--device", "cpu", "--quiet")
PAIR_COLUMNS = ("--image-a-column", "a", "--image-b-column", "b", "--winner-column", "w")
QUICK = (*TINY, "--epochs", "1", "--batch-size", "4", "--random-state", "0")

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(rc, err, command, *needles, status=2):
    """The run failed with ``status`` and said why in exactly one line, without a traceback."""
    assert rc == status, (rc, err)
    if status == 130:  # Ctrl-C: no error, just a note
        assert err == f"skrank {command}: interrupted\n"
        return err.strip()
    assert_one_line_error(rc, err, command, *needles)
    return err.strip()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """8 graded PNGs, a CSV of them (relative paths) and a model fitted on them; a CSV of
    comparisons of them (columns a, b and w) and a preference model fitted on it."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "imgs").mkdir()
    rows = []
    for i in range(8):
        level = 30 + 25 * i
        Image.new("RGB", (16, 16), (level, level, level // 2)).save(root / f"imgs/{i}.png")
        rows.append({"file": f"imgs/{i}.png", "y": float(level), "g": f"p{i % 2}"})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    model = root / "m.skrank"
    rc = main(
        ["fit", "--csv", str(root / "train.csv"), "--image-column", "file", "--target-column"]
        + ["y", "--instruction", INSTRUCTION, "--out", str(model), *QUICK]
    )
    assert rc == 0
    pairs = [(i, (i + k) % 8) for k in (1, 3) for i in range(8)]
    winner = ["a" if i > j else "B" for i, j in pairs]
    first, second = [f"imgs/{i}.png" for i, _ in pairs], [f"imgs/{j}.png" for _, j in pairs]
    pd.DataFrame({"a": first, "b": second, "w": winner}).to_csv(root / "pairs.csv", index=False)
    rc = main(
        ["fit", "--csv", str(root / "pairs.csv"), *PAIR_COLUMNS, "--out", str(root / "p.skrank")]
        + ["--instruction", INSTRUCTION, *QUICK]
    )
    assert rc == 0
    return root


@pytest.fixture
def no_fit(monkeypatch):
    """Make sure nothing is fitted: output problems must be found before training."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("the output must be checked before fitting")

    monkeypatch.setattr(skrank.CLIPRanker, "fit", refuse)


def fit_args(data, out, csv=None):
    csv = data / "train.csv" if csv is None else csv
    return ("fit", "--csv", csv, "--image-column", "file", "--target-column", "y",
            "--instruction", INSTRUCTION, "--out", out, *QUICK)  # fmt: skip


def snapshot(*paths):
    return {p: p.read_bytes() for p in paths}


# ---------------------------------------------------------------- outputs that are inputs


def test_predict_refuses_to_write_over_its_model(data, capsys):
    model = data / "m.skrank"
    before = snapshot(model)
    rc, _, err = run(capsys, "predict", model, data / "imgs", "--out", model)
    one_line_error(rc, err, "predict", "is the MODEL", "destroy")
    assert snapshot(model) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_outputs_reached_through_links_are_refused(data, tmp_path, capsys, link, no_fit):
    model, csv = data / "m.skrank", data / "train.csv"
    before = snapshot(model, csv)
    make = os.symlink if link == "symlink" else os.link
    make(model, tmp_path / "model-link")
    make(csv, tmp_path / "csv-link")
    rc, _, err = run(capsys, "predict", model, data / "imgs", "--out", tmp_path / "model-link")
    one_line_error(rc, err, "predict", "is the MODEL")
    rc, _, err = run(capsys, *fit_args(data, tmp_path / "csv-link"))
    one_line_error(rc, err, "fit", "is the --csv")
    assert snapshot(model, csv) == before


def test_fit_refuses_to_write_over_its_training_table_or_images(data, capsys, no_fit):
    csv, image = data / "train.csv", data / "imgs" / "3.png"
    before = snapshot(csv, image)
    rc, _, err = run(capsys, *fit_args(data, csv))
    one_line_error(rc, err, "fit", "is the --csv")
    rc, _, err = run(capsys, *fit_args(data, image))
    one_line_error(rc, err, "fit", "is the image listed in --csv", "3.png")
    # The same file under another spelling of its path.
    rc, _, err = run(capsys, *fit_args(data, data / "imgs" / ".." / "train.csv"))
    one_line_error(rc, err, "fit", "is the --csv")
    assert snapshot(csv, image) == before


def test_fit_refuses_to_write_over_its_checkpoint(data, capsys, no_fit):
    import torch

    from skrank._encoding.backbone import load_backbone

    checkpoint = data / "tiny.pt"
    torch.save(load_backbone("skrank-tiny", None).model.state_dict(), checkpoint)
    before = snapshot(checkpoint)
    args = list(fit_args(data, checkpoint)) + ["--pretrained", checkpoint]
    rc, _, err = run(capsys, *args)
    one_line_error(rc, err, "fit", "is the --pretrained checkpoint")
    assert snapshot(checkpoint) == before


def test_predict_refuses_its_csv_and_its_images(data, capsys):
    csv, image = data / "train.csv", data / "imgs" / "0.png"
    before = snapshot(csv, image)
    rc, _, err = run(capsys, "predict", data / "m.skrank", "--csv", csv, "--out", csv)
    one_line_error(rc, err, "predict", "is the --csv")
    rc, _, err = run(capsys, "predict", data / "m.skrank", data / "imgs", "--out", image)
    one_line_error(rc, err, "predict", "is the image", "0.png")
    assert snapshot(csv, image) == before


def test_demo_refuses_a_report_folder_that_is_or_holds_an_input(data, tmp_path, capsys):
    checkpoint = tmp_path / "ckpt" / "tiny.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    args = ("demo", "--backbone", "skrank-tiny", "--pretrained", checkpoint)
    rc, _, err = run(capsys, *args, "--out", checkpoint.parent)
    one_line_error(rc, err, "demo", "holds the --pretrained checkpoint")
    rc, _, err = run(capsys, *args, "--out", checkpoint)
    one_line_error(rc, err, "demo", "is a file")
    assert checkpoint.read_bytes() == b"weights"
    (tmp_path / "r" / "report.html").mkdir(parents=True)
    rc, _, err = run(capsys, "demo", "--out", tmp_path / "r")
    one_line_error(rc, err, "demo", "report.html", "is a folder")
    rc, _, err = run(capsys, "demo", "--pretrained", checkpoint, "--out", tmp_path / "x")
    one_line_error(rc, err, "demo", "--pretrained needs --backbone")


# --------------------------------------------------------------------------- output locations


@pytest.mark.parametrize(
    "out, needle",
    [
        ("", "--out is empty"),
        ("   ", "--out is empty"),
        ("sub/", "ends with a path separator"),
        ("x" * 300 + ".skrank", "cannot be written"),
        ("train.csv/m.skrank", "is a file, not a folder"),
        ("imgs", "is a folder"),
    ],
    ids=["empty", "blank", "trailing-sep", "too-long", "under-a-file", "folder"],
)
def test_fit_checks_its_output_before_fitting(data, capsys, monkeypatch, no_fit, out, needle):
    monkeypatch.chdir(data)
    rc, _, err = run(capsys, *fit_args(data, out))
    one_line_error(rc, err, "fit", needle)


def test_special_and_read_only_outputs_are_refused(data, tmp_path, capsys, monkeypatch, no_fit):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rc, _, err = run(capsys, *fit_args(data, fifo))
    one_line_error(rc, err, "fit", "not a regular file")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # The tests may run as root, whom permission bits do not stop: pretend they do.
    monkeypatch.setattr(os, "access", lambda p, m: real_access(p, m) and p != str(locked))
    rc, _, err = run(capsys, *fit_args(data, locked / "m.skrank"))
    one_line_error(rc, err, "fit", "not writable")
    rc, _, err = run(capsys, "predict", data / "m.skrank", data / "imgs", "--out", locked / "p")
    one_line_error(rc, err, "predict", "not writable")


def test_predict_writes_missing_folders_and_non_utf8_names(data, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1, not UTF-8: a surrogate in the str
    Image.new("RGB", (16, 16), (90, 90, 90)).save(os.path.join(folder, name), format="PNG")
    Image.new("RGB", (16, 16), (200, 200, 200)).save(folder / "b.png")
    out = tmp_path / "new" / "deeper" / "scores.csv"
    rc, _, err = run(capsys, "predict", data / "m.skrank", folder, "--out", out)
    assert rc == 0, err
    assert b"caf\xe9.png" in out.read_bytes()  # the name's own bytes, written back
    assert not [p for p in out.parent.iterdir() if p.name != "scores.csv"]  # no temporaries


# --------------------------------------------------------------------------- hostile CSV files


def hostile_csvs(folder):
    """{name: (path, words the error must contain)}."""
    cases = {
        "empty": (b"", "empty"),
        "header_only": (b"file,y\n", "no data rows"),
        "binary": (bytes(range(256)) * 8, "binary file"),
        "garbage_utf8": (b'"\x00\x01 ,"\n\n"unterminated', "cannot read"),
        "latin1": ("file,y\ncafé.png,1\n".encode("latin-1"), "not UTF-8"),
        "missing_column": (b"path,y\nimgs/0.png,1\nimgs/1.png,2\n", "'file' is not a column"),
        "duplicated_column": (
            b"file,file,y\nimgs/0.png,imgs/1.png,1\nimgs/1.png,imgs/2.png,2\n",
            "2 columns named 'file'",
        ),
        "newline_in_path": (
            b'file,y\n"imgs/0\n.png",1\nimgs/1.png,2\nimgs/2.png,3\n',
            "'",
        ),
        "empty_path": (b"file,y\n,1\nimgs/1.png,2\n", "1 empty cell"),
        "text_target": (b"file,y\nimgs/0.png,one\nimgs/1.png,2\n", "non-numeric"),
        "ragged": (
            b"file,y\nimgs/0.png,1,extra,more\nimgs/1.png,2\n",
            "more cells than the header",
        ),
        "ragged_later": (b"file,y\nimgs/0.png,1\nimgs/1.png,2,3\n", "Expected 2 fields in line 3"),
    }
    out = {}
    for name, (content, needle) in cases.items():
        path = folder / f"{name}.csv"
        path.write_bytes(content)
        out[name] = (path, needle)
    return out


@pytest.fixture(scope="module")
def csvs(data):
    folder = data  # image paths are relative to the CSV's folder
    return hostile_csvs(folder)


CSV_CASES = [
    "empty",
    "header_only",
    "binary",
    "garbage_utf8",
    "latin1",
    "missing_column",
    "duplicated_column",
    "newline_in_path",
    "empty_path",
    "text_target",
    "ragged",
    "ragged_later",
]


@pytest.mark.parametrize("case", CSV_CASES)
def test_hostile_csv_files_are_one_line_errors(data, csvs, tmp_path, capsys, case):
    path, needle = csvs[case]
    before = snapshot(path)
    rc, _, err = run(capsys, *fit_args(data, tmp_path / "m.skrank", csv=path))
    one_line_error(rc, err, "fit", needle)
    assert not (tmp_path / "m.skrank").exists()
    rc, _, err = run(
        capsys,
        *("evaluate", data / "m.skrank", "--csv", path, "--image-column", "file"),
        *("--target-column", "y"),
    )
    one_line_error(rc, err, "evaluate")
    rc, _, err = run(capsys, "predict", data / "m.skrank", "--csv", path, "--out", tmp_path / "p")
    if case in ("text_target",):  # predict reads no targets: fine
        assert rc == 0, err
    else:
        one_line_error(rc, err, "predict")
    assert snapshot(path) == before


def test_newline_in_an_image_path_stays_on_one_line(data, csvs, tmp_path, capsys):
    path, _ = csvs["newline_in_path"]
    rc, _, err = run(capsys, *fit_args(data, tmp_path / "m.skrank", csv=path))
    line = one_line_error(rc, err, "fit", "1 image(s) could not be read", "file not found")
    assert "0\\n.png" in line  # the path, quoted with its newline escaped


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"file,y,task\nimgs/0.png,1,a\nimgs/1.png,2,\n", "--instruction-column 'task' has 1"),
        (b"file,y,task\nimgs/0.png,1,a\nimgs/1.png,2,   \n", "1 empty or blank cell"),
    ],
)
def test_empty_instruction_cells_are_refused(data, tmp_path, capsys, no_fit, content, needle):
    csv = data / f"instr-{abs(hash(content))}.csv"
    csv.write_bytes(content)
    args = ["fit", "--csv", csv, "--image-column", "file", "--target-column", "y"]
    args += ["--instruction-column", "task", "--out", tmp_path / "m.skrank", *QUICK]
    rc, _, err = run(capsys, *args)
    one_line_error(rc, err, "fit", needle)


def test_empty_group_cells_are_refused(data, tmp_path, capsys, no_fit):
    csv = data / "groups.csv"
    csv.write_bytes(b"file,y,g\nimgs/0.png,1,a\nimgs/1.png,2,\nimgs/2.png,3,b\n")
    args = list(fit_args(data, tmp_path / "m.skrank", csv=csv)) + ["--group-column", "g"]
    rc, _, err = run(capsys, *args)
    one_line_error(rc, err, "fit", "--group-column 'g' has 1 empty or blank cell", "row(s) 2")
    rc, _, err = run(
        capsys,
        *("evaluate", data / "m.skrank", "--csv", csv, "--image-column", "file"),
        *("--target-column", "y", "--group-column", "g"),
    )
    one_line_error(rc, err, "evaluate", "--group-column 'g' has 1 empty or blank cell")


def test_columns_named_twice_on_the_command_line_are_refused(data, tmp_path, capsys, no_fit):
    base = ["fit", "--csv", data / "train.csv", "--image-column", "file", "--out"]
    base += [tmp_path / "m.skrank", *QUICK]
    rc, _, err = run(capsys, *base, "--target-column", "file", "--instruction", INSTRUCTION)
    one_line_error(rc, err, "fit", "--target-column 'file' is also the --image-column")
    rc, _, err = run(
        capsys, *base, "--target-column", "y", "--instruction-column", "g", "--group-column", "g"
    )
    one_line_error(rc, err, "fit", "--group-column 'g' is also the --instruction-column")


def test_an_image_column_named_instruction_is_not_read_as_instructions(tmp_path, capsys):
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i,) * 3).save(tmp_path / f"{i}.png")
    csv = tmp_path / "t.csv"
    pd.DataFrame({"instruction": [f"{i}.png" for i in range(6)], "y": range(6)}).to_csv(
        csv, index=False
    )
    out = tmp_path / "m.skrank"
    args = ["fit", "--csv", csv, "--image-column", "instruction", "--target-column", "y"]
    rc, _, err = run(capsys, *args, "--instruction", INSTRUCTION, "--out", out, *QUICK)
    assert rc == 0, err
    assert skrank.load(out).instructions_ == [INSTRUCTION]


# --------------------------------------------------------------------------- hostile model files


@pytest.fixture(scope="module")
def models(data):
    real = (data / "m.skrank").read_bytes()
    rng = np.random.default_rng(0)
    cases = {
        "random_bytes": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated": real[: len(real) // 2],
        "header_only": real[:8],
        "empty": b"",
        "huge_header_length": (2**62).to_bytes(8, "little") + b"{}",
    }
    out = {}
    for name, content in cases.items():
        path = data / f"{name}.skrank"
        path.write_bytes(content)
        out[name] = path
    folder = data / "folder.skrank"
    folder.mkdir()
    out["folder"] = folder
    return out


@pytest.mark.parametrize(
    "case", ["random_bytes", "truncated", "header_only", "empty", "huge_header_length", "folder"]
)
def test_hostile_model_files_are_one_line_errors(data, models, tmp_path, capsys, case):
    model = models[case]
    out = tmp_path / "p.csv"
    rc, _, err = run(capsys, "predict", model, data / "imgs", "--out", out)
    one_line_error(rc, err, "predict", model.name)
    assert not out.exists()
    rc, _, err = run(capsys, "evaluate", model, "--csv", data / "train.csv", "--target-column", "y")
    one_line_error(rc, err, "evaluate", model.name)


# ---------------------------------------------------------------- every error is one line


def _errors():
    from PIL import Image as PILImage
    from safetensors import SafetensorError

    from skrank import ImageLoadError, InvalidParameterError
    from skrank._encoding.weights import WeightsUnavailableError
    from skrank._model.training import TrainingDivergedError

    return {
        "diverged": (TrainingDivergedError("training diverged at epoch 3"), 2, "epoch 3"),
        "safetensors": (SafetensorError("header too large"), 2, "SafetensorError: header"),
        "pil": (PILImage.UnidentifiedImageError("cannot identify image file 'x'"), 2, "x"),
        "bomb": (PILImage.DecompressionBombError("too many pixels"), 2, "too many pixels"),
        "parser": (pd.errors.ParserError("Error tokenizing data.\nC error"), 2, "tokenizing"),
        "empty_data": (pd.errors.EmptyDataError("No columns to parse"), 2, "No columns"),
        "unicode": (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2, "0xff"),
        # In the command's words: fit's option, or (no such option) the model's setting.
        "param": (InvalidParameterError("batch_size=1 is not valid"), 2, "batch size 1"),
        "image": (ImageLoadError([(4, "a\nb.png", "file not found")]), 2, "'a\\nb.png'"),
        "weights": (WeightsUnavailableError("not on this machine"), 2, "not on this machine"),
        "oserror": (PermissionError(13, "Permission denied", "/x"), 2, "Permission denied"),
        "disk_full": (OSError(28, "No space left on device"), 2, "No space left"),
        "unpickling": (pickle.UnpicklingError("invalid load key"), 2, "UnpicklingError"),
        "zlib": (zlib.error("incorrect header check"), 2, "error: incorrect header"),
        "eof": (EOFError("Ran out of input"), 2, "Ran out of input"),
        "multi_line": (RuntimeError("first line\nsecond line\n\nthird"), 2, "first line"),
        "key_error": (KeyError("visual.proj"), 1, "KeyError: 'visual.proj'"),
        "empty_message": (AssertionError(), 1, "AssertionError"),
        "memory": (MemoryError(), 1, "out of memory"),
        "interrupt": (KeyboardInterrupt(), 130, "interrupted"),
    }


@pytest.mark.parametrize("case", sorted(_errors()))
@pytest.mark.parametrize("command", ["fit", "predict", "evaluate", "demo"])
def test_every_error_is_one_line_with_a_status(case, command, monkeypatch, capsys):
    import importlib

    exc, status, needle = _errors()[case]
    if case == "param" and command == "fit":
        needle = "--batch-size 1 is not valid"

    def raise_it(args):
        raise exc

    monkeypatch.setattr(importlib.import_module(f"skrank.cli.{command}"), "run", raise_it)
    argv = {
        "fit": ["fit", "--csv", "x", "--image-column", "f", "--target-column", "y",
                "--instruction", "i", "--out", "o"],
        "predict": ["predict", "m", "folder", "--out", "o"],
        "evaluate": ["evaluate", "m", "--csv", "x", "--target-column", "y"],
        "demo": ["demo"],
    }[command]  # fmt: skip
    rc, _, err = run(capsys, *argv)
    one_line_error(rc, err, command, needle, status=status)


# ---------------------------------------------------- bad values, in the command line's words

# For every option that sets a CLIPRanker parameter or names a column: values that
# must be refused. An option added to a command without an entry here fails the test.
BAD = {
    "instruction": ["", "   "],
    "image_column": ["", "nope", "g"],  # 'g' holds no image paths
    "instruction_column": ["", "nope", "file"],  # 'file' is the image column
    "group_column": ["", "nope"],
    "target_column": ["", "nope", "g", "file"],  # 'g' is text; 'file' the image column
    "backbone": ["", "no-such-model"],
    "pretrained": ["", "no-such-tag", "/no/such/checkpoint.pt"],
    "max_epochs": ["0", "-3", "two"],
    "batch_size": ["1", "2.5"],
    "lr": ["-1", "0", "nan", "fast"],
    "pair_scope": ["pairs", "group"],  # group: without --group-column
    "preset": ["", "papers", "Paper"],
    "random_state": ["-1", "4294967296", "seven"],
    "device": ["", "tpu", "cuda:x", "cuda:99"],
    # Comparisons (pairs.csv: a, b, w), with a preference model for evaluate.
    "image_a_column": ["", "nope", "w"],  # 'w' holds no image paths
    "image_b_column": ["", "nope", "a"],  # 'a' is the first image's column
    "winner_column": ["", "nope", "b"],  # 'b' holds image paths, not winners
}
COMPARISON_FLAGS = ("--image-a-column", "--image-b-column", "--winner-column")
# Commands that score with a saved model also refuse what the model does not know.
BAD_FOR_A_MODEL = {
    "instruction": ["Sort the images by size."],
    "image_column": [],
    "target_column": [],
}
COMMANDS = ("fit", "predict", "evaluate")


def _options_to_check():
    """(command, dest, option) for each option whose value is a parameter or a column."""
    from skrank._estimator.params import PARAMETERS
    from skrank.cli import _parser

    parser = _parser()
    out = []
    for command in COMMANDS:
        for action in parser.commands[command]._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            if action.dest in PARAMETERS or action.dest.endswith("_column"):
                flag = next(o for o in action.option_strings if o.startswith("--"))
                out.append((command, action.dest, flag))
    return out


def _bad_cases():
    cases = []
    for command, dest, flag in _options_to_check():
        values = BAD.get(dest, [None])  # None: no bad value written down for this option
        if command != "fit":
            values = [v for v in values if v not in ("file",)] + BAD_FOR_A_MODEL.get(dest, [])
        cases += [pytest.param(command, dest, flag, v, id=f"{command}{flag}={v!r}") for v in values]
    return cases


def test_python_spellings_finds_pythons_words_outside_quotes():
    assert python_spellings("batch_size=1 (int) is not valid; y has NaN; X holds") == [
        "batch_size=", "batch_size", "y", "X",
    ]  # fmt: skip
    assert python_spellings("--image-column 'y' of 'a/batch_size=1.csv': the model's") == []


@pytest.mark.parametrize(("command", "dest", "flag", "value"), _bad_cases())
def test_a_bad_value_is_one_line_naming_the_option(
    data, tmp_path, capsys, command, dest, flag, value
):
    assert value is not None, f"no bad value for {command} {flag}: add some to BAD"
    pairs = flag in COMPARISON_FLAGS
    model = data / ("p.skrank" if pairs else "m.skrank")
    given = {"--csv": data / ("pairs.csv" if pairs else "train.csv")}
    if command == "fit":
        if pairs:
            given.update(dict(zip(PAIR_COLUMNS[::2], PAIR_COLUMNS[1::2])))
        else:
            given.update({"--image-column": "file", "--target-column": "y"})
        given.update({"--instruction": INSTRUCTION, "--out": tmp_path / "m.skrank"})
        given.update({"--backbone": "skrank-tiny", "--device": "cpu", "--epochs": "1"})
        given.update({"--batch-size": "4", "--random-state": "0"})
        if flag == "--instruction-column":
            given.pop("--instruction")
        argv = ["fit", "--quiet"]
    else:
        argv = [command, model]
        if command == "predict":
            given["--out"] = tmp_path / "p.csv"
    given[flag] = value
    for option, text in given.items():
        argv += [option, text]
    rc, _, err = run(capsys, *argv)
    line = one_line_error(rc, err, command, flag)
    assert python_spellings(line) == [], line
    assert not (tmp_path / "m.skrank").exists() and not (tmp_path / "p.csv").exists()


# --------------------------------------------------------------------------- a real process


def test_a_real_process_refuses_to_destroy_its_model_and_reads_garbage(data, tmp_path):
    model = data / "m.skrank"
    before = snapshot(model)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(os.urandom(2048))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = (
        "import sys\nfrom skrank.cli import main\n"
        "codes = [main(a) for a in eval(sys.argv[1])]\nprint(codes)\n"
    )
    runs = [
        ["predict", str(model), str(data / "imgs"), "--out", str(model)],
        ["fit", "--csv", str(garbage), "--image-column", "file", "--target-column", "y",
         "--instruction", INSTRUCTION, "--out", str(tmp_path / "m.skrank"), *QUICK],
        ["predict", str(data / "truncated.skrank"), str(data / "imgs"), "--out", "-"],
    ]  # fmt: skip
    for argv in runs[:1]:  # the real entry point, `python -m skrank.cli`
        out = subprocess.run(
            [sys.executable, "-m", "skrank.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        one_line_error(out.returncode, out.stderr, "predict", "is the MODEL")
    # The other runs share one interpreter: starting torch costs seconds each time.
    (data / "truncated.skrank").write_bytes(before[model][: len(before[model]) // 3])
    out = subprocess.run(
        [sys.executable, "-c", script, repr(runs[1:])],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.stdout.strip() == "[2, 2]", (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("skrank fit: error: cannot read")
    assert lines[1].startswith("skrank predict: error:") and "truncated.skrank" in lines[1]
    assert snapshot(model) == before


# ------------------------------------------------ outputs that cannot be written, SIGTERM

TINY_FIT = ("--backbone", "skrank-tiny", "--device", "cpu", "--quiet", "--epochs", "1",
            "--batch-size", "4", "--random-state", "0")  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    """12 graded PNGs, a CSV of them and a model fitted on them by `skrank fit`."""
    import pandas as pd
    from PIL import Image

    from skrank.cli import main

    root = tmp_path_factory.mktemp("cli-io")
    rows = []
    for i in range(12):
        Image.new("RGB", (16, 16), (20 * i, 20 * i, 10 * i)).save(root / f"{i}.png")
        rows.append({"file": f"{i}.png", "y": float(i)})
    pd.DataFrame(rows).to_csv(root / "d.csv", index=False)
    argv = ["fit", "--csv", str(root / "d.csv"), "--image-column", "file", "--target-column"]
    argv += ["y", "--instruction", "Sort by brightness.", "--out", str(root / "m.skrank")]
    assert main([*argv, *TINY_FIT]) == 0
    return root


def skrank_cli(*argv, redirect="", **kwargs):
    """``python -m skrank.cli ARGV`` with a shell redirection of its own (``>&-``)."""
    command = ["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "skrank.cli"]
    return subprocess.run(
        [*command, *map(str, argv)], capture_output=not redirect, env=ENV, text=True,
        timeout=300, **({"stderr": subprocess.PIPE} if redirect else {}),
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ("predict", "{model}", "{root}", "--out", "-"),
        ("evaluate", "{model}", "--csv", "{csv}", "--json"),
    ],
    ids=["predict", "evaluate"],
)
@pytest.mark.parametrize(
    "redirect, needle",
    [
        (">&-", "standard output is closed"),
        ("1<{csv}", "open for reading only"),
        ("> /dev/full", "cannot write to standard output: No space left on device"),
    ],
    ids=["closed", "read-only", "full"],
)
def test_output_to_a_stdout_that_cannot_take_it_fails(cli_data, argv, redirect, needle):
    where = {"model": cli_data / "m.skrank", "root": cli_data, "csv": cli_data / "d.csv"}
    if "full" in redirect and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    done = skrank_cli(*(a.format(**where) for a in argv), redirect=redirect.format(**where))
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skrank {argv[0]}: error:"), done.stderr
    assert needle in lines[0]
    assert "wrote" not in done.stderr


def test_a_full_device_as_out_is_refused_before_the_work(cli_data):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    done = skrank_cli("predict", cli_data / "m.skrank", cli_data, "--out", "/dev/full")
    assert done.returncode == 2 and "is not a regular file" in done.stderr


@pytest.mark.skipif(not hasattr(os, "kill") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_while_fit_writes_the_model_leaves_no_temporary(cli_data, tmp_path):
    """SIGTERM arrives while the model's temporary is half written: cleaned up as Ctrl-C."""
    out, mark = tmp_path / "out", tmp_path / "writing"
    out.mkdir()
    script = textwrap.dedent(
        f"""
        import sys, time
        import skrank.persistence._io as io
        from skrank.cli import main

        real = io.save_file

        def slow_save(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            open({str(mark)!r}, "w").close()
            time.sleep(120)

        io.save_file = slow_save
        sys.exit(main(sys.argv[1:]))
        """
    )
    argv = ["fit", "--csv", cli_data / "d.csv", "--image-column", "file", "--target-column"]
    argv += ["y", "--instruction", "Sort.", "--out", out / "m.skrank", *TINY_FIT]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, argv)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), proc.communicate(timeout=5)
        assert [p.name for p in out.iterdir()][0].startswith(".tmp-skrank-")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.strip() == "skrank fit: terminated"
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------ unbounded echoes

HUGE = 5_000_000


def fit_csv(capsys, csv, out, target="y"):
    from skrank.cli import main

    argv = ["fit", "--csv", str(csv), "--image-column", "file", "--target-column", target]
    rc = main([*argv, "--instruction", "Sort.", "--out", str(out), *TINY_FIT])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("where", ["target", "image", "header"])
def test_a_huge_csv_value_is_quoted_short(cli_data, tmp_path, capsys, where):
    import pandas as pd

    df = pd.read_csv(cli_data / "d.csv")
    df["file"] = [str(cli_data / f) for f in df["file"]]
    df = df.astype(object)
    if where == "target":
        df.loc[3, "y"] = "7" * HUGE
    elif where == "image":
        df.loc[3, "file"] = "a" * HUGE + ".png"
    else:
        df["q" * HUGE] = 1
    df.to_csv(tmp_path / "huge.csv", index=False)
    target = "nope" if where == "header" else "y"
    rc, err = fit_csv(capsys, tmp_path / "huge.csv", tmp_path / "m.skrank", target)
    assert rc == 2
    assert len(err) < 2000, err[:3000]
    if where != "header":  # a list's items are cut by reprlib, without their length
        assert f"({HUGE + (4 if where == 'image' else 0)} characters)" in err
