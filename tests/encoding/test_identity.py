"""Backbone identity: weights *and* architecture, checked at predict, compare and warm start.

Every random backbone used to be ``random:seed0`` and a checkpoint its hash
alone, so a ranker fitted on one architecture predicted silently on another of
the same width. These tests register two extra random architectures next to
skrank-tiny: one as wide but deeper, one narrower.
"""

import copy
import json
import re
import warnings

import numpy as np
import open_clip
import pytest
import torch

import skrank._encoding.backbone
from skrank._encoding.backbone import backbone_mismatch, load_backbone
from skrank._encoding.diskstore import DiskStore
from skrank._encoding.weights import WeightsUnavailableError, architecture_digest, resolve_weights
from tests.helpers import quick_ranker as quick
from tests.helpers import textured

pytestmark = pytest.mark.usefixtures("one_thread")

INSTR = "Sort the images by brightness."
TINY_CFG = open_clip.get_model_config("skrank-tiny")
DEEP = "skrank-test-deep"  # skrank-tiny's widths, one more vision layer
DEEPER = "skrank-test-deeper"  # skrank-tiny's widths, two more vision layers
NARROW = "skrank-test-narrow"  # half skrank-tiny's widths
IDENTITY = re.compile(r"^(?P<source>.+)@(?P<name>.+):(?P<digest>[0-9a-f]{12})$")


def _config(vision_layers=2, width=64):
    cfg = copy.deepcopy(TINY_CFG)
    cfg["embed_dim"] = width
    cfg["vision_cfg"].update(layers=vision_layers, width=width)
    cfg["text_cfg"]["width"] = width
    return cfg


def register(tmp_path, name, cfg):
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)


@pytest.fixture(scope="module", autouse=True)
def architectures(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    register(root, DEEP, _config(vision_layers=3))
    register(root, DEEPER, _config(vision_layers=4))
    register(root, NARROW, _config(width=32))


@pytest.fixture(scope="module")
def data():
    levels = np.linspace(20, 235, 16)
    return [textured(v, i) for i, v in enumerate(levels)], levels


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return quick().fit(X, y)


@pytest.fixture(scope="module")
def fitted_deep(data):
    """Fitted on a random backbone other than skrank-tiny: the identity was random:seed0."""
    X, y = data
    with pytest.warns(UserWarning, match="random"):
        return quick(backbone=DEEP, pretrained=None).fit(X, y)


def random_backbone(name):
    with pytest.warns(UserWarning, match="random"):
        return load_backbone(name, None)


# --------------------------------------------------------------------------- the identity


def test_identity_names_the_source_the_model_and_its_config():
    tiny = load_backbone("skrank-tiny", None)
    match = IDENTITY.match(tiny.info["weights_identity"])
    assert match and match["source"] == "random:seed0" and match["name"] == "skrank-tiny"
    assert match["digest"] == architecture_digest(TINY_CFG)
    # skrank-tiny's "openai" is its seeded random weights too: one identity, one cache entry.
    assert resolve_weights("skrank-tiny", "openai").identity == tiny.info["weights_identity"]


def test_random_backbones_of_one_width_have_different_identities(tmp_path):
    tiny, deep = load_backbone("skrank-tiny", None), random_backbone(DEEP)
    assert (tiny.image_dim, tiny.text_dim) == (deep.image_dim, deep.text_dim)  # same width
    assert tiny.info["weights_identity"] != deep.info["weights_identity"]
    assert backbone_mismatch(tiny.info, deep.info)
    # The identity is part of the disk cache key: their tokens never share a folder.
    assert DiskStore(tiny, tmp_path).root != DiskStore(deep, tmp_path).root


def test_one_checkpoint_in_two_architectures_has_two_identities(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(load_backbone("skrank-tiny", None).model.state_dict(), path)
    into_tiny = resolve_weights("skrank-tiny", str(path)).identity
    into_deep = resolve_weights(DEEP, str(path)).identity
    assert into_tiny != into_deep
    assert into_tiny.split("@")[0] == into_deep.split("@")[0]  # the same file: file:<sha256>
    assert re.fullmatch(r"file:[0-9a-f]{64}", into_tiny.split("@")[0])


def test_a_name_registered_again_with_another_config_is_another_backbone(tmp_path):
    name = "skrank-test-mutable"
    register(tmp_path / "a", name, _config())
    first = random_backbone(name)
    register(tmp_path / "b", name, _config(vision_layers=1))
    second = random_backbone(name)
    assert first is not second  # the process-wide cache does not serve the stale model
    assert first.info["weights_identity"] != second.info["weights_identity"]
    assert len(second.model.visual.transformer.resblocks) == 1


def test_hub_identity_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="hf-hub:nobody/nothing"):
        resolve_weights("hf-hub:nobody/nothing", None)


# --------------------------------------------------------------------------- predict and compare


@pytest.mark.parametrize("other", [DEEPER, NARROW, "skrank-tiny"])
def test_predict_and_compare_refuse_another_backbone_naming_both(fitted_deep, data, other):
    """Same width (DEEPER) predicted silently before; another width (NARROW) crashed."""
    X, _ = data
    ranker = copy.deepcopy(fitted_deep).set_params(backbone=other)
    for call in (lambda: ranker.predict(X[:3]), lambda: ranker.compare(X[:2], X[2:4])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # random weights
            with pytest.raises(ValueError) as err:
                call()
        msg = str(err.value)
        assert f"backbone={DEEP!r}" in msg and f"backbone={other!r}" in msg
        assert "fit again" in msg
    with pytest.warns(UserWarning, match="random"):
        restored = ranker.set_params(backbone=DEEP).predict(X[:3])
        expected = fitted_deep.predict(X[:3])
    np.testing.assert_array_equal(restored, expected)


def test_predict_refuses_a_backbone_whose_config_changed_under_its_name(data, tmp_path):
    X, y = data
    name = "skrank-test-edited"
    register(tmp_path / "a", name, _config())
    ranker = quick(backbone=name, pretrained=None)
    with pytest.warns(UserWarning, match="random"):
        ranker.fit(X, y)
    register(tmp_path / "b", name, _config(vision_layers=3))  # same name and widths
    with pytest.warns(UserWarning, match="random"), pytest.raises(ValueError) as err:
        ranker.predict(X[:2])
    assert "weights_identity" in str(err.value) and name in str(err.value)


def test_predict_refuses_a_changed_checkpoint_file(data, tmp_path):
    X, y = data
    model = copy.deepcopy(load_backbone("skrank-tiny", None).model)
    path = tmp_path / "tuned.pt"
    torch.save(model.state_dict(), path)
    ranker = quick(pretrained=str(path)).fit(X, y)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match=r"weights_identity: 'file:.*' != 'file:"):
        ranker.predict(X[:2])


@pytest.mark.parametrize("key, value", [("n_image_tokens", 16), ("image_dim", 32)])
def test_predict_refuses_recorded_token_shapes_that_differ(fitted, data, key, value):
    ranker = copy.deepcopy(fitted)
    ranker.backbone_info_ = {**ranker.backbone_info_, key: value}
    with pytest.raises(ValueError, match=rf"{key}: {value} != "):
        ranker.predict(data[0][:2])


def test_an_adapter_built_for_other_widths_is_refused(fitted, data):
    ranker = copy.deepcopy(fitted)
    ranker.adapter_.cfg.image_dim = 32  # as a hand-edited model file would say
    with pytest.raises(ValueError, match="image_dim: adapter 32 != backbone 64"):
        ranker.predict(data[0][:2])


@pytest.mark.parametrize("legacy", ["skrank-tiny:seed0", "random:seed0"])
def test_models_saved_with_the_old_identity_still_predict(fitted, data, legacy):
    """Identities written before they named the architecture match on their source."""
    ranker = copy.deepcopy(fitted)
    ranker.backbone_info_ = {**ranker.backbone_info_, "weights_identity": legacy}
    np.testing.assert_array_equal(ranker.predict(data[0][:3]), fitted.predict(data[0][:3]))
    # ... but the name and token shapes still tell architectures apart.
    with pytest.raises(ValueError, match=DEEP):
        ranker.set_params(backbone=DEEP, pretrained=None).predict(data[0][:3])


def test_old_tag_and_file_identities_compare_on_their_source():
    info = {"name": "ViT-B-32", "weights_identity": "tag:ViT-B-32:openai"}
    now = {"name": "ViT-B-32", "weights_identity": "tag:openai@ViT-B-32:0123456789ab"}
    assert backbone_mismatch(info, now) == []
    other = {"name": "ViT-B-32", "weights_identity": "tag:laion2b@ViT-B-32:0123456789ab"}
    assert backbone_mismatch(info, other)
    old_file = {"name": "x", "weights_identity": "file:abc"}
    assert backbone_mismatch(old_file, {"name": "x", "weights_identity": "file:abc@x:0a"}) == []
    assert backbone_mismatch(old_file, {"name": "x", "weights_identity": "file:abd@x:0a"})


# --------------------------------------------------------------------------- warm start

ARCHITECTURE = {
    "d_model": 32,
    "n_fusion_layers": 2,
    "n_post_layers": 1,
    "n_heads": 4,
    "n_prompt_tokens": 4,
    "n_relation_tokens": 4,
}


def fingerprint(ranker):
    return {k: v.clone() for k, v in ranker.adapter_.state_dict().items()}


@pytest.mark.parametrize("param", sorted(ARCHITECTURE))
def test_warm_start_refuses_changed_architecture_parameters(fitted, data, param):
    X, y = data
    ranker = copy.deepcopy(fitted).set_params(warm_start=True, **{param: ARCHITECTURE[param]})
    old = getattr(fitted.adapter_.cfg, param)
    before = fingerprint(ranker)
    with pytest.raises(ValueError) as err:
        ranker.fit(X, y)
    msg = str(err.value)
    assert f"{param}: {old!r} -> {ARCHITECTURE[param]!r}" in msg
    assert "warm_start=False" in msg
    after = fingerprint(ranker)
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing trained
    ranker.set_params(warm_start=False).fit(X, y)  # the fix the message names
    assert getattr(ranker.adapter_.cfg, param) == ARCHITECTURE[param]


def test_warm_start_names_every_changed_parameter(fitted, data):
    ranker = copy.deepcopy(fitted).set_params(warm_start=True, n_heads=4, n_prompt_tokens=4)
    with pytest.raises(ValueError, match=r"n_heads: 8 -> 4, n_prompt_tokens: 32 -> 4"):
        ranker.fit(*data)


@pytest.mark.parametrize("other", [DEEPER, "skrank-tiny"])
def test_warm_start_refuses_another_backbone(fitted_deep, data, other):
    ranker = copy.deepcopy(fitted_deep).set_params(warm_start=True, backbone=other)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights
        with pytest.raises(ValueError) as err:
            ranker.fit(*data)
    msg = str(err.value)
    assert f"backbone={DEEP!r}" in msg and f"backbone={other!r}" in msg
    assert "warm_start=False" in msg
    assert ranker.backbone_info_["name"] == DEEP  # the fit changed nothing


def test_warm_start_with_the_same_architecture_continues(fitted, data):
    X, y = data
    # d_model=None resolved to the backbone's 64: saying 64 is the same adapter.
    ranker = copy.deepcopy(fitted).set_params(warm_start=True, d_model=64)
    before = fingerprint(ranker)
    ranker.fit(X, y)
    after = fingerprint(ranker)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert ranker.adapter_.cfg.d_model == 64


def test_warm_start_on_new_instructions_rescales_their_targets(fitted, data):
    """The adapter reads the instruction as text, so new ones are fine; the scaling is new."""
    X, y = data
    darker = "Sort the images by darkness."
    y_new = 1000.0 - 10.0 * y
    ranker = copy.deepcopy(fitted).set_params(warm_start=True, instruction=darker)
    ranker.fit(X, y_new)
    assert ranker.instructions_ == [darker]
    np.testing.assert_allclose(ranker.y_mean_, [y_new.mean()])
    np.testing.assert_allclose(ranker.y_scale_, [y_new.std()])
    pred = ranker.predict(X)
    assert np.isfinite(pred).all()
    assert y_new.min() - 3 * y_new.std() < pred.mean() < y_new.max() + 3 * y_new.std()
    with pytest.raises(ValueError, match="not seen in fit"):
        ranker.set_params(instruction=INSTR).predict(X[:2])

    import pandas as pd

    both = pd.DataFrame({"image": X + X, "instruction": [INSTR] * len(X) + [darker] * len(X)})
    ranker.set_params(instruction=None).fit(both, np.r_[y, y_new])
    assert ranker.instructions_ == sorted([INSTR, darker])
    k = ranker.instructions_.index(darker)
    np.testing.assert_allclose(ranker.y_mean_[k], y_new.mean())
    np.testing.assert_allclose(ranker.y_mean_[1 - k], y.mean())


def test_loaded_backbones_are_keyed_by_the_full_identity():
    key_names = {key[1] for key in skrank._encoding.backbone._LOADED}
    assert all(IDENTITY.match(identity) for identity in key_names)
