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
    assert "skrank-tiny" in out.stdout  # no cached CLIP weights here: says which and why
    assert "CLIPRanker" in out.stdout and "ridge probe" in out.stdout
    report = (tmp_path / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3  # contact sheet, scatter, curves


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
