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
from skrank.cli import FIT_DEFAULTS, main
from skrank.metrics import spearman_score

INSTRUCTION = "Sort the images by brightness."
METRIC_LABELS = ("SRCC", "KRCC", "PLCC", "pairwise accuracy", "MAE")


def run(capsys, *argv):
    """``skrank ARGV`` in-process: (exit status, stdout, stderr)."""
    rc = main([os.fspath(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, command, *needles):
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"skrank {command}: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """skrank-tiny is too small to gain from threads, and on a shared 2-core machine two
    spinning OpenMP threads made one fit 25x slower (15 s instead of 0.6 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    summary = stdout.strip().splitlines()[-1]
    assert "2 epoch(s)" in summary and "24 images" in summary and str(model) in summary
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
