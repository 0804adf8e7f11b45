"""skrank-tiny's ``pretrained="synthetic"``: shipped weights loaded through the real
checkpoint path under an identity of their own, a pretraining that repeats bit for bit,
and a text tower that now means something."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skrank._encoding import weights as weights_module
from skrank._encoding.backbone import load_backbone
from skrank._encoding.diskstore import spec_digest
from skrank._encoding.pretraining import PretrainConfig, pretrain, save_half
from skrank._encoding.weights import SYNTHETIC, TINY, builtin_weights_file, resolve_weights
from skrank._estimator.presets import is_pretrained
from skrank.datasets._scenes import HELD_OUT_KIND, make_scenes
from tests.helpers import parts

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_shipped_file_loads_through_the_checkpoint_path_with_its_own_identity():
    path = builtin_weights_file()
    assert path.is_file() and path.parent.name == "model_weights"
    weights = resolve_weights(TINY, SYNTHETIC)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights.kind == "file" and weights.path == str(path)
    assert weights.identity.startswith(f"builtin:synthetic:{sha[:16]}@skrank-tiny:")
    random = resolve_weights(TINY, None)
    assert random.identity.split("@")[1] == weights.identity.split("@")[1]  # one architecture
    assert is_pretrained(weights.identity) and not is_pretrained(random.identity)
    backbone = load_backbone(TINY, SYNTHETIC)
    _, tensors = parts(path)
    state = backbone.model.state_dict()
    assert set(tensors) == set(state)
    for name, value in tensors.items():  # float16 on disk, float32 in the model, exactly
        assert torch.equal(state[name], value.float()), name
    random_info = load_backbone(TINY, None).info
    assert spec_digest(backbone.info, "tokens") != spec_digest(random_info, "tokens")


def test_the_shipped_file_is_the_recorded_run_of_the_default_configuration():
    # The run (benchmarks/results/tiny-clip-pretraining.json) recorded its file's hash,
    # and a second run of its first 300 steps, in another process, its exact losses.
    metadata, _ = parts(builtin_weights_file())
    assert json.loads(metadata["config"]) == PretrainConfig().__dict__
    record = json.loads((ROOT / "benchmarks/results/tiny-clip-pretraining.json").read_text())
    assert record["config"] == PretrainConfig().__dict__
    assert hashlib.sha256(builtin_weights_file().read_bytes()).hexdigest() == record["sha256"]
    check = record["repeat_check"]
    assert check["loss_every_100"] == record["loss_every_100"][: len(check["loss_every_100"])]


def test_a_missing_file_is_named_with_the_command_that_makes_it(monkeypatch, tmp_path):
    monkeypatch.setattr(weights_module, "_WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="skrank._encoding.pretraining"):
        resolve_weights(TINY, SYNTHETIC)


def test_synthetic_is_skrank_tinys_tag_only():
    with pytest.raises(ValueError, match="not a known open_clip tag"):
        resolve_weights("ViT-B-32", SYNTHETIC)


def test_pretraining_repeats_bit_for_bit(tmp_path):
    cfg = PretrainConfig(steps=3, batch_size=8, n_scenes=32, warmup=1)
    shas = []
    for k in range(2):
        state, losses = pretrain(cfg, log=lambda line: None)
        assert len(losses) == 0 or np.isfinite(losses).all()
        shas.append(save_half(state, tmp_path / f"{k}.safetensors", {"k": "v"}))
    assert shas[0] == shas[1]
    first = resolve_weights(TINY, tmp_path / "0.safetensors")
    assert first.identity != resolve_weights(TINY, SYNTHETIC).identity


def test_scenes_are_seeded_and_never_count_the_held_out_kind():
    a, b = make_scenes(40, seed=5, twins=True), make_scenes(40, seed=5, twins=True)
    assert a.captions == b.captions
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    assert a.captions != make_scenes(40, seed=6).captions
    words = " ".join(a.captions + make_scenes(400, seed=1).captions).split()
    for banned in ("blur", "blurry", "sharp", "noise", "noisy", "jpeg", "bright", "contrast"):
        assert banned not in words
    for caption in make_scenes(400, seed=2).captions:
        for group in caption.split(", on ")[0].split(" and "):
            if HELD_OUT_KIND in group:
                assert group.startswith("some "), caption
