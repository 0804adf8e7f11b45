"""Where a data scientist puts CLIPRanker: no instruction, ColumnTransformer, X_val,
histories across warm starts, and transform's features."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline

import skrank.ranker
import skrank.training
from skrank import CLIPRanker, ImageLoadError
from skrank.inputs import DEFAULT_INSTRUCTION
from tests.helpers import INSTRUCTION, tiny_ranker


@pytest.fixture(scope="module")
def data(brightness_task):
    d = brightness_task
    return d["X_train"][:24], d["y_train"][:24], d["X_test"][:8], d["y_test"][:8]


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return tiny_ranker(max_epochs=2).fit(X, y)


def capture_train(monkeypatch):
    """Replace the training loop by one that records its TrainData and trains nothing."""
    seen = {}

    def fake(adapter, data, cfg):
        seen["data"], seen["cfg"] = data, cfg
        entry = dict(epoch=1, loss=1.0, reg_loss=1.0, rank_loss=0.0, lr=0.0, val_score=None)
        return skrank.training.Trained([{**entry, "seconds": 0.0}], 1)

    monkeypatch.setattr(skrank.ranker, "train", fake)
    return seen


# --- no instruction -------------------------------------------------------------------


def test_no_instruction_fits_and_predicts_with_the_neutral_default(data):
    X, y, X_test, _ = data
    ranker = CLIPRanker(backbone="skrank-tiny", max_epochs=2, random_state=0).fit(X, y)
    assert ranker.instructions_ == [DEFAULT_INSTRUCTION] == ["Rank the images."]
    assert np.isfinite(ranker.predict(X_test)).all()
    same = CLIPRanker(DEFAULT_INSTRUCTION, backbone="skrank-tiny", max_epochs=2, random_state=0)
    np.testing.assert_array_equal(same.fit(X, y).predict(X_test), ranker.predict(X_test))


def test_the_first_line_offline_fails_fast_with_the_missing_weights_message(data, monkeypatch):
    from skrank.weights import WeightsUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    X, y, _, _ = data
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="not on this machine"):
        CLIPRanker().fit(X, y)
    assert time.perf_counter() - t0 < 5


def test_after_fit_rows_without_an_instruction_take_the_only_fitted_one(data):
    X, y, X_test, _ = data
    frame = pd.DataFrame({"image": X, "instruction": INSTRUCTION})
    ranker = tiny_ranker(instruction=None).fit(frame, y)
    assert ranker.instructions_ == [INSTRUCTION]
    np.testing.assert_array_equal(
        ranker.predict(X_test),
        ranker.predict(pd.DataFrame({"image": X_test, "instruction": INSTRUCTION})),
    )


def test_after_fit_on_several_instructions_a_bare_list_is_refused(data):
    X, y, X_test, _ = data
    frame = pd.DataFrame({"image": X + X, "instruction": ["A."] * len(X) + ["B."] * len(X)})
    ranker = tiny_ranker(instruction=None, max_epochs=1).fit(frame, np.r_[y, -y])
    with pytest.raises(ValueError, match="fitted on several instructions"):
        ranker.predict(X_test)


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


# --- a validation set of the user's own --------------------------------------------------


def test_x_val_rows_are_appended_validated_on_and_never_trained_on(data, monkeypatch):
    X, y, X_test, y_test = data
    seen = capture_train(monkeypatch)
    tiny_ranker(early_stopping=True, validation_fraction=0.5).fit(X, y, X_val=X_test, y_val=y_test)
    d = seen["data"]
    np.testing.assert_array_equal(d.train_idx, np.arange(len(X)))  # no split of X
    np.testing.assert_array_equal(d.val_idx, np.arange(len(X), len(X) + len(X_test)))
    # Standardised with the training rows' mean and scale, not its own.
    np.testing.assert_allclose(d.y_std[d.val_idx], (y_test - y.mean()) / y.std())
    assert seen["cfg"].early_stopping


def test_x_val_is_scored_every_epoch_and_early_stopping_keeps_the_best(data):
    X, y, X_test, y_test = data
    scored = tiny_ranker(max_epochs=3).fit(X, y, X_val=X_test, y_val=y_test)
    assert len(scored.validation_scores_) == 3 and None not in scored.validation_scores_
    assert scored.best_validation_score_ == max(scored.validation_scores_)
    assert scored.n_iter_ == 3  # only scored: no stopping without early_stopping
    stopped = tiny_ranker(max_epochs=6, early_stopping=True, n_iter_no_change=1)
    stopped.fit(X, y, X_val=X_test, y_val=y_test)
    assert stopped.n_iter_ < 6
    # The epoch kept is the best one: its validation score is the adapter's now.
    from skrank.metrics import spearman_score

    now = spearman_score(y_test, stopped.predict(X_test))
    assert now == pytest.approx(stopped.best_validation_score_, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X_val="X_test"), "X_val was given without y_val"),
        (dict(y_val="y_test"), "y_val was given without X_val"),
        (dict(X_val="X_test", y_val="short"), "X_val has 8 images but y_val has 3"),
        (dict(X_val="one", y_val="one_y"), "at least 2"),
        (dict(X_val="X_test", y_val="nan"), "y_val has 1 NaN"),
        (dict(X_val="other_instruction", y_val="y_test"), "X_val has instruction"),
    ],
)
def test_bad_validation_sets_are_refused_before_any_training(data, monkeypatch, kwargs, match):
    X, y, X_test, y_test = data
    seen = capture_train(monkeypatch)
    values = {
        "X_test": X_test,
        "y_test": y_test,
        "short": y_test[:3],
        "one": X_test[:1],
        "one_y": y_test[:1],
        "nan": np.r_[np.nan, y_test[1:]],
        "other_instruction": pd.DataFrame({"image": X_test, "instruction": "Other."}),
    }
    with pytest.raises(ValueError, match=match):
        tiny_ranker().fit(X, y, **{k: values[v] for k, v in kwargs.items()})
    assert not seen


# --- histories as MLPRegressor keeps them ------------------------------------------------


def test_history_continues_across_warm_start_fits(data):
    X, y, _, _ = data
    ranker = tiny_ranker(max_epochs=2, warm_start=True).fit(X, y)
    first = [dict(h) for h in ranker.history_]
    ranker.fit(X, y)
    assert [h["epoch"] for h in ranker.history_] == [1, 2, 3, 4]
    assert ranker.history_[:2] == first  # the first fit's record is kept as it was
    assert ranker.n_iter_ == 4
    assert ranker.loss_curve_ == [h["loss"] for h in ranker.history_]
    assert ranker.validation_scores_ is None and ranker.best_validation_score_ is None
    ranker.set_params(warm_start=False).fit(X, y)  # a cold fit starts the record again
    assert [h["epoch"] for h in ranker.history_] == [1, 2] and ranker.n_iter_ == 2


def test_history_attributes_need_a_fit():
    from sklearn.exceptions import NotFittedError

    ranker = tiny_ranker()
    for name in ("loss_curve_", "validation_scores_", "best_validation_score_"):
        with pytest.raises(NotFittedError):
            getattr(ranker, name)
        assert not hasattr(ranker, name)


def test_history_is_capped_at_what_a_model_file_holds():
    from skrank.fitting import continued_history
    from skrank.persistence._schema import MAX_HISTORY

    entry = dict(loss=1.0, reg_loss=1.0, rank_loss=0.0, lr=0.0, val_score=None, seconds=0.0)
    previous = [dict(entry, epoch=e) for e in range(1, MAX_HISTORY + 1)]
    out = continued_history(previous, [dict(entry, epoch=1), dict(entry, epoch=2)])
    assert len(out) == MAX_HISTORY
    assert out[-1]["epoch"] == MAX_HISTORY + 2 and out[0]["epoch"] == 3


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
    from skrank.adapter import ScoreHead

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


def test_on_error_reaches_transform_through_a_pipeline_with_routing(data):
    import sklearn
    from sklearn.preprocessing import FunctionTransformer

    X, y, X_test, _ = data
    bad = X_test[:2] + [np.zeros((4, 4, 2), np.uint8)]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(FunctionTransformer(list), tiny_ranker()).fit(X, y)
        with pytest.warns(UserWarning, match="could not be read"):
            out = pipe.transform(bad, on_error="nan")
    assert np.isnan(out[2]).all() and np.isfinite(out[:2]).all()


def test_a_transformed_target_regressor_scores_r2_unless_told_spearman(data):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.metrics import r2_score

    from skrank.metrics import spearman_score, spearman_scorer

    X, y, X_test, y_test = data
    model = TransformedTargetRegressor(tiny_ranker(), func=np.log1p, inverse_func=np.expm1)
    model.fit(X, y - y.min())
    pred = model.predict(X_test)
    assert model.score(X_test, y_test - y.min()) == pytest.approx(r2_score(y_test - y.min(), pred))
    assert spearman_scorer(model, X_test, y_test) == pytest.approx(spearman_score(y_test, pred))
