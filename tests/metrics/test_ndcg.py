"""NDCG: the learning-to-rank metric, relevance = target, with k and groups."""

import pickle

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LinearRegression
from sklearn.metrics import ndcg_score as sklearn_ndcg
from sklearn.model_selection import GroupKFold, cross_validate

from skrank.metrics import get_scorer, make_grouped_scorer, ndcg_score


@pytest.mark.parametrize("k", [None, 1, 3, 10])
def test_matches_scikit_learn_ties_included(k):
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 5, n).astype(float)
        pred = rng.integers(0, 6, n).astype(float)  # many ties in the predictions
        if y.max() == 0:
            continue
        assert ndcg_score(y, pred, k=k) == pytest.approx(sklearn_ndcg([y], [pred], k=k), abs=1e-12)


def test_perfect_worst_and_bounded():
    y = np.array([3.0, 2.0, 1.0, 0.0])
    assert ndcg_score(y, y) == 1.0
    assert ndcg_score(y, -y) < ndcg_score(y, np.zeros(4)) < 1.0  # all tied: the mean gain
    assert 0.0 <= ndcg_score(y, -y) <= 1.0
    assert ndcg_score(y, [4, 3, 0, 0], k=2) == 1.0  # only the top 2 count


def test_ties_do_not_depend_on_the_order_of_rows():
    y = np.array([3.0, 0.0, 2.0, 1.0])
    pred = np.array([1.0, 1.0, 0.0, 0.0])
    perm = [1, 0, 3, 2]
    assert ndcg_score(y, pred) == ndcg_score(y[perm], pred[perm])


def test_groups_average_per_group_and_skip_groups_without_relevance():
    y = [3, 1, 0, 2, 1, 0, 0, 0]
    pred = [3, 1, 0, 0, 1, 2, 5, 4]
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]
    a = ndcg_score(y[:3], pred[:3])
    b = ndcg_score(y[3:6], pred[3:6])
    assert ndcg_score(y, pred, groups=groups) == pytest.approx((a + b) / 2)  # c skipped
    assert np.isnan(ndcg_score([0, 0], [1, 2]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(y_true=[-1, 2], y_pred=[0, 1]), "non-negative relevance"),
        (dict(y_true=[1, 2], y_pred=[0, 1], k=0), "k=0"),
        (dict(y_true=[1, 2], y_pred=[0, 1], k=2.5), "k=2.5"),
        (dict(y_true=[1, 2], y_pred=[0, 1], k=True), "k=True"),
        (dict(y_true=[1, 2], y_pred=[0, np.nan]), "NaN or inf"),
        (dict(y_true=[1, 2], y_pred=[0]), "same length"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ndcg_score(**kwargs)


def test_scorers_by_name_pooled_at_k_and_grouped():
    X = np.arange(12.0).reshape(-1, 1)
    y = np.array([0, 1, 3, 2, 4, 5, 7, 6, 8, 9, 11, 10], dtype=float)
    model = LinearRegression().fit(X, y)
    assert get_scorer("ndcg")(model, X, y) == pytest.approx(ndcg_score(y, model.predict(X)))
    at3 = get_scorer("ndcg@3")
    assert at3(model, X, y) == pytest.approx(ndcg_score(y, model.predict(X), k=3))
    assert pickle.loads(pickle.dumps(at3))(model, X, y) == at3(model, X, y)
    for bad in ("ndcg@0", "ndcg@", "ndcg@x"):
        with pytest.raises(ValueError, match="not a valid scoring value"):
            get_scorer(bad)
    groups = np.repeat([0, 1, 2, 3], 3)
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            LinearRegression(),
            X,
            y,
            cv=GroupKFold(2),
            scoring=make_grouped_scorer("ndcg@2"),
            params={"groups": groups},
        )
    assert np.all((result["test_score"] > 0) & (result["test_score"] <= 1))
    with pytest.raises(ValueError, match="ndcg@K"):
        make_grouped_scorer("ndcg@-1")
