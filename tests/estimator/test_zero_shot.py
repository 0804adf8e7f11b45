"""CLIPZeroShotRanker: the instruction's (or the prompts') similarity, untrained, as an
estimator that searches, cross-validates, pickles and refuses what it cannot use."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from skrank import CLIPZeroShotRanker, ImageLoadError, InvalidParameterError
from skrank.metrics import get_scorer, spearman_score
from tests.helpers import failed_api_checks

pytestmark = pytest.mark.usefixtures("one_thread")

# Flat backgrounds of each colour the scenes' captions name, dark to light by grey.
GREYS = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 256, 32)]  # 8 images
DARK_LIGHT = ("a white background", "a black background")


def model(**kw):
    params = dict(backbone="skrank-tiny", pretrained="synthetic", device="cpu")
    return CLIPZeroShotRanker(**{**params, **kw})


@pytest.fixture(scope="module")
def fitted():
    return model(prompts=DARK_LIGHT).fit()


def test_it_ranks_by_what_the_pretraining_captions_taught(fitted):
    # "white" against "black" background: the greys in order of brightness.
    assert spearman_score(np.arange(8), fitted.predict(GREYS)) > 0.9
    assert fitted.prompts_ == DARK_LIGHT
    assert fitted.direction_.dtype == np.float32 and fitted.direction_.shape == (64,)


def test_reversed_prompts_reverse_the_order_and_one_prompt_is_a_cosine(fitted):
    reverse = model(prompts=DARK_LIGHT[::-1]).fit()
    np.testing.assert_allclose(reverse.predict(GREYS), -fitted.predict(GREYS), atol=1e-6)
    one = model(prompts=DARK_LIGHT[0]).fit().predict(GREYS)
    assert np.all(np.abs(one) <= 1 + 1e-6)
    same = model(instruction=DARK_LIGHT[0]).fit().predict(GREYS)
    np.testing.assert_array_equal(one, same)  # instruction alone: the same single prompt


def test_fit_reads_no_image_and_no_target(fitted):
    other = model(prompts=DARK_LIGHT).fit(["no/such/file.png"], ["not a number"])
    np.testing.assert_array_equal(other.direction_, fitted.direction_)
    np.testing.assert_array_equal(other.predict(GREYS), fitted.predict(GREYS))


def test_methods_are_invariant_to_order_and_subsets(fitted):
    full = fitted.predict(GREYS)
    order = np.random.default_rng(0).permutation(8)
    np.testing.assert_allclose(fitted.predict([GREYS[i] for i in order]), full[order], rtol=1e-6)
    np.testing.assert_allclose(fitted.predict(GREYS[2:5]), full[2:5], rtol=1e-6)
    frame = pd.DataFrame({"image": GREYS})
    np.testing.assert_array_equal(fitted.predict(frame), full)


def test_score_is_spearman_and_search_and_cross_validation_work():
    y = np.arange(8.0)
    spearman = get_scorer("spearman")
    scores = cross_val_score(model(prompts=DARK_LIGHT), GREYS, y, cv=KFold(2), scoring=spearman)
    assert scores.min() > 0.9
    grid = {"prompts": [DARK_LIGHT, DARK_LIGHT[::-1]]}
    search = GridSearchCV(model(), grid, cv=KFold(2), scoring=spearman).fit(GREYS, y)
    assert search.best_params_ == {"prompts": DARK_LIGHT}
    assert model(prompts=DARK_LIGHT).fit().score(GREYS, y) == pytest.approx(
        spearman_score(y, model(prompts=DARK_LIGHT).fit().predict(GREYS))
    )


def test_clone_pickle_and_predict_change_nothing(fitted):
    before = pickle.dumps(fitted.__dict__)
    fitted.predict(GREYS)
    assert pickle.dumps(fitted.__dict__) == before
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(GREYS), fitted.predict(GREYS))
    assert not hasattr(clone(fitted), "direction_")


def test_skrank_save_says_what_to_do_instead(fitted, tmp_path):
    from skrank import save

    with pytest.raises(TypeError, match=r"trains nothing to save.*\(\*\*params\)"):
        save(fitted, tmp_path / "zero.skrank")
    assert not (tmp_path / "zero.skrank").exists()


def test_predict_before_fit_and_bad_parameters_are_refused():
    with pytest.raises(NotFittedError):
        model().predict(GREYS)
    for prompts in ("", ("a", "b", "c"), ("a", ""), 3, ["a", None]):
        with pytest.raises(InvalidParameterError, match="prompts="):
            model(prompts=prompts).fit()
    with pytest.raises(InvalidParameterError, match="batch_size="):
        model(batch_size=0).fit()
    with pytest.raises(InvalidParameterError, match="instruction="):
        model(instruction="  ").fit()


def test_unreadable_images_are_named_and_another_backbone_is_refused(fitted, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageLoadError, match="bad.png"):
        fitted.predict([GREYS[0], str(bad)])
    moved = clone(fitted).set_params(pretrained=None)
    moved.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    with pytest.raises(ValueError, match="synthetic|random"):
        moved.predict(GREYS)


# The generic check that scores a 2-D float array (not images); fit reads no X, so the
# checks of fit alone pass. Its contract is asserted on images above.
EXPECTED_FAILED_CHECKS = {"check_fit_score_takes_y"}


def test_sklearn_api_checks():
    failed = failed_api_checks(model(prompts=DARK_LIGHT))
    assert set(failed) == EXPECTED_FAILED_CHECKS, failed
    for name, text in failed.items():
        assert "single image" in text or "array of images" in text, (name, text)
