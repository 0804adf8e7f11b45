"""Ordinal metrics: accuracy and MAE of predictions rounded to the nearest class."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, make_scorer, mean_absolute_error
from sklearn.model_selection import GroupKFold, KFold, cross_val_score, cross_validate

from skrank import metrics
from skrank.metrics import (
    evaluation,
    get_scorer,
    ordinal_accuracy,
    ordinal_accuracy_scorer,
    ordinal_mae,
    ordinal_mae_scorer,
    round_to_classes,
)

ORDINAL = [ordinal_accuracy, ordinal_mae]
RANKING_KEYS = ["srcc", "krcc", "plcc", "pairwise_accuracy", "mae"]


def brute_force_round(y_pred, classes):
    """Nearest class by scanning every class; the first (lowest) of equally near ones."""
    classes = sorted(set(float(c) for c in classes))
    return np.array([min(classes, key=lambda c: (abs(y - c), c)) for y in y_pred])


@pytest.fixture
def ordinal_data():
    X, y = make_regression(n_samples=120, n_features=4, noise=20.0, random_state=0)
    y = np.clip(np.round((y - y.min()) / np.ptp(y) * 7), 0, 7)  # 8 classes, like Adience
    return X, y


# ---------------------------------------------------------------------------
# Rounding


def test_the_papers_example():
    assert ordinal_accuracy([0, 1, 2, 3, 4], [0.2, 1.4, 2.6, 2.9, 4.4]) == 0.8
    assert ordinal_mae([0, 1, 2, 3, 4], [0.2, 1.4, 2.6, 2.9, 4.4]) == pytest.approx(0.2)


def test_exact_ties_go_to_the_lower_class():
    classes = [0, 1, 2, 3]
    np.testing.assert_array_equal(
        round_to_classes([0.5, 1.5, 2.5, 0.5000001, 2.4999999], classes), [0, 1, 2, 1, 2]
    )
    # numpy rounds halves to even (2.5 -> 2, 1.5 -> 2); here 1.5 goes down to 1.
    assert ordinal_accuracy([1, 2], [1.5, 2.5]) == 1.0
    assert ordinal_mae([2, 3], [1.5, 2.5], classes=classes) == 1.0  # 1.5 -> 1, 2.5 -> 2
    # Uneven spacing: the midpoint of 1 and 4 is 2.5.
    np.testing.assert_array_equal(round_to_classes([2.5, 2.6], [1, 4]), [1, 4])


def test_values_outside_the_range_clip_to_the_end_classes():
    np.testing.assert_array_equal(
        round_to_classes([-100.0, -0.6, 4.6, 1e300], [0, 1, 2, 3, 4]), [0, 0, 4, 4]
    )
    assert ordinal_accuracy([0, 4, 2], [-7.0, 12.0, 2.2]) == 1.0
    assert ordinal_mae([0, 4], [9.0, -9.0]) == 4.0


def test_custom_and_non_integer_classes():
    np.testing.assert_array_equal(
        round_to_classes([0.0, 0.9, 1.0, 1.01, 3.0], [1.5, 0.5, 1.5]), [0.5, 0.5, 0.5, 1.5, 1.5]
    )
    # y_true holds 0.5 and 1.5 only; predictions round to that grid by default.
    assert ordinal_accuracy([0.5, 1.5, 1.5], [0.2, 1.2, 0.9]) == pytest.approx(2 / 3)
    # A given grid may hold classes that y_true lacks: 1 is a valid prediction.
    assert ordinal_accuracy([0, 2], [0.9, 1.9], classes=[0, 1, 2]) == 0.5
    assert ordinal_accuracy([0, 2], [0.9, 1.9]) == 1.0  # default grid [0, 2]: 0.9 -> 0
    assert ordinal_mae([0, 2], [0.9, 1.9], classes=[0, 1, 2]) == 0.5
    # Decades in years, unevenly spaced, unsorted, with duplicates.
    classes = [40, 20, 30, 30, 65]
    np.testing.assert_array_equal(
        round_to_classes([24, 25, 26, 52.5, 53], classes), [20, 20, 30, 40, 65]
    )
    # One class: everything rounds to it.
    np.testing.assert_array_equal(round_to_classes([-5.0, 5.0], [3]), [3, 3])
    assert ordinal_accuracy([3, 3], [0.0, 99.0]) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_rounding_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        classes = rng.choice(np.arange(-6, 7) / rng.choice([1, 2, 4]), size=rng.integers(1, 8))
        y_pred = np.concatenate([rng.uniform(-5, 5, 30), np.asarray(classes, float) + 0.25])
        y_pred = np.round(y_pred * 8) / 8  # many exact ties on dyadic midpoints
        rounded = round_to_classes(y_pred, classes)
        np.testing.assert_array_equal(rounded, brute_force_round(y_pred, classes))
        assert rounded.dtype == np.float64


def test_returns_python_float_and_nan_for_empty_input():
    assert type(ordinal_accuracy([1, 2, 3], [1, 3, 2])) is float
    assert type(ordinal_mae([1, 2, 3], [1, 3, 2])) is float
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for metric in ORDINAL:
            assert np.isnan(metric([], []))
            assert np.isnan(metric([], [], classes=[0, 1]))
            assert np.isnan(metric([], [], sample_weight=[]))
    assert round_to_classes([], [0, 1]).shape == (0,)


# ---------------------------------------------------------------------------
# Agreement with scikit-learn and weights


def test_matches_scikit_learn_on_pre_rounded_integer_predictions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        n_classes = int(rng.integers(1, 9))
        y_true = rng.integers(0, n_classes, n)
        classes = np.arange(n_classes)
        y_pred = rng.integers(0, n_classes, n)  # already on the grid: rounding is identity
        weight = rng.integers(1, 5, n) if rng.random() < 0.5 else None
        assert ordinal_accuracy(
            y_true, y_pred, classes=classes, sample_weight=weight
        ) == pytest.approx(accuracy_score(y_true, y_pred, sample_weight=weight), abs=1e-12)
        assert ordinal_mae(y_true, y_pred, classes=classes, sample_weight=weight) == pytest.approx(
            mean_absolute_error(y_true, y_pred, sample_weight=weight), abs=1e-12
        )
        # With noise under one half, rounding recovers the integers.
        noisy = y_pred + rng.uniform(-0.49, 0.49, n)
        assert ordinal_accuracy(y_true, noisy, classes=classes) == pytest.approx(
            accuracy_score(y_true, y_pred), abs=1e-12
        )
        assert ordinal_mae(y_true, noisy, classes=classes) == pytest.approx(
            mean_absolute_error(y_true, y_pred), abs=1e-12
        )


@pytest.mark.parametrize("metric", ORDINAL)
def test_weighted_equals_repeated_rows(metric):
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(1, 25))
        y_true = rng.integers(0, 5, n).astype(float)
        y_pred = rng.uniform(-1, 5, n)
        weight = rng.integers(0, 4, n)
        if weight.sum() == 0:
            continue
        grid = np.arange(5)  # fixed, since repeating with weight 0 may drop a class of y_true
        repeated = metric(np.repeat(y_true, weight), np.repeat(y_pred, weight), classes=grid)
        weighted = metric(y_true, y_pred, classes=grid, sample_weight=weight)
        assert weighted == pytest.approx(repeated, abs=1e-12)
        if weight.min() > 0:  # no row dropped: the default grids agree too
            repeated = metric(np.repeat(y_true, weight), np.repeat(y_pred, weight))
            assert metric(y_true, y_pred, sample_weight=weight) == pytest.approx(repeated)
    y_true, y_pred = [0, 1, 2, 3], [0.2, 1.9, 2.1, 2.4]
    assert metric(y_true, y_pred, sample_weight=np.ones(4)) == pytest.approx(metric(y_true, y_pred))
    assert metric(y_true, y_pred, sample_weight=[2.5, 2.5, 2.5, 2.5]) == pytest.approx(
        metric(y_true, y_pred)
    )


def test_weights_change_the_score():
    y_true, y_pred = [0, 1, 2], [0.0, 1.0, 0.0]  # the last row is wrong by 2
    assert ordinal_accuracy(y_true, y_pred, sample_weight=[1, 1, 2]) == 0.5
    assert ordinal_mae(y_true, y_pred, sample_weight=[1, 1, 2]) == 1.0
    assert ordinal_accuracy(y_true, y_pred, sample_weight=[1, 1, 0]) == 1.0


# ---------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize("metric", ORDINAL)
def test_bad_inputs_are_refused_like_the_other_metrics(metric):
    with pytest.raises(ValueError, match=r"same length.*5 and 4"):
        metric([1, 2, 3, 4, 5], [1, 2, 3, 4])
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN or inf found in y_pred"):
            metric([1, 2, 3], [1, bad, 3])
        with pytest.raises(ValueError, match="NaN or inf found in y_true"):
            metric([bad, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match=r"y_true must be 1-D.*\(2, 2\)"):
        metric([[1, 2], [3, 4]], [1, 2])
    with pytest.raises(ValueError, match="y_pred must contain numbers"):
        metric([1, 2], ["a", "b"])
    with pytest.raises(TypeError):
        metric([1, 2], [1, 2], [0, 1])  # classes is keyword-only


@pytest.mark.parametrize("metric", ORDINAL)
@pytest.mark.parametrize(
    ("classes", "match"),
    [
        ([], "classes must not be empty"),
        ([0, np.nan, 2], "NaN or inf found in classes"),
        ([0, 1, np.inf], "NaN or inf found in classes"),
        ([[0, 1], [2, 3]], r"classes must be 1-D.*\(2, 2\)"),
        (3, r"classes must be 1-D.*\(\)"),
        (["low", "high"], "classes must contain numbers"),
    ],
)
def test_bad_classes_are_refused(metric, classes, match):
    with pytest.raises(ValueError, match=match):
        metric([0, 1, 2], [0, 1, 2], classes=classes)
    with pytest.raises(ValueError, match=match):
        round_to_classes([0, 1, 2], classes)


@pytest.mark.parametrize("metric", ORDINAL)
@pytest.mark.parametrize(
    ("weight", "match"),
    [
        ([1, 1, -1], "non-negative"),
        ([0, 0, 0], "positive"),
        ([1, 1], r"sample_weight must have the same length.*2 and 3"),
        ([1, np.nan, 1], "NaN or inf found in sample_weight"),
    ],
)
def test_bad_sample_weight_is_refused(metric, weight, match):
    with pytest.raises(ValueError, match=match):
        metric([1, 2, 3], [1, 2, 3], sample_weight=weight)


def test_round_to_classes_refuses_bad_predictions():
    with pytest.raises(ValueError, match="NaN or inf found in y_pred"):
        round_to_classes([0.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="y_pred must be 1-D"):
        round_to_classes([[0.0, 1.0]], [0, 1])


# ---------------------------------------------------------------------------
# Scorers


def test_scorers_by_name_are_copies_of_the_module_scorers():
    assert repr(get_scorer("ordinal_accuracy")) == repr(ordinal_accuracy_scorer)
    assert repr(get_scorer("ordinal_mae")) == repr(ordinal_mae_scorer)
    assert get_scorer("ordinal_accuracy") is not ordinal_accuracy_scorer
    for name in ("ordinal_accuracy_scorer", "ordinal_mae_scorer"):
        assert name in metrics.__all__ and name in dir(metrics)
    for name in ("ordinal_accuracy", "ordinal_mae", "round_to_classes"):
        assert name in metrics.__all__


def test_scorers_on_a_fitted_regressor(ordinal_data):
    X, y = ordinal_data
    model = Ridge().fit(X[:80], y[:80])
    y_pred = model.predict(X[80:])
    accuracy = ordinal_accuracy(y[80:], y_pred)
    mae = ordinal_mae(y[80:], y_pred)
    assert 0 < accuracy < 1 and mae > 0
    assert get_scorer("ordinal_accuracy")(model, X[80:], y[80:]) == pytest.approx(accuracy)
    assert get_scorer("ordinal_mae")(model, X[80:], y[80:]) == pytest.approx(-mae)
    assert ordinal_mae_scorer(model, X[80:], y[80:]) == pytest.approx(-mae)  # like mae_scorer


def test_scorers_in_cross_val_score(ordinal_data):
    X, y = ordinal_data
    cv = KFold(4, shuffle=True, random_state=0)
    expected_accuracy, expected_mae = [], []
    for train, test in cv.split(X):
        y_pred = Ridge().fit(X[train], y[train]).predict(X[test])
        expected_accuracy.append(ordinal_accuracy(y[test], y_pred))
        expected_mae.append(-ordinal_mae(y[test], y_pred))
    for name, expected in (
        ("ordinal_accuracy", expected_accuracy),
        ("ordinal_mae", expected_mae),
    ):
        scores = cross_val_score(Ridge(), X, y, cv=cv, scoring=get_scorer(name))
        np.testing.assert_allclose(scores, expected)
    assert all(0 <= s <= 1 for s in expected_accuracy) and max(expected_mae) < 0


def test_a_fixed_grid_through_make_scorer():
    # The test fold holds classes 0 and 2 only: by default 0.9 rounds to 0, with
    # the full grid to 1.
    X = np.array([[0.0], [2.0], [0.9], [2.0]])
    y = np.array([0.0, 2.0, 0.0, 2.0])

    class Identity(sklearn.base.BaseEstimator, sklearn.base.RegressorMixin):
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.asarray(X)[:, 0]

    model = Identity().fit(X, y)
    assert get_scorer("ordinal_accuracy")(model, X, y) == 1.0
    fixed = make_scorer(ordinal_accuracy, classes=[0, 1, 2])
    assert fixed(model, X, y) == 0.75
    fixed_mae = make_scorer(ordinal_mae, greater_is_better=False, classes=[0, 1, 2])
    assert fixed_mae(model, X, y) == -0.25


def test_scorers_with_routing_and_groups(ordinal_data):
    X, y = ordinal_data
    groups = np.arange(y.size) % 6
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            Ridge(),
            X,
            y,
            cv=GroupKFold(3),
            scoring={"acc": ordinal_accuracy_scorer, "mae": ordinal_mae_scorer},
            params={"groups": groups},
        )
    assert np.all((0 <= result["test_acc"]) & (result["test_acc"] <= 1))
    assert np.all(result["test_mae"] < 0)


@pytest.mark.parametrize("scorer", [ordinal_accuracy_scorer, ordinal_mae_scorer], ids=repr)
def test_scorers_pickle(scorer, ordinal_data):
    X, y = ordinal_data
    model = Ridge().fit(X, y)
    assert pickle.loads(pickle.dumps(scorer))(model, X, y) == scorer(model, X, y)


# ---------------------------------------------------------------------------
# evaluation


def test_evaluation_adds_ordinal_keys_for_integer_targets():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.array(["b", "a", "c"]), [10, 20, 1])
    y_true = rng.integers(0, 8, labels.size).astype(float)
    y_pred = y_true + rng.normal(scale=0.8, size=labels.size)
    table = evaluation(y_true, y_pred, groups=labels)
    keys = [*RANKING_KEYS, "ordinal_accuracy", "ordinal_mae"]
    assert list(table["pooled"]) == keys and list(table["per_group_mean"]) == keys
    pooled = table["pooled"]
    assert pooled["ordinal_accuracy"] == ordinal_accuracy(y_true, y_pred)
    assert pooled["ordinal_mae"] == ordinal_mae(y_true, y_pred)
    # Within groups: the grid of all of y_true, then the unweighted mean over groups.
    grid = np.unique(y_true)
    expected = np.mean(
        [ordinal_accuracy(y_true[labels == g], y_pred[labels == g], classes=grid) for g in "abc"]
    )
    assert table["per_group_mean"]["ordinal_accuracy"] == pytest.approx(expected, abs=1e-12)
    expected = np.mean(
        [ordinal_mae(y_true[labels == g], y_pred[labels == g], classes=grid) for g in "abc"]
    )
    assert table["per_group_mean"]["ordinal_mae"] == pytest.approx(expected, abs=1e-12)
    # The other keys are what they were without the ordinal ones.
    plain = evaluation(y_true, y_pred, groups=labels, ordinal=False)
    for part in table:
        assert list(plain[part]) == RANKING_KEYS
        assert {k: table[part][k] for k in RANKING_KEYS} == plain[part]
    assert all(isinstance(v, float) for part in table.values() for v in part.values())


def test_evaluation_leaves_continuous_targets_alone():
    rng = np.random.default_rng(3)
    y_true = rng.normal(size=40)
    y_pred = y_true + rng.normal(size=40)
    assert list(evaluation(y_true, y_pred)["pooled"]) == RANKING_KEYS
    # Integers, but more than 20 distinct values: a score, not classes.
    assert list(evaluation(np.arange(21), np.arange(21.0))["pooled"]) == RANKING_KEYS
    assert "ordinal_mae" in evaluation(np.arange(20) % 20, np.arange(20.0))["pooled"]
    # One non-integer value is enough.
    assert list(evaluation([0, 1, 2, 2.5], [0, 1, 2, 3])["pooled"]) == RANKING_KEYS
    # Forced on, continuous targets round to their own distinct values.
    forced = evaluation([0.5, 1.5, 2.5], [0.4, 2.0, 2.6], ordinal=True)["pooled"]
    assert forced["ordinal_accuracy"] == ordinal_accuracy([0.5, 1.5, 2.5], [0.4, 2.0, 2.6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(evaluation([2, 2, 2], [1, 2, 3], ordinal=False)["pooled"]) == RANKING_KEYS


def test_evaluation_refuses_a_bad_ordinal():
    with pytest.raises(ValueError, match=r"ordinal='yes' is not valid; expected None, True"):
        evaluation([0, 1, 2], [0, 1, 2], ordinal="yes")
    with pytest.raises(ValueError, match="ordinal=1 is not valid"):
        evaluation([0, 1, 2], [0, 1, 2], ordinal=1)
    assert "ordinal_mae" in evaluation([0, 1, 2], [0, 1, 2], ordinal=np.bool_(True))["pooled"]
