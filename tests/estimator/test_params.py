"""The parameter table: every parameter is checked (in fit, and again by every method
after it), and refusals say what is allowed, quoting huge values short."""

import math
import os
import pathlib

import numpy as np
import pytest
import torch

from skrank import CLIPRanker, InvalidParameterError
from skrank.params import PARAMETERS, by_name, validate_params
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
    "verbose": [-1, 0.5],
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
    with pytest.raises(InvalidParameterError, match="precision='bf16' needs a CUDA device"):
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


def test_by_name_passes_the_parameters_a_target_names():
    def target(batch_size, lr, extra=0):
        return batch_size, lr, extra

    assert by_name(target, {"batch_size": 4, "lr": "auto", "cache": None}, lr=0.1) == (4, 0.1, 0)


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
