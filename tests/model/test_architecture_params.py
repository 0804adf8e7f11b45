"""The adapter's architecture options as parameters: fits, files and pickles agree on them."""

import json
import pickle

import numpy as np
import pytest
from safetensors.torch import save_file

from skrank import InvalidParameterError, load, save
from skrank.adapter import BEFORE_OPTIONS, OPTIONS, Block, PostLNBlock
from tests.helpers import parts, tiny_ranker

SKRANK_01 = dict(
    fusion="one_mlp",
    post_layers="pre_ln",
    relation_norm="none",
    pair_logit="raw",
    probe="none",
    image_positions="none",
)


@pytest.fixture(scope="module")
def data(brightness_task):
    d = brightness_task
    return d["X_train"][:24], d["y_train"][:24], d["X_test"][:6]


@pytest.fixture(scope="module")
def old_style(data):
    X, y, _ = data
    return tiny_ranker(
        max_epochs=1, score_pooling="mean", n_fusion_layers=2, n_post_layers=2, **SKRANK_01
    ).fit(X, y)


def test_the_parameters_build_the_adapter(old_style):
    adapter = old_style.adapter_
    assert [(b.has_self, b.cross) for b in adapter.fusion] == [(True, True)] * 2
    assert all(isinstance(b, Block) for b in adapter.post)
    assert not adapter.relation.normed and not adapter.pair_head.odd
    assert adapter.score_head.pooling == "mean"
    defaults = tiny_ranker().get_params()
    # score_pooling and image_positions default to None: the preset chooses them
    # (test_presets)
    chosen = ("score_pooling", "image_positions")
    assert {k: defaults[k] for k in OPTIONS if k not in chosen} == {
        k: v[0] for k, v in OPTIONS.items() if k not in chosen
    }
    assert defaults["score_pooling"] is None and defaults["image_positions"] is None


def test_the_reference_depth_builds_the_reference_architecture(data):
    X, y, _ = data
    adapter = tiny_ranker(max_epochs=1, n_fusion_layers=2, n_post_layers=2).fit(X, y).adapter_
    assert [(b.has_self, b.cross) for b in adapter.fusion] == [(True, False), (False, True)] * 2
    assert len(adapter.post) == 2 and all(isinstance(b, PostLNBlock) for b in adapter.post)
    assert adapter.relation.normed and adapter.pair_head.odd


def test_the_defaults_build_one_reference_fusion_layer_and_no_post_layers(data):
    """The shallow default: the reference's fusion layer (self-attention + MLP, then
    cross-attention to the instruction + MLP) once, nothing between it and the head."""
    X, y, _ = data
    adapter = tiny_ranker(max_epochs=1).fit(X, y).adapter_
    assert [(b.has_self, b.cross) for b in adapter.fusion] == [(True, False), (False, True)]
    assert len(adapter.post) == 0
    assert adapter.relation.normed and adapter.pair_head.odd


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_an_unknown_option_is_refused_by_name(name, data):
    X, y, _ = data
    with pytest.raises(InvalidParameterError, match=f"{name}='other'"):
        tiny_ranker(**{name: "other"}).fit(X, y)


def test_warm_start_refuses_a_changed_architecture(old_style, data):
    import copy

    X, y, _ = data
    ranker = copy.deepcopy(old_style).set_params(warm_start=True, fusion="two_mlps")
    with pytest.raises(ValueError, match="fusion: 'one_mlp' -> 'two_mlps'"):
        ranker.fit(X, y)


def test_a_file_from_before_the_options_loads_with_its_adapters_architecture(
    old_style, data, tmp_path
):
    _, _, probe = data
    path = tmp_path / "new.skrank"
    save(old_style, path)
    meta, tensors = parts(path)
    params, config = json.loads(meta["params"]), json.loads(meta["adapter_config"])
    for name in OPTIONS:  # as skrank 0.1 wrote it: no such parameters or config keys
        params.pop(name)
        if name != "score_pooling":
            config.pop(name)
    config.pop("n_instructions")
    old = tmp_path / "old.skrank"
    save_file(tensors, str(old), metadata={**meta, "params": json.dumps(params),
                                           "adapter_config": json.dumps(config)})  # fmt: skip
    loaded = load(old)
    assert {k: loaded.get_params()[k] for k in SKRANK_01} == SKRANK_01
    assert {k: BEFORE_OPTIONS[k] for k in SKRANK_01} == SKRANK_01
    np.testing.assert_array_equal(loaded.predict(probe), old_style.predict(probe))


def test_a_file_whose_parameters_contradict_its_adapter_is_refused(old_style, tmp_path):
    path = tmp_path / "m.skrank"
    save(old_style, path)
    meta, tensors = parts(path)
    params = json.loads(meta["params"])
    params["fusion"] = "two_mlps"
    bad = tmp_path / "bad.skrank"
    save_file(tensors, str(bad), metadata={**meta, "params": json.dumps(params)})
    with pytest.raises(ValueError, match=r"params\.fusion.*not the adapter's fusion"):
        load(bad)


def test_a_pickle_from_before_the_options_takes_its_adapters_architecture(old_style, data):
    _, _, probe = data
    state = dict(old_style.__getstate__())
    for name in (*OPTIONS, "negative_fraction"):  # parameters a 0.1 pickle lacks
        state.pop(name)
    restored = type(old_style).__new__(type(old_style))
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    assert {k: restored.get_params()[k] for k in SKRANK_01} == SKRANK_01
    assert restored.get_params()["score_pooling"] == "mean"
    assert restored.get_params()["negative_fraction"] == 0.0
    np.testing.assert_array_equal(restored.predict(probe), old_style.predict(probe))
