"""scikit-learn's estimator checks, ported to image input.

``check_estimator`` skips nearly every data check for CLIPRanker, since they
feed a 2-D float array and the ranker takes images (see
``tests/estimator/test_sklearn.py::test_sklearn_api_checks``). The contracts those checks
guard are asserted here on small images, exactly: bit-identical where the
computation is the same, and to a stated tolerance where only the batching
differs. Names follow the sklearn check each one ports.

Not ported: ``check_fit2d_1sample`` and ``check_fit2d_1feature`` (there is no
image analogue of a one-feature 2-D array; one sample is refused, see
``test_fit_refuses_bad_inputs``).
"""

import copy
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning, NotFittedError

import skrank
from skrank._estimator.inputs import DEFAULT_INSTRUCTION
from skrank.metrics import spearman_score
from tests.helpers import INSTRUCTION, tiny_ranker

N_SOURCES = 3  # photos; each at 8 brightness levels: 24 images of 64 px
FIT = dict(max_epochs=2, batch_size=8)
METHODS = ("predict", "transform", "compare")


def make(**kw):
    return tiny_ranker(**{**FIT, **kw})


@pytest.fixture(scope="module")
def data(brightness_task):
    """24 images of 3 photos and their integer brightness level (0..7) as float64."""
    task = brightness_task["task"]
    groups = np.asarray(task.groups)
    keep = np.isin(groups, np.unique(groups)[:N_SOURCES])
    X = [im for im, k in zip(task.images, keep) if k]
    levels = np.unique(task.target[keep], return_inverse=True)[1].astype(np.int64)
    return X, levels.astype(np.float64), levels


@pytest.fixture(scope="module")
def fitted(data):
    """The reference fit; shared by tests that only read it (or copy it first)."""
    X, y, _ = data
    return make().fit(X, y)


def halves(X):
    """The pairs ``compare`` is asked about: (X[:12][i], X[12:][i])."""
    n = len(X) // 2
    return X[:n], X[n : 2 * n]


def outputs(est, X):
    a, b = halves(X)
    return {"predict": est.predict(X), "transform": est.transform(X), "compare": est.compare(a, b)}


def run_method(est, method, X, rows=None):
    """``method`` on the rows ``rows`` of ``X`` (pairs of ``halves(X)`` for compare)."""
    if method == "compare":
        a, b = halves(X)
        if rows is not None:
            a, b = [a[i] for i in rows], [b[i] for i in rows]
        return est.compare(a, b)
    if rows is not None:
        X = [X[i] for i in rows]
    return getattr(est, method)(X)


def n_rows(method, X):
    return len(halves(X)[0]) if method == "compare" else len(X)


def assert_same_model(a, b, X):
    """Bit-identical adapter weights, history (less timings) and outputs."""
    sa, sb = a.adapter_.state_dict(), b.adapter_.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert a.adapter_.training is b.adapter_.training is False
    assert a.n_iter_ == b.n_iter_
    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in r.history_] for r in (a, b)]
    assert untimed[0] == untimed[1]
    np.testing.assert_array_equal(a.y_mean_, b.y_mean_)
    np.testing.assert_array_equal(a.y_scale_, b.y_scale_)
    assert a.instructions_ == b.instructions_
    out_a, out_b = outputs(a, X), outputs(b, X)
    for method in METHODS:
        assert out_a[method].dtype == out_b[method].dtype, method
        np.testing.assert_array_equal(out_a[method], out_b[method], err_msg=method)


# ---------------------------------------------------------------------------
# Deep snapshots of an estimator's __dict__ (check_dict_unchanged)


def snapshot(value):
    """A deep, comparable copy of ``value``; a torch module becomes its full state."""
    if isinstance(value, torch.nn.Module):
        return (
            "module",
            type(value),
            id(value),
            [(name, m.training) for name, m in value.named_modules()],
            [(name, p.requires_grad) for name, p in value.named_parameters()],
            {k: v.detach().clone() for k, v in value.state_dict().items()},
        )
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def assert_same_snapshot(a, b, where="__dict__"):
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same_snapshot(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same_snapshot(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


# ---------------------------------------------------------------------------
# 1. check_fit_idempotent


def test_fit_idempotent_and_a_fitted_clone_is_the_same_model(data, fitted):
    X, y, _ = data
    est = clone(fitted)
    est.fit(X, y)
    assert_same_model(est, fitted, X)
    first_adapter = est.adapter_
    est.fit(X, y)  # the same estimator, fitted a second time
    assert est.adapter_ is not first_adapter  # a new adapter, not one trained on
    assert_same_model(est, fitted, X)
    assert est.n_iter_ == FIT["max_epochs"]


# ---------------------------------------------------------------------------
# 2. check_methods_sample_order_invariance, check_methods_subset_invariance, batching


@pytest.mark.parametrize("method", METHODS)
def test_methods_sample_order_invariance(data, fitted, method):
    X, _, _ = data
    full = run_method(fitted, method, X)
    n = n_rows(method, X)
    perm = np.random.default_rng(0).permutation(n)
    assert not np.array_equal(perm, np.arange(n))
    permuted = run_method(fitted, method, X, perm)
    assert permuted.shape == full[perm].shape
    np.testing.assert_allclose(permuted, full[perm], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_methods_subset_invariance(data, fitted, method):
    X, _, _ = data
    full = run_method(fitted, method, X)
    n = n_rows(method, X)
    for rows in ([0], [n - 1, 2], list(range(1, n, 3)), list(range(n - 1))):
        part = run_method(fitted, method, X, rows)
        assert part.shape == full[rows].shape, rows
        np.testing.assert_allclose(part, full[rows], rtol=1e-6, atol=1e-6, err_msg=str(rows))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_size", [3, 5, 64])
def test_batch_size_after_fit_changes_only_the_batching(data, fitted, method, batch_size):
    X, _, _ = data
    full = run_method(fitted, method, X)
    est = copy.deepcopy(fitted).set_params(batch_size=batch_size)
    seen = []
    est.adapter_.register_forward_hook(lambda mod, args, out: seen.append(len(args[0])))
    out = run_method(est, method, X)
    n = n_rows(method, X)
    chunks = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    # compare encodes each chunk of pairs twice: side a, then side b.
    expected = [c for c in chunks for _ in range(2)] if method == "compare" else chunks
    assert seen == expected
    assert out.dtype == full.dtype and out.shape == full.shape
    np.testing.assert_allclose(out, full, rtol=1e-5, atol=1e-5)


def test_transform_returns_pooled_float32_features(data, fitted):
    X, _, _ = data
    features = fitted.transform(X)
    assert features.dtype == np.float32
    assert features.shape == (len(X), fitted.adapter_.n_features)
    assert np.isfinite(features).all()
    assert len(np.unique(features, axis=0)) == len(X)  # one distinct row per image


# ---------------------------------------------------------------------------
# 3. check_dict_unchanged, check_estimators_overwrite_params, check_dont_overwrite_parameters


@pytest.mark.parametrize(
    "method",
    ["predict", "transform", "score", "compare", "get_feature_names_out", "pickle", "save"],
)
def test_dict_unchanged(data, fitted, method, tmp_path):
    X, y, _ = data
    calls = {
        "predict": lambda: fitted.predict(X),
        "transform": lambda: fitted.transform(X),
        "score": lambda: fitted.score(X, y),
        "compare": lambda: fitted.compare(*halves(X)),
        "get_feature_names_out": lambda: fitted.get_feature_names_out(),
        "pickle": lambda: pickle.dumps(fitted),
        "save": lambda: skrank.save(fitted, tmp_path / "m.skrank"),
    }
    adapter = fitted.adapter_
    before = snapshot(vars(fitted))
    calls[method]()
    assert fitted.adapter_ is adapter
    assert fitted.adapter_.training is False
    assert_same_snapshot(snapshot(vars(fitted)), before)


def as_frame(X, index=None):
    return pd.DataFrame({"image": X, "photo": np.arange(len(X)) // 8}, index=index)


@pytest.mark.parametrize("container", ["list", "frame"])
def test_fit_leaves_its_inputs_and_parameters_unchanged(data, fitted, container):
    X, y, _ = data
    arrays = [a.copy() for a in X]
    X_in = list(X) if container == "list" else as_frame(X, index=np.arange(100, 100 + len(X)))
    y_in = y.copy() if container == "list" else pd.Series(y, index=np.arange(100, 100 + len(X)))
    X_copy = copy.copy(X_in) if container == "list" else X_in.copy(deep=True)
    y_copy = y_in.copy()
    items = list(X_in) if container == "list" else X_in["image"].tolist()
    writeable = [a.flags.writeable for a in items]

    est = make()
    params = copy.deepcopy(est.get_params())
    params_hash = joblib.hash(est.get_params())
    public = {k: v for k, v in vars(est).items() if not k.startswith("_")}
    est.fit(X_in, y_in)

    # Parameters (check_estimators_overwrite_params, check_dont_overwrite_parameters).
    assert est.get_params() == params
    assert joblib.hash(est.get_params()) == params_hash
    for k, v in public.items():
        assert vars(est)[k] == v, k
    added = {k for k in vars(est) if not k.startswith("_")} - set(public)
    assert added and all(k.endswith("_") for k in added), added
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "feature_names_in_")

    # Inputs: same container, same objects in it, same pixels, same targets.
    if container == "list":
        assert len(X_in) == len(X_copy) and all(a is b for a, b in zip(X_in, X_copy))
        np.testing.assert_array_equal(y_in, y_copy)
        assert y_in.dtype == y_copy.dtype
    else:
        pd.testing.assert_index_equal(X_in.columns, X_copy.columns)
        pd.testing.assert_index_equal(X_in.index, X_copy.index)
        pd.testing.assert_series_equal(X_in.dtypes, X_copy.dtypes)
        pd.testing.assert_series_equal(X_in["photo"], X_copy["photo"])
        pd.testing.assert_series_equal(y_in, y_copy)
        assert all(a is b for a, b in zip(X_in["image"], items))
    for a, original, flag in zip(items, arrays, writeable):
        assert a.flags.writeable == flag
        assert a.dtype == original.dtype
        np.testing.assert_array_equal(a, original)

    # A DataFrame (image column plus an unused one) trains the same model as the list.
    assert_same_model(est, fitted, X)


# ---------------------------------------------------------------------------
# 4. check_estimators_pickle


def test_pickle_round_trip_is_exact(data, fitted):
    X, _, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same skrank version: no warning
        restored = pickle.loads(pickle.dumps(fitted))
    assert restored is not fitted and restored.adapter_ is not fitted.adapter_
    assert restored.get_params() == fitted.get_params()
    assert_same_model(restored, fitted, X)
    assert restored.get_feature_names_out().tolist() == fitted.get_feature_names_out().tolist()


def test_save_load_round_trip_is_exact(data, fitted, tmp_path):
    X, _, _ = data
    path = tmp_path / "ranker.skrank"
    skrank.save(fitted, path)
    loaded = skrank.load(path)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    assert_same_model(loaded, fitted, X)


def test_pickle_unfitted_estimator(data, fitted):
    X, y, _ = data
    est = make()
    restored = pickle.loads(pickle.dumps(est))
    assert restored.get_params() == est.get_params()
    assert vars(restored) == est.get_params()  # parameters only: nothing fitted
    with pytest.raises(NotFittedError):
        restored.predict(X[:2])
    assert_same_model(restored.fit(X, y), fitted, X)


# ---------------------------------------------------------------------------
# 5. Clear errors (check_estimators_unfitted, check_fit2d_predict1d, ...)


def _fit_cases(X, y):
    nan, inf = y.copy(), y.copy()
    nan[3] = np.nan
    inf[[2, 5]] = [np.inf, -np.inf]
    words = ["dark", "bright"] * (len(y) // 2)  # Python strings: numpy reprs np.str_ values
    one = re.escape(
        f"instruction {INSTRUCTION!r} has 1 sample(s) and 1 distinct target value(s); "
        "at least 2 of each are needed to learn a ranking"
    )
    return {
        "nan-in-y": (X, nan, ValueError, re.escape("y has 1 NaN/inf value(s), e.g. at rows [3]")),
        "inf-in-y": (
            X,
            inf,
            ValueError,
            re.escape("y has 2 NaN/inf value(s), e.g. at rows [2, 5]"),
        ),
        "empty-X": ([], np.array([]), ValueError, "^X holds no images$"),
        "one-sample": (X[:1], y[:1], ValueError, one),
        "y-None": (X, None, ValueError, "^y is required: one numeric target per image$"),
        "too-few-targets": (X, y[:-1], ValueError, f"^X has {len(X)} images but y has 23 targets$"),
        "too-many-targets": (
            X[:-1],
            y,
            ValueError,
            f"^X has 23 images but y has {len(y)} targets$",
        ),
        "2-column-y": (
            X,
            np.column_stack([y, y]),
            ValueError,
            re.escape(f"y must be 1-D; got shape ({len(y)}, 2)"),
        ),
        "string-y": (
            X,
            words,
            TypeError,
            re.escape("y must be numeric; could not convert string to float: 'dark'"),
        ),
    }


FIT_CASES = [
    "nan-in-y",
    "inf-in-y",
    "empty-X",
    "one-sample",
    "y-None",
    "too-few-targets",
    "too-many-targets",
    "2-column-y",
    "string-y",
]


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_refuses_bad_inputs(data, case):
    X, y, _ = data
    cases = _fit_cases(X, y)
    assert sorted(cases) == sorted(FIT_CASES)
    X_bad, y_bad, error, match = cases[case]
    est = make()
    with pytest.raises(error, match=match):
        est.fit(X_bad, y_bad)
    assert not hasattr(est, "adapter_")  # a failed fit fits nothing
    assert vars(est) == make().get_params()


@pytest.mark.parametrize(
    "method", ["predict", "transform", "score", "compare", "get_feature_names_out"]
)
def test_estimators_unfitted(data, method):
    X, y, _ = data
    est = make()
    calls = {
        "predict": lambda: est.predict(X),
        "transform": lambda: est.transform(X),
        "score": lambda: est.score(X, y),
        "compare": lambda: est.compare(*halves(X)),
        "get_feature_names_out": lambda: est.get_feature_names_out(),
    }
    with pytest.raises(NotFittedError, match="This CLIPRanker instance is not fitted yet"):
        calls[method]()


def test_score_on_one_image_and_methods_on_no_images_raise(data, fitted):
    X, y, _ = data
    with pytest.raises(ValueError, match="^score needs at least 2 images to rank; X has 1$"):
        fitted.score(X[:1], y[:1])
    for method in ("predict", "transform"):
        with pytest.raises(ValueError, match="^X holds no images$"):
            getattr(fitted, method)([])
    with pytest.raises(ValueError, match="^images_a holds no images$"):
        fitted.compare([], [])


def test_column_vector_y_warns_and_fits_the_same_model(data, fitted):
    X, y, _ = data
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        est = make().fit(X, y[:, None])
    assert_same_model(est, fitted, X)


# ---------------------------------------------------------------------------
# 6. check_regressors_int


def test_regressors_int(data, fitted):
    X, y, y_int = data
    assert y_int.dtype == np.int64 and y.dtype == np.float64
    np.testing.assert_array_equal(y_int, y)
    assert_same_model(make().fit(X, y_int), fitted, X)


# ---------------------------------------------------------------------------
# 7. check_n_features_in (images have no features in), feature names, set_output


def test_no_n_features_in_after_fit(fitted):
    # Images are not columns: the ranker does not pretend to count features in.
    assert not hasattr(fitted, "n_features_in_")
    assert not hasattr(fitted, "feature_names_in_")


def test_get_feature_names_out_names_the_transform_columns(data, fitted):
    X, _, _ = data
    names = fitted.get_feature_names_out()
    k = fitted.transform(X).shape[1]
    assert isinstance(names, np.ndarray) and names.dtype == object
    assert names.tolist() == [f"clipranker{i}" for i in range(k)]


def test_set_output_pandas_gives_a_dataframe_of_the_named_features(data, fitted):
    X, _, _ = data
    plain = fitted.transform(X)
    est = copy.deepcopy(fitted).set_output(transform="pandas")
    out = est.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert out.columns.tolist() == fitted.get_feature_names_out().tolist()
    pd.testing.assert_index_equal(out.index, pd.RangeIndex(len(X)))
    np.testing.assert_array_equal(out.to_numpy(), plain)
    assert (out.dtypes == np.float32).all()
    index = pd.Index(np.arange(100, 100 + len(X)))
    framed = est.transform(as_frame(X, index=index))
    pd.testing.assert_index_equal(framed.index, index)  # a DataFrame's index is kept
    np.testing.assert_array_equal(framed.to_numpy(), plain)


# ---------------------------------------------------------------------------
# 8. fit_transform, sample_weight (check_sample_weight_equivalence analogue)


def test_fit_transform_equals_fit_then_transform(data, fitted):
    X, y, _ = data
    out = make().fit_transform(X, y)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, fitted.transform(X))


def test_sample_weight_of_ones_is_no_weight(data, fitted):
    X, y, _ = data
    est = make().fit(X, y, sample_weight=np.ones(len(X)))
    assert_same_model(est, fitted, X)


def test_score_drops_zero_weight_rows(data, fitted):
    """spearman_score's documented rule: rows of weight 0 are left out."""
    X, y, _ = data
    weight = 1.0 + np.arange(len(X)) % 3
    for j in (0, 7, len(X) - 1):
        w = weight.copy()
        w[j] = 0.0
        keep = np.flatnonzero(w > 0)
        with_zero = fitted.score(X, y, sample_weight=w)
        dropped = fitted.score([X[i] for i in keep], y[keep], sample_weight=w[keep])
        assert np.isfinite(with_zero)
        assert with_zero == dropped, j


# ---------------------------------------------------------------------------
# instruction=None


def test_no_instruction_fits_on_the_default_instruction(data):
    X, y, _ = data
    est = make(instruction=None, max_epochs=1)
    assert est.instruction is None
    est.fit(X, y)
    assert est.instruction is None  # the parameter is not overwritten
    assert est.instructions_ == [DEFAULT_INSTRUCTION] == ["Rank the images."]
    pred = est.predict(X)
    assert pred.shape == (len(X),) and np.isfinite(pred).all()
    assert est.score(X, y) == pytest.approx(spearman_score(y, pred))
