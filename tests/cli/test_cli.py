"""The command line: the README's main job, `skrank demo`, runs offline."""

import os
import subprocess
import sys


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
