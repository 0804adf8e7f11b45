"""Issue 29: seeded fits in threads, fit and save agreeing on bounds, parameters
checked again after fit, a float64 default dtype, configurations that cannot
train the score head."""

import threading

import numpy as np
import pytest
import torch

from skrank import CLIPRanker

FAST = dict(backbone="skrank-tiny", lr=1e-3, max_epochs=2, batch_size=16, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: the same float sums in every fit, threaded or not."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


# ------------------------------------------------- 3. parameters checked after fit

AFTER_FIT = {"batch_size": 0, "device": "bogus", "num_workers": -1, "cache": "nope"}
METHODS = {
    "predict": lambda r, X, y: r.predict(X),
    "transform": lambda r, X, y: r.transform(X),
    "score": lambda r, X, y: r.score(X, y),
    "compare": lambda r, X, y: r.compare(X[:2], X[2:4]),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", AFTER_FIT)
def test_methods_after_fit_check_the_parameters_as_fit_does(
    tiny_fitted, brightness_task, name, method
):
    import copy

    from skrank import InvalidParameterError

    ranker = copy.deepcopy(tiny_fitted).set_params(**{name: AFTER_FIT[name]})
    X, y = brightness_task["X_test"][:4], brightness_task["y_test"][:4]
    with pytest.raises(InvalidParameterError, match=f"{name}=") as after:
        METHODS[method](ranker, X, y)
    with pytest.raises(InvalidParameterError) as at_fit:
        ranker.fit(X, y)
    assert str(after.value) == str(at_fit.value)


@pytest.mark.parametrize("name", AFTER_FIT)
def test_the_embedder_checks_its_parameters_after_fit(brightness_task, name):
    from skrank import CLIPEmbedder, InvalidParameterError

    X = brightness_task["X_test"][:2]
    embedder = CLIPEmbedder(backbone="skrank-tiny", device="cpu").fit(X)
    with pytest.raises(InvalidParameterError, match=f"{name}="):
        embedder.set_params(**{name: AFTER_FIT[name]}).transform(X)
