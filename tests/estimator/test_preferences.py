"""CLIPPreferenceRanker: rows are comparisons; ties and annotators' shares train as
documented; unreadable images fail as elsewhere; searches split comparisons by image."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from skrank import CLIPPreferenceRanker, ImageLoadError, InvalidParameterError
from skrank._model.preferences import MAX_PER_IMAGE, Comparisons, comparison_batches
from skrank.metrics import spearman_score
from skrank.model_selection import ComparisonKFold
from tests.helpers import failed_api_checks

GREYS = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 256, 16)]  # 16 images


def model(**kw):
    params = dict(
        backbone="skrank-tiny", lr=1e-3, max_epochs=20, batch_size=16, device="cpu",
        random_state=0, verbose=0,
    )  # fmt: skip
    params.update(kw)
    return CLIPPreferenceRanker("Sort the images by brightness.", **params)


def brighter_pairs(n=200, seed=0):
    """``n`` comparisons of random grey images; label 1 when the first is brighter."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, 16, (2, n))
    keep = i != j
    i, j = i[keep], j[keep]
    return [(GREYS[a], GREYS[b]) for a, b in zip(i, j)], (i > j).astype(float)


@pytest.fixture(scope="module")
def fitted():
    X, y = brighter_pairs()
    return model().fit(X, y), X, y


def test_it_learns_the_order_the_comparisons_imply(fitted):
    m, X, y = fitted
    scores = m.score_images(GREYS)
    assert spearman_score(np.arange(16), scores) > 0.9
    assert m.score(X, y) > 0.9
    proba = m.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The probability is the scores' Bradley–Terry model: sigmoid of their difference.
    first = np.array([scores[int(a[0, 0, 0]) // 16] for a, _ in X])
    second = np.array([scores[int(b[0, 0, 0]) // 16] for _, b in X])
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(second - first)), rtol=1e-5)
    np.testing.assert_array_equal(m.predict(X), (proba[:, 1] > 0.5).astype(float))


def test_every_image_is_encoded_once_however_many_comparisons_it_is_in(fitted):
    m, X, _ = fitted
    assert len(X) > 150 and m.cache_info_["misses"] == 16  # 16 distinct images


def test_a_dataframe_of_comparisons_and_a_list_of_pairs_fit_alike(fitted):
    m, X, y = fitted
    frame = pd.DataFrame({"left": [a for a, _ in X], "right": [b for _, b in X]})
    other = model(image_columns=("left", "right")).fit(frame, y)
    np.testing.assert_allclose(other.score_images(GREYS), m.score_images(GREYS), rtol=1e-5)


def _two_images(label, n=64, **kw):
    """Fit on one pair of images compared ``n`` times with ``label``; P(first above)."""
    X = [(GREYS[3], GREYS[12])] * n
    fit = model(max_epochs=60, rank_weight=0.0, **kw).fit(X, np.full(n, label))
    return fit.predict_proba(X[:1])[0, 1]


@pytest.mark.parametrize("label", [0.5, 0.8, 0.2])
def test_ties_and_annotator_shares_are_what_the_probability_learns(label):
    # Bradley–Terry with a soft label: the loss is least where P(a above b) = label.
    assert _two_images(label) == pytest.approx(label, abs=0.05)


def test_labels_outside_0_1_and_bad_rows_are_refused():
    X, y = brighter_pairs(20)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model().fit(X, y * 2)
    with pytest.raises(ValueError, match="is not a pair of images"):
        model().fit([GREYS[0], GREYS[1]], [1.0, 0.0])
    with pytest.raises(ValueError, match="no column 'image_a'"):
        model().fit(pd.DataFrame({"x": [1]}), [1.0])
    with pytest.raises(InvalidParameterError, match="image_columns="):
        model(image_columns=("a", "a")).fit(X, y)
    with pytest.raises(ValueError, match="leave nothing to train"):
        model(score_weight=0.0, rank_weight=0.0).fit(X, y)


def test_a_comparison_with_an_unreadable_image_fails_as_elsewhere(fitted, tmp_path):
    m, X, _ = fitted
    broken = tmp_path / "broken.png"
    broken.write_text("not a png")
    bad = [(GREYS[0], str(broken)), (GREYS[1], GREYS[2])]
    with pytest.raises(ImageLoadError, match=r"X\[0\], second image: .*not an image file"):
        m.predict_proba(bad)
    with pytest.warns(UserWarning, match="broken.png"):
        proba = m.predict_proba(bad, on_error="nan")
    assert np.isnan(proba[0]).all() and np.isfinite(proba[1]).all()
    with pytest.warns(UserWarning, match="broken.png"):
        assert np.isnan(m.predict(bad, on_error="nan")[0])
    with pytest.raises(ImageLoadError, match=r"broken.png: X\[0\], second image: "):
        model().fit(bad, [1.0, 0.0])


def test_batches_hold_few_comparisons_per_image_and_every_comparison_once():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 40, (2, 500))
    keep = a != b
    comps = Comparisons(a[keep], b[keep], np.ones(keep.sum()), np.zeros(keep.sum(), int))
    batches = comparison_batches(rng, comps, batch_size=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(keep.sum()))
    for rows in batches:
        images = np.concatenate([comps.a[rows], comps.b[rows]])
        assert len(np.unique(images)) <= 16
        assert np.bincount(images).max() <= MAX_PER_IMAGE


def test_comparison_folds_keep_test_images_out_of_training():
    names = [f"{k}.png" for k in range(30)]
    rng = np.random.default_rng(0)
    X = [(names[i], names[j]) for i, j in rng.integers(0, 30, (400, 2)) if i != j]
    for train, test in ComparisonKFold(3, random_state=0).split(X):
        seen = {n for k in train for n in X[k]}
        assert len(test) and not seen & {n for k in test for n in X[k]}


def test_it_works_in_a_grid_search_split_by_image_pickles_and_clones(fitted):
    _, X, y = fitted
    search = GridSearchCV(
        model(max_epochs=3), {"lr": [1e-3, 3e-3]}, cv=ComparisonKFold(2, random_state=0)
    )
    search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert 0 <= search.best_score_ <= 1
    scores = cross_val_score(model(max_epochs=2), X, y, cv=ComparisonKFold(2, random_state=1))
    assert len(scores) == 2
    best = search.best_estimator_
    again = pickle.loads(pickle.dumps(best))
    np.testing.assert_allclose(again.score_images(GREYS), best.score_images(GREYS), rtol=1e-6)
    assert clone(best).get_params() == best.get_params()


# --- scikit-learn's estimator checks that apply, ported to comparisons ---------------------


# Generic checks that feed a 2-D float X and regression targets: neither comparisons of
# images nor labels in [0, 1]. What each guards is asserted on comparisons below.
NOT_COMPARISONS = {
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_positive_only_tag_during_fit",
}


def test_sklearn_api_checks_that_apply():
    failed = failed_api_checks(model(max_epochs=1))
    assert set(failed) == NOT_COMPARISONS, failed
    for name, text in failed.items():
        words = ("not a pair of images", "probability that the first image", "negative")
        assert any(w in text for w in words), (name, text)


def test_fit_is_idempotent_and_methods_invariant_to_order_and_subsets(fitted):
    m, X, y = fitted
    again = clone(m).fit(X, y)
    np.testing.assert_array_equal(again.score_images(GREYS), m.score_images(GREYS))
    proba = m.predict_proba(X[:40])
    order = np.random.default_rng(1).permutation(40)
    np.testing.assert_allclose(m.predict_proba([X[k] for k in order]), proba[order], rtol=1e-6)
    np.testing.assert_allclose(m.predict_proba(X[:7]), proba[:7], rtol=1e-6)


def test_a_fit_repeats_bit_for_bit_on_several_threads():
    # The backward of x[index] with repeated indices adds with atomics across threads;
    # comparisons repeat images in a batch, so a 2-thread fit differed in the 4th digit.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X, y = brighter_pairs(120)
        first, second = (model(max_epochs=4).fit(X, y).score_images(GREYS) for _ in range(2))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(first, second)


def test_predicting_changes_nothing_and_fit_leaves_its_inputs_alone(fitted):
    m, X, y = fitted
    before = {k: v for k, v in vars(m).items() if k != "adapter_"}
    state = {k: v.clone() for k, v in m.adapter_.state_dict().items()}
    m.predict_proba(X[:5])
    m.score_images(GREYS[:3])
    assert {k: v for k, v in vars(m).items() if k != "adapter_"}.keys() == before.keys()
    for k, v in m.adapter_.state_dict().items():
        assert np.array_equal(v.numpy(), state[k].numpy()), k
    X_copy, y_copy = [(a.copy(), b.copy()) for a, b in X[:20]], y[:20].copy()
    model(max_epochs=1).fit(X[:20], y[:20])
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(X[:20], X_copy))
    np.testing.assert_array_equal(y[:20], y_copy)


def test_unfitted_methods_raise_not_fitted():
    from sklearn.exceptions import NotFittedError

    for method, arg in [("predict_proba", [(GREYS[0], GREYS[1])]), ("score_images", GREYS[:2])]:
        with pytest.raises(NotFittedError):
            getattr(model(), method)(arg)
