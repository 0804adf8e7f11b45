"""Presets: the paper's model with pretrained weights, the small-data settings with random
towers; recorded in ``preset_``, kept by save/load, overridden by explicit parameters."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from skrank import CLIPRanker, InvalidParameterError, load, save
from skrank._encoding.backbone import load_backbone
from skrank._estimator import presets
from tests.helpers import INSTRUCTION

IMAGES = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 240, 10)]  # 24 images
Y = np.arange(len(IMAGES), dtype=float)
GROUPS = np.arange(len(IMAGES)) // 2  # 12 groups


def ranker(**kw):
    params = dict(backbone="skrank-tiny", device="cpu", random_state=0, batch_size=8)
    return CLIPRanker(INSTRUCTION, **{**params, **kw})


def trained_reg_weight(r) -> float:
    """The regression weight a fit used, read back from its losses (loss = w·reg + rank)."""
    h = r.history_[0]
    return (h["loss"] - r.rank_weight * h["rank_loss"]) / h["reg_loss"]


def architecture(r) -> tuple:
    c = r.adapter_.cfg
    return c.n_fusion_layers, c.n_post_layers, c.score_pooling, c.image_positions


@pytest.fixture(scope="module")
def vit_checkpoint(tmp_path_factory):
    """A ViT-B-32 checkpoint file this test saves (no weights can be fetched here)."""
    path = tmp_path_factory.mktemp("weights") / "vit-b-32.pt"
    backbone = load_backbone("ViT-B-32", None, torch.device("cpu"))
    torch.save({k: v.half() for k, v in backbone.model.state_dict().items()}, path)
    return path


def test_pretrained_weights_train_the_papers_model(vit_checkpoint):
    r = CLIPRanker(
        INSTRUCTION, backbone="ViT-B-32", pretrained=str(vit_checkpoint), device="cpu",
        random_state=0, batch_size=8, max_epochs=1,
    ).fit(IMAGES[:12], Y[:12])  # fmt: skip
    assert r.preset_ == "paper"
    assert architecture(r) == (2, 2, "mean", "none")
    assert r.lr_ == 5e-5
    assert trained_reg_weight(r) == pytest.approx(0.2, rel=1e-4)


def test_random_towers_train_the_small_data_settings():
    r = ranker(max_epochs=1).fit(IMAGES, Y)
    assert r.preset_ == "small-data"
    assert architecture(r) == (1, 0, "mean_std", "none")
    assert r.lr_ == 1e-3  # lr="auto" by width for skrank-tiny
    assert trained_reg_weight(r) == pytest.approx(1.0, rel=1e-4)
    assert r.validation_scores_ is None  # early_stopping="auto" is off here, groups or not
    assert ranker(max_epochs=1).fit(IMAGES, Y, groups=GROUPS).validation_scores_ is None


def test_pretrained_is_what_the_weights_are_not_the_name(tiny_checkpoint):
    """skrank-tiny from a checkpoint file is pretrained weights as far as the preset knows;
    a pretrained tag that skrank-tiny ignores leaves its random towers."""
    assert ranker(max_epochs=1, pretrained=str(tiny_checkpoint)).fit(IMAGES, Y).preset_ == "paper"
    assert ranker(max_epochs=1, pretrained="openai").fit(IMAGES, Y).preset_ == "small-data"


def test_every_parameter_set_overrides_its_preset(tiny_checkpoint):
    r = ranker(
        pretrained=str(tiny_checkpoint), max_epochs=1, n_fusion_layers=1, score_pooling="mean_std",
        reg_weight=0.5, lr=2e-3, early_stopping=False, image_positions="sincos",
    ).fit(IMAGES, Y, groups=GROUPS)  # fmt: skip
    assert r.preset_ == "paper"
    assert architecture(r) == (1, 2, "mean_std", "sincos")  # n_post_layers left to the preset
    assert r.lr_ == 2e-3
    assert trained_reg_weight(r) == pytest.approx(0.5, rel=1e-4)
    assert r.validation_scores_ is None
    # And a preset named outright beats the weights.
    small = ranker(pretrained=str(tiny_checkpoint), preset="small-data", max_epochs=1)
    assert small.fit(IMAGES, Y).preset_ == "small-data"
    assert architecture(small) == (1, 0, "mean_std", "none")
    paper = ranker(preset="paper", max_epochs=1).fit(IMAGES, Y)
    assert (paper.preset_, paper.lr_) == ("paper", 5e-5)
    assert architecture(paper) == (2, 2, "mean", "none")


def test_the_papers_preset_stops_early_on_held_out_groups_where_there_are_enough():
    images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 240, 2)]  # 120 images
    y, groups = np.arange(len(images), dtype=float), np.arange(len(images)) // 4  # 30 groups
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 3 held-out groups of 12 images: no warning
        many = ranker(preset="paper", max_epochs=2).fit(images, y, groups=groups)
    assert many.validation_scores_ is not None and len(many.validation_scores_) >= 1
    few = ranker(preset="paper", max_epochs=2).fit(images, y, groups=groups // 2)  # 15 groups
    assert few.validation_scores_ is None
    none = ranker(preset="paper", max_epochs=2).fit(IMAGES, Y)
    assert none.validation_scores_ is None


def test_the_step_floor_keeps_the_papers_rate():
    """On little data the floor adds epochs at the paper's rate, never a higher one."""
    r = ranker(preset="paper", early_stopping=False).fit(IMAGES, Y)
    steps_per_epoch = 3  # 24 images, batches of 8
    assert r.n_iter_ == math.ceil(presets.PRESETS["paper"].min_steps / steps_per_epoch)
    assert r.lr_ == 5e-5
    assert max(h["lr"] for h in r.history_) <= 5e-5


def test_the_preset_survives_save_load_and_pickles(tiny_checkpoint, tmp_path):
    r = ranker(pretrained=str(tiny_checkpoint), max_epochs=1).fit(IMAGES, Y)
    save(r, tmp_path / "m.skrank")
    back = load(tmp_path / "m.skrank")
    assert back.preset_ == "paper" and back.get_params() == r.get_params()
    assert architecture(back) == (2, 2, "mean", "none")
    np.testing.assert_allclose(back.predict(IMAGES[:5]), r.predict(IMAGES[:5]), rtol=1e-5)
    assert pickle.loads(pickle.dumps(r)).preset_ == "paper"
    # A refit of the loaded ranker resolves the same way.
    assert back.fit(IMAGES, Y).preset_ == "paper"


def test_files_and_pickles_from_before_presets_keep_the_small_data_settings(tmp_path):
    """Such a model's lr="auto" and step floor were the small-data ones: a refit keeps them."""
    import json

    r = ranker(max_epochs=1).fit(IMAGES, Y)
    save(r, tmp_path / "m.skrank")
    with safe_open(str(tmp_path / "m.skrank"), framework="pt") as fh:
        meta, tensors = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    params, fitted = json.loads(meta["params"]), json.loads(meta["fitted"])
    del params["preset"], fitted["preset_"]
    meta.update(params=json.dumps(params), fitted=json.dumps(fitted))
    save_file(tensors, str(tmp_path / "old.skrank"), metadata=meta)
    old = load(tmp_path / "old.skrank")
    assert old.preset == "small-data" and old.preset_ == "small-data"
    state = r.__getstate__()
    del state["preset"]
    restored = CLIPRanker.__new__(CLIPRanker)
    restored.__setstate__(state)
    assert restored.preset == "small-data"


@pytest.mark.parametrize(
    ("name", "value"),
    [("preset", "fast"), ("preset", None), ("early_stopping", "yes"), ("score_pooling", "max")],
)
def test_preset_values_are_checked(name, value):
    with pytest.raises(InvalidParameterError, match=name):
        ranker(**{name: value}).fit(IMAGES, Y)


def test_small_data_settings_on_pretrained_weights_and_much_data_warn(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(presets, "LARGE_DATA", 20)
    with pytest.warns(UserWarning, match="preset='paper'"):
        ranker(pretrained=str(tiny_checkpoint), preset="small-data", max_epochs=1).fit(IMAGES, Y)
    with warnings.catch_warnings():  # fewer images, or random towers: no warning
        warnings.simplefilter("error", UserWarning)
        ranker(pretrained=str(tiny_checkpoint), preset="small-data", max_epochs=1).fit(
            IMAGES[:20], Y[:20]
        )
        ranker(preset="small-data", max_epochs=1).fit(IMAGES, Y)


def test_the_position_code_is_a_fixed_grid_code():
    from skrank._model.adapter import grid_positions

    square = grid_positions(49, 16)  # ViT-B-32's 7 x 7 patches
    assert square.shape == (49, 16) and square.abs().max() <= 1
    # Half the features code the row, half the column: tokens of one row share the first.
    assert torch.equal(square[7, :8], square[13, :8]) and not torch.equal(square[7], square[13])
    assert torch.equal(square[1, 8:], square[8, 8:])  # one column
    assert len({tuple(row.tolist()) for row in square}) == 49  # every place its own code
    assert grid_positions(50, 15).shape == (50, 15)  # not a square: 1-D over the index
    assert torch.equal(grid_positions(49, 16), square)  # fixed, nothing drawn


def test_the_position_code_reaches_the_scores_and_none_is_the_papers():
    """Moving tokens to other places changes the score with positions, not without."""
    from skrank._model.adapter import AdapterConfig, RankingAdapter

    tokens = torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(0))
    text, valid = torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    moved = tokens.flip(1)
    for positions, differs in (("sincos", True), ("none", False)):
        cfg = AdapterConfig(8, 8, d_model=16, n_heads=2, image_positions=positions)
        adapter = RankingAdapter(cfg, torch.Generator().manual_seed(0)).eval()
        with torch.no_grad():
            a, _ = adapter(tokens, text, valid)
            b, _ = adapter(moved, text, valid)
        assert (not torch.allclose(a, b, atol=1e-6)) == differs
