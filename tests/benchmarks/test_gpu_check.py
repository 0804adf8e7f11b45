"""benchmarks/gpu_check.py --smoke: the GPU machine's one prepared run, every step of
it on the CPU at tiny sizes, so that a change to the library cannot break it unseen."""

from __future__ import annotations

import json
import tempfile

from benchmarks import gpu_check


def test_the_smoke_mode_runs_every_step(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gpu_check.main(["--smoke"])
    report = json.loads((tmp_path / "gpu-cpu-smoke.json").read_text())
    assert {"training", "memory", "encode", "precision"} <= set(report)
    assert report["training"]["steps"] >= 1 and report["training"]["flops_per_step"] > 0
    assert -1 <= report["precision"]["two_fits_srcc_bf16_vs_fp32"] <= 1
