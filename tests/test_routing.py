"""CLIPRanker inside Pipelines and searches with metadata routing, and sample weights."""

import numpy as np
import pytest
import sklearn
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skrank.losses import ranking_loss, regression_loss
from tests.helpers import tiny_ranker

IMAGES = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 10)]
Y = np.arange(len(IMAGES), dtype=float)


def search(routing: bool):
    with sklearn.config_context(enable_metadata_routing=routing):
        pipe = make_pipeline(FunctionTransformer(list), tiny_ranker(max_epochs=1))
        grid = GridSearchCV(pipe, {"clipranker__lr": [1e-3, 3e-3]}, cv=2, error_score="raise")
        grid.fit(IMAGES, Y)
        bad = IMAGES[:2] + [np.zeros((4, 4, 2), np.uint8)]
        with pytest.warns(UserWarning, match="could not be read"):
            pred = grid.best_estimator_.predict(bad, on_error="nan")
    return grid.cv_results_["mean_test_score"], pred


def test_a_search_over_a_pipeline_scores_the_same_with_routing_on_and_off():
    off, pred_off = search(False)
    on, pred_on = search(True)
    assert np.isfinite(on).all()
    np.testing.assert_array_equal(on, off)
    assert np.isnan(pred_on[2]) and np.isfinite(pred_on[:2]).all()
    np.testing.assert_array_equal(pred_on, pred_off)


def test_weighted_regression_loss_equals_repeated_rows():
    pred, y = torch.tensor([0.1, 0.5, -0.3]), torch.tensor([0.0, 1.0, -1.0])
    w = torch.tensor([2.0, 1.0, 3.0])
    counts = w.long()
    repeated = regression_loss(pred.repeat_interleave(counts), y.repeat_interleave(counts))
    assert regression_loss(pred, y, w).item() == pytest.approx(repeated.item(), rel=1e-6)
    mask = ~torch.eye(3, dtype=torch.bool)
    logits = torch.randn(3, 3)
    assert ranking_loss(logits, y, mask, torch.ones(3)).item() == pytest.approx(
        ranking_loss(logits, y, mask).item(), rel=1e-6
    )
    zero_last = ranking_loss(logits, y, mask, torch.tensor([1.0, 1.0, 0.0]))
    assert zero_last.item() == pytest.approx(
        ranking_loss(logits[:2, :2], y[:2], mask[:2, :2]).item(), rel=1e-6
    )


def test_sample_weight_in_fit_and_score():
    w = np.ones(len(Y))
    plain = tiny_ranker(max_epochs=2).fit(IMAGES, Y)
    ones = tiny_ranker(max_epochs=2).fit(IMAGES, Y, sample_weight=w)
    # Weights of one are the unweighted fit up to float rounding: the weighted loss
    # sums in another order, and two epochs of training amplify that (seen: 1.7e-4 of
    # the predictions' spread with two threads on an AMD EPYC). Zero weights change
    # the fit by far more.
    base = plain.predict(IMAGES)
    tolerance = 2e-3 * base.std()
    np.testing.assert_allclose(ones.predict(IMAGES), base, rtol=0, atol=tolerance)
    skewed = tiny_ranker(max_epochs=2).fit(IMAGES, Y, sample_weight=np.r_[np.zeros(5), w[5:]])
    assert np.abs(skewed.predict(IMAGES) - base).max() > 10 * tolerance
    assert plain.score(IMAGES, Y, sample_weight=w) == pytest.approx(plain.score(IMAGES, Y))
    for bad in (np.ones(3), -w, np.zeros(len(Y))):
        with pytest.raises(ValueError, match="sample_weight"):
            tiny_ranker(max_epochs=1).fit(IMAGES, Y, sample_weight=bad)
    with pytest.raises(ValueError, match="at least 2 images"):
        plain.score(IMAGES[:1], Y[:1])
