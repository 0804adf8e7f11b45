"""The command line: the README's main job, `skrank demo`, runs offline."""

import os
import subprocess
import sys

import pytest


def test_demo_runs_offline_and_writes_a_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "skrank.cli", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # No cached CLIP weights here: says which stands in, and why.
    assert "backbone: skrank-tiny (pretrained=synthetic)" in out.stdout
    assert "CLIPRanker" in out.stdout and "ridge probe" in out.stdout and "zero-shot" in out.stdout
    assert "Note: skrank-tiny's synthetic weights" in out.stdout
    assert "not CLIP's quality" in out.stdout
    report = (tmp_path / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3  # contact sheet, scatter, curves
    assert "How to read this report" in report and "not CLIP&#x27;s quality" in report
    for term in ("SRCC within photo", "SRCC pooled", "PLCC", "MAE", "#k", "s=", "y="):
        assert f"{term}</" in report or f"{term}," in report or f"{term};" in report, term


def test_cli_errors_are_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "skrank.cli", "demo", "--out", str(tmp_path), "--kind", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "nope" in out.stderr


def test_version_from_the_real_entry_point():
    import skrank

    out = subprocess.run(
        [sys.executable, "-m", "skrank.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == f"skrank {skrank.__version__}\n" and out.stderr == ""


# Runs the command line's main in a fresh interpreter, then names the heavy modules it
# imported: `skrank --version` and the --help pages need none of them.
_IMPORTS_CHILD = """
import sys

import pytest
from skrank.cli import main
status = main(sys.argv[1:])
heavy = [m for m in ("torch", "open_clip", "sklearn", "pandas") if m in sys.modules]
print("status", status, "heavy", ",".join(heavy) or "none")
"""


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["fit", "--help"], ["predict", "--help"], ["evaluate", "--help"]]
    + [["demo", "--help"]],
    ids=" ".join,
)
def test_version_and_help_import_neither_torch_nor_sklearn(argv):
    from skrank import __version__

    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS_CHILD, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "status 0 heavy none", out.stdout[-2000:]
    if argv == ["--version"]:
        assert out.stdout.splitlines()[0] == f"skrank {__version__}"
    else:
        assert "usage: skrank" in out.stdout


def test_import_skrank_defers_its_public_names():
    child = (
        "import sys, skrank\n"
        "assert 'torch' not in sys.modules, 'import skrank imported torch'\n"
        "assert set(skrank.__all__) <= set(dir(skrank))\n"
        "from skrank import CLIPRanker, load\n"
        "assert CLIPRanker.__module__ == 'skrank._estimator.ranker' and 'torch' in sys.modules\n"
        "assert all(getattr(skrank, name) is not None for name in skrank.__all__)\n"
        "try:\n"
        "    skrank.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('skrank.no_such_name did not raise')\n"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _sheet_and_report(tmp_path, pretrained):
    """The demo's contact sheet of 24 images, and a report written around it."""
    import numpy as np

    from skrank.cli.demo import _SHEET, _legend, _write_report
    from skrank.datasets import make_ranking_task
    from skrank.plotting import plot_ranking

    task = make_ranking_task("blur", image_size=64, n_sources=8, random_state=0)
    scores = np.linspace(2.0, -1.0, len(task.images))  # long labels: "s=-0.96"
    sheet = plot_ranking(task.images, scores, y_true=task.target, n=_SHEET)
    rows = [{"method": "CLIPRanker", "SRCC within photo": 0.5, "SRCC pooled": 0.4}]
    path = tmp_path / "report.html"
    key = _legend(len(task.images), "blur")
    _write_report(path, task, ("skrank-tiny", pretrained, "why"), rows, {"sheet": sheet}, key)
    return sheet, path.read_text()


def test_the_contact_sheet_lies_inside_its_figure_and_the_reports_column(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    sheet, report = _sheet_and_report(tmp_path, None)
    renderer = FigureCanvasAgg(sheet).get_renderer()
    sheet.draw(renderer)
    width, height = sheet.bbox.width, sheet.bbox.height
    for ax in sheet.axes:  # each thumbnail with its title
        box = ax.get_tightbbox(renderer)
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height, box
    # The sheet is wider than the report's 1,100 px column at the report's dpi: the
    # report scales figures to the column, or the right column runs off the page.
    assert sheet.get_figwidth() * 110 > 1100
    assert "img{max-width:100%;height:auto}" in report


def test_the_report_explains_itself(tmp_path):
    _, report = _sheet_and_report(tmp_path, None)
    assert "<h2 id='key'>How to read this report</h2>" in report
    for term in ("SRCC within photo", "SRCC pooled", "PLCC", "MAE", "Contact sheet"):
        assert f"<dt>{term}</dt>" in report, term
    assert "#k, its rank" in report and "s=, its predicted score" in report
    assert "y=, its true target" in report and "24 of the 64" in report
    assert "<b>Note:</b> With random weights" in report  # pretrained=None: random towers
    _, pretrained = _sheet_and_report(tmp_path, "openai")
    assert "<b>Note:</b>" not in pretrained and "How to read this report" in pretrained
