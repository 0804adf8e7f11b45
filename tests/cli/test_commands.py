"""`skrank fit`, `skrank predict` and `skrank evaluate`, run in-process on PNG files."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import skrank
from skrank.cli import main
from skrank.cli.fit import FIT_DEFAULTS
from skrank.metrics import spearman_score
from tests.cli.helpers import assert_one_line_error, python_spellings, run

INSTRUCTION = "Sort the images by brightness."
METRIC_LABELS = ("SRCC", "KRCC", "PLCC", "pairwise accuracy", "MAE")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """24 graded-brightness PNGs (4 in a nested folder, one .PNG) and a CSV of relative paths."""
    root = tmp_path_factory.mktemp("cli")
    (root / "imgs" / "nested").mkdir(parents=True)
    rows = []
    for i in range(24):
        level = 20 + 9 * i
        tint = (level, level, level) if i % 2 else (level, level // 2, level // 3)
        name = f"imgs/img{i:02d}.png" if i < 20 else f"imgs/nested/img{i:02d}.png"
        if i == 23:
            name = name.replace(".png", ".PNG")  # extensions match in any case
        Image.new("RGB", (32, 32), tint).save(root / name, format="PNG")
        rows.append({"file": name, "brightness": float(level), "photo": f"p{i % 2}"})
    Image.new("RGB", (32, 32)).save(root / "imgs" / ".hidden.png")  # skipped: hidden
    (root / "imgs" / "notes.txt").write_text("not an image")  # skipped: not an image name
    pd.DataFrame(rows).to_csv(root / "data.csv", index=False)
    (root / "bad").mkdir()
    (root / "bad" / "broken.png").write_text("this is text, not a PNG")
    bad = pd.DataFrame(rows[:6] + [{"file": "bad/broken.png", "brightness": 1.0, "photo": "p0"}])
    bad.to_csv(root / "bad.csv", index=False)
    return root


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """`skrank fit` run from another folder (paths must resolve against the CSV's folder)."""
    model = data / "models" / "brightness.skrank"  # the models/ folder does not exist yet
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.chdir(tmp_path_factory.mktemp("elsewhere"))
        rc = main(
            ["fit", "--csv", str(data / "data.csv"), "--image-column", "file"]
            + ["--target-column", "brightness", "--instruction", INSTRUCTION]
            + ["--out", str(model), "--backbone", "skrank-tiny", "--epochs", "2"]
            + ["--batch-size", "8", "--random-state", "0", "--lr", "1e-3", "--device", "cpu"]
        )
    assert rc == 0, stdout.getvalue()
    return model, stdout.getvalue()


def test_fit_saves_a_model_and_prints_a_summary(fitted):
    model, stdout = fitted
    assert model.is_file()
    lines = stdout.strip().splitlines()
    # One summary (the estimator's), then where the model went: epochs are said once.
    assert [line for line in lines if "epoch(s)" in line] == [lines[-2]]
    assert lines[-2].startswith("CLIPRanker: 2 epoch(s)")
    assert lines[-1] == f"24 images; saved to {model}"
    ranker = skrank.load(model)
    assert ranker.n_iter_ == 2 and ranker.instructions_ == [INSTRUCTION]
    assert ranker.backbone == "skrank-tiny" and ranker.image_column == "file"
    assert ranker.lr == ranker.lr_ == 1e-3 and ranker.batch_size == 8


def test_predict_reads_a_folder_recursively_and_sorts(fitted, data, tmp_path, capsys):
    model, _ = fitted
    preds = tmp_path / "preds.csv"
    rc, out, err = run(capsys, "predict", model, data / "imgs", "--out", preds, "--sort")
    assert rc == 0, err
    assert "wrote 24 score(s)" in out
    table = pd.read_csv(preds)
    assert list(table.columns) == ["path", "score"]
    expected = sorted(pd.read_csv(data / "data.csv")["file"])
    assert sorted(os.path.relpath(p, data).replace(os.sep, "/") for p in table["path"]) == expected
    scores = table["score"].to_numpy()
    assert np.all(np.diff(scores) <= 0)  # highest first
    direct = skrank.load(model).predict(table["path"].tolist())
    np.testing.assert_allclose(scores, direct, rtol=1e-6, atol=1e-9)


def test_predict_csv_resolves_paths_and_writes_them_as_given(
    fitted, data, tmp_path, capsys, monkeypatch
):
    model, _ = fitted
    monkeypatch.chdir(tmp_path)  # not the CSV's folder
    rc, out, err = run(capsys, "predict", model, "--csv", data / "data.csv", "--out", "p.csv")
    assert rc == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    given = pd.read_csv(data / "data.csv")["file"]
    assert table["path"].tolist() == given.tolist()  # unsorted: CSV order, as written
    direct = skrank.load(model).predict([str(data / p) for p in given])
    np.testing.assert_allclose(table["score"], direct, rtol=1e-6, atol=1e-9)


def test_predict_by_the_models_own_instruction_does_not_warn(fitted, data, tmp_path, capsys):
    model, _ = fitted  # fitted with --instruction: the model's instruction= is set
    for command in ("predict", "evaluate"):
        argv = [command, model, "--csv", data / "data.csv", "--instruction", INSTRUCTION]
        argv += ["--out", tmp_path / "p.csv"] if command == "predict" else []
        rc, _, err = run(capsys, *argv)
        assert rc == 0 and "warning" not in err, err


def test_evaluate_prints_every_metric_pooled_and_per_group(fitted, data, capsys):
    model, _ = fitted
    csv = data / "data.csv"
    args = ["evaluate", model, "--csv", csv, "--image-column", "file"]
    args += ["--target-column", "brightness", "--group-column", "photo"]
    rc, out, err = run(capsys, *args)
    assert rc == 0, err
    for label in METRIC_LABELS:
        assert label in out
    assert "pooled" in out and "per-group mean" in out and "2 group(s)" in out
    widths = {len(line) for line in out.splitlines()[1:] if line.strip()}
    assert len(widths) == 1  # an aligned table: header, rule and rows of one width

    rc, out, err = run(capsys, *args, "--json")
    assert rc == 0, err
    result = json.loads(out)
    keys = {"srcc", "krcc", "plcc", "pairwise_accuracy", "mae"}
    assert set(result["pooled"]) == keys and set(result["per_group_mean"]) == keys
    assert result["n_images"] == 24 and result["n_groups"] == 2
    frame = pd.read_csv(csv)
    pred = skrank.load(model).predict([str(data / p) for p in frame["file"]])
    y = frame["brightness"].to_numpy()
    assert result["pooled"]["srcc"] == pytest.approx(spearman_score(y, pred))
    assert result["per_group_mean"]["srcc"] == pytest.approx(
        spearman_score(y, pred, groups=frame["photo"])
    )
    assert result["pooled"]["mae"] == pytest.approx(np.mean(np.abs(y - pred)))


@pytest.mark.parametrize("flag", ["--quiet", "--verbose"])
def test_fit_quiet_prints_one_line_and_verbose_one_per_epoch(data, tmp_path, capsys, flag):
    model = tmp_path / "m.skrank"
    rc = main(
        ["fit", "--csv", str(data / "data.csv"), "--image-column", "file", flag]
        + ["--target-column", "brightness", "--instruction", INSTRUCTION, "--out", str(model)]
        + ["--backbone", "skrank-tiny"]
        + ["--epochs", "2", "--batch-size", "8", "--random-state", "0", "--device", "cpu"]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    if flag == "--quiet":
        assert len(out) == 1 and out[0].startswith("fitted 2 epoch(s) on 24 images in ")
    else:
        assert [line.split(",")[0] for line in out[:2]] == ["epoch 1/2", "epoch 2/2"]
        assert out[2].startswith("CLIPRanker: 2 epoch(s)") and len(out) == 4


def test_fit_with_instruction_and_group_columns(data, tmp_path, capsys):
    frame = pd.read_csv(data / "data.csv")
    darker = frame.assign(brightness=-frame["brightness"], task="Sort the images by darkness.")
    both = pd.concat([frame.assign(task=INSTRUCTION), darker])
    both.to_csv(data / "two_tasks.csv", index=False)
    model = tmp_path / "two.skrank"
    rc, out, err = run(
        capsys,
        *("fit", "--csv", data / "two_tasks.csv", "--image-column", "file"),
        *("--target-column", "brightness", "--instruction-column", "task", "--quiet"),
        *("--group-column", "photo", "--pair-scope", "group", "--out", model),
        *("--backbone", "skrank-tiny", "--epochs", "1", "--batch-size", "8", "--device", "cpu"),
    )
    assert rc == 0, err
    assert sorted(skrank.load(model).instructions_) == sorted(both["task"].unique())
    rc, _, err = run(capsys, "predict", model, data / "imgs", "--out", tmp_path / "p.csv")
    assert_one_line_error(rc, err, "predict", "--instruction", "2 instructions")
    rc, _, err = run(
        capsys, "predict", model, data / "imgs", "--out", tmp_path / "p.csv",
        "--instruction", "Sort the images by darkness.",
    )  # fmt: skip
    assert rc == 0, err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 24
    # The model's instruction column, read from the CSV: its problems name --instruction.
    blank = both.copy()
    blank.iloc[2, blank.columns.get_loc("task")] = " "
    unknown = both.assign(task=["Sort the images by size."] + list(both["task"][1:]))
    for name, frame, needle in [
        ("blank", blank, "has 1 empty or blank cell(s): row(s) 3"),
        ("unknown", unknown, "holds 1 instruction(s) the model was not fitted on"),
    ]:
        csv = data / f"tasks-{name}.csv"
        frame.to_csv(csv, index=False)
        for argv in (
            ["predict", model, "--csv", csv, "--out", tmp_path / "q.csv"],
            ["evaluate", model, "--csv", csv],
        ):
            rc, _, err = run(capsys, *argv)
            assert_one_line_error(rc, err, argv[0], "instruction column", "'task'", needle)
            assert "with --instruction" in err and python_spellings(err) == [], err
    rc, out, err = run(capsys, "evaluate", model, "--csv", data / "two_tasks.csv", "--json")
    assert rc == 0, err  # per-row instructions from the column; groups from the fitted column
    assert json.loads(out)["n_images"] == 48 and json.loads(out)["n_groups"] == 2


def test_unreadable_image_is_one_line_error_or_nan(fitted, data, tmp_path, capsys):
    model, _ = fitted
    preds = tmp_path / "preds.csv"
    bad_csv = data / "bad.csv"
    rc, _, err = run(capsys, "predict", model, "--csv", bad_csv, "--out", preds)
    assert_one_line_error(rc, err, "predict", "1 image(s)", "broken.png", "--on-error nan")
    assert not preds.exists()

    rc, out, err = run(
        capsys, "predict", model, "--csv", bad_csv, "--out", preds, "--sort", "--on-error", "nan"
    )
    assert rc == 0, err
    assert "1 NaN" in out and "broken.png" in err and "Traceback" not in err
    table = pd.read_csv(preds)
    assert len(table) == 7 and table["path"].iloc[-1] == "bad/broken.png"  # NaN sorts last
    assert np.isnan(table["score"].iloc[-1]) and np.isfinite(table["score"].iloc[:-1]).all()
    assert "NaN" in preds.read_text()

    rc, _, err = run(
        capsys,
        *("fit", "--csv", bad_csv, "--image-column", "file", "--target-column", "brightness"),
        *("--instruction", INSTRUCTION, "--out", tmp_path / "m.skrank", "--quiet"),
        *("--backbone", "skrank-tiny", "--device", "cpu"),
    )
    assert_one_line_error(rc, err, "fit", "1 image(s)", "broken.png")
    assert not (tmp_path / "m.skrank").exists()


def test_missing_column_names_it_and_lists_the_columns(fitted, data, tmp_path, capsys):
    csv = data / "data.csv"
    rc, _, err = run(
        capsys,
        *("fit", "--csv", csv, "--image-column", "filename", "--target-column", "brightness"),
        *("--instruction", INSTRUCTION, "--out", tmp_path / "m.skrank"),
    )
    assert_one_line_error(rc, err, "fit", "'filename'", "['file', 'brightness', 'photo']")
    model, _ = fitted
    rc, _, err = run(capsys, "evaluate", model, "--csv", csv, "--target-column", "quality")
    assert_one_line_error(rc, err, "evaluate", "'quality'", "'brightness'")
    rc, _, err = run(capsys, "predict", model, "--csv", csv, "--image-column", "x", "--out", "-")
    assert_one_line_error(rc, err, "predict", "'x'", "'file'")


def test_missing_files_and_bad_arguments_are_one_line_errors(fitted, data, tmp_path, capsys):
    model, _ = fitted
    out = tmp_path / "p.csv"
    rc, _, err = run(capsys, "predict", tmp_path / "nope.skrank", data / "imgs", "--out", out)
    assert_one_line_error(rc, err, "predict", "nope.skrank")
    rc, _, err = run(
        capsys, "evaluate", model, "--csv", tmp_path / "no.csv", "--target-column", "y"
    )
    assert_one_line_error(rc, err, "evaluate", "no.csv")
    rc, _, err = run(capsys, "predict", model, tmp_path / "no-such-folder", "--out", out)
    assert_one_line_error(rc, err, "predict", "no-such-folder")
    rc, _, err = run(capsys, "predict", model, "--out", out)  # neither a folder nor --csv
    assert_one_line_error(rc, err, "predict", "FOLDER", "--csv")
    rc, _, err = run(capsys, "fit", "--csv", data / "data.csv", "--epochs", "two")
    assert_one_line_error(rc, err, "fit", "--epochs", "'two'")
    rc, _, err = run(capsys, "predict", model, data / "imgs", "--out", out, "--on-error", "skip")
    assert_one_line_error(rc, err, "predict", "--on-error", "'skip'")
    text = tmp_path / "text.csv"
    text.write_text("file,brightness\nimgs/img00.png,bright\n")
    rc, _, err = run(
        capsys,
        *("evaluate", model, "--csv", text, "--image-column", "file"),
        *("--target-column", "brightness"),
    )
    assert_one_line_error(rc, err, "evaluate", "'brightness'", "'bright'", "non-numeric")
    assert not out.exists()


def test_help_of_every_command_and_no_command(capsys):
    for command in ("fit", "predict", "evaluate"):
        rc, out, _ = run(capsys, command, "--help")
        assert rc == 0 and out.startswith(f"usage: skrank {command}")
        assert "example" in out
    rc, out, err = run(capsys)
    assert rc != 0 and "usage: skrank" in err
    for command in ("demo", "fit", "predict", "evaluate"):
        assert command in err


def test_help_shows_the_estimators_defaults(capsys):
    from skrank import CLIPRanker

    params = CLIPRanker().get_params()
    assert {k: params[k] for k in FIT_DEFAULTS} == FIT_DEFAULTS
    _, out, _ = run(capsys, "fit", "--help")
    assert "ViT-B-16" in out and "openai" in out and str(FIT_DEFAULTS["lr"]) in out
    assert params["backbone"] == "ViT-B-16" and params["pretrained"] == "openai"


def test_console_entry_point():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("skrank") == "skrank.cli:main"
    exe = shutil.which("skrank", path=os.path.dirname(sys.executable)) or shutil.which("skrank")
    if exe is None:
        pytest.skip("the skrank script is not installed on PATH")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fit" in out.stdout and "predict" in out.stdout and "evaluate" in out.stdout


def test_version_prints_the_package_version(capsys):
    rc, out, err = run(capsys, "--version")
    assert rc == 0 and out == f"skrank {skrank.__version__}\n" and err == ""


# ------------------------------------------------------------ evaluate's default columns


def test_fit_records_the_target_column_and_evaluate_defaults_to_it(fitted, data, capsys):
    from skrank.persistence._io import load_with_cli

    model, _ = fitted
    assert load_with_cli(model)[1] == {"target_column": "brightness"}
    csv = data / "data.csv"
    rc, out, err = run(capsys, "evaluate", model, "--csv", csv, "--json")
    assert rc == 0, err
    rc, explicit, err = run(
        capsys,
        *("evaluate", model, "--csv", csv, "--json"),
        *("--image-column", "file", "--target-column", "brightness"),
    )
    assert rc == 0, err
    assert json.loads(out) == json.loads(explicit)
    assert json.loads(out)["n_groups"] is None  # fitted without a group column
    rc, out, err = run(capsys, "evaluate", model, "--csv", csv)
    assert rc == 0, err
    assert "targets 'brightness'" in out.splitlines()[0]


def test_evaluate_defaults_to_the_fitted_group_column(data, tmp_path, capsys):
    model = tmp_path / "grouped.skrank"
    rc, _, err = run(
        capsys,
        *("fit", "--csv", data / "data.csv", "--image-column", "file"),
        *("--target-column", "brightness", "--instruction", INSTRUCTION, "--quiet"),
        *("--group-column", "photo", "--out", model, "--backbone", "skrank-tiny"),
        *("--epochs", "1", "--batch-size", "8", "--device", "cpu", "--random-state", "0"),
    )
    assert rc == 0, err
    csv = data / "data.csv"
    rc, out, err = run(capsys, "evaluate", model, "--csv", csv, "--json")
    assert rc == 0, err
    assert json.loads(out)["n_groups"] == 2
    rc, out, err = run(capsys, "evaluate", model, "--csv", csv)
    assert rc == 0, err
    assert "in 2 group(s) of 'photo'" in out.splitlines()[0]
    # A CSV without the model's group column: pooled metrics, and a warning saying why.
    frame = pd.read_csv(csv).drop(columns="photo")
    frame["file"] = [str(data / p) for p in frame["file"]]
    frame.to_csv(tmp_path / "ungrouped.csv", index=False)
    rc, out, err = run(capsys, "evaluate", model, "--csv", tmp_path / "ungrouped.csv", "--json")
    assert rc == 0, err
    assert json.loads(out)["n_groups"] is None
    assert "warning: the model's group column 'photo'" in err and "--group-column" in err


def test_evaluate_without_a_recorded_target_column_asks_for_the_option(
    fitted, data, tmp_path, capsys
):
    model, _ = fitted
    plain = tmp_path / "plain.skrank"
    skrank.save(skrank.load(model), plain)  # from Python: no command-line record
    rc, _, err = run(capsys, "evaluate", plain, "--csv", data / "data.csv")
    assert_one_line_error(rc, err, "evaluate", "records no target column", "--target-column")
    rc, out, err = run(
        capsys, "evaluate", plain, "--csv", data / "data.csv", "--target-column", "brightness"
    )
    assert rc == 0, err
    # A recorded column the CSV lacks: named as the model's, with the option to set another.
    frame = pd.read_csv(data / "data.csv").rename(columns={"brightness": "level"})
    frame.to_csv(data / "renamed.csv", index=False)
    rc, _, err = run(capsys, "evaluate", model, "--csv", data / "renamed.csv")
    assert_one_line_error(rc, err, "evaluate", "'brightness' is not a column", "--target-column")


# ------------------------------------------------------------ relative image paths


def test_every_help_says_how_relative_paths_resolve(capsys):
    from skrank.cli._common import RELATIVE_PATHS

    sentence = " ".join(RELATIVE_PATHS.split())
    assert "CSV's folder" in sentence and "current folder" in sentence
    for command in ("fit", "predict", "evaluate"):
        _, out, _ = run(capsys, command, "--help")
        text = " ".join(out.split())
        assert sentence in text, command
        assert "read from the CSV's folder" not in text


@pytest.fixture
def split_layout(data, tmp_path):
    """A CSV in lists/ naming images by paths relative to tmp_path, the folder it runs from.

    lists/imgs/ holds other images under some of the same names: those beside the
    CSV must win.
    """
    frame = pd.read_csv(data / "data.csv")
    shutil.copytree(data / "imgs", tmp_path / "imgs")
    (tmp_path / "lists" / "imgs").mkdir(parents=True)
    for name in frame["file"][:3]:
        # Beside the CSV: the image of another row, so its score tells which was read.
        shutil.copy(data / frame["file"].iloc[-1], tmp_path / "lists" / name)
    frame.to_csv(tmp_path / "lists" / "list.csv", index=False)
    return tmp_path, frame


def _three(data, model, csv, out):
    """fit, predict and evaluate on ``csv``: their exit statuses and stderr."""
    fit_args = ("fit", "--csv", csv, "--image-column", "file", "--target-column", "brightness")
    fit_args += ("--instruction", INSTRUCTION, "--out", model, "--backbone", "skrank-tiny")
    fit_args += ("--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet")
    return [
        main([os.fspath(a) for a in fit_args]),
        main(["predict", os.fspath(model), "--csv", os.fspath(csv), "--out", os.fspath(out)]),
        main(["evaluate", os.fspath(model), "--csv", os.fspath(csv)]),
    ]


def test_relative_paths_resolve_beside_the_csv_then_in_the_current_folder(
    split_layout, data, fitted, capsys, monkeypatch
):
    root, frame = split_layout
    monkeypatch.chdir(root)
    csv = root / "lists" / "list.csv"
    assert _three(data, root / "m.skrank", csv, root / "p.csv") == [0, 0, 0]
    capsys.readouterr()
    model, _ = fitted
    rc, _, err = run(capsys, "predict", model, "--csv", csv, "--out", "p.csv")
    assert rc == 0, err
    table = pd.read_csv(root / "p.csv")
    assert table["path"].tolist() == frame["file"].tolist()  # as written in the CSV
    where = [root / "lists" / p if i < 3 else root / p for i, p in enumerate(frame["file"])]
    direct = skrank.load(model).predict([str(p) for p in where])
    np.testing.assert_allclose(table["score"], direct, rtol=1e-6, atol=1e-9)
    assert table["score"].iloc[0] == pytest.approx(table["score"].iloc[-1])  # beside wins


def test_an_image_in_neither_folder_is_one_line_naming_its_cell(
    split_layout, fitted, capsys, monkeypatch
):
    root, frame = split_layout
    monkeypatch.chdir(root)
    frame.loc[5, "file"] = "imgs/missing.png"
    csv = root / "lists" / "missing.csv"
    frame.to_csv(csv, index=False)
    model, _ = fitted
    fit = ("fit", "--csv", csv, "--image-column", "file", "--target-column", "brightness",
           "--instruction", INSTRUCTION, "--out", root / "m.skrank", "--backbone", "skrank-tiny",
           "--device", "cpu", "--quiet")  # fmt: skip
    predict = ("predict", model, "--csv", csv, "--out", root / "p.csv")
    evaluate = ("evaluate", model, "--csv", csv)
    for argv in (fit, predict, evaluate):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(
            rc, err, argv[0], "--image-column", "'file'", "1 image(s) could not be read",
            "row 6 'imgs/missing.png': file not found in the CSV's folder or in the current folder",
        )  # fmt: skip
    assert not (root / "m.skrank").exists() and not (root / "p.csv").exists()


def test_absolute_paths_are_used_as_they_are(data, fitted, tmp_path, capsys, monkeypatch):
    frame = pd.read_csv(data / "data.csv")
    frame["file"] = [str(data / p) for p in frame["file"]]
    csv = tmp_path / "lists" / "absolute.csv"
    csv.parent.mkdir()
    frame.to_csv(csv, index=False)
    monkeypatch.chdir(tmp_path)
    assert _three(data, tmp_path / "m.skrank", csv, tmp_path / "p.csv") == [0, 0, 0]
    capsys.readouterr()
    model, _ = fitted
    rc, _, err = run(capsys, "predict", model, "--csv", csv, "--out", "p.csv")
    assert rc == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["path"].tolist() == frame["file"].tolist()
    direct = skrank.load(model).predict(frame["file"].tolist())
    np.testing.assert_allclose(table["score"], direct, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("command", "message", "expected"),
    [
        ("fit", "batch_size=1 (int) is not valid", "--batch-size 1 is not valid"),
        ("predict", "batch_size=1 (int) is not valid", "the model's batch size 1 is not valid"),
        ("fit", "device='cuda' was asked for", "--device 'cuda' was asked for"),
        ("evaluate", "device='cuda' was asked for", "--device 'cuda' was asked for"),
        (
            "fit",
            "pass a file: CLIPRanker(backbone='B', pretrained='/w.pt'), or use backbone='tiny'",
            "pass a file: --backbone 'B' --pretrained '/w.pt', or use --backbone 'tiny'",
        ),
        (
            "fit",
            "backbone='B' with pretrained=None has random weights",
            "--backbone 'B' with --pretrained none has random weights",
        ),
        (
            "fit",
            "a known tag, or None for random weights",
            "a known tag, or 'none' for random weights",
        ),
        ("fit", "lower lr (now 0.1) or check", "lower --lr (now 0.1) or check"),
        (
            "fit",
            "y for instruction 'x' is flat; rescale y.",
            "--target-column 'age' for instruction 'x' is flat; rescale --target-column 'age'.",
        ),  # fmt: skip
        ("fit", "X has 8 images", "--image-column 'file' has 8 images"),
        (
            "predict",
            "X names no instruction and instruction=None",
            "the image list names no instruction and no --instruction",
        ),  # fmt: skip
        ("predict", "on_error='skip' is not valid", "--on-error 'skip' is not valid"),
        # Quoted text (values, paths) and words inside paths are left as they are.
        ("fit", "cannot read 'batch_size=1.csv'", "cannot read 'batch_size=1.csv'"),
        ("fit", "[0] /data/y/lr.png: not found; X-ray", "[0] /data/y/lr.png: not found; X-ray"),
        ("fit", "the model's lr_ and y_scale_", "the model's lr_ and y_scale_"),
    ],
)
def test_library_messages_speak_the_commands_options(command, message, expected):
    import argparse

    from skrank.cli import _parser
    from skrank.cli._words import Vocabulary

    args = argparse.Namespace(
        target_column="age", image_column="file" if command == "fit" else None
    )
    owner = "ranker" if command == "fit" else "model"
    words = Vocabulary(_parser().commands[command], args, owner=owner)
    assert words.translate(message) == expected


def test_evaluate_shows_the_ordinal_metrics_for_integer_targets(fitted, data, tmp_path, capsys):
    from skrank.metrics import ordinal_accuracy, ordinal_mae

    model, _ = fitted
    frame = pd.read_csv(data / "data.csv")
    frame["level"] = pd.qcut(frame["brightness"], 4, labels=False)  # ordinal classes 0..3
    csv = data / "ordinal.csv"
    frame.to_csv(csv, index=False)
    args = ["evaluate", model, "--csv", csv, "--target-column", "level"]
    rc, out, err = run(capsys, *args)
    assert rc == 0, err
    assert "accuracy (rounded to classes)" in out and "MAE (rounded to classes)" in out
    rc, out, err = run(capsys, *args, "--json")
    pooled = json.loads(out)["pooled"]
    pred = skrank.load(model).predict([str(data / p) for p in frame["file"]])
    y = frame["level"].to_numpy()
    assert pooled["ordinal_accuracy"] == pytest.approx(ordinal_accuracy(y, pred))
    assert pooled["ordinal_mae"] == pytest.approx(ordinal_mae(y, pred))
    rc, out, err = run(capsys, "evaluate", model, "--csv", data / "data.csv")
    assert "rounded to classes" not in out  # continuous targets: not ordinal


def test_predict_and_evaluate_take_a_device(fitted, data, tmp_path, capsys):
    model, _ = fitted
    csv = data / "data.csv"
    rc, out, err = run(capsys, "evaluate", model, "--csv", csv, "--json", "--device", "cpu")
    assert rc == 0, err
    rc, same, err = run(capsys, "evaluate", model, "--csv", csv, "--json")
    assert json.loads(out) == json.loads(same)
    rc, _, err = run(capsys, "predict", model, "--csv", csv, "--device", "tpu")
    assert_one_line_error(rc, err, "predict", "--device")


def test_fit_without_an_instruction_uses_the_librarys_default(data, tmp_path, capsys):
    from skrank._estimator.inputs import DEFAULT_INSTRUCTION

    model = tmp_path / "neutral.skrank"
    rc, out, err = run(
        capsys,
        *("fit", "--csv", data / "data.csv", "--image-column", "file", "--quiet"),
        *("--target-column", "brightness", "--out", model),
        *("--backbone", "skrank-tiny", "--epochs", "1", "--batch-size", "8", "--device", "cpu"),
    )
    assert rc == 0, err
    ranker = skrank.load(model)
    # As CLIPRanker().fit(images, y): instruction=None, fitted on the neutral default.
    assert ranker.instruction is None and ranker.instructions_ == [DEFAULT_INSTRUCTION]
    rc, out, err = run(capsys, "predict", model, data / "imgs", "--out", tmp_path / "p.csv")
    assert rc == 0 and "wrote 24 score(s)" in out, err
    _, out, _ = run(capsys, "fit", "--help")
    assert repr(DEFAULT_INSTRUCTION) in " ".join(out.split())  # the help states the default


def test_fit_preset_chooses_the_model_and_is_saved(data, tmp_path, capsys):
    """--preset paper on a random tower trains the paper's model (auto would not)."""
    model = tmp_path / "paper.skrank"
    rc, _, err = run(
        capsys,
        *("fit", "--csv", data / "data.csv", "--image-column", "file", "--quiet"),
        *("--target-column", "brightness", "--instruction", INSTRUCTION, "--out", model),
        *("--backbone", "skrank-tiny", "--epochs", "1", "--batch-size", "8", "--device", "cpu"),
        *("--preset", "paper"),
    )
    assert rc == 0, err
    ranker = skrank.load(model)
    assert ranker.preset == ranker.preset_ == "paper" and ranker.lr_ == 5e-5
    assert len(ranker.adapter_.post) == 2 and ranker.adapter_.score_head.pooling == "mean"
    rc, _, err = run(capsys, "fit", "--csv", data / "data.csv", "--preset", "papers")
    assert_one_line_error(rc, err, "fit", "--preset", "'papers'")


def test_threads_sets_torchs_threads_while_the_command_runs(fitted, data, tmp_path, capsys):
    import torch

    import skrank.cli.predict

    model, _ = fitted
    seen = []
    real_run = skrank.cli.predict.run

    def run_and_look(args):
        seen.append(torch.get_num_threads())
        return real_run(args)

    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(skrank.cli.predict, "run", run_and_look)
        out = tmp_path / "scores.csv"
        rc, _, err = run(capsys, "predict", model, data / "imgs", "--out", out, "--threads", "2")
    assert rc == 0, err
    assert seen == [2] and torch.get_num_threads() == before  # restored after the command
    assert len(pd.read_csv(out)) == 24  # every image of the folder, nested ones too


@pytest.mark.parametrize("value", ["0", "-1", "two", "", "1.5", "100000"])
@pytest.mark.parametrize("command", ["demo", "fit", "predict", "evaluate"])
def test_a_bad_threads_value_is_one_line_naming_the_option(fitted, data, capsys, command, value):
    model, _ = fitted
    argv = {
        "demo": ["demo"],
        "fit": ["fit", "--csv", data / "data.csv", "--image-column", "file"]
        + ["--target-column", "brightness", "--instruction", INSTRUCTION, "--out", "m.skrank"],
        "predict": ["predict", model, data / "imgs", "--out", "scores.csv"],
        "evaluate": ["evaluate", model, "--csv", data / "data.csv"],
    }[command]
    rc, out, err = run(capsys, *argv, "--threads", value)
    assert rc == 2 and out == ""
    expected = "an integer in [1, 1024]"
    assert_one_line_error(rc, err, command, "argument --threads:", expected)
