"""benchmarks/bench_step.py: the step it times is the training loop's, on any backbone;
its encoding and attention timings run what they name; the steps' own peak memory."""

from __future__ import annotations

import torch

from benchmarks import _common, bench_step
from skrank._encoding.backbone import load_backbone


def test_the_timed_step_trains_the_preset_model_and_drops_its_gradients():
    backbone = load_backbone("skrank-tiny", None, "cpu")
    adapter, optimizer, reg_weight = bench_step.model_for("paper", backbone)
    before = [p.detach().clone() for p in adapter.parameters()]
    batch = bench_step.batch_for(backbone, 6)
    step = bench_step.step_fn(adapter, optimizer, reg_weight, batch, "fp32")
    assert torch.isfinite(step())
    assert any(not torch.equal(a, b) for a, b in zip(before, adapter.parameters()))
    assert all(p.grad is None for p in adapter.parameters())  # not kept into the next forward
    assert len(adapter.fusion) == 4 and len(adapter.post) == 2  # the paper's 2 + 2 layers


def test_both_views_in_one_pass_are_the_tokens_of_two_passes():
    backbone = load_backbone("skrank-tiny", None, "cpu")
    x = torch.randn(3, 3, *backbone.image_size, generator=torch.Generator().manual_seed(0))
    one = backbone.image_tokens(torch.cat([x, x.flip(-1)]), "fp32").split(3)
    two = backbone.image_tokens(x, "fp32"), backbone.image_tokens(x.flip(-1), "fp32")
    for a, b in zip(one, two):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    timing = bench_step.views_timing(backbone, n=4, batch_size=2, repeats=1)
    assert {"seconds_plain", "seconds_both_two_passes", "seconds_both_one_pass"} <= set(timing)


def test_the_dropout_attention_timing_runs_both_ways():
    out = bench_step.dropout_attention_timing(batch_size=2, repeats=1)
    assert out["seconds_written_out"] > 0 and out["seconds_sdpa"] > 0


def test_the_peak_restarts_from_now():
    junk = torch.ones(64, 1024, 1024)  # 256 MiB, touched
    del junk
    high = _common.status_mib("VmHWM")
    _common.reset_peak_rss()
    assert _common.status_mib("VmHWM") < high - 100
