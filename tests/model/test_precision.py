"""One precision rule, honoured by both frozen towers and the adapter.

``precision="fp32"`` must keep every forward pass in fp32 on the device it
resolves to, CUDA included. A machine without a GPU cannot run CUDA, so these
tests check the decision itself (:func:`skrank._devices.use_bf16`) and that
every forward pass of a fit and a prediction asks it with the ranker's own
``precision``: a call site that forgot it would ask with the default "auto",
which means bf16 on CUDA.
"""

import numpy as np
import pytest
import torch

from skrank import _devices as devices
from tests.helpers import tiny_ranker

CUDA, CPU, MPS = torch.device("cuda"), torch.device("cpu"), torch.device("mps")


@pytest.mark.parametrize(
    ("device", "precision", "bf16"),
    [
        (CUDA, "auto", True),
        (CUDA, "bf16", True),
        (CUDA, "fp32", False),
        (torch.device("cuda:1"), "fp32", False),
        (CPU, "auto", False),
        (CPU, "fp32", False),
        (MPS, "auto", False),
    ],
)
def test_the_bf16_decision(device, precision, bf16):
    assert devices.use_bf16(device, precision) is bf16


def test_the_towers_stay_fp32_on_a_cpu_and_follow_precision_on_cuda(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: True)
    assert devices.use_bf16(CPU, "bf16") and not devices.use_bf16(CPU, "bf16", towers=True)
    assert devices.use_bf16(CUDA, "auto", towers=True)
    assert devices.use_bf16(CUDA, "bf16", towers=True)
    assert not devices.use_bf16(CUDA, "fp32", towers=True)
    with devices.autocast(CPU, "bf16", towers=True):
        assert not torch.is_autocast_enabled("cpu")


def test_fp32_autocast_is_no_autocast_at_all():
    with devices.autocast(CUDA, "fp32"):
        assert not torch.is_autocast_enabled()
    with pytest.raises(ValueError, match="precision='half'"):
        devices.use_bf16(CUDA, "half")


class _Seen(list):
    """(calling function, precision) per autocast decision; ``towers``: whether each
    was the frozen towers'."""

    def __init__(self):
        super().__init__()
        self.towers = []


@pytest.fixture
def forward_passes(monkeypatch):
    """Record (calling function, precision) for every autocast decision taken."""
    seen = _Seen()
    original = devices.autocast

    def recording(device, precision="auto", towers=False):
        import sys

        seen.append((sys._getframe(1).f_code.co_name, precision))
        seen.towers.append(towers)
        return original(device, precision, towers)

    monkeypatch.setattr(devices, "autocast", recording)
    return seen


@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize("cache", ["memory", None])
def test_every_forward_pass_uses_the_rankers_precision(forward_passes, precision, cache):
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 25)]
    ranker = tiny_ranker(precision=precision, cache=cache, max_epochs=1).fit(
        images, np.arange(10.0)
    )
    ranker.predict(images[:3])
    ranker.compare(images[:2], images[2:4])
    callers = {name for name, _ in forward_passes}
    # Both frozen towers, the training step and inference all decided, and all
    # with the ranker's precision (so on CUDA, fp32 stays fp32 everywhere).
    # (_run_epoch: an epoch's training steps)
    assert {"image_tokens", "text_tokens", "_run_epoch", "predict_tokens"} <= callers
    assert {(name, p) for name, p in forward_passes if p != precision} == set()
    assert all(devices.use_bf16(CUDA, p) is (precision != "fp32") for _, p in forward_passes)
    assert all(p.dtype == torch.float32 for p in ranker.adapter_.parameters())


def test_bf16_is_refused_without_cuda_or_a_native_bf16_cpu(monkeypatch):
    from skrank._estimator.params import InvalidParameterError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not devices.cpu_bf16_native()
    with pytest.raises(InvalidParameterError, match="precision='bf16' needs a CUDA device or"):
        tiny_ranker(precision="bf16").fit([np.zeros((8, 8, 3), np.uint8)] * 2, [0.0, 1.0])


def test_bf16_on_a_native_bf16_cpu_autocasts_every_forward_pass(forward_passes):
    if not devices.cpu_bf16_native():
        pytest.skip("this CPU does not compute bf16 natively")
    assert devices.use_bf16(CPU, "bf16") and not devices.use_bf16(CPU, "auto")
    with devices.autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 25)]
    ranker = tiny_ranker(precision="bf16", max_epochs=1).fit(images, np.arange(10.0))
    assert np.isfinite(ranker.predict(images)).all()
    assert {p for _, p in forward_passes} == {"bf16"}
    # The adapter's passes autocast; the towers' stay fp32 on a CPU.
    assert True in forward_passes.towers and False in forward_passes.towers
    assert not devices.use_bf16(CPU, "bf16", towers=True)
    assert all(p.dtype == torch.float32 for p in ranker.adapter_.parameters())


def test_under_bf16_autocast_the_residual_stream_and_the_heads_stay_float32():
    """bf16 runs the adapter's matrix products, never the numbers it sums into, nor
    the scores and logits a ranking compares: their 8-bit mantissa would tie close
    images and round the loss's differences."""
    from skrank._model.adapter import AdapterConfig, RankingAdapter

    cfg = AdapterConfig(24, 16, d_model=32, n_heads=4, n_fusion_layers=2, n_post_layers=2)
    adapter = RankingAdapter(cfg, torch.Generator().manual_seed(0)).eval()
    g = torch.Generator().manual_seed(1)
    tokens, text = torch.randn(12, 9, 24, generator=g), torch.randn(1, 5, 16, generator=g)
    valid = torch.ones(1, 5, dtype=torch.bool)
    streams = []
    for block in [*adapter.fusion, *adapter.post]:
        block.register_forward_hook(lambda m, args, out: streams.append(out.dtype))
    with torch.no_grad():
        exact, fused32 = adapter(tokens, text, valid)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            scores, fused = adapter(tokens, text, valid)
            logits = adapter.pair_logits(fused)
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32  # autocast left
    assert set(streams) == {torch.float32}
    assert scores.dtype == fused.dtype == logits.dtype == torch.float32
    # bf16's rounding, not its format: near the float32 scores, and distinct ones stay so.
    assert torch.allclose(scores, exact, atol=0.05 * exact.std().item())
    assert len(set(scores.tolist())) == len(scores)
    assert torch.allclose(logits, -logits.T) and torch.all(logits.diagonal() == 0)
