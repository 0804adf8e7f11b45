"""The adapter's architecture: its options as parameters (fits, files and pickles agree
on them), and the removal of skrank 0.1's architecture variants from files and pickles."""

import copy
import json
import pickle

import numpy as np
import pytest
from safetensors.torch import save_file

from skrank import CLIPRanker, InvalidParameterError, load, save
from skrank._model.adapter import OPTIONS, Block, PostLNBlock
from skrank.persistence._schema_compat import REMOVED_OPTIONS
from tests.helpers import as_format_1, parts, tiny_ranker

# The removed options and skrank 0.1's value of each (what the tests ask files to hold).
VARIANTS = {name: variant for name, (_, variant) in REMOVED_OPTIONS.items()}
REFERENCE = {name: reference for name, (reference, _) in REMOVED_OPTIONS.items()}


@pytest.fixture(scope="module")
def data(brightness_task):
    d = brightness_task
    return d["X_train"][:24], d["y_train"][:24], d["X_test"][:6]


@pytest.fixture(scope="module")
def deep(data):
    """The reference's depth with the paper's mean head: every module a file can hold."""
    X, y, _ = data
    return tiny_ranker(max_epochs=1, score_pooling="mean", n_fusion_layers=2, n_post_layers=2).fit(
        X, y
    )


@pytest.fixture(scope="module")
def saved(deep, tmp_path_factory):
    path = tmp_path_factory.mktemp("architecture") / "deep.skrank"
    save(deep, path)
    return path


def fusion_kinds(adapter):
    return [(hasattr(b, "self_attn"), hasattr(b, "cross_attn")) for b in adapter.fusion]


def rewritten(path, tmp_path, meta, tensors):
    out = tmp_path / f"{path.stem}-edited.skrank"
    save_file(tensors, str(out), metadata=meta)
    return out


# ---------------------------------------------------------------- the options as parameters


def test_the_parameters_build_the_adapter(deep):
    adapter = deep.adapter_
    assert adapter.score_head.pooling == "mean"
    assert adapter.cfg.score_pooling == "mean" == deep.score_pooling
    defaults = tiny_ranker().get_params()
    # score_pooling and image_positions default to None: the preset chooses them
    # (test_presets); probe defaults to the first of its values.
    assert defaults["score_pooling"] is None and defaults["image_positions"] is None
    assert defaults["probe"] == OPTIONS["probe"][0] == "none"


def test_the_reference_depth_builds_the_reference_architecture(deep):
    adapter = deep.adapter_
    assert all(isinstance(b, Block) for b in adapter.fusion)
    assert fusion_kinds(adapter) == [(True, False), (False, True)] * 2
    assert len(adapter.post) == 2 and all(isinstance(b, PostLNBlock) for b in adapter.post)
    assert hasattr(adapter.relation, "ln_q") and hasattr(adapter.relation, "ln_kv")


def test_the_defaults_build_one_reference_fusion_layer_and_no_post_layers(data):
    """The shallow default: the reference's fusion layer (self-attention + MLP, then
    cross-attention to the instruction + MLP) once, nothing between it and the head."""
    X, y, _ = data
    adapter = tiny_ranker(max_epochs=1).fit(X, y).adapter_
    assert fusion_kinds(adapter) == [(True, False), (False, True)]
    assert len(adapter.post) == 0


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_an_unknown_option_is_refused_by_name(name, data):
    X, y, _ = data
    with pytest.raises(InvalidParameterError, match=f"{name}='other'"):
        tiny_ranker(**{name: "other"}).fit(X, y)


@pytest.mark.parametrize("name", sorted(REMOVED_OPTIONS))
def test_skrank_01s_architecture_options_are_not_parameters(name):
    assert name not in CLIPRanker().get_params()
    with pytest.raises(TypeError, match=name):
        CLIPRanker(**{name: REFERENCE[name]})


def test_warm_start_refuses_a_changed_architecture(deep, data):
    X, y, _ = data
    ranker = copy.deepcopy(deep).set_params(warm_start=True, score_pooling="mean_std")
    with pytest.raises(ValueError, match="score_pooling: 'mean' -> 'mean_std'"):
        ranker.fit(X, y)


def test_a_file_whose_parameters_contradict_its_adapter_is_refused(saved, tmp_path):
    meta, tensors = parts(saved)
    params = json.loads(meta["params"])
    params["score_pooling"] = "mean_std"
    bad = rewritten(saved, tmp_path, {**meta, "params": json.dumps(params)}, tensors)
    with pytest.raises(ValueError, match=r"params\.score_pooling.*not the adapter's"):
        load(bad)


# ------------------------------------------------- files written before the variants went


def test_a_file_with_the_reference_values_loads_to_identical_predictions(
    deep, saved, data, tmp_path
):
    """What skrank wrote before the removal (format 1, the four options stored with the
    reference's values in the adapter config and the parameters) loads as it was."""
    _, _, probe = data
    meta, tensors = parts(saved)
    old = as_format_1(meta)
    assert json.loads(old["adapter_config"])["fusion"] == "two_mlps"
    loaded = load(rewritten(saved, tmp_path, old, tensors))
    assert loaded.get_params() == deep.get_params()
    assert not any(hasattr(loaded, name) for name in REMOVED_OPTIONS)
    assert not any(hasattr(loaded.adapter_.cfg, name) for name in REMOVED_OPTIONS)
    np.testing.assert_array_equal(loaded.predict(probe), deep.predict(probe))
    np.testing.assert_array_equal(
        loaded.compare(probe[:3], probe[3:]), deep.compare(probe[:3], probe[3:])
    )


@pytest.mark.parametrize("doc", ["adapter_config", "params"])
@pytest.mark.parametrize("name", sorted(REMOVED_OPTIONS))
def test_a_file_of_a_removed_variant_is_refused_naming_it(saved, tmp_path, name, doc):
    meta, tensors = parts(saved)
    old = as_format_1(meta)
    values = json.loads(old[doc])
    values[name] = VARIANTS[name]
    old[doc] = json.dumps(values)
    path = rewritten(saved, tmp_path, old, tensors)
    with pytest.raises(ValueError) as refused:
        load(path)
    message = str(refused.value)
    assert message == (
        f"{str(path)!r} was made with a skrank 0.1 architecture variant that is no longer "
        f"supported: {name}={VARIANTS[name]!r} ({doc}.{name}). skrank now always builds the "
        f"reference architecture ({name}={REFERENCE[name]!r}): refit the model with this "
        "version of skrank and save it again"
    )
    assert "damaged" not in message


@pytest.mark.parametrize("name", sorted(REMOVED_OPTIONS))
def test_a_file_from_before_the_options_is_refused_as_skrank_01s(saved, tmp_path, name):
    """A format 1 adapter config without the key was written when skrank 0.1's layers
    were the only ones: that is what it holds."""
    meta, tensors = parts(saved)
    old = as_format_1(meta)
    config = json.loads(old["adapter_config"])
    del config[name]
    old["adapter_config"] = json.dumps(config)
    with pytest.raises(ValueError, match="skrank 0.1 architecture variant") as refused:
        load(rewritten(saved, tmp_path, old, tensors))
    assert f"{name}={VARIANTS[name]!r} (adapter_config has no {name!r}" in str(refused.value)
    assert "refit" in str(refused.value)


def test_a_file_from_before_the_options_is_refused_whatever_else_it_lacks(saved, tmp_path):
    meta, tensors = parts(saved)
    old = as_format_1(meta)
    config, params = json.loads(old["adapter_config"]), json.loads(old["params"])
    for name in [*REMOVED_OPTIONS, "probe", "n_instructions", "image_positions"]:
        config.pop(name)
        params.pop(name, None)
    old.update(adapter_config=json.dumps(config), params=json.dumps(params))
    with pytest.raises(ValueError, match="fusion='one_mlp'"):
        load(rewritten(saved, tmp_path, old, tensors))


@pytest.mark.parametrize("value", ["other", 5, None, ""])
def test_a_removed_option_of_no_known_value_is_a_damaged_file(saved, tmp_path, value):
    meta, tensors = parts(saved)
    old = as_format_1(meta)
    config = json.loads(old["adapter_config"])
    config["pair_logit"] = value
    old["adapter_config"] = json.dumps(config)
    with pytest.raises(ValueError, match=r"damaged.*adapter_config\.pair_logit: .* is not 'odd'"):
        load(rewritten(saved, tmp_path, old, tensors))


@pytest.mark.parametrize("doc", ["adapter_config", "params"])
def test_files_of_the_current_format_hold_no_removed_option(saved, tmp_path, doc):
    meta, tensors = parts(saved)
    assert not set(REMOVED_OPTIONS) & set(json.loads(meta[doc]))
    values = json.loads(meta[doc])
    values["fusion"] = "two_mlps"
    edited = rewritten(saved, tmp_path, {**meta, doc: json.dumps(values)}, tensors)
    with pytest.raises(ValueError, match=rf"{doc}\.fusion: is not a known key"):
        load(edited)


def test_a_format_1_file_without_later_options_keeps_their_old_meaning(saved, tmp_path):
    """Options that remain: a format 1 file without one was built with its old value."""
    meta, tensors = parts(saved)
    old = as_format_1(meta)
    config, params = json.loads(old["adapter_config"]), json.loads(old["params"])
    for name in ("score_pooling", "probe", "n_instructions", "image_positions"):
        del config[name]
        params.pop(name, None)  # n_instructions is no parameter
    old.update(adapter_config=json.dumps(config), params=json.dumps(params))
    loaded = load(rewritten(saved, tmp_path, old, tensors))
    cfg = loaded.adapter_.cfg
    assert (cfg.score_pooling, cfg.probe, cfg.n_instructions, cfg.image_positions) == (
        "mean",
        "none",
        1,
        "none",
    )
    assert loaded.get_params()["score_pooling"] == "mean"  # the adapter's, not the default


def test_a_current_file_needs_every_adapter_config_key(saved, tmp_path):
    meta, tensors = parts(saved)
    config = json.loads(meta["adapter_config"])
    del config["score_pooling"]
    edited = rewritten(saved, tmp_path, {**meta, "adapter_config": json.dumps(config)}, tensors)
    with pytest.raises(ValueError, match=r"adapter_config\.score_pooling: is missing"):
        load(edited)


# ----------------------------------------------------------------------------- pickles


def test_a_pickle_round_trips_exactly(deep, data):
    _, _, probe = data
    restored = pickle.loads(pickle.dumps(deep))
    assert restored.get_params() == deep.get_params()
    np.testing.assert_array_equal(restored.predict(probe), deep.predict(probe))


def old_pickle_state(ranker, options: dict) -> dict:
    """``ranker``'s pickled state as the code before the removal wrote it: the four options
    as parameters and as fields of the adapter's config, with the values ``options``."""
    state = pickle.loads(pickle.dumps(dict(ranker.__getstate__())))
    state.update(options)
    vars(state["adapter_"].cfg).update(options)
    return state


def restore(state):
    restored = CLIPRanker.__new__(CLIPRanker)
    restored.__setstate__(state)
    return restored


def test_a_pickle_from_before_the_removal_loads_when_it_is_the_reference(deep, data):
    _, _, probe = data
    restored = restore(old_pickle_state(deep, REFERENCE))
    assert restored.get_params() == deep.get_params()
    assert not any(hasattr(restored, name) for name in REMOVED_OPTIONS)
    assert not any(hasattr(restored.adapter_.cfg, name) for name in REMOVED_OPTIONS)
    np.testing.assert_array_equal(restored.predict(probe), deep.predict(probe))


@pytest.mark.parametrize("where", ["parameter", "config"])
@pytest.mark.parametrize("name", sorted(REMOVED_OPTIONS))
def test_a_pickle_of_a_removed_variant_is_refused(deep, name, where):
    state = old_pickle_state(deep, REFERENCE)
    if where == "parameter":
        state[name] = VARIANTS[name]
    else:
        vars(state["adapter_"].cfg)[name] = VARIANTS[name]
    with pytest.raises(ValueError, match=rf"pickle was made with a skrank 0.1 .*{name}="):
        restore(state)


def test_a_pickle_whose_adapter_predates_an_option_is_refused(deep):
    state = old_pickle_state(deep, REFERENCE)
    del vars(state["adapter_"].cfg)["image_positions"]
    with pytest.raises(ValueError, match="pickled by an older skrank.*'image_positions'"):
        restore(state)


def test_a_pickle_without_newer_parameters_takes_its_adapters_options(deep, data):
    _, _, probe = data
    state = dict(deep.__getstate__())
    for name in (*OPTIONS, "negative_fraction"):  # parameters an older pickle lacks
        state.pop(name)
    restored = restore(pickle.loads(pickle.dumps(state)))
    assert restored.get_params()["score_pooling"] == "mean"
    assert restored.get_params()["probe"] == "none"
    assert restored.get_params()["negative_fraction"] == 0.0
    np.testing.assert_array_equal(restored.predict(probe), deep.predict(probe))
