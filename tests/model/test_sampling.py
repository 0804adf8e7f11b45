"""Batches as the reference draws them (RankingAwareCLIP ``training/data.py``).

Distinct rows in every batch; "balanced" over target values or quantile bins;
each batch's instruction drawn uniformly; whole groups with
``pair_scope="group"``, still balanced; negatives from other instructions
labelled with the target 0; a fit reproduced by its seed, dropout included.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import skrank._estimator.fitting
import skrank._model.training
from skrank._model.sampling import N_BINS, BatchPlan, balanced_weights, epoch_batches, target_bins
from tests.helpers import tiny_ranker


def epochs(n, instr, y, groups, *plan, zero=None, seed=0):
    """``n`` epochs of batches drawn by one generator, as a fit draws them; ``plan`` is
    :class:`BatchPlan`'s fields, in order."""
    rng = np.random.default_rng(seed)
    return [epoch_batches(rng, instr, y, groups, BatchPlan(*plan), zero) for _ in range(n)]


def visits(batch_lists, n_rows):
    """How often each row was in a batch (negatives excluded)."""
    count = np.zeros(n_rows, int)
    for batches in batch_lists:
        for b in batches:
            np.add.at(count, b.rows[: len(b) - b.n_negative], 1)
    return count


# --------------------------------------------------------------------------- distinct rows


SKEWED = np.r_[np.zeros(99), 1.0]  # one rare value: the old draw put ~8 copies of it in a batch


@pytest.mark.parametrize("sampling", ["balanced", "uniform"])
@pytest.mark.parametrize("pair_scope", ["all", "group"])
@pytest.mark.parametrize("n_instructions", [1, 3])
def test_no_row_is_ever_twice_in_a_batch(sampling, pair_scope, n_instructions):
    n = len(SKEWED)
    instr = np.arange(n) % n_instructions
    groups = np.arange(n) // 5
    for batches in epochs(20, instr, SKEWED, groups, 16, sampling, pair_scope, 0.25):
        for b in batches:
            assert len(np.unique(b.rows)) == len(b) <= 16
            positives = b.rows[: len(b) - b.n_negative]
            assert (instr[positives] == b.instruction).all()


def test_the_rare_row_is_in_every_batch_once_not_eight_times():
    batches = epochs(10, np.zeros(100, int), SKEWED, None, 16, "balanced", "all")
    per_batch = [np.sum(b.rows == 99) for e in batches for b in e]
    assert set(per_batch) == {1}  # capped by distinctness: as often as it can be


def test_an_epoch_keeps_todays_steps_and_rows_with_one_instruction():
    y = np.arange(100.0)
    for sampling in ("balanced", "uniform"):
        (batches,) = epochs(1, np.zeros(100, int), y, None, 16, sampling, "all")
        # ceil(100 / 16) = 7 near-equal batches, 100 rows, as before
        assert sorted(len(b) for b in batches) == [14] * 5 + [15] * 2
        if sampling == "uniform":  # a shuffle: every row exactly once
            assert sorted(np.concatenate([b.rows for b in batches])) == list(range(100))


# --------------------------------------------------------------------------- balanced targets


def test_integer_targets_are_balanced_value_by_value():
    y = np.repeat(np.arange(5.0), [600, 200, 100, 60, 40])
    assert (target_bins(y) == y).all()
    np.testing.assert_allclose(np.bincount(y.astype(int), balanced_weights(y)), 0.2)
    count = visits(epochs(10, np.zeros(len(y), int), y, None, 20, "balanced", "all"), len(y))
    share = np.bincount(y.astype(int), count) / count.sum()
    np.testing.assert_allclose(share, 0.2, atol=0.02)  # measured: 0.195-0.208
    count = visits(epochs(10, np.zeros(len(y), int), y, None, 20, "uniform", "all"), len(y))
    share = np.bincount(y.astype(int), count) / count.sum()
    np.testing.assert_allclose(share, [0.6, 0.2, 0.1, 0.06, 0.04], atol=1e-12)


def test_continuous_targets_are_binned_by_quantiles():
    rng = np.random.default_rng(0)
    y = rng.exponential(size=2000)
    bins = target_bins(y)
    assert bins.max() + 1 == N_BINS and (np.bincount(bins) == 2000 // N_BINS).all()
    assert target_bins(np.arange(20.0)).tolist() == list(range(20))  # 20 values: themselves
    assert target_bins(np.arange(21.0)).max() + 1 <= N_BINS  # 21: quantile bins
    # Equal-frequency bins hold equal counts: on all-distinct values "balanced"
    # weighs rows equally, and every quantile bin is visited about equally.
    np.testing.assert_allclose(balanced_weights(y), 1 / 2000)
    for sampling in ("balanced", "uniform"):
        count = visits(epochs(5, np.zeros(2000, int), y, None, 32, sampling, "all"), 2000)
        per_bin = np.bincount(bins, count)
        assert chisquare(per_bin).pvalue > 1e-3, (sampling, per_bin)


def test_a_spike_of_tied_values_is_one_bin_and_balanced_down():
    rng = np.random.default_rng(1)
    y = np.where(rng.random(2000) < 0.6, 0.0, rng.exponential(size=2000))  # 60 % zeros
    bins = target_bins(y)
    n_bins = bins.max() + 1
    assert len(np.unique(bins[y == 0])) == 1 and 5 <= n_bins < N_BINS  # ties never split
    zeros = y == 0
    count = visits(epochs(5, np.zeros(2000, int), y, None, 32, "balanced", "all"), 2000)
    assert count[zeros].sum() / count.sum() == pytest.approx(1 / n_bins, abs=0.03)
    count = visits(epochs(5, np.zeros(2000, int), y, None, 32, "uniform", "all"), 2000)
    assert count[zeros].sum() / count.sum() == pytest.approx(zeros.mean(), abs=1e-12)


# --------------------------------------------------------------------------- instructions


def test_each_batch_draws_its_instruction_uniformly():
    instr = np.r_[np.zeros(900, int), np.ones(100, int)]  # rows split 90 / 10
    y = np.random.default_rng(0).random(1000)
    all_batches = epochs(10, instr, y, None, 10, "balanced", "all")
    assert {len(e) for e in all_batches} == {90 + 10}  # as many steps as today
    counts = np.bincount([b.instruction for e in all_batches for b in e])
    assert chisquare(counts).pvalue > 1e-3, counts  # 50 / 50, not 90 / 10
    assert abs(counts[0] / counts.sum() - 0.5) < 0.04


# --------------------------------------------------------------------------- groups


def test_group_batches_are_whole_groups_and_honour_balanced_sampling():
    # 50 groups of 4: 45 hold values {0, 1}, 5 hold the rare values {2, 3}.
    y = np.tile([0.0, 0.0, 1.0, 1.0], 50)
    y[180:] += 2
    groups = np.repeat(np.arange(50), 4)
    instr = np.zeros(200, int)
    rare = y >= 2
    for sampling, low, high in (("balanced", 0.4, 0.55), ("uniform", 0.09, 0.11)):
        drawn = epochs(30, instr, y, groups, 16, sampling, "group")
        for b in (b for e in drawn for b in e):
            assert len(np.unique(b.rows)) == len(b) <= 16
            assert (np.bincount(groups[b.rows]) % 4 == 0).all()  # whole groups only
        count = visits(drawn, 200)
        # Balanced: rare rows weigh 9x, so their groups are drawn 9x as often; half the
        # rows seen would be rare, lowered to 0.46 because a group is at most once in
        # a batch (4 groups a batch, 5 rare). Uniform: their share of the rows, 10 %.
        assert low < count[rare].sum() / count.sum() < high


# --------------------------------------------------------------------------- negatives


@pytest.mark.parametrize(("fraction", "batch_size"), [(0.2, 10), (0.25, 16), (0.5, 7)])
@pytest.mark.parametrize("pair_scope", ["all", "group"])
def test_negatives_come_from_other_instructions_with_the_target_zero(
    fraction, batch_size, pair_scope
):
    instr = np.r_[np.zeros(60, int), np.ones(40, int)]
    y = np.random.default_rng(0).standard_normal(100)
    zero = np.array([-1.5, 0.7])  # (0 - mean_k) / scale_k of each instruction
    groups = np.arange(100) // 4
    n_neg = round(fraction * batch_size)
    args = (instr, y, groups, batch_size, "uniform", pair_scope, fraction)
    for b in (b for e in epochs(5, *args, zero=zero) for b in e):
        assert b.n_negative == n_neg
        negatives, positives = b.rows[len(b) - n_neg :], b.rows[: len(b) - n_neg]
        assert (instr[negatives] != b.instruction).all()
        assert (instr[positives] == b.instruction).all()
        assert (b.targets[len(b) - n_neg :] == zero[b.instruction]).all()
        np.testing.assert_array_equal(b.targets[: len(b) - n_neg], y[positives])
        assert len(np.unique(b.rows)) == len(b) <= batch_size


def test_negatives_need_several_instructions():
    y = np.arange(50.0)
    plan = BatchPlan(10, "balanced", "all", 0.5)
    for b in epoch_batches(np.random.default_rng(0), np.zeros(50, int), y, None, plan):
        assert b.n_negative == 0 and np.array_equal(b.targets, y[b.rows])


def test_a_fit_trains_negatives_on_their_relabelled_targets_and_own_weights(monkeypatch):
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 256, 8)]  # 32 images
    instructions = ["Sort by brightness."] * 16 + ["Count the dots."] * 16
    y = np.r_[np.arange(16.0), 10.0 + np.arange(16.0)]
    weight = np.linspace(0.5, 2.0, 32)
    seen, drawn = [], []
    original = skrank._model.training.epoch_batches

    def recording(*args):
        out = original(*args)
        drawn.append(out)
        return out

    def regression(scores, target, weight):
        seen.append((target.clone(), weight.clone()))
        return scores.sum() * 0 + 1.0

    monkeypatch.setattr(skrank._model.training, "epoch_batches", recording)
    monkeypatch.setattr(skrank._model.training, "regression_loss", regression)
    import pandas as pd

    frame = pd.DataFrame({"image": images, "instruction": instructions})
    r = tiny_ranker(None, batch_size=8, max_epochs=1, negative_fraction=0.25, rank_weight=0.0)
    r.fit(frame, y, sample_weight=weight)
    steps = drawn[1]  # the first draw only sizes the schedule
    assert len(seen) == len(steps) == 4  # 16 / 8 + 16 / 8: as many steps as without negatives
    zero = -r.y_mean_ / r.y_scale_  # a target 0, standardised per instruction
    codes = np.array([r.instructions_.index(t) for t in instructions])
    for b, (target, w) in zip(steps, seen):
        assert b.n_negative == 2 and (codes[b.rows[-2:]] != b.instruction).all()
        want = (y[b.rows] - r.y_mean_[b.instruction]) / r.y_scale_[b.instruction]
        want[-2:] = zero[b.instruction]
        np.testing.assert_allclose(target.numpy(), want, rtol=1e-6)
        np.testing.assert_allclose(w.numpy(), weight[b.rows], rtol=1e-6)  # their own


# --------------------------------------------------------------------------- reproducibility


def dropout_hook(module, args):
    """A forward pre-hook: heavy dropout on the score head's input while training, drawn
    as the adapter's own dropout is (from the fit's generator, not torch's global one)."""
    from skrank._model.adapter import _dropout

    dropout_hook.calls += module.training
    return (_dropout(args[0], 0.5) if module.training else args[0],)


def test_same_random_state_same_fit_with_dropout_and_the_global_rng_untouched(monkeypatch):
    original = skrank._estimator.fitting.initial_adapter

    def with_dropout(*args, **kwargs):
        adapter = original(*args, **kwargs)
        adapter.score_head.register_forward_pre_hook(dropout_hook)
        return adapter

    monkeypatch.setattr(skrank._estimator.fitting, "initial_adapter", with_dropout)
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 16)]
    y = np.arange(len(images), dtype=float)
    predictions = []
    for disturb in (0, 1):
        torch.manual_seed(1234 + disturb)  # the caller's global RNG differs between fits
        before = torch.get_rng_state()
        dropout_hook.calls = 0
        r = tiny_ranker(max_epochs=2, batch_size=8).fit(images, y)
        assert torch.equal(torch.get_rng_state(), before)  # the fit forked its own
        assert dropout_hook.calls >= 4  # the dropout really ran, in training mode
        predictions.append(r.predict(images))
    np.testing.assert_array_equal(predictions[0], predictions[1])
    other = tiny_ranker(max_epochs=2, batch_size=8, random_state=1).fit(images, y)
    assert not np.array_equal(other.predict(images), predictions[0])


def test_steps_per_epoch_formula():
    instr = np.r_[np.zeros(37, int), np.ones(5, int), np.full(20, 2)]
    (batches,) = epochs(1, instr, np.arange(62.0), None, 8, "uniform", "all")
    assert len(batches) == math.ceil(37 / 8) + math.ceil(5 / 8) + math.ceil(20 / 8)


def test_successive_sampling_by_rejection_is_the_keyed_draw():
    from skrank._model.sampling import _other_rows, _successive

    rng = np.random.default_rng(0)
    w = np.array([10, 1, 1, 1, 1, 1, 1, 1, 5, 3.0])
    w /= w.sum()
    by_rejection, by_keys = np.zeros(10), np.zeros(10)
    for _ in range(20000):
        drawn = _successive(rng, np.arange(10), w, np.cumsum(w), 4)
        assert len(set(drawn)) == 4
        by_rejection[drawn] += 1
        by_keys[np.argsort(rng.exponential(size=10) / w)[:4]] += 1  # Efraimidis-Spirakis
    np.testing.assert_allclose(by_rejection / 20000, by_keys / 20000, atol=0.02)
    heavy = np.r_[np.full(3, 1.0), np.full(97, 1e-9)]  # finished by keys: 3 rows hold it all
    heavy /= heavy.sum()
    drawn = _successive(rng, np.arange(100), heavy, np.cumsum(heavy), 10)
    assert len(set(drawn)) == 10 and {0, 1, 2} <= set(drawn)
    for _ in range(200):
        others = _other_rows(rng, np.array([0, 1, 5]), 7, 3)
        assert len(set(others)) == 3 and set(others) <= {2, 3, 4, 6}
