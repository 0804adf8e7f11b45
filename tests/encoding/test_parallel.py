"""Beyond one machine: the shared cache, encode and predict on a local Dask cluster."""

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

import joblib  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold  # noqa: E402

from skrank import CLIPRanker, parallel  # noqa: E402
from skrank._encoding.diskstore import content_key  # noqa: E402
from skrank.metrics import spearman_scorer  # noqa: E402

INSTR = "Sort the images by brightness."
N_FILES = 200
BATCH = 20  # divides the Dask partitions below, so predictions match bit for bit


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """200 small PNG files of graded brightness, and their mean grey level."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths, levels = [], []
    for i in range(N_FILES):
        level = rng.uniform(0.1, 0.9)
        pixels = np.clip(rng.normal(level * 255, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        levels.append(pixels.mean())
    return paths, np.array(levels)


@pytest.fixture(scope="module")
def ranker(files):
    paths, y = files
    return CLIPRanker(
        INSTR,
        backbone="skrank-tiny",
        max_epochs=1,
        batch_size=BATCH,
        random_state=0,
        device="cpu",
    ).fit(paths[:60], y[:60])


@pytest.fixture(scope="module")
def expected(files, ranker):
    """One ``ranker.predict`` call over all the files: what every other route must give."""
    return ranker.predict(files[0])


def token_files(cache_dir):
    """(plain, flipped) token file names under ``cache_dir``, temporaries excluded."""
    names = [p.name for p in cache_dir.rglob("*.npy") if not p.name.startswith(".tmp-")]
    assert not list(cache_dir.rglob(".tmp-*"))
    flips = sorted(n for n in names if n.endswith(".flip.npy"))
    plain = sorted(n for n in names if not n.endswith(".flip.npy"))
    return plain, flips


# --------------------------------------------------------------------------- grid search


def test_grid_search_on_the_cluster_matches_local_and_encodes_once(
    client, brightness_task, tmp_path
):
    d = brightness_task
    keep = np.isin(d["g_train"], np.unique(d["g_train"])[:4])
    X = [x for x, k in zip(d["X_train"], keep) if k]
    y, groups = d["y_train"][keep], d["g_train"][keep]
    cv = GroupKFold(2)

    def search(cache_dir, n_jobs):
        est = CLIPRanker(
            INSTR,
            backbone="skrank-tiny",
            max_epochs=1,
            batch_size=16,
            cache="disk",
            cache_dir=cache_dir,
            random_state=0,
            device="cpu",
        )
        grid = {"lr": [1e-3, 3e-3], "n_prompt_tokens": [0, 4]}
        gs = GridSearchCV(est, grid, cv=cv, scoring=spearman_scorer, n_jobs=n_jobs)
        return gs.fit(X, y, groups=groups)

    local = search(tmp_path / "local", n_jobs=1)
    with joblib.parallel_backend("dask"):
        remote = search(tmp_path / "cluster", n_jobs=-1)

    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    # 4 candidates x 2 folds + refit on two worker processes, yet one token file
    # per distinct image, and one mirrored twin per image that was in a training fold.
    trained = {content_key(X[i]) for train, _ in cv.split(X, y, groups) for i in train}
    plain, flips = token_files(tmp_path / "cluster")
    assert plain == sorted(f"{k}.npy" for k in {content_key(x) for x in X})
    assert flips == sorted(f"{k}.flip.npy" for k in trained)
    assert (plain, flips) == token_files(tmp_path / "local")


# --------------------------------------------------------------------------- encode


def test_encode_resumes_after_an_interruption(files, tmp_path, monkeypatch):
    paths, y = files
    paths = paths[:100] + [str(tmp_path / "missing.png")]
    original = parallel._encode_chunk
    calls = []

    def fails_on_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(parallel, "_encode_chunk", fails_on_the_third_chunk)
    kw = dict(backbone="skrank-tiny", pretrained=None, cache_dir=tmp_path, batch_size=10)
    with pytest.raises(KeyboardInterrupt):
        parallel.encode(paths, chunk_size=25, progress=False, **kw)
    plain, flips = token_files(tmp_path)
    assert len(plain) == len(flips) == 50  # two chunks of 25 made it to disk

    monkeypatch.setattr(parallel, "_encode_chunk", original)
    summary = parallel.encode(paths, chunk_size=25, progress=False, **kw)
    assert summary["images"] == 101 and summary["chunks"] == 5
    assert summary["already_cached"] == 50 and summary["encoded"] == 50
    assert summary["views_encoded"] == 100  # the image and its mirrored twin
    assert [f[0] for f in summary["failures"]] == [100]  # skipped, reported, not fatal
    plain, flips = token_files(tmp_path)
    assert len(plain) == len(flips) == 100

    # A ranker with the same backbone and cache_dir finds everything there.
    fitted = CLIPRanker(
        INSTR,
        backbone="skrank-tiny",
        max_epochs=1,
        batch_size=BATCH,
        cache="disk",
        cache_dir=tmp_path,
        random_state=0,
        device="cpu",
    ).fit(paths[:100], y[:100])
    assert fitted.cache_info_["hits"] == 100 and fitted.cache_info_["images_encoded"] == 0


def test_encode_on_the_cluster_encodes_only_what_is_missing(client, files, tmp_path):
    paths, _ = files
    kw = dict(
        backbone="skrank-tiny",
        pretrained=None,
        cache_dir=tmp_path,
        client=client,
        batch_size=16,
        with_flips=False,
        progress=False,
    )
    first = parallel.encode(paths[: N_FILES // 2], **kw)
    assert first["encoded"] == N_FILES // 2 and first["chunks"] > 2  # spread over workers
    summary = parallel.encode(paths, **kw)
    assert summary["already_cached"] == summary["encoded"] == N_FILES // 2
    assert summary["views_encoded"] == N_FILES // 2 and summary["failures"] == []
    plain, flips = token_files(tmp_path)
    assert len(plain) == N_FILES and flips == []


# --------------------------------------------------------------------------- predict


def test_predict_matches_ranker_predict(client, files, ranker, expected, monkeypatch):
    dd = pytest.importorskip("dask.dataframe")
    paths, _ = files
    index = pd.Index(np.arange(N_FILES) * 3 + 7)
    series = dd.from_pandas(pd.Series(paths, index=index), npartitions=N_FILES // 40)

    pickled = []
    getstate = CLIPRanker.__getstate__
    monkeypatch.setattr(
        CLIPRanker, "__getstate__", lambda self: pickled.append(1) or getstate(self)
    )
    lazy = parallel.predict(ranker, series, client=client)
    assert isinstance(lazy, dd.Series) and lazy.dtype == np.float64
    out = lazy.compute()
    # One task of the graph: pickled with the graph (distributed serialises it
    # twice on submission), never once per partition.
    per_graph = len(pickled)
    assert per_graph < series.npartitions
    pickled.clear()
    more = dd.from_pandas(pd.Series(paths, index=index), npartitions=N_FILES // 20)
    parallel.predict(ranker, more, client=client).compute()
    assert len(pickled) == per_graph
    assert out.index.equals(index)
    np.testing.assert_array_equal(out.to_numpy(), expected)

    monkeypatch.setattr(CLIPRanker, "__getstate__", getstate)
    in_memory = parallel.predict(ranker, pd.Series(paths, index=index), client, partition_size=30)
    assert in_memory.index.equals(index)
    np.testing.assert_array_equal(in_memory.to_numpy(), expected)
    np.testing.assert_array_equal(parallel.predict(ranker, paths).to_numpy(), expected)


def _slowly(part):
    time.sleep(0.25)
    return part


def test_predict_survives_a_lost_worker(client, files, ranker, expected):
    dd = pytest.importorskip("dask.dataframe")
    paths, _ = files
    series = dd.from_pandas(pd.Series(paths), npartitions=N_FILES // BATCH)
    series = series.map_partitions(_slowly, meta=series._meta)
    future = client.compute(parallel.predict(ranker, series, client=client))

    deadline = time.monotonic() + 30
    while not (busy := [w for w, keys in client.processing().items() if keys]):
        assert time.monotonic() < deadline, "no task started"
        time.sleep(0.05)
    victim = busy[0]
    os.kill(client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)

    out = future.result(timeout=60)
    assert victim not in client.scheduler_info()["workers"]  # it did die
    assert not out.isna().any() and len(out) == N_FILES
    np.testing.assert_array_equal(out.to_numpy(), expected)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


# ------------------------------------------------- a Dask column of arrays (issue 29)


def _arrays(n=6):
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("on_error", ["raise", "nan"])
@pytest.mark.parametrize("kind", ["series", "frame"])
def test_predict_refuses_arrays_dask_turned_into_text(ranker, on_error, kind):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    arrays = pd.Series(_arrays(), dtype=object)
    with dask.config.set({"dataframe.convert-string": True}):
        if kind == "series":
            images = dd.from_pandas(arrays, npartitions=2)
        else:
            images = dd.from_pandas(pd.DataFrame({"image": arrays}), npartitions=2)
    column = images if kind == "series" else images["image"]
    assert column.dtype != object  # what Dask does: the arrays are now their repr strings
    lazy = parallel.predict(ranker, images, on_error=on_error)
    with pytest.raises(ValueError, match="convert-string") as info:
        lazy.compute(scheduler="sync")
    assert "not a path" in str(info.value) and len(str(info.value)) < 1000


def test_predict_keeps_arrays_of_an_object_dask_column(ranker):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    arrays = _arrays()
    with dask.config.set({"dataframe.convert-string": False}):
        images = dd.from_pandas(pd.Series(arrays, dtype=object), npartitions=2)
        out = parallel.predict(ranker, images).compute(scheduler="sync")
    assert not out.isna().any()
    np.testing.assert_allclose(out.to_numpy(), ranker.predict(arrays), rtol=1e-5, atol=1e-6)


def test_a_missing_path_that_looks_like_a_list_is_still_an_unreadable_image(ranker, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    from skrank import ImageLoadError

    missing = str(tmp_path / "[2020] photo.png")
    images = dd.from_pandas(pd.Series([missing, "[1 2 3].png"]), npartitions=1)
    with pytest.raises(ImageLoadError):
        parallel.predict(ranker, images).compute(scheduler="sync")
    with pytest.warns(UserWarning):
        out = parallel.predict(ranker, images, on_error="nan").compute(scheduler="sync")
    assert out.isna().all()
