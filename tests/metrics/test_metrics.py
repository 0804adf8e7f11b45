"""Tests for skrank.metrics: metric values, groups, validation and scorers."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    cross_val_score,
    cross_validate,
)

from skrank.metrics import (
    evaluation,
    get_scorer,
    kendall_score,
    kendall_scorer,
    mae_scorer,
    make_grouped_scorer,
    pairwise_accuracy,
    pairwise_accuracy_scorer,
    plcc_score,
    plcc_scorer,
    spearman_score,
    spearman_scorer,
)

CORRELATIONS = [
    (spearman_score, lambda a, b: stats.spearmanr(a, b)[0]),
    (kendall_score, lambda a, b: stats.kendalltau(a, b)[0]),
    (plcc_score, lambda a, b: stats.pearsonr(a, b)[0]),
]
METRICS = [spearman_score, kendall_score, plcc_score, pairwise_accuracy]


def brute_force_pairwise_accuracy(y_true, y_pred):
    correct = total = 0.0
    for i in range(len(y_true)):
        for j in range(i + 1, len(y_true)):
            if y_true[i] == y_true[j]:
                continue
            total += 1
            true_sign = np.sign(y_true[i] - y_true[j])
            pred_sign = np.sign(y_pred[i] - y_pred[j])
            correct += 0.5 if pred_sign == 0 else float(pred_sign == true_sign)
    return correct / total if total else float("nan")


def tied_data(rng, n):
    """Targets and predictions with many ties on both sides."""
    y_true = rng.integers(0, 5, n).astype(float)
    y_pred = y_true + rng.integers(-2, 3, n)
    return y_true, y_pred


@pytest.fixture
def regression_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=2.0, size=60)
    groups = np.repeat(np.arange(6), 10)
    return X, y, groups


def manual_fold_scores(X, y, groups, metric, per_group):
    scores = []
    for train, test in GroupKFold(2).split(X, y, groups):
        y_pred = Ridge().fit(X[train], y[train]).predict(X[test])
        if per_group:
            values = [
                metric(y[test][groups[test] == g], y_pred[groups[test] == g])
                for g in np.unique(groups[test])
            ]
            scores.append(np.mean(values))
        else:
            scores.append(metric(y[test], y_pred))
    return np.array(scores)


# ---------------------------------------------------------------------------
# Metric values


@pytest.mark.parametrize(("metric", "reference"), CORRELATIONS)
@pytest.mark.parametrize("n", [2, 3, 10, 200])
@pytest.mark.parametrize("ties", [True, False])
def test_correlations_agree_with_scipy(metric, reference, n, ties):
    rng = np.random.default_rng(n)
    for _ in range(10):
        if ties:
            y_true, y_pred = tied_data(rng, n)
        else:
            y_true, y_pred = rng.normal(size=n), rng.normal(size=n)
        if np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
            continue
        assert metric(y_true, y_pred) == pytest.approx(reference(y_true, y_pred), abs=1e-12)


def test_kendall_and_pairwise_accuracy_scale_to_large_n():
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=20_000)
    y_pred = y_true + rng.normal(size=20_000)
    tau = kendall_score(y_true, y_pred)
    assert tau == pytest.approx(stats.kendalltau(y_true, y_pred)[0], abs=1e-12)
    # Without ties, pairwise accuracy is (1 + tau) / 2.
    assert pairwise_accuracy(y_true, y_pred) == pytest.approx((1 + tau) / 2, abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 7, 40, 150])
def test_pairwise_accuracy_matches_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        y_true, y_pred = tied_data(rng, n)
        expected = brute_force_pairwise_accuracy(y_true, y_pred)
        np.testing.assert_allclose(pairwise_accuracy(y_true, y_pred), expected, atol=1e-12)


def test_pairwise_accuracy_counts_predicted_ties_as_half():
    assert pairwise_accuracy([1, 2, 3], [0, 0, 0]) == 0.5
    assert pairwise_accuracy([1, 2, 3], [3, 2, 1]) == 0.0
    # The pair tied in y_true is left out, whatever the prediction says.
    assert pairwise_accuracy([1, 1, 2], [5, 0, 9]) == 1.0


@pytest.mark.parametrize("metric", METRICS)
def test_returns_python_float(metric):
    assert type(metric([1, 2, 3], [1, 3, 2])) is float


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        min_size=2,
        max_size=50,
    ).filter(lambda values: len(set(values)) > 1)
)
def test_spearman_of_itself_and_its_negation(values):
    y = np.array(values)
    assert spearman_score(y, y) == 1.0
    assert spearman_score(y, -y) == -1.0


# ---------------------------------------------------------------------------
# Groups and undefined values


@pytest.mark.parametrize("metric", METRICS)
def test_groups_average_is_unweighted_mean_of_groups(metric):
    rng = np.random.default_rng(2)
    sizes = [5, 12, 30]
    labels = np.repeat(np.array(["b", "a", "c"]), sizes)
    y_true = rng.normal(size=labels.size)
    y_pred = y_true + rng.normal(size=labels.size)
    permutation = rng.permutation(labels.size)
    y_true, y_pred, labels = y_true[permutation], y_pred[permutation], labels[permutation]
    expected = np.mean([metric(y_true[labels == g], y_pred[labels == g]) for g in "abc"])
    assert metric(y_true, y_pred, groups=labels) == pytest.approx(expected, abs=1e-12)
    assert metric(y_true, y_pred, groups=labels) != pytest.approx(metric(y_true, y_pred))


@pytest.mark.parametrize(("metric", "reference"), CORRELATIONS)
def test_correlation_groups_skip_undefined(metric, reference):
    # group 1 has one sample, group 2 a constant y_true, group 3 a constant y_pred
    y_true = np.array([1, 2, 3, 4, 5.0, 7, 7, 7, 1, 2, 3, 9, 8, 1])
    y_pred = np.array([1, 3, 2, 4, 6.0, 1, 2, 3, 5, 5, 5, 1, 3, 2])
    groups = np.array([0, 0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
    expected = np.mean([reference(y_true[groups == g], y_pred[groups == g]) for g in (0, 4)])
    assert metric(y_true, y_pred, groups=groups) == pytest.approx(expected)


def test_pairwise_accuracy_groups_skip_groups_without_untied_pairs():
    y_true = np.array([1, 2, 3, 4, 4, 4, 5, 1, 2])
    y_pred = np.array([1, 3, 2, 1, 2, 3, 0, 5, 5])
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 3, 3])
    expected = np.mean([2 / 3, 0.5])  # groups 1 (all tied) and 2 (one sample) skipped
    assert pairwise_accuracy(y_true, y_pred, groups=groups) == pytest.approx(expected)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    ("y_true", "y_pred", "groups"),
    [
        ([], [], None),
        ([3.0], [1.0], None),
        ([2, 2, 2], [1, 2, 3], None),
        ([1, 2, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3]),
        ([1, 1, 2, 2], [1, 2, 3, 4], [0, 0, 1, 1]),
    ],
)
def test_undefined_is_nan_without_warnings(metric, y_true, y_pred, groups):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(metric(y_true, y_pred, groups=groups))


@pytest.mark.parametrize("metric", [spearman_score, kendall_score, plcc_score])
def test_constant_prediction_gives_nan_for_correlations(metric):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(metric([1, 2, 3], [5, 5, 5]))


def test_plcc_is_robust_to_huge_and_tiny_values():
    y = np.array([1.0, 2.0, 4.0])
    for scale in (1e300, 1e-300):
        assert plcc_score(y * scale, y) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plcc_score([1.7e308, 1.6e308, 1e308], [3, 2, 1]) == pytest.approx(
            stats.pearsonr([1.7, 1.6, 1.0], [3, 2, 1])[0]
        )


# ---------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize("metric", METRICS)
def test_length_mismatch_names_both_lengths(metric):
    with pytest.raises(ValueError, match=r"same length.*5 and 4"):
        metric([1, 2, 3, 4, 5], [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"groups.*3 and 4"):
        metric([1, 2, 3, 4], [1, 2, 3, 4], groups=[0, 0, 1])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(metric, bad):
    with pytest.raises(ValueError, match="NaN or inf found in y_pred"):
        metric([1, 2, 3], [1, bad, 3])
    with pytest.raises(ValueError, match="NaN or inf found in y_true"):
        metric([bad, 2, 3], [1, 2, 3])


@pytest.mark.parametrize("metric", METRICS)
def test_non_1d_and_non_numeric_inputs_are_rejected(metric):
    with pytest.raises(ValueError, match=r"y_true must be 1-D.*\(2, 2\)"):
        metric([[1, 2], [3, 4]], [1, 2])
    with pytest.raises(ValueError, match="y_pred must be 1-D"):
        metric([1, 2], 3.0)
    with pytest.raises(ValueError, match="y_pred must contain numbers"):
        metric([1, 2], ["a", "b"])
    with pytest.raises(ValueError, match="groups must be 1-D"):
        metric([1, 2], [1, 2], groups=[[0, 1]])


COMPLEX = {
    "complex128": np.array([1 + 2j, 2, 3]),
    "complex64 with zero imaginary parts": np.array([1, 2, 3], dtype=np.complex64),
    "list": [1 + 2j, 2, 3],
    "object": np.array([1 + 2j, 2.0, 3.0], dtype=object),
}


@pytest.mark.parametrize("metric", [*METRICS, evaluation])
@pytest.mark.parametrize("values", sorted(COMPLEX))
def test_complex_input_is_a_value_error_not_a_dropped_imaginary_part(metric, values):
    # numpy's cast to float64 drops imaginary parts with only a ComplexWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for args, name in [
            ((COMPLEX[values], [1, 2, 3]), "y_true"),
            (([1, 2, 3], COMPLEX[values]), "y_pred"),
        ]:
            with pytest.raises(ValueError, match=f"{name} must contain real numbers; got complex"):
                metric(*args)
        with pytest.raises(ValueError, match="sample_weight must contain real numbers"):
            spearman_score([1, 2, 3], [1, 2, 3], sample_weight=COMPLEX[values])


# ---------------------------------------------------------------------------
# evaluation: every metric at once


def test_evaluation_matches_the_metric_functions():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.array(["b", "a", "c", "lone"]), [6, 15, 9, 1])
    y_true, y_pred = tied_data(rng, labels.size)
    table = evaluation(y_true, y_pred, groups=labels, ordinal=False)  # integer targets
    assert list(table) == ["pooled", "per_group_mean"]
    functions = {
        "srcc": spearman_score,
        "krcc": kendall_score,
        "plcc": plcc_score,
        "pairwise_accuracy": pairwise_accuracy,
    }
    for part, groups in (("pooled", None), ("per_group_mean", labels)):
        assert list(table[part]) == [*functions, "mae"]
        for name, function in functions.items():
            assert table[part][name] == function(y_true, y_pred, groups=groups)
        assert all(isinstance(value, float) for value in table[part].values())
    assert table["pooled"]["mae"] == mean_absolute_error(y_true, y_pred)
    per_group_mae = [mean_absolute_error(y_true[labels == g], y_pred[labels == g]) for g in "abc"]
    per_group_mae.append(abs(y_true[-1] - y_pred[-1]))  # the one-sample group counts for MAE
    assert table["per_group_mean"]["mae"] == pytest.approx(np.mean(per_group_mae), abs=1e-12)
    assert list(evaluation(y_true, y_pred, ordinal=False)) == ["pooled"]
    assert evaluation(y_true, y_pred, ordinal=False)["pooled"] == table["pooled"]


def test_evaluation_of_constant_targets_is_nan_but_mae():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = evaluation([2, 2, 2], [1, 2, 3], ordinal=False)["pooled"]
    assert scores.pop("mae") == pytest.approx(2 / 3)
    assert all(np.isnan(value) for value in scores.values())


def test_evaluation_refuses_bad_input():
    with pytest.raises(ValueError, match=r"same length.*3 and 2"):
        evaluation([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN or inf found in y_pred"):
        evaluation([1, 2, 3], [1, np.nan, 3])
    with pytest.raises(ValueError, match=r"y_true must be 1-D"):
        evaluation([[1, 2], [3, 4]], [1, 2])
    with pytest.raises(ValueError, match=r"groups.*2 and 3"):
        evaluation([1, 2, 3], [1, 2, 3], groups=[0, 1])
    with pytest.raises(TypeError):
        evaluation([1, 2, 3], [1, 2, 3], [0, 0, 1])  # groups is keyword-only


# ---------------------------------------------------------------------------
# Scorers


def test_scorers_on_fitted_linear_regression(regression_data):
    X, y, _ = regression_data
    model = LinearRegression().fit(X[:40], y[:40])
    X_test, y_test = X[40:], y[40:]
    y_pred = model.predict(X_test)
    assert mae_scorer(model, X_test, y_test) == pytest.approx(-mean_absolute_error(y_test, y_pred))
    assert get_scorer("spearman")(model, X_test, y_test) == pytest.approx(
        stats.spearmanr(y_test, y_pred)[0]
    )
    expected = {
        "kendall": stats.kendalltau(y_test, y_pred)[0],
        "plcc": stats.pearsonr(y_test, y_pred)[0],
        "pairwise_accuracy": brute_force_pairwise_accuracy(y_test, y_pred),
        "neg_mean_absolute_error": -mean_absolute_error(y_test, y_pred),
        "r2": r2_score(y_test, y_pred),
    }
    for name, value in expected.items():
        assert get_scorer(name)(model, X_test, y_test) == pytest.approx(value), name
    assert kendall_scorer(model, X_test, y_test) == pytest.approx(expected["kendall"])
    assert plcc_scorer(model, X_test, y_test) == pytest.approx(expected["plcc"])
    assert pairwise_accuracy_scorer(model, X_test, y_test) == pytest.approx(
        expected["pairwise_accuracy"]
    )


def test_get_scorer_returns_copies():
    scorer = get_scorer("spearman")
    assert scorer is not spearman_scorer
    assert repr(scorer) == repr(spearman_scorer)
    assert repr(get_scorer("neg_mean_absolute_error")) == repr(mae_scorer)


def test_get_scorer_rejects_unknown_names_clearly():
    with pytest.raises(ValueError, match="'nonsense'.*pairwise_accuracy.*spearman") as info:
        get_scorer("nonsense")
    assert isinstance(info.value.__cause__, ValueError)


def test_get_scorer_passes_callables_through():
    assert get_scorer(spearman_scorer) is spearman_scorer


@pytest.mark.parametrize(
    "scorer", [spearman_scorer, mae_scorer, make_grouped_scorer("kendall")], ids=repr
)
def test_scorers_pickle(scorer, regression_data):
    X, y, groups = regression_data
    model = Ridge().fit(X, y)
    restored = pickle.loads(pickle.dumps(scorer))
    with sklearn.config_context(enable_metadata_routing=True):
        kwargs = {"groups": groups} if "grouped" in repr(scorer) else {}
        assert restored(model, X, y, **kwargs) == scorer(model, X, y, **kwargs)


def test_cross_val_score_with_group_kfold(regression_data):
    X, y, groups = regression_data
    scores = cross_val_score(
        Ridge(), X, y, scoring=spearman_scorer, cv=GroupKFold(2), groups=groups
    )
    expected = manual_fold_scores(X, y, groups, spearman_score, per_group=False)
    np.testing.assert_allclose(scores, expected)


def test_default_scorers_pool_groups_with_routing_on(regression_data):
    X, y, groups = regression_data
    expected = manual_fold_scores(X, y, groups, spearman_score, per_group=False)
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            Ridge(),
            X,
            y,
            cv=GroupKFold(2),
            scoring={"spearman": spearman_scorer, "mae": mae_scorer},
            params={"groups": groups},
        )
    np.testing.assert_allclose(result["test_spearman"], expected)


@pytest.mark.parametrize("name", ["spearman", "kendall", "plcc", "pairwise_accuracy"])
def test_grouped_scorer_receives_groups_with_routing(regression_data, name):
    X, y, groups = regression_data
    metric = {
        "spearman": spearman_score,
        "kendall": kendall_score,
        "plcc": plcc_score,
        "pairwise_accuracy": pairwise_accuracy,
    }[name]
    expected = manual_fold_scores(X, y, groups, metric, per_group=True)
    pooled = manual_fold_scores(X, y, groups, metric, per_group=False)
    assert not np.allclose(expected, pooled)
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            Ridge(),
            X,
            y,
            cv=GroupKFold(2),
            scoring=make_grouped_scorer(name),
            params={"groups": groups},
        )
    np.testing.assert_allclose(result["test_score"], expected)


def test_grouped_scorer_in_grid_search(regression_data):
    X, y, groups = regression_data
    expected = manual_fold_scores(X, y, groups, spearman_score, per_group=True)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            Ridge(), {"alpha": [1.0]}, cv=GroupKFold(2), scoring=make_grouped_scorer("spearman")
        )
        search.fit(X, y, groups=groups)
    np.testing.assert_allclose(search.cv_results_["split0_test_score"], expected[:1])
    assert search.best_score_ == pytest.approx(expected.mean())


def test_grouped_request_on_a_copy_leaves_module_scorer_alone(regression_data):
    X, y, groups = regression_data
    expected = manual_fold_scores(X, y, groups, spearman_score, per_group=True)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = get_scorer("spearman").set_score_request(groups=True)
        result = cross_validate(
            Ridge(), X, y, cv=GroupKFold(2), scoring=scorer, params={"groups": groups}
        )
        routing = spearman_scorer.get_metadata_routing()
    np.testing.assert_allclose(result["test_score"], expected)
    assert routing.score.requests["groups"] is False


def test_grouped_scorer_without_groups_raises(regression_data):
    X, y, groups = regression_data
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        cross_val_score(
            Ridge(),
            X,
            y,
            scoring=make_grouped_scorer("spearman"),
            cv=GroupKFold(2),
            groups=groups,
            error_score="raise",
        )


def test_make_grouped_scorer_rejects_unknown_names():
    with pytest.raises(ValueError, match="name must be one of.*'spearman'.*got 'mae'"):
        make_grouped_scorer("mae")


def test_the_metrics_package_is_the_one_public_face_of_its_names():
    import importlib.util
    import inspect
    import pickle

    from skrank import metrics

    for name in metrics.__all__:
        value = getattr(metrics, name)
        if inspect.isfunction(value):
            assert value.__module__.startswith("skrank.metrics._"), name
    assert importlib.util.find_spec("skrank.scorers") is None
    scorer = metrics.make_grouped_scorer("spearman")
    assert pickle.loads(pickle.dumps(scorer)) is not None
    with pytest.raises(AttributeError, match="no_such_scorer"):
        metrics.no_such_scorer  # noqa: B018


def test_weighted_spearman_equals_repeating_rows():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(3, 20))
        y = rng.integers(0, 5, n).astype(float)
        p = rng.integers(0, 5, n).astype(float)
        w = rng.integers(0, 4, n)
        if w.sum() == 0:
            continue
        repeated = spearman_score(np.repeat(y, w), np.repeat(p, w))
        weighted = spearman_score(y, p, sample_weight=w)
        assert (np.isnan(repeated) and np.isnan(weighted)) or weighted == pytest.approx(repeated)
    y, p = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    assert spearman_score(y, p, sample_weight=np.ones(4)) == pytest.approx(spearman_score(y, p))
    g = [0, 0, 1, 1]
    assert spearman_score(y, p, groups=g, sample_weight=[1, 1, 5, 5]) == spearman_score(
        y, p, groups=g
    )


@pytest.mark.parametrize(
    ("weight", "match"),
    [
        ([1, 1, -1], "non-negative"),
        ([0, 0, 0], "positive"),
        ([1, 1], "same length"),
        ([1, np.nan, 1], "NaN or inf"),
    ],
)
def test_bad_sample_weight_is_refused(weight, match):
    with pytest.raises(ValueError, match=match):
        spearman_score([1, 2, 3], [1, 2, 3], sample_weight=weight)
