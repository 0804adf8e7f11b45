"""Columns in, features out: the 2-D containers a ColumnTransformer hands CLIPRanker
(an n-by-1 object array, a one-column frame under any name, a column-vector y), and the
features its ``transform`` hands on to another model."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline

from skrank import ImageLoadError
from tests.helpers import capture_train, tiny_ranker


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return tiny_ranker(max_epochs=2).fit(X, y)


# --- ColumnTransformer and 2-D containers --------------------------------------------------


@pytest.mark.parametrize("output", ["default", "pandas"])
def test_a_column_transformer_passing_the_image_column_through(data, output):
    X, y, X_test, _ = data
    frame = pd.DataFrame({"image": X, "photo_id": np.arange(len(X))})
    columns = ColumnTransformer([("img", "passthrough", ["image"])])
    if output == "pandas":
        columns.set_output(transform="pandas")  # a one-column frame named "img__image"
    pipe = make_pipeline(columns, tiny_ranker()).fit(frame, y)
    pred = pipe.predict(pd.DataFrame({"image": X_test, "photo_id": 0}))
    np.testing.assert_allclose(pred, tiny_ranker().fit(X, y).predict(X_test), rtol=1e-6)


def test_an_n_by_1_object_array_is_a_column_of_images(fitted, data):
    _, _, X_test, _ = data
    column = np.empty((len(X_test), 1), dtype=object)
    column[:, 0] = X_test
    np.testing.assert_array_equal(fitted.predict(column), fitted.predict(X_test))
    paths = np.array([["a.png"], ["b.png"]])  # a string column: read as paths
    with pytest.raises(ImageLoadError, match="a.png"):
        fitted.predict(paths)


def test_a_two_column_object_array_is_refused_with_what_to_do(fitted, data):
    _, _, X_test, _ = data
    two = np.empty((len(X_test), 2), dtype=object)
    two[:, 0], two[:, 1] = X_test, "x"
    with pytest.raises(ValueError, match=r"one column of images; got shape \(8, 2\)"):
        fitted.predict(two)


def test_a_one_column_frame_under_any_name_is_its_images(fitted, data):
    _, _, X_test, _ = data
    np.testing.assert_array_equal(
        fitted.predict(pd.DataFrame({"img__image": X_test})), fitted.predict(X_test)
    )
    with pytest.raises(ValueError, match="image_column='image' is not a column"):
        fitted.predict(pd.DataFrame({"a": X_test, "b": X_test}))


def test_a_column_vector_y_warns_and_fits_as_a_vector(data, monkeypatch):
    X, y, _, _ = data
    seen = capture_train(monkeypatch)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        tiny_ranker().fit(X, y[:, None])
    np.testing.assert_allclose(seen["data"].y_std, (y - y.mean()) / y.std())


# --- features out ----------------------------------------------------------------------


def test_transform_gives_exactly_what_the_score_head_reads(fitted, data):
    _, _, X_test, _ = data
    features = fitted.transform(X_test)
    d = fitted.adapter_.cfg.d_model
    assert features.shape == (len(X_test), 2 * d) and features.dtype == np.float32
    with torch.no_grad():
        scores = fitted.adapter_.score_head.mlp(torch.from_numpy(features)).squeeze(-1)
    pred = scores.numpy() * fitted.y_scale_[0] + fitted.y_mean_[0]
    np.testing.assert_allclose(pred, fitted.predict(X_test), rtol=1e-5, atol=1e-5)
    names = fitted.get_feature_names_out()
    assert list(names) == [f"clipranker{i}" for i in range(2 * d)]


def test_with_a_probe_transform_adds_the_probes_part_of_the_score(brightness_task):
    d = brightness_task
    X, y, groups = d["X_train"], d["y_train"], d["g_train"]
    ranker = tiny_ranker(max_epochs=1, probe="ridge", validation_fraction=0.15)
    ranker.fit(X, y, groups=groups)
    features = ranker.transform(d["X_test"][:8])
    width = 2 * ranker.adapter_.cfg.d_model
    # The pooled features the head's MLP reads, then the linear probe's part.
    assert features.shape == (8, width + 1)
    with torch.no_grad():
        head = ranker.adapter_.score_head.mlp(torch.from_numpy(features[:, :-1])).squeeze(-1)
    pred = (head.numpy() + features[:, -1]) * ranker.y_scale_[0] + ranker.y_mean_[0]
    np.testing.assert_allclose(pred, ranker.predict(d["X_test"][:8]), rtol=1e-5, atol=1e-5)
    assert len(ranker.get_feature_names_out()) == width + 1


@pytest.mark.parametrize("pooling, width", [("mean", 1), ("mean_std", 2)])
def test_the_score_head_pools_what_its_mlp_reads(pooling, width):
    from skrank._model.adapter import ScoreHead

    head = ScoreHead(16, pooling)
    tokens = torch.randn(3, 5, 16)
    assert head.n_features == width * 16 == head.pool(tokens).shape[1]
    with torch.no_grad():
        torch.testing.assert_close(head.mlp(head.pool(tokens)).squeeze(-1), head(tokens))


def test_transform_marks_unreadable_images_with_nan_rows(fitted, data, tmp_path):
    _, _, X_test, _ = data
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match="broken.png"):
        fitted.transform([X_test[0], str(bad)])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = fitted.transform([X_test[0], str(bad), X_test[1]], on_error="nan")
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    np.testing.assert_array_equal(out[[0, 2]], fitted.transform(X_test[:2]))


def test_a_fitted_ranker_feeds_another_model(fitted, data):
    X, y, X_test, _ = data
    fitted.set_output(transform="pandas")
    try:
        frame = fitted.transform(X)
        assert list(frame.columns) == list(fitted.get_feature_names_out())
    finally:
        fitted.set_output(transform="default")
    ridge = RidgeCV().fit(fitted.transform(X), y)
    assert ridge.predict(fitted.transform(X_test)).shape == (len(X_test),)


def test_fit_transform_is_fit_then_transform(data):
    X, y, _, _ = data
    np.testing.assert_array_equal(
        tiny_ranker().fit_transform(X, y), tiny_ranker().fit(X, y).transform(X)
    )
