"""bench_quality's fine-tuned baseline: the trainable tail it builds is the tower's
own last block (ViT) or last stage (ConvNeXt), and it trains on both."""

from __future__ import annotations

import json
import warnings

import numpy as np
import open_clip
import pytest
import torch

from benchmarks import bench_quality
from skrank._encoding.backbone import load_backbone
from skrank._encoding.images import Preprocessor, iter_pixel_batches

CONVNEXT = {
    "embed_dim": 32,
    "vision_cfg": {
        "timm_model_name": "convnext_atto",
        "timm_model_pretrained": False,
        "timm_pool": "",  # as convnext_large_d_320: the trunk's own pooling, an MLP projection
        "timm_proj": "mlp",
        "timm_drop_path": 0.1,
        "image_size": 64,
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def bench():
    return bench_quality


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    (folder / "test-ft-convnext.json").write_text(json.dumps(CONVNEXT))
    open_clip.add_model_config(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: load_backbone(name, None) for name in ("skrank-tiny", "test-ft-convnext")}


def _images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("name", ["skrank-tiny", "test-ft-convnext"])
def test_the_tail_on_frozen_inputs_is_the_towers_embedding(bench, backbones, name):
    backbone = backbones[name]
    images = _images(3, backbone.image_size[0])
    tail = bench.trainable_tail(backbone).eval()  # eval: no drop path
    params = list(tail.parameters())
    assert params and all(p.requires_grad for p in params)
    pre = Preprocessor.from_info(backbone.info)
    pixels = torch.cat([px for _, px, _ in iter_pixel_batches(images, pre, 8)])
    with torch.no_grad():
        expected = backbone.image_embeddings(pixels, "fp32")
        got = tail(tail.inputs(backbone, images))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # The tail is a copy: the frozen tower stays frozen and shares no tensor with it.
    assert not any(p.requires_grad for p in backbone.model.parameters())
    tower = {p.data_ptr() for p in backbone.model.parameters()}
    assert not tower & {p.data_ptr() for p in params}


@pytest.mark.parametrize("name", ["skrank-tiny", "test-ft-convnext"])
def test_fine_tuning_fits_a_learnable_target(bench, backbones, name):
    backbone = backbones[name]
    size = backbone.image_size[0]
    # Brightness is visible to any tower: the fine-tuned tail must rank it.
    levels = np.linspace(20, 235, 24)
    rng = np.random.default_rng(1)
    images = [
        np.clip(level + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        for level in levels
    ]
    order = rng.permutation(24)
    train, test = order[:16], order[16:]
    pred = bench.fine_tuned(
        backbone, [images[i] for i in train], levels[train], [images[i] for i in test], epochs=1
    )
    assert pred.shape == (8,) and np.isfinite(pred).all()
    from scipy.stats import spearmanr

    assert spearmanr(pred, levels[test]).statistic > 0.8
