"""Failed fits (issue 5): an interrupted, failing or diverging fit says what happened and
leaves the estimator exactly as it was, unfitted or with its previous model."""

import copy
import math

import numpy as np
import pytest
import torch

import skrank._estimator.ranker
import skrank._model.training
from skrank import ImageLoadError
from skrank._model.sampling import BatchPlan, epoch_batches
from skrank._model.training import TrainingDivergedError
from tests.helpers import BATCH, N_TRAIN
from tests.helpers import quick_ranker as quick

PLAN = BatchPlan(BATCH, "balanced", "all")

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- atomic fits


def snapshot(ranker):
    """Everything in ``vars(ranker)``, deep-copied (the adapter as its identity and weights)."""
    state = {}
    for name, value in vars(ranker).items():
        if isinstance(value, torch.nn.Module):
            weights = {k: v.clone() for k, v in value.state_dict().items()}
            state[name] = (id(value), weights)
        else:
            state[name] = copy.deepcopy(value)
    return state


def assert_same_state(before, ranker):
    after = snapshot(ranker)
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            assert value[0] == after[name][0], f"{name} was replaced"
            for key, tensor in value[1].items():
                assert torch.equal(tensor, after[name][1][key]), f"{name}.{key} changed"
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[name])
        else:
            assert value == after[name], name


def interrupt_mid_epoch(monkeypatch):
    """Make ``train`` raise KeyboardInterrupt after the second optimiser step of epoch 1."""
    original = skrank._estimator.ranker.train
    seen = []

    def on_step(epoch, step):
        seen.append((epoch, step))
        if step == 2:
            raise KeyboardInterrupt

    def train(*args, **kwargs):
        return original(*args, on_step=on_step, **kwargs)

    monkeypatch.setattr(skrank._estimator.ranker, "train", train)
    return seen


def failing_loss(monkeypatch, value=None, after=0):
    """Replace the ranking loss: raise (value None) or return ``value`` after ``after`` calls."""
    original = skrank._model.training.ranking_loss
    calls = []

    def loss(logits, y, mask):
        calls.append(1)
        if len(calls) <= after:
            return original(logits, y, mask)
        if value is None:
            raise RuntimeError("injected fault in the ranking loss")
        return original(logits, y, mask) * value

    monkeypatch.setattr(skrank._model.training, "ranking_loss", loss)
    return calls


FAULTS = ["interrupt", "loss_raises", "loss_nan", "diverging_lr", "bad_image"]


def inject(fault, monkeypatch, ranker, X, y):
    """Arrange ``fault`` and return (X, y, expected exception type, match)."""
    if fault == "interrupt":
        interrupt_mid_epoch(monkeypatch)
        return X, y, KeyboardInterrupt, None
    if fault == "loss_raises":
        failing_loss(monkeypatch)
        return X, y, RuntimeError, "injected fault"
    if fault == "loss_nan":
        failing_loss(monkeypatch, value=math.nan)
        return X, y, TrainingDivergedError, "epoch 1"
    if fault == "diverging_lr":
        ranker.set_params(lr=1e6)
        return X, y, TrainingDivergedError, "epoch 1"
    bad_X = X[:5] + [np.zeros((4, 4, 2), np.uint8)] + X[5:]
    return bad_X, np.r_[y[:5], 0.5, y[5:]], ImageLoadError, r"\[5\]: array of shape"


@pytest.mark.parametrize("fault", FAULTS)
def test_failed_fit_leaves_an_unfitted_ranker_unfitted(fault, train_data, monkeypatch):
    X, y = train_data
    ranker = quick()
    X, y, error, match = inject(fault, monkeypatch, ranker, list(X), y)
    before = snapshot(ranker)
    with pytest.raises(error, match=match):
        ranker.fit(X, y)
    assert_same_state(before, ranker)
    assert not [a for a in vars(ranker) if a.endswith("_")]


@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("fault", FAULTS)
def test_failed_fit_keeps_the_previous_model(
    fault, warm_start, fitted, train_data, probes, monkeypatch
):
    X, y = train_data
    ranker = copy.deepcopy(fitted).set_params(warm_start=warm_start)
    expected = ranker.predict(probes)
    # Different targets, so a fit that got through would change the model.
    X, y, error, match = inject(fault, monkeypatch, ranker, list(X), y[::-1].copy())
    before = snapshot(ranker)
    with pytest.raises(error, match=match):
        ranker.fit(X, y)
    assert_same_state(before, ranker)
    np.testing.assert_array_equal(ranker.predict(probes), expected)


def test_interrupt_really_lands_mid_epoch(train_data, monkeypatch):
    X, y = train_data
    seen = interrupt_mid_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        quick().fit(X, y)
    steps = len(epoch_batches(np.random.default_rng(0), np.zeros(N_TRAIN, int), y, None, PLAN))
    assert seen == [(1, 1), (1, 2)] and steps > 2


# --------------------------------------------------------------------------- numerics


def test_divergence_names_the_epoch_it_happened_in(train_data, monkeypatch):
    X, y = train_data
    steps = len(epoch_batches(np.random.default_rng(0), np.zeros(N_TRAIN, int), y, None, PLAN))
    calls = failing_loss(monkeypatch, value=math.inf, after=steps)  # epoch 1 fine, then inf
    ranker = quick(max_epochs=3)
    with pytest.raises(TrainingDivergedError, match=rf"epoch 2 \(step {steps + 1}\)") as info:
        ranker.fit(X, y)
    assert isinstance(info.value, FloatingPointError)
    # Losses are read once per epoch (no host sync per step): the fit stops at the
    # end of the epoch that diverged, never later, and names the first bad step.
    assert len(calls) == 2 * steps
    assert not hasattr(ranker, "adapter_")


def test_huge_learning_rate_diverges_with_a_clear_error(train_data):
    X, y = train_data
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch \d+.*lower lr"):
        quick(lr=1e6, max_epochs=3).fit(X, y)
