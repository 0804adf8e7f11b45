"""Issue 29: seeded fits in threads, fit and save agreeing on bounds, a float64
default dtype, configurations that cannot train the score head."""

import threading

import numpy as np
import pytest
import torch

from skrank import CLIPRanker

FAST = dict(backbone="skrank-tiny", lr=1e-3, max_epochs=2, batch_size=16, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(brightness_task):
    d = brightness_task
    return d["task"].instruction, d["X_train"][:48], d["y_train"][:48], d["X_test"][:16]


def _ranker(instruction, **params):
    return CLIPRanker(instruction, **{**FAST, "random_state": 0, **params})


# ------------------------------------------------------------ 1. seeds in threads

# n_post_layers=1: post-LN layers, with dropout 0.1 on attention weights and activations.
CONFIGS = [{}, {"n_post_layers": 1}]


def _in_two_threads(fit_predict) -> list:
    """``fit_predict()`` in two threads that start together (a barrier), so they overlap."""
    barrier = threading.Barrier(2)
    out, errors = [None, None], []

    def run(i):
        try:
            barrier.wait()
            out[i] = fit_predict()
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


@pytest.mark.parametrize("params", CONFIGS, ids=["default", "dropout"])
def test_seeded_fits_in_threads_equal_the_fit_alone(data, params):
    instruction, X, y, X_test = data

    def fit_predict():
        return _ranker(instruction, **params).fit(X, y).predict(X_test)

    alone = fit_predict()
    for _ in range(3):
        for got in _in_two_threads(fit_predict):
            np.testing.assert_array_equal(got, alone)


def test_a_fit_leaves_torch_global_generator_alone(data):
    instruction, X, y, _ = data
    before = torch.get_rng_state()
    _ranker(instruction, n_post_layers=1).fit(X, y)
    assert torch.equal(torch.get_rng_state(), before)


def test_grid_search_on_joblib_threads_equals_one_job(data):
    import joblib
    from sklearn.model_selection import GridSearchCV, KFold

    instruction, X, y, _ = data
    grid = {"n_post_layers": [0, 1]}

    def scores(n_jobs):
        search = GridSearchCV(_ranker(instruction), grid, cv=KFold(2), n_jobs=n_jobs, refit=False)
        return [search.fit(X, y).cv_results_[f"split{k}_test_score"] for k in range(2)]

    serial = scores(1)
    with joblib.parallel_backend("threading", n_jobs=2):
        threaded = scores(2)
    np.testing.assert_array_equal(threaded, serial)


def test_a_dask_worker_with_two_threads_equals_the_fit_alone(data):
    distributed = pytest.importorskip("distributed")
    instruction, X, y, X_test = data
    params = {"n_post_layers": 1}
    alone = _ranker(instruction, **params).fit(X, y).predict(X_test)

    def fit_predict(_):
        return _ranker(instruction, **params).fit(X, y).predict(X_test)

    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        futures = client.map(fit_predict, range(4), pure=False)
        for got in client.gather(futures):
            np.testing.assert_array_equal(got, alone)


# ------------------------------- 4. fit refuses up front what save could not write


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a fit gets as far as preparing its training (encoding images)."""
    import skrank._estimator.fitting

    def refuse(*args, **kwargs):
        raise AssertionError("fit went on to prepare training")

    monkeypatch.setattr(skrank._estimator.fitting, "prepare", refuse)


TOO_BIG = {
    "n_prompt_tokens": {"n_prompt_tokens": 1025},
    "n_heads": {"n_heads": 512, "d_model": 512},
    "long_instruction": {"instruction": "Sort the images by brightness. " * 170},
    "lone_surrogate": {"instruction": "Sort by \ud800 brightness."},
    "max_epochs": {"max_epochs": 10**6},
    "n_relation_tokens": {"n_relation_tokens": 1025},
    "n_post_layers": {"n_post_layers": 33},
}


@pytest.mark.parametrize("params", TOO_BIG.values(), ids=list(TOO_BIG))
def test_fit_refuses_what_save_could_not_write_before_training(data, no_training, params):
    import time

    name = next(iter(params))

    from skrank import InvalidParameterError

    instruction, X, y, _ = data
    params = {"instruction": instruction, **params}
    ranker = _ranker(params.pop("instruction"), **params)
    start = time.perf_counter()
    with pytest.raises(InvalidParameterError) as info:
        ranker.fit(X, y)
    assert time.perf_counter() - start < 30
    assert f"{name}=" in str(info.value)
    assert not hasattr(ranker, "adapter_")


@pytest.mark.parametrize(
    "text", ["Sort the images by brightness. " * 170, "Sort by \ud800 brightness."], ids=str.isascii
)
def test_fit_refuses_an_unstorable_instruction_of_x_before_training(data, no_training, text):
    import pandas as pd

    instruction, X, y, _ = data
    texts = pd.Series([instruction, text] * (len(X) // 2), dtype=object)  # not Arrow: no UTF-8
    frame = pd.DataFrame({"image": list(X), "instruction": texts})
    ranker = _ranker(None)
    with pytest.raises(ValueError, match="instruction") as info:
        ranker.fit(frame, y)
    assert "save" in str(info.value)
    assert not hasattr(ranker, "adapter_")


def test_fit_refuses_targets_whose_scale_the_file_cannot_hold(data, no_training):
    # TargetScaling refuses a spread whose squares overflow (std > 1.3e154) before
    # check_storable's MAX_TARGET (1e250) is reached: either way, before training.
    from skrank._bounds import MAX_TARGET

    instruction, X, y, _ = data
    ranker = _ranker(instruction)
    huge = np.asarray(y, dtype=np.float64) * (MAX_TARGET * 100)  # finite in float64
    assert np.isfinite(huge).all()
    with pytest.raises(ValueError, match="rescale y"):
        ranker.fit(X, huge)
    assert not hasattr(ranker, "adapter_")


@pytest.mark.filterwarnings("ignore:instruction .* was truncated:UserWarning")
def test_values_at_the_bounds_fit_save_and_load(data, tmp_path):
    import skrank
    from skrank._bounds import MAX_HISTORY, MAX_STRING

    instruction, X, y, X_test = data
    long = (instruction + " ") * (MAX_STRING // (len(instruction) + 1))
    long = long + "x" * (MAX_STRING - len(long))
    assert len(long) == MAX_STRING
    ranker = _ranker(
        long,
        max_epochs=MAX_HISTORY,
        early_stopping=True,
        n_iter_no_change=1,
        validation_fraction=0.25,
        n_relation_tokens=1,
        n_prompt_tokens=0,
    )
    with pytest.warns(UserWarning, match="truncated"):  # CLIP reads 32 tokens of it
        ranker.fit(X, y)
    assert ranker.n_iter_ < MAX_HISTORY
    path = tmp_path / "bounds.skrank"
    skrank.save(ranker, path)
    loaded = skrank.load(path)
    assert loaded.get_params()["max_epochs"] == MAX_HISTORY
    assert loaded.instructions_ == [long]
    np.testing.assert_array_equal(loaded.predict(X_test), ranker.predict(X_test))


# --------------------------------------------- 5. torch's default dtype is float64


def _everything(instruction, X, y, X_test, path):
    import skrank

    ranker = _ranker(instruction, max_epochs=1).fit(X, y)
    skrank.save(ranker, path)
    loaded = skrank.load(path)
    return {
        "predict": ranker.predict(X_test),
        "compare": ranker.compare(X_test[:4], X_test[4:8]),
        "transform": ranker.transform(X_test),
        "loaded": loaded.predict(X_test),
    }


def test_a_float64_default_dtype_changes_nothing(data, tmp_path):
    instruction, X, y, X_test = data
    as_float32 = _everything(instruction, X, y, X_test, tmp_path / "a.skrank")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        as_float64 = _everything(instruction, X, y, X_test, tmp_path / "b.skrank")
        assert torch.get_default_dtype() == torch.float64  # the session's, left as it was
    finally:
        torch.set_default_dtype(before)
    for key, value in as_float32.items():
        assert np.asarray(as_float64[key]).dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(as_float64[key], value, err_msg=key)
    np.testing.assert_array_equal(as_float64["loaded"], as_float64["predict"])


# ------------------------------------- 6. configurations that train the head badly


def test_reg_weight_zero_warns_that_the_score_head_is_untrained(data):
    instruction, X, y, _ = data
    with pytest.warns(UserWarning, match="reg_weight=0 leaves the score head untrained"):
        _ranker(instruction, reg_weight=0.0, max_epochs=1).fit(X, y)


def _validation_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "early stopping" in str(w.message)]


def test_early_stopping_on_a_few_validation_images_warns(data):
    instruction, X, y, _ = data
    ranker = _ranker(instruction, max_epochs=1, early_stopping=True)
    with pytest.warns(UserWarning, match=r"validates on 4 image\(s\) \(X_val\)"):
        ranker.fit(X[8:], y[8:], X_val=X[:4], y_val=y[:4])


def test_early_stopping_on_few_groups_warns(data):
    instruction, X, y, _ = data
    groups = np.repeat(np.arange(4), len(X) // 4)
    ranker = _ranker(instruction, max_epochs=1, early_stopping=True, validation_fraction=0.25)
    with pytest.warns(UserWarning, match=r"in 1 group\(s\)"):
        ranker.fit(X, y, groups=groups)


def test_early_stopping_on_enough_validation_images_does_not_warn(data):
    import warnings

    instruction, X, y, _ = data
    ranker = _ranker(instruction, max_epochs=1, early_stopping=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ranker.fit(X[12:], y[12:], X_val=X[:12], y_val=y[:12])
    assert _validation_warnings(record) == []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _ranker(instruction, max_epochs=1, early_stopping=False).fit(X[8:], y[8:])
    assert _validation_warnings(record) == []
