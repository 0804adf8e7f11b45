"""CLIPRanker as a scikit-learn citizen: searches, pipelines, target transformers, clone,
tags, groups and metadata routing, sample weights, and what a search does with X_val."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    RandomizedSearchCV,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

import skrank._model.training
from skrank import CLIPRanker
from skrank.metrics import get_scorer, mae_scorer, spearman_score, spearman_scorer
from tests.helpers import INSTRUCTION as INSTR
from tests.helpers import tiny_ranker
from tests.helpers import tiny_ranker as tiny


@pytest.fixture(scope="module")
def small(brightness_task):
    d = brightness_task
    keep = np.isin(d["g_train"], np.unique(d["g_train"])[:8])
    X = [x for x, k in zip(d["X_train"], keep) if k]
    return X, d["y_train"][keep], d["g_train"][keep]


def test_grid_search_multi_metric_with_group_kfold(small):
    X, y, g = small
    search = GridSearchCV(
        tiny(),
        {"lr": [1e-3, 3e-3], "n_prompt_tokens": [0, 4]},
        cv=GroupKFold(2),
        scoring={"spearman": spearman_scorer, "mae": mae_scorer},
        refit="spearman",
    )
    search.fit(X, y, groups=g)
    assert set(search.cv_results_) >= {"mean_test_spearman", "mean_test_mae"}
    assert np.all(search.cv_results_["mean_test_mae"] <= 0)  # negated MAE
    assert search.best_estimator_.predict(X[:3]).shape == (3,)


def test_grid_search_inside_a_pipeline_with_a_column_selector(small):
    X, y, g = small
    frame = pd.DataFrame({"image": X, "photo": g})
    pipe = Pipeline(
        [
            ("select", FunctionTransformer(lambda df: df["image"].tolist(), validate=False)),
            ("rank", tiny()),
        ]
    )
    pipe.set_params(rank__lr=2e-3)
    assert pipe.get_params()["rank__lr"] == 2e-3
    search = GridSearchCV(
        pipe,
        {"rank__n_heads": [4, 8]},
        cv=GroupKFold(2),
        scoring={"spearman": spearman_scorer, "mae": mae_scorer},
        refit="spearman",
    )
    search.fit(frame, y, groups=g)
    assert search.best_estimator_.predict(frame.iloc[:4]).shape == (4,)
    short = make_pipeline(FunctionTransformer(lambda df: df["image"], validate=False), tiny())
    short.set_params(clipranker__lr=1e-3)
    assert short.fit(frame, y).predict(frame.iloc[:2]).shape == (2,)


def test_randomized_search_and_cross_validate(small):
    X, y, g = small
    rs = RandomizedSearchCV(
        tiny(),
        {"lr": [1e-3, 2e-3, 3e-3]},
        n_iter=2,
        cv=GroupKFold(2),
        scoring=spearman_scorer,
        random_state=0,
    )
    rs.fit(X, y, groups=g)
    assert np.isfinite(rs.best_score_)
    out = cross_validate(
        tiny(),
        X,
        y,
        groups=g,
        cv=GroupKFold(2),
        scoring={"spearman": get_scorer("spearman"), "mae": mae_scorer},
    )
    assert out["test_spearman"].shape == (2,)


def test_transformed_target_regressor(small):
    X, y, _ = small
    ttr = TransformedTargetRegressor(regressor=tiny(), func=np.log1p, inverse_func=np.expm1)
    ttr.fit(X, y)
    pred = ttr.predict(X[:5])
    assert pred.shape == (5,) and (pred > -1).all()


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


def test_clone_and_params_round_trip(tiny_fitted):
    c = clone(tiny_fitted)
    assert c.get_params() == tiny_fitted.get_params()
    assert not hasattr(c, "adapter_")
    with pytest.raises(NotFittedError):
        c.predict([np.zeros((8, 8, 3), np.uint8)])
    r = tiny()
    r.set_params(**r.get_params())
    assert r.get_params() == tiny().get_params()
    assert vars(CLIPRanker()) == CLIPRanker().get_params()  # __init__ stores arguments only


def test_html_repr(tiny_fitted):
    from skrank._version import DOCS_URL

    html = tiny_fitted._repr_html_()
    assert "CLIPRanker" in html and "skrank-tiny" in html
    # The "?" link goes to skrank's API page, not to scikit-learn's site.
    assert f'href="{DOCS_URL}generated/skrank.CLIPRanker.html"' in html
    assert "scikit-learn.org/" not in html  # (its CSS comment names the site)


def test_tags():
    tags = tiny().__sklearn_tags__()
    assert tags.estimator_type == "regressor"
    assert tags.input_tags.two_d_array is False


def test_preserves_dtype_tag_is_what_transform_gives(tiny_fitted):
    # The tag lists the input dtypes transform keeps, the first being what the
    # others become: transform always gives float32.
    assert tiny_fitted.__sklearn_tags__().transformer_tags.preserves_dtype == ["float32"]
    pixels = np.linspace(0, 1, 3 * 16 * 16 * 3).reshape(3, 16, 16, 3)
    for dtype in (np.float32, np.float64):
        assert tiny_fitted.transform(pixels.astype(dtype)).dtype == np.float32
    assert tiny_fitted.transform((pixels * 255).astype(np.uint8)).dtype == np.float32


def test_fit_returns_self(small):
    X, y, _ = small
    r = tiny(max_epochs=1)
    assert r.fit(X[:16], y[:16]) is r


def two_task_frame(brightness_task):
    d = brightness_task
    X, y = d["X_train"], d["y_train"]
    n = len(X)
    frame = pd.DataFrame(
        {
            "image": X + X,
            "instruction": [INSTR] * n + ["How dark is the image, in lux?"] * n,
        }
    )
    # The second task is darkness in different units: the ranker must keep both scales.
    target = np.concatenate([y, 5000.0 - 1000.0 * y])
    groups = np.concatenate([d["g_train"], d["g_train"]])
    return frame, target, groups


def test_two_instructions_in_one_model(brightness_task, monkeypatch):
    frame, target, groups = two_task_frame(brightness_task)
    seen = []
    original = skrank._model.training.epoch_batches

    def recording(*args, **kwargs):
        batches = original(*args, **kwargs)
        seen.append((args[1], batches))  # (instruction ids of the rows, batches)
        return batches

    monkeypatch.setattr(skrank._model.training, "epoch_batches", recording)
    r = tiny(None, max_epochs=3).fit(frame, target)  # the column gives the instructions
    assert sorted(r.instructions_) == sorted(set(frame["instruction"]))
    for instr, batches in seen:
        for b in batches:
            assert len(np.unique(instr[b])) == 1  # batches never mix instructions
    pred = r.predict(frame)
    n = len(frame) // 2
    assert abs(pred[n:].mean() - target[n:].mean()) < 3 * target[n:].std()
    assert pred[n:].mean() > 100 > pred[:n].mean()  # each task in its own units
    per_task = np.mean([spearman_score(target[:n], pred[:n]), spearman_score(target[n:], pred[n:])])
    assert r.score(frame, target) == pytest.approx(per_task)
    with pytest.raises(ValueError, match="not seen in fit"):
        r.predict(pd.DataFrame({"image": frame["image"][:2], "instruction": ["new task"] * 2}))


def test_pair_scope_group_never_pairs_across_groups(brightness_task, monkeypatch):
    frame, target, groups = two_task_frame(brightness_task)
    frame["photo"] = groups
    batches_seen, masks_seen = [], []
    original_batches = skrank._model.training.epoch_batches
    original_loss = skrank._model.training.ranking_loss

    def record_batches(rng, instr, y, g, *rest):
        out = original_batches(rng, instr, y, g, *rest)
        batches_seen.append(out)
        return out

    def record_loss(logits, y, mask):
        masks_seen.append(mask.clone())
        return original_loss(logits, y, mask)

    monkeypatch.setattr(skrank._model.training, "epoch_batches", record_batches)
    monkeypatch.setattr(skrank._model.training, "ranking_loss", record_loss)
    r = tiny(None, max_epochs=2, pair_scope="group", group_column="photo", batch_size=20)
    r.fit(frame, target)
    # The first call sizes the schedule; the others are the epochs, in step order.
    steps = [b for epoch in batches_seen[1:] for b in epoch]
    assert len(steps) == len(masks_seen) > 0
    n_pairs = 0
    for rows, mask in zip(steps, masks_seen):
        i, j = np.nonzero(mask.numpy())
        assert (groups[rows[i]] == groups[rows[j]]).all()
        n_pairs += len(i)
    assert n_pairs > 0


def test_string_group_labels(small):
    X, y, g = small
    labels = np.array([f"photo-{v}" for v in g], dtype=object)
    r = tiny(pair_scope="group", max_epochs=1).fit(X, y, groups=labels)
    assert r.score(X, y, groups=labels) == pytest.approx(spearman_score(y, r.predict(X), groups=g))


def test_groups_through_metadata_routing(small):
    X, y, g = small
    with sklearn.config_context(enable_metadata_routing=True):
        r = tiny(pair_scope="group").set_fit_request(groups=True).set_score_request(groups=True)
        out = cross_validate(
            r, X, y, cv=GroupKFold(2), params={"groups": g}, scoring=get_scorer("spearman")
        )
        assert out["test_score"].shape == (2,)
        fitted = tiny(pair_scope="group").set_fit_request(groups=True).fit(X, y, groups=g)
        pred = fitted.predict(X)
        assert fitted.score(X, y, groups=g) == pytest.approx(spearman_score(y, pred, groups=g))


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


# Generic checks that feed a 2-D numeric X (not images), with the reason each cannot apply.
# The contract each one guards is tested directly on images below.
EXPECTED_FAILED_CHECKS = {
    "check_fit_score_takes_y": "feeds a 2-D float array; tested in test_contract_on_images",
    "check_estimators_overwrite_params": "feeds a 2-D float array; see test_contract_on_images",
    "check_dont_overwrite_parameters": "feeds a 2-D float array; see test_contract_on_images",
    "check_estimators_fit_returns_self": "feeds a 2-D float array; see test_fit_returns_self",
    "check_readonly_memmap_input": "feeds a 2-D float array; see test_contract_on_images",
    "check_positive_only_tag_during_fit": "feeds a 2-D float array with negative values",
}


def test_sklearn_api_checks():
    import warnings

    from sklearn.utils import estimator_checks as ec

    est = tiny(max_epochs=1, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # check_estimator itself skips every data check for non-2-D inputs (the tag we set).
        results = ec.check_estimator(est, on_fail=None)
        assert [r["check_name"] for r in results] == ["check_estimator_cloneable"]
        assert all(r["status"] == "passed" for r in results)
        failed = {}
        for check in ec._yield_api_checks(est):
            name = getattr(check, "__name__", str(check))
            try:
                check(type(est).__name__, clone(est))
            except Exception as exc:  # noqa: BLE001 - collecting which checks apply
                failed[name] = exc
    assert set(failed) == set(EXPECTED_FAILED_CHECKS)
    for name, exc in failed.items():
        text = str(exc)
        # The 2-D float array sklearn feeds is refused as (a single image, not) images.
        assert any(w in text for w in ("array of images", "single image", "negative")), (name, text)


def test_contract_on_images(small, tmp_path):
    import copy

    X, y, _ = small
    est = tiny(max_epochs=1)
    before = copy.deepcopy(est.get_params())
    public_before = {k for k in vars(est) if not k.endswith("_")}
    est.fit(X[:16], y[:16])
    assert est.get_params() == before  # fit does not change parameters
    new = {k for k in vars(est) if not k.startswith("_")} - public_before
    assert all(k.endswith("_") for k in new)  # fit adds fitted attributes only
    assert isinstance(est.score(X[:16], y[:16]), float)  # score takes y
    path = tmp_path / "images.npy"
    np.save(path, np.stack(X[:16]))
    readonly = np.load(path, mmap_mode="r")  # read-only memory-mapped images
    np.testing.assert_allclose(est.predict(readonly), est.predict(X[:16]), rtol=1e-6)


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


def test_a_search_cuts_an_x_val_of_len_x_to_each_fold_and_passes_others_whole():
    """docs/scaling.md: what GridSearchCV does with fit's X_val and y_val, by length."""
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.model_selection import GridSearchCV, KFold

    seen = []

    class Recorder(RegressorMixin, BaseEstimator):
        def __init__(self, alpha=0):
            self.alpha = alpha

        def fit(self, X, y, X_val=None, y_val=None):
            seen.append((len(X), len(X_val), list(y_val)))
            self.fitted_ = True
            return self

        def predict(self, X):
            return np.zeros(len(X))

    X, y = np.arange(12.0).reshape(-1, 1), np.arange(12.0)
    for n_val in (12, 11):
        seen.clear()
        X_val, y_val = np.arange(n_val).reshape(-1, 1), np.arange(n_val) + 100
        GridSearchCV(Recorder(), {"alpha": [0]}, cv=KFold(3), refit=False).fit(
            X, y, X_val=X_val, y_val=y_val
        )
        assert len(seen) == 3
        for n_train, n_got, got in seen:
            assert n_got == (n_train if n_val == len(X) else n_val)
            assert got == (sorted(got) if n_val == len(X) else list(y_val))
