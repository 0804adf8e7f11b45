"""`skrank fit`, `predict` and `evaluate` with comparisons: a CSV of two image columns and a
winner column, and the CLIPPreferenceRanker fitted on it."""

import contextlib
import io
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import skrank
from skrank.cli import main
from tests.cli.helpers import assert_one_line_error, python_spellings, run

INSTRUCTION = "Sort the images by brightness."
QUICK = ("--backbone", "skrank-tiny", "--epochs", "2", "--batch-size", "8")
QUICK += ("--random-state", "0", "--lr", "1e-3", "--device", "cpu")
COLUMNS = ("--image-a-column", "left", "--image-b-column", "right", "--winner-column", "winner")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """10 graded PNGs and a CSV of comparisons among them (relative paths): the brighter
    wins, written as a, b (any case), 1, 0; one tie, one annotators' share."""
    root = tmp_path_factory.mktemp("comparisons")
    (root / "imgs").mkdir()
    for i in range(10):
        level = 20 + 22 * i
        Image.new("RGB", (32, 32), (level, level, level // 2)).save(root / f"imgs/{i}.png")
    rows = []
    for k, (i, j) in enumerate(itertools.combinations(range(10), 2)):
        if k % 2:
            i, j = j, i
        first, second = [("A", "b"), ("1", "0"), ("a", "B")][k % 3]  # left wins, right wins
        winner = first if i > j else second
        rows.append({"left": f"imgs/{i}.png", "right": f"imgs/{j}.png", "winner": winner})
    rows += [
        {"left": "imgs/4.png", "right": "imgs/5.png", "winner": "Tie"},
        {"left": "imgs/9.png", "right": "imgs/0.png", "winner": "0.8"},
    ]
    pd.DataFrame(rows).to_csv(root / "votes.csv", index=False)
    return root


def truth(csv):
    """The winner column of ``csv`` as P(left ranks above)."""
    words = {"a": 1.0, "b": 0.0, "tie": 0.5}
    cells = pd.read_csv(csv, dtype=str)["winner"].str.strip().str.lower()
    return np.array([words[c] if c in words else float(c) for c in cells])


def frame(csv):
    """The comparisons of ``csv`` with absolute paths, in the model's columns."""
    df = pd.read_csv(csv, dtype=str)
    return pd.DataFrame({c: [str(csv.parent / p) for p in df[c]] for c in ("left", "right")})


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """`skrank fit` on comparisons, run from another folder (paths resolve by the CSV)."""
    model = data / "models" / "votes.skrank"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.chdir(tmp_path_factory.mktemp("elsewhere"))
        rc = main(
            ["fit", "--csv", str(data / "votes.csv"), *COLUMNS, "--out", str(model)]
            + ["--instruction", INSTRUCTION, *QUICK]
        )
    assert rc == 0, stdout.getvalue()
    return model, stdout.getvalue()


def test_winner_words_and_numbers_are_read_as_probabilities(data):
    from skrank.cli._common import read_csv
    from skrank.cli._comparisons import winners

    df = pd.DataFrame({"w": [" A", "b", "TIE", "1", "0", "0.5", "0.25", "a "]})
    expected = [1.0, 0.0, 0.5, 1.0, 0.0, 0.5, 0.25, 1.0]
    np.testing.assert_array_equal(winners(df, "w", "x.csv"), expected)
    votes = read_csv(str(data / "votes.csv"))
    np.testing.assert_array_equal(winners(votes, "winner", "v.csv"), truth(data / "votes.csv"))


def test_fit_on_comparisons_saves_a_preference_model(fitted, data):
    model, stdout = fitted
    lines = stdout.strip().splitlines()
    assert lines[-2].startswith("CLIPPreferenceRanker: 2 epoch(s)")
    assert lines[-1] == f"47 comparisons of 10 images; saved to {model}"
    loaded, record = skrank.persistence._io.load_with_cli(model)
    assert type(loaded) is skrank.CLIPPreferenceRanker
    assert record == {"winner_column": "winner"}
    assert loaded.image_columns == ("left", "right") and loaded.instructions_ == [INSTRUCTION]
    assert loaded.n_iter_ == 2 and loaded.lr_ == 1e-3 and loaded.batch_size == 8


def test_fit_quiet_says_it_in_one_line(data, tmp_path, capsys):
    out = tmp_path / "q.skrank"
    rc, stdout, err = run(
        capsys, "fit", "--csv", data / "votes.csv", *COLUMNS, "--out", out, *QUICK, "--quiet"
    )
    assert rc == 0, err
    assert stdout.startswith("fitted 2 epoch(s) on 47 comparisons of 10 images in ")
    assert stdout.strip().endswith(f"saved to {out}") and len(stdout.splitlines()) == 1


def test_predict_scores_each_image_as_score_images(fitted, data, tmp_path, capsys):
    model, _ = fitted
    out = tmp_path / "scores.csv"
    rc, stdout, err = run(capsys, "predict", model, data / "imgs", "--out", out, "--sort")
    assert rc == 0, err
    table = pd.read_csv(out)
    direct = skrank.load(model).score_images(table["path"].tolist())
    np.testing.assert_allclose(table["score"], direct, rtol=1e-6, atol=1e-9)
    assert np.all(np.diff(table["score"]) <= 0)
    # A CSV names the column to score: the model was fitted on two.
    csv = ("predict", model, "--csv", data / "votes.csv", "--out", out)
    rc, _, err = run(capsys, *csv)
    assert_one_line_error(rc, err, "predict", "--image-column is needed", "'left' and 'right'")
    rc, _, err = run(capsys, *csv, "--image-column", "right")
    assert rc == 0, err
    expected = skrank.load(model).score_images(frame(data / "votes.csv")["right"].tolist())
    np.testing.assert_allclose(pd.read_csv(out)["score"], expected, rtol=1e-6, atol=1e-9)


def test_evaluate_reports_pairwise_accuracy_and_the_probabilities_agreement(fitted, data, capsys):
    from skrank.cli._comparisons import metrics

    model, _ = fitted
    rc, stdout, err = run(capsys, "evaluate", model, "--csv", data / "votes.csv", "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    loaded = skrank.load(model)
    X, y = frame(data / "votes.csv"), truth(data / "votes.csv")
    assert result["n_comparisons"] == len(y) == 47
    assert result["pairwise_accuracy"] == pytest.approx(loaded.score(X, y))
    p = loaded.predict_proba(X)[:, 1]
    expected = metrics(y, p)
    assert {k: result[k] for k in expected} == pytest.approx(expected)
    q = np.clip(p, 1e-15, 1 - 1e-15)
    log_loss = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    assert result["log_loss"] == pytest.approx(log_loss)
    assert result["brier"] == pytest.approx(np.mean((p - y) ** 2))
    rc, stdout, err = run(capsys, "evaluate", model, "--csv", data / "votes.csv")
    assert rc == 0, err
    assert stdout.startswith("47 comparisons;") and "pairwise accuracy (ties half)" in stdout
    assert "log loss" in stdout and "Brier score" in stdout


def test_pairwise_accuracy_counts_ties_as_half():
    from skrank.cli._comparisons import metrics

    y = np.array([1.0, 0.0, 0.5, 0.8])
    p = np.array([0.9, 0.9, 0.7, 0.5])
    assert metrics(y, p)["pairwise_accuracy"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)


def test_evaluate_reads_other_columns_when_named(fitted, data, tmp_path, capsys):
    model, _ = fitted
    df = pd.read_csv(data / "votes.csv", dtype=str)
    df.columns = ["first", "second", "who"]
    csv = data / "renamed.csv"
    df.to_csv(csv, index=False)
    names = ("--image-a-column", "first", "--image-b-column", "second", "--winner-column", "who")
    rc, stdout, err = run(capsys, "evaluate", model, "--csv", csv, *names, "--json")
    assert rc == 0, err
    rc, default, _ = run(capsys, "evaluate", model, "--csv", data / "votes.csv", "--json")
    assert json.loads(stdout) == json.loads(default)
    rc, _, err = run(capsys, "evaluate", model, "--csv", csv)
    assert_one_line_error(rc, err, "evaluate", "first image column (the model's", "'left'")


def test_a_model_saved_without_a_record_needs_the_winner_column(fitted, data, tmp_path, capsys):
    model, _ = fitted
    plain = tmp_path / "plain.skrank"
    skrank.save(skrank.load(model), plain)
    rc, _, err = run(capsys, "evaluate", plain, "--csv", data / "votes.csv")
    assert_one_line_error(rc, err, "evaluate", "records no winner column", "--winner-column")
    rc, _, err = run(
        capsys, "evaluate", plain, "--csv", data / "votes.csv", "--winner-column", "winner"
    )
    assert rc == 0, err


# ----------------------------------------------------------------------- one-line errors


def _fit(data, tmp_path, *options, csv=None):
    csv = data / "votes.csv" if csv is None else csv
    return ("fit", "--csv", csv, "--out", tmp_path / "m.skrank", *options, *QUICK, "--quiet")


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (("--image-a-column", "left", "--image-b-column", "right"), ["needs --winner-column"]),
        (("--winner-column", "winner"), ["--winner-column needs --image-a-column"]),
        (("--image-column", "left", *COLUMNS), ["--image-column cannot go with --image-a-col"]),
        ((*COLUMNS, "--group-column", "left"), ["--group-column cannot go with"]),
        ((*COLUMNS, "--pair-scope", "all"), ["--pair-scope cannot go with"]),
        (("--target-column", "winner"), ["--image-column is required", "--winner-column"]),
        ((), ["--image-column and --target-column are required"]),
        (COLUMNS[:3] + ("left", "--winner-column", "winner"), ["'left' is also the --image-a"]),
        (COLUMNS[:4] + ("--winner-column", "right"), ["--winner-column 'right' is also the"]),
        (COLUMNS[:4] + ("--winner-column", "nope"), ["--winner-column 'nope' is not a column"]),
        ((*COLUMNS, "--instruction-column", "winner"), ["is also the --winner-column"]),
    ],
)
def test_fit_refuses_half_or_a_mix_of_the_two_ways_in_one_line(
    data, tmp_path, capsys, options, needles
):
    rc, _, err = run(capsys, *_fit(data, tmp_path, *options))
    assert_one_line_error(rc, err, "fit", *needles)
    assert python_spellings(err.strip()) == [], err
    assert not (tmp_path / "m.skrank").exists()


@pytest.mark.parametrize(
    ("cell", "row"), [("left", 3), ("", 5), ("1.5", 2), ("-0.1", 7), ("nan", 1), ("ab", 4)]
)
def test_a_bad_winner_is_one_line_naming_the_column_and_row(
    fitted, data, tmp_path, capsys, cell, row
):
    df = pd.read_csv(data / "votes.csv", dtype=str)
    df.loc[row - 1, "winner"] = cell
    csv = tmp_path / "bad.csv"  # beside no image: the paths are absolute
    for c in ("left", "right"):
        df[c] = [str(data / p) for p in df[c]]
    df.to_csv(csv, index=False)
    rc, _, err = run(capsys, *_fit(data, tmp_path, *COLUMNS, csv=csv))
    needles = ["--winner-column 'winner' has 1 value(s)", "a, b, tie", f"row(s) {row} "]
    assert_one_line_error(rc, err, "fit", *needles)
    rc, _, err = run(capsys, "evaluate", fitted[0], "--csv", csv)
    assert_one_line_error(rc, err, "evaluate", "winner column (the model's", f"row(s) {row} ")


def test_an_unreadable_image_is_named_by_its_column_row_and_cell(fitted, data, tmp_path, capsys):
    df = pd.read_csv(data / "votes.csv", dtype=str)
    df.loc[5, "right"] = "imgs/missing.png"
    df.loc[9, "left"] = "imgs/missing.png"
    csv = data / "missing.csv"
    df.to_csv(csv, index=False)
    rc, _, err = run(capsys, *_fit(data, tmp_path, *COLUMNS, csv=csv))
    needles = ["--image-a-column 'left'", "1 image(s) could not be read", "row 10", "missing.png"]
    assert_one_line_error(rc, err, "fit", *needles, "file not found in the CSV's folder")
    model, _ = fitted
    rc, _, err = run(capsys, "evaluate", model, "--csv", csv)
    assert_one_line_error(rc, err, "evaluate", "first image column (the model's", "row 10")


def test_evaluate_refuses_the_other_kind_of_models_options(fitted, data, tmp_path, capsys):
    model, _ = fitted
    csv = data / "votes.csv"
    for option in ("--target-column", "--image-column", "--group-column"):
        rc, _, err = run(capsys, "evaluate", model, "--csv", csv, option, "winner")
        assert_one_line_error(rc, err, "evaluate", f"{option} does not apply", "preference model")
    rc, _, err = run(capsys, "evaluate", model, "--csv", csv, "--image-b-column", "left")
    assert_one_line_error(rc, err, "evaluate", "--image-b-column 'left' is also the first image")
    rows = [{"file": f"imgs/{i}.png", "y": float(i)} for i in range(10)]
    pd.DataFrame(rows).to_csv(data / "ranker.csv", index=False)
    ranker = tmp_path / "ranker.skrank"
    fit = ("fit", "--csv", data / "ranker.csv", "--image-column", "file", "--target-column", "y")
    rc, _, err = run(capsys, *fit, "--out", ranker, *QUICK, "--quiet")
    assert rc == 0, err
    rc, _, err = run(capsys, "evaluate", ranker, "--csv", csv, "--winner-column", "winner")
    assert_one_line_error(rc, err, "evaluate", "--winner-column does not apply", "a ranker")


def test_help_says_how_to_write_a_winner(capsys):
    for command in ("fit", "evaluate"):
        rc, out, _ = run(capsys, command, "--help")
        assert rc == 0
        text = " ".join(out.split())
        assert "--winner-column" in text and "tie, in any letter case" in text
        assert "a number in [0, 1]" in text
    rc, out, _ = run(capsys, "predict", "--help")
    assert "preference model" in " ".join(out.split())
