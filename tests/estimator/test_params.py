"""The parameter table: every parameter is checked (in fit, and again by every method
after it), and refusals say what is allowed, quoting huge values short."""

import math
import os
import pathlib

import numpy as np
import pytest
import torch

from skrank import CLIPRanker, InvalidParameterError
from skrank._estimator.params import PARAMETERS, validate_params
from tests.helpers import small_images


def params(**kw):
    return {**CLIPRanker(backbone="skrank-tiny", device="cpu").get_params(), **kw}


def test_every_parameter_has_constraints_and_the_defaults_pass():
    assert set(PARAMETERS) == set(CLIPRanker().get_params())
    checked = validate_params(params())
    assert checked["device_"] == torch.device("cpu")


BAD = {
    "n_heads": [0, 2.0, True, "8", None],
    "n_prompt_tokens": [-1, 1.5],
    "batch_size": [1, np.float64(8.0)],
    "d_model": [0, "512"],
    "max_epochs": [0, math.inf],
    "lr": [0.0, -1.0, math.nan, math.inf, "fast", None],
    "weight_decay": [-0.1, math.nan, "0"],
    "warmup_fraction": [1.0, -0.1],
    "validation_fraction": [0.0, 1.0],
    "sampling": ["Balanced", None, 1],
    "cache": ["Memory", False],
    "cache_dir": [3, b"/tmp"],
    "precision": ["fp16", None],
    "early_stopping": [1, "yes", None],
    "random_state": [-1, 2**32, 1.5, "0"],
    "verbose": [-1, 0.5, "loud"],
    "tol": [-1e-4, math.nan, "0"],
    "scoring": ["r2", None, "ndcg@0"],
    "callbacks": [print, ["f"], "f"],
    "instruction": ["", "   ", 7, b"Sort"],
    "backbone": ["", None, 3],
    "image_column": [None, ["image"]],
    "pair_scope": ["pairs"],
    "negative_fraction": [1.0, -0.1, 1.5, math.nan, "0.2", None, True],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in BAD.items() for v in vs])
def test_a_refusal_names_the_parameter_the_value_and_what_is_allowed(name, value):
    with pytest.raises(InvalidParameterError) as info:
        validate_params(params(**{name: value}))
    message = str(info.value)
    assert message.startswith(f"{name}={value!r} ({type(value).__name__}) is not valid; expected")
    # One exception type, caught by either of the usual clauses.
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_allowed_values_are_spelled_out():
    def refusal(**kw):
        with pytest.raises(InvalidParameterError) as info:
            validate_params(params(**kw))
        return str(info.value).split("expected ", 1)[1]

    assert refusal(lr="fast") == '"auto" or a float > 0'
    assert refusal(batch_size=1) == "an integer >= 2 (ranking needs pairs)"
    assert refusal(warmup_fraction=1.0) == "a float in [0, 1)"
    assert refusal(validation_fraction=0.0) == "a float in (0, 1)"
    assert refusal(cache="ram") == 'one of "memory", "disk", None'
    assert refusal(d_model=0) == "None or an integer in [1, 4096] (the most a model file holds)"
    assert refusal(negative_fraction=1.0) == (
        "a float in [0, 1) (the share of a batch from other instructions)"
    )


def test_values_from_numpy_and_paths_are_accepted_and_normalised():
    checked = validate_params(
        params(
            batch_size=np.int64(16),
            lr=np.float32(1e-3),
            early_stopping=np.bool_(True),
            random_state=np.int64(3),
            cache_dir=pathlib.Path("/tmp/x"),
            pretrained=pathlib.Path("weights.bin"),
        )
    )
    assert type(checked["batch_size"]) is int and checked["batch_size"] == 16
    assert type(checked["lr"]) is float
    assert checked["early_stopping"] is True
    assert type(checked["random_state"]) is int
    assert isinstance(checked["cache_dir"], os.PathLike)
    state = np.random.RandomState(0)
    assert validate_params(params(random_state=state))["random_state"] is state


def test_rules_across_parameters(monkeypatch):
    with pytest.raises(InvalidParameterError, match="reg_weight=0 and rank_weight=0"):
        validate_params(params(reg_weight=0.0, rank_weight=0))
    validate_params(params(reg_weight=0.0))  # one loss is enough
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with pytest.raises(InvalidParameterError, match="bf16' needs a CUDA device or a CPU"):
        validate_params(params(precision="bf16"))
    with pytest.raises(InvalidParameterError, match="device='cuda'.*not available"):
        validate_params(params(device="cuda"))
    with pytest.raises(InvalidParameterError, match="device=0"):
        validate_params(params(device=0))


def test_refusal_happens_in_fit_not_in_init():
    ranker = CLIPRanker(batch_size=1)  # stored as given, like every scikit-learn estimator
    assert ranker.get_params()["batch_size"] == 1
    with pytest.raises(ValueError, match="batch_size=1"):
        ranker.fit([np.zeros((8, 8, 3), np.uint8)] * 2, [0.0, 1.0])


# Every constructor parameter, set to a valid value other than its default (and other
# than what the preset would fill in), and where a fit shows it: in the settings objects
# fitting.settings builds (``fit``), the rows fit parsed (``rows``) or the fitted ranker.
def _callback(state):
    return None


REACHES = {
    "instruction": ("Sort by brightness.", lambda f, r, m: m.instructions_ == [f_instr()]),
    "backbone": ("skrank-tiny", lambda f, r, m: f.encoder.backbone.name == "skrank-tiny"),
    # What the fit asked load_backbone for (a Backbone is shared by the spellings of
    # its weights: skrank-tiny's None and "openai" are one, and the first names it).
    "pretrained": (None, lambda f, r, m: _LOADS[-1] == ("skrank-tiny", None)),
    "preset": ("paper", lambda f, r, m: f.preset.name == "paper" == m.preset_),
    "d_model": (32, lambda f, r, m: f.adapter.d_model == 32 == m.adapter_.cfg.d_model),
    "n_fusion_layers": (1, lambda f, r, m: f.adapter.n_fusion_layers == 1),
    "n_post_layers": (1, lambda f, r, m: f.adapter.n_post_layers == 1),
    "n_heads": (4, lambda f, r, m: f.adapter.n_heads == 4),
    "n_prompt_tokens": (3, lambda f, r, m: f.adapter.n_prompt_tokens == 3),
    "n_relation_tokens": (5, lambda f, r, m: f.adapter.n_relation_tokens == 5),
    "score_pooling": ("mean_std", lambda f, r, m: f.adapter.score_pooling == "mean_std"),
    "image_positions": ("sincos", lambda f, r, m: f.adapter.image_positions == "sincos"),
    "probe": ("ridge", lambda f, r, m: f.adapter.probe == "ridge" and m.probe_weight_ is not None),
    "reg_weight": (0.5, lambda f, r, m: f.train.reg_weight == 0.5),
    "rank_weight": (0.75, lambda f, r, m: f.train.rank_weight == 0.75),
    "lr": (2e-3, lambda f, r, m: f.train.lr == 2e-3 == m.lr_),
    "weight_decay": (0.02, lambda f, r, m: f.train.weight_decay == 0.02),
    "batch_size": (6, lambda f, r, m: f.train.batch_size == 6 == f.encoder.batch_size),
    "max_epochs": (2, lambda f, r, m: f.train.max_epochs == 2),
    "warmup_fraction": (0.1, lambda f, r, m: f.train.warmup_fraction == 0.1),
    "early_stopping": (True, lambda f, r, m: f.train.early_stopping is True),
    "validation_fraction": (0.3, lambda f, r, m: f.train.validation_fraction == 0.3),
    "n_iter_no_change": (3, lambda f, r, m: f.train.n_iter_no_change == 3),
    "tol": (0.5, lambda f, r, m: f.train.tol == 0.5),
    "scoring": ("kendall", lambda f, r, m: f.train.scoring == "kendall"),
    "sampling": ("uniform", lambda f, r, m: f.train.sampling == "uniform"),
    "augment": (False, lambda f, r, m: f.train.augment is False and m.cache_info_["misses"]),
    "cache": ("disk", lambda f, r, m: f.cache == "disk" == m.cache_info_["kind"]),
    "cache_dir": (None, None),  # set per test: a temporary folder
    "device": ("cpu", lambda f, r, m: f.train.device == torch.device("cpu")),
    "precision": ("fp32", lambda f, r, m: f.encoder.precision == "fp32" == f.train.precision),
    "num_workers": (1, lambda f, r, m: f.encoder.num_workers == 1),
    "random_state": (7, lambda f, r, m: f.train.seed == _seed(7)),
    "verbose": (1, lambda f, r, m: f.verbose == 1),
    "callbacks": ([_callback], lambda f, r, m: f.callbacks == (_callback,)),
    "warm_start": (True, None),  # shown by a second fit continuing the first
    "image_column": ("img", None),  # shown by fitting on a frame with these columns
    "instruction_column": ("task", None),
    "group_column": ("g", lambda f, r, m: r.groups is not None),
    "pair_scope": ("group", lambda f, r, m: f.train.pair_scope == "group"),
    "negative_fraction": (0.2, lambda f, r, m: f.train.negative_fraction == 0.2),
}


def f_instr():
    return REACHES["instruction"][0]


_LOADS = []  # (backbone, pretrained) of each load_backbone call of the ranker


def _seed(random_state):
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def test_every_ranker_parameter_reaches_what_a_fit_builds(tmp_path, monkeypatch, capsys):
    import pandas as pd

    import skrank._estimator.fitting

    assert set(REACHES) == set(CLIPRanker().get_params())
    values = {name: value for name, (value, _) in REACHES.items()}
    defaults = CLIPRanker().get_params()
    values["cache_dir"] = tmp_path / "cache"
    for name, value in values.items():
        assert value != defaults[name] or value is not defaults[name], name
    seen = []
    real = skrank._estimator.fitting.prepare

    def recording(ranker, fit, rows):
        seen.append((fit, rows))
        return real(ranker, fit, rows)

    monkeypatch.setattr(skrank._estimator.fitting, "prepare", recording)
    import skrank._estimator.ranker as ranker_module

    real_load = ranker_module.load_backbone

    def loading(name, pretrained, device):
        _LOADS.append((name, pretrained))
        return real_load(name, pretrained, device)

    monkeypatch.setattr(ranker_module, "load_backbone", loading)
    rng = np.random.default_rng(0)
    n = 30
    frame = pd.DataFrame(
        {
            "img": [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)],
            "g": np.repeat(np.arange(10), 3),
        }
    )
    y = rng.normal(size=n)
    ranker = CLIPRanker(**values)
    with pytest.warns(UserWarning):
        ranker.fit(frame, y)
    fit, rows = seen[-1]
    assert fit.cache_dir == tmp_path / "cache" and list((tmp_path / "cache").iterdir())
    for name, (_, reached) in REACHES.items():
        if reached is not None:
            assert reached(fit, rows, ranker), name
    assert "epoch" in capsys.readouterr().out.lower()  # verbose=1
    # image_column: the images came from "img" (the fit would refuse a frame without
    # "image" otherwise); instruction_column: a "task" column is read at predict.
    with pytest.warns(UserWarning, match="instruction_column=.task. of X "):
        with pytest.raises(ValueError, match="were not seen in fit"):
            ranker.predict(frame.assign(task="Sort by size."))
        assert np.isfinite(ranker.predict(frame.assign(task=f_instr()))).all()
    # warm_start: a second fit continues the first (n_iter_ counted on).
    first = ranker.n_iter_
    with pytest.warns(UserWarning):
        ranker.fit(frame, y)
    assert ranker.n_iter_ > first and seen[-1][0].train.seed == _seed(7)


def test_every_embedder_parameter_reaches_what_transform_builds(tmp_path, monkeypatch):
    import pandas as pd

    import skrank._estimator.embedder
    from skrank import CLIPEmbedder

    values = {
        "backbone": "skrank-tiny",
        "pretrained": None,
        "batch_size": 3,
        "device": "cpu",
        "precision": "fp32",
        "num_workers": 1,
        "cache": "disk",
        "cache_dir": tmp_path / "cache",
        "image_column": "img",
        "normalize": True,
    }
    defaults = CLIPEmbedder().get_params()
    assert set(values) == set(defaults)
    for name, value in values.items():
        assert value != defaults[name], name
    seen = []
    real = skrank._estimator.embedder._embeddings

    def recording(encoder, items, cache, cache_dir):
        seen.append((encoder, cache, cache_dir))
        return real(encoder, items, cache, cache_dir)

    monkeypatch.setattr(skrank._estimator.embedder, "_embeddings", recording)
    loads = []
    for module in (skrank._estimator.embedder, skrank._estimator.inference):
        real_load = module.load_backbone

        def loading(name, pretrained, device, real_load=real_load):
            loads.append((name, pretrained))
            return real_load(name, pretrained, device)

        monkeypatch.setattr(module, "load_backbone", loading)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    frame = pd.DataFrame({"img": images, "other": range(5)})
    out = CLIPEmbedder(**values).fit().transform(frame)
    [(encoder, cache, cache_dir)] = seen
    # (the Backbone is shared by skrank-tiny's None and "openai": what was asked for counts)
    assert loads and set(loads) == {("skrank-tiny", None)}
    assert encoder.backbone.name == "skrank-tiny"
    assert (encoder.batch_size, encoder.num_workers, encoder.precision) == (3, 1, "fp32")
    assert encoder.backbone.device == torch.device("cpu")
    assert cache == "disk" and cache_dir == tmp_path / "cache"
    assert list((tmp_path / "cache" / "embeddings").iterdir())
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-5)


# --------------------------------------------------- parameters checked again after fit (issue 29)


AFTER_FIT = {"batch_size": 0, "device": "bogus", "num_workers": -1, "cache": "nope"}
METHODS = {
    "predict": lambda r, X, y: r.predict(X),
    "transform": lambda r, X, y: r.transform(X),
    "score": lambda r, X, y: r.score(X, y),
    "compare": lambda r, X, y: r.compare(X[:2], X[2:4]),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", AFTER_FIT)
def test_methods_after_fit_check_the_parameters_as_fit_does(
    tiny_fitted, brightness_task, name, method
):
    import copy

    from skrank import InvalidParameterError

    ranker = copy.deepcopy(tiny_fitted).set_params(**{name: AFTER_FIT[name]})
    X, y = brightness_task["X_test"][:4], brightness_task["y_test"][:4]
    with pytest.raises(InvalidParameterError, match=f"{name}=") as after:
        METHODS[method](ranker, X, y)
    with pytest.raises(InvalidParameterError) as at_fit:
        ranker.fit(X, y)
    assert str(after.value) == str(at_fit.value)


@pytest.mark.parametrize("name", AFTER_FIT)
def test_the_embedder_checks_its_parameters_after_fit(brightness_task, name):
    from skrank import CLIPEmbedder, InvalidParameterError

    X = brightness_task["X_test"][:2]
    embedder = CLIPEmbedder(backbone="skrank-tiny", device="cpu").fit(X)
    with pytest.raises(InvalidParameterError, match=f"{name}="):
        embedder.set_params(**{name: AFTER_FIT[name]}).transform(X)


# ------------------------------------------------------------------ values quoted short (issue 29)

HUGE = 5_000_000


def test_a_huge_parameter_value_is_quoted_short():
    from skrank import CLIPRanker

    with pytest.raises(ValueError) as info:
        CLIPRanker(backbone="skrank-tiny", device="x" * HUGE).fit(small_images(), np.arange(8.0))
    assert len(str(info.value)) < 2000
    assert f"({HUGE} characters)" in str(info.value)


def test_shown_cuts_long_values_and_keeps_short_ones():
    from skrank._quote import shown

    assert shown("abc") == "'abc'"
    assert shown(b"x" * 1000, limit=3) == "b'xxx'... (1000 bytes)"
    assert len(shown(["y" * 10_000] * 10_000)) < 1000
