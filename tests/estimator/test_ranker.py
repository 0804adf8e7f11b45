"""CLIPRanker end to end with skrank-tiny: learning, reproducibility, the API."""

import math

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skrank import CLIPRanker
from skrank.metrics import spearman_score
from tests.helpers import INSTRUCTION as INSTR
from tests.helpers import tiny_ranker


def quick(**kw):
    return tiny_ranker(**{"max_epochs": 3, **kw})


def test_learns_brightness_with_default_settings(brightness_task):
    """Acceptance: defaults (only backbone and instruction given) order held-out photos."""
    d = brightness_task
    ranker = CLIPRanker(INSTR, backbone="skrank-tiny", random_state=0)
    ranker.fit(d["X_train"], d["y_train"])
    pred = ranker.predict(d["X_test"])
    within = spearman_score(d["y_test"], pred, groups=d["g_test"])
    pooled = spearman_score(d["y_test"], pred)
    print(f"held-out Spearman within photo {within:.3f}, pooled {pooled:.3f}")
    assert within >= 0.9
    assert pooled > 0.3  # bounded by how bright the photos are to begin with
    assert ranker.n_iter_ == len(ranker.history_) >= 30
    assert ranker.lr_ == 1e-3  # lr="auto" for the shallow default at d_model=64
    # Predictions are in the units of y, not standardised.
    assert abs(np.mean(pred) - np.mean(d["y_test"])) < np.std(d["y_test"])


def test_same_random_state_gives_identical_predictions(brightness_task):
    d = brightness_task
    a = quick().fit(d["X_train"], d["y_train"]).predict(d["X_test"])
    b = quick().fit(d["X_train"], d["y_train"]).predict(d["X_test"])
    c = quick(random_state=1).fit(d["X_train"], d["y_train"]).predict(d["X_test"])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fitted_attributes_and_history(tiny_fitted):
    r = tiny_fitted
    assert r.instructions_ == [INSTR]
    assert r.y_mean_.shape == r.y_scale_.shape == (1,)
    assert r.n_iter_ == 4 and len(r.history_) == 4
    for h in r.history_:
        assert {"epoch", "loss", "reg_loss", "rank_loss", "lr", "val_score", "seconds"} <= set(h)
        assert np.isfinite(h["loss"])
    assert r.backbone_info_["name"] == "skrank-tiny"


def test_memory_cache_encodes_each_image_and_its_flip_once(tiny_fitted, brightness_task):
    n = len(brightness_task["X_train"])
    assert tiny_fitted.cache_info_["images_encoded"] == 2 * n


def test_predict_score_compare(tiny_fitted, brightness_task):
    d = brightness_task
    pred = tiny_fitted.predict(d["X_test"])
    assert pred.shape == (len(d["X_test"]),) and np.isfinite(pred).all()
    s = tiny_fitted.score(d["X_test"], d["y_test"])
    assert s == pytest.approx(spearman_score(d["y_test"], pred))
    p = tiny_fitted.compare(d["X_test"][:5], d["X_test"][5:10])
    assert p.shape == (5,) and ((p >= 0) & (p <= 1)).all()


def test_predict_is_independent_of_batching(tiny_fitted, brightness_task):
    X = brightness_task["X_test"][:10]
    whole = tiny_fitted.predict(X)
    one_by_one = np.concatenate([tiny_fitted.predict([x]) for x in X])
    np.testing.assert_allclose(whole, one_by_one, rtol=1e-5, atol=1e-5)


def test_input_forms_agree(tiny_fitted, brightness_task, tmp_path):
    import pandas as pd
    from PIL import Image

    arrays = brightness_task["X_test"][:4]
    paths = []
    for i, a in enumerate(arrays):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
    ref = tiny_fitted.predict(arrays)
    np.testing.assert_allclose(tiny_fitted.predict(paths), ref, rtol=1e-5)
    np.testing.assert_allclose(tiny_fitted.predict([str(p) for p in paths]), ref, rtol=1e-5)
    np.testing.assert_allclose(
        tiny_fitted.predict([Image.fromarray(a) for a in arrays]), ref, rtol=1e-5
    )
    np.testing.assert_allclose(tiny_fitted.predict(np.stack(arrays)), ref, rtol=1e-5)
    np.testing.assert_allclose(tiny_fitted.predict(pd.Series(paths)), ref, rtol=1e-5)
    frame = pd.DataFrame({"image": [str(p) for p in paths]})
    np.testing.assert_allclose(tiny_fitted.predict(frame), ref, rtol=1e-5)
    floats = [a.astype(np.float32) / 255 for a in arrays]
    np.testing.assert_allclose(tiny_fitted.predict(floats), ref, rtol=1e-4, atol=1e-4)


def test_cache_none_trains_the_same_model_as_the_memory_cache(brightness_task):
    d = brightness_task
    X, y = d["X_train"][:40], d["y_train"][:40]
    a = quick(max_epochs=2, augment=False).fit(X, y)
    b = quick(max_epochs=2, augment=False, cache=None).fit(X, y)
    # fp16 token storage is the only difference.
    np.testing.assert_allclose(a.predict(X[:8]), b.predict(X[:8]), rtol=0.05, atol=0.05)
    # cache=None re-encodes every image drawn, every epoch (balanced draws n rows per epoch).
    assert b.cache_info_["images_encoded"] == 2 * len(X)


def test_early_stopping_keeps_the_best_epoch(brightness_task):
    d = brightness_task
    r = quick(early_stopping=True, max_epochs=6, n_iter_no_change=2, validation_fraction=0.25)
    r.fit(d["X_train"], d["y_train"], groups=d["g_train"])
    scores = [h["val_score"] for h in r.history_]
    assert all(s is not None for s in scores)
    assert r.n_iter_ <= 6


def test_not_fitted():
    with pytest.raises(NotFittedError):
        quick().predict([np.zeros((8, 8, 3), np.uint8)])


def test_warm_start_continues_training(brightness_task):
    d = brightness_task
    X, y = d["X_train"][:32], d["y_train"][:32]
    r = quick(max_epochs=1, warm_start=True).fit(X, y)
    first = {k: v.clone() for k, v in r.adapter_.state_dict().items()}
    r.fit(X, y)
    changed = any(not (v == first[k]).all() for k, v in r.adapter_.state_dict().items())
    assert changed
    fresh = quick(max_epochs=1).fit(X, y)
    assert not np.allclose(fresh.predict(X[:4]), r.predict(X[:4]))


def test_auto_lr_follows_the_adapter_width_and_depth(brightness_task):
    """lr="auto" is the measured rate for the adapter's depth, log-linear in the width
    through 1e-3 at d=64 and 3e-4 at d=512 for the shallow default, and
    1e-4 · sqrt(512 / d_model) for deeper adapters; an explicit float is used as given."""
    d = brightness_task
    X, y = d["X_train"], d["y_train"]
    wide = tiny_ranker(lr="auto", d_model=128, max_epochs=1).fit(X, y)
    assert wide.lr_ == pytest.approx(1e-3 * 0.3 ** (1 / 3))  # a third of the way to 512
    assert max(h["lr"] for h in wide.history_) <= wide.lr_
    deep = tiny_ranker(lr="auto", d_model=128, n_fusion_layers=2, max_epochs=1).fit(X, y)
    assert deep.lr_ == pytest.approx(2e-4)
    post = tiny_ranker(lr="auto", d_model=128, n_post_layers=1, max_epochs=1).fit(X, y)
    assert post.lr_ == pytest.approx(2e-4)
    given = tiny_ranker(lr=3e-3, d_model=128, max_epochs=1).fit(X, y)
    assert given.lr_ == 3e-3


@pytest.mark.parametrize(
    ("d_model", "fusion", "post", "expected"),
    [
        (64, 1, 0, 1e-3),  # skrank-tiny, measured
        (512, 1, 0, 3e-4),  # ViT-B, measured
        (512, 0, 0, 3e-4),  # no fusion layer is as shallow
        (768, 1, 0, 3e-4 * 0.3 ** (math.log(1.5) / math.log(8))),  # beyond: the same line
        (32, 1, 0, 1e-3 / 0.3 ** (1 / 3)),
        (512, 2, 2, 1e-4),  # the paper's depth: skrank 0.1's rule
        (64, 2, 0, 1e-4 * math.sqrt(8)),
        (512, 1, 1, 1e-4),
    ],
)
def test_resolve_lr_auto(d_model, fusion, post, expected):
    from skrank._model.training import resolve_lr

    assert resolve_lr("auto", d_model, fusion, post) == pytest.approx(expected, rel=1e-12)
    assert resolve_lr(2e-5, d_model, fusion, post) == 2e-5


def test_cli_lr_option_takes_auto_or_a_number():
    from skrank.cli import _parser

    base = ["fit", "--csv", "x.csv", "--image-column", "f", "--target-column", "y"]
    base += ["--instruction", "Sort by age.", "--out", "m.skrank"]
    assert _parser().parse_args([*base, "--lr", "auto"]).lr == "auto"
    assert _parser().parse_args([*base, "--lr", "2e-4"]).lr == 2e-4
    with pytest.raises(SystemExit):
        _parser().parse_args([*base, "--lr", "fast"])
