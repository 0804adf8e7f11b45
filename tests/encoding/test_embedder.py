"""CLIPEmbedder: frozen CLIP image embeddings as a scikit-learn transformer, cached."""

import copy
import pickle
import time
import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline

import skrank._estimator.embedder
from skrank import CLIPEmbedder, ImageLoadError, InvalidParameterError
from skrank._encoding.backbone import load_backbone
from skrank._encoding.diskstore import DiskStore, content_key
from skrank._encoding.images import Preprocessor, load_image
from tests import helpers

N = 10


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def empty_memory_cache():
    """Every test starts (and leaves) the process-wide embedding cache empty."""
    skrank._estimator.embedder.MEMORY_CACHE.clear()
    yield
    skrank._estimator.embedder.MEMORY_CACHE.clear()


textured = partial(helpers.textured, size=32)  # this module's images: 32 pixels


@pytest.fixture(scope="module")
def images():
    return [textured(level, i) for i, level in enumerate(np.linspace(20, 235, N))]


@pytest.fixture(scope="module")
def y():
    return np.linspace(0.0, 1.0, N)


@pytest.fixture(scope="module")
def files(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, img in enumerate(images):
        path = folder / f"img{i}.png"
        Image.fromarray(img).save(path)
        paths.append(str(path))
    return paths


def tiny(**kw):
    return CLIPEmbedder("skrank-tiny", None, device="cpu", **kw)


def reference(items):
    """What the frozen tower gives on the standard preprocessing, one batch."""
    bb = load_backbone("skrank-tiny", None, "cpu")
    pre = Preprocessor.from_info(bb.info)
    pixels = torch.stack([pre(load_image(item)) for item in items])
    return bb.image_embeddings(pixels).numpy()


# --------------------------------------------------------------------------- the transformer


def test_shape_dtype_and_feature_names(images):
    embedder = tiny().fit()
    out = embedder.transform(images)
    assert out.shape == (N, 64) and out.dtype == np.float32
    assert embedder.embed_dim_ == embedder.n_features_out_ == 64
    assert embedder.backbone_info_ == load_backbone("skrank-tiny", None).info
    names = embedder.get_feature_names_out()
    assert names.tolist() == [f"clipembedder{i}" for i in range(64)]


def test_equals_the_backbones_image_embeddings(images, files):
    expected = reference(images)
    for cache in ("memory", None):
        np.testing.assert_allclose(tiny(cache=cache).fit().transform(images), expected, atol=1e-5)
    np.testing.assert_allclose(tiny(cache=None).fit().transform(files), expected, atol=1e-5)


def test_normalize_gives_unit_norms(images):
    raw = tiny().fit().transform(images)
    unit = tiny(normalize=True).fit().transform(images)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)


def test_batch_size_one_is_fine(images, embeds):
    out = tiny(batch_size=1, cache=None).fit().transform(images[:3])
    assert embeds == [1, 1, 1]
    np.testing.assert_allclose(out, reference(images[:3]), atol=1e-5)


def test_sklearn_tags():
    tags = tiny().__sklearn_tags__()
    assert tags.input_tags.two_d_array is False and tags.input_tags.string is True
    assert tags.requires_fit is True and tags.transformer_tags is not None


def test_preserves_dtype_tag_is_what_transform_gives():
    # The tag lists the input dtypes transform keeps, the first being what the
    # others become: transform always gives float32.
    embedder = tiny(cache=None).fit()
    assert embedder.__sklearn_tags__().transformer_tags.preserves_dtype == ["float32"]
    pixels = np.linspace(0, 1, 3 * 16 * 16 * 3).reshape(3, 16, 16, 3)
    for dtype in (np.float32, np.float64):
        assert embedder.transform(pixels.astype(dtype)).dtype == np.float32
    assert embedder.transform((pixels * 255).astype(np.uint8)).dtype == np.float32


def test_html_repr_links_to_the_api_page():
    from skrank._version import DOCS_URL

    html = tiny()._repr_html_()
    assert f'href="{DOCS_URL}generated/skrank.CLIPEmbedder.html"' in html
    assert "scikit-learn.org/" not in html  # (its CSS comment names the site)


# --------------------------------------------------------------------------- caches


def test_memory_cache_serves_repeats_and_clones(images, embeds):
    embedder = tiny(batch_size=4).fit()
    first = embedder.transform(images)
    assert sum(embeds) == N
    again = embedder.transform(images)
    twin = clone(embedder).fit().transform(images[::-1])  # a clone (a CV fold) shares it
    assert sum(embeds) == N, "the second transform and the clone computed nothing"
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(twin, first[::-1])
    assert len(skrank._estimator.embedder.MEMORY_CACHE) == N
    # Same content under another container is the same entry; new content is computed.
    tiny().fit().transform([images[0].copy(), textured(7, 99)])
    assert sum(embeds) == N + 1


def test_memory_cache_is_byte_bounded():
    lru = skrank._estimator.embedder._EmbeddingLRU(
        3 * (256 + skrank._estimator.embedder._ENTRY_OVERHEAD)
    )
    for k in range(5):
        lru.put(k, np.full(64, k, np.float32))  # 256 bytes each
    assert len(lru) == 3 and lru.get(0) is None and lru.get(4)[0] == 4
    assert lru.nbytes <= lru.max_bytes
    lru.get(2)  # most recently used now: 3 goes first
    lru.put(5, np.zeros(64, np.float32))
    assert lru.get(3) is None and lru.get(2) is not None
    assert not lru.get(2).flags.writeable


def test_cache_none_recomputes(images, embeds):
    embedder = tiny(cache=None).fit()
    np.testing.assert_array_equal(embedder.transform(images), embedder.transform(images))
    assert sum(embeds) == 2 * N
    assert len(skrank._estimator.embedder.MEMORY_CACHE) == 0


def test_disk_cache_hits_after_the_first_call(files, tmp_path, embeds):
    embedder = tiny(cache="disk", cache_dir=tmp_path, batch_size=4).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound cache warns about nothing
        first = embedder.transform(files)
        assert sum(embeds) == N
        again = clone(embedder).fit().transform(files)
    assert sum(embeds) == N, "every embedding came from the disk cache"
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(first, tiny(cache=None).fit().transform(files), atol=1e-5)
    assert not (tmp_path / "tokens").exists()
    store = DiskStore(load_backbone("skrank-tiny", None), tmp_path, kind="embeddings")
    assert store.root.parent == tmp_path / "embeddings"
    entries = sorted(store.root.glob("*/*.npy"))
    assert len(entries) == N and all(p.stat().st_size == store.entry_bytes for p in entries)
    # Each entry is a plain .npy of the exact float32 vector (plus the verified trailer).
    entry = store.path(content_key(files[3]), False)
    np.testing.assert_array_equal(np.load(entry), first[3])
    assert len(skrank._estimator.embedder.MEMORY_CACHE) == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:],
        lambda data: b"",
    ],
    ids=["truncated", "one_flipped_bit", "empty"],
)
def test_a_damaged_disk_entry_is_recomputed_with_one_warning(files, tmp_path, embeds, damage):
    embedder = tiny(cache="disk", cache_dir=tmp_path).fit()
    first = embedder.transform(files)
    store = DiskStore(load_backbone("skrank-tiny", None), tmp_path, kind="embeddings")
    entry = store.path(content_key(files[2]), False)
    entry.write_bytes(damage(entry.read_bytes()))
    embeds.clear()
    with pytest.warns(UserWarning) as record:
        out = embedder.transform(files)
    messages = [str(w.message) for w in record if "cache" in str(w.message)]
    assert len(messages) == 1 and "1 embedding cache entry" in messages[0], messages
    assert embeds == [1], "only the damaged entry was computed again"
    np.testing.assert_allclose(out, first, rtol=1e-6, atol=1e-6)
    vector, problem = store.load(content_key(files[2]), False)
    assert problem is None and vector is not None, "the entry was replaced"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.transform(files), out)


# --------------------------------------------------------------------------- inputs


def test_every_container_of_images(images, files, y):
    embedder = tiny().fit()
    expected = embedder.transform(images)
    column = np.empty((N, 1), dtype=object)
    for i, img in enumerate(images):
        column[i, 0] = img
    inputs = {
        "tuple": tuple(images),
        "4-D array": np.stack(images),
        "Series": pd.Series(images),
        "(n, 1) object array": column,
        "DataFrame": pd.DataFrame({"target": y, "image": pd.Series(images)}),
        "one-column frame": pd.DataFrame({"pixels": pd.Series(images)}),
        "PIL images": [Image.fromarray(img) for img in images],
    }
    for what, X in inputs.items():
        np.testing.assert_array_equal(embedder.transform(X), expected, err_msg=what)
    frame = pd.DataFrame({"file": files, "target": y})
    out = tiny(image_column="file").fit().transform(frame)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    with pytest.raises(ValueError, match="image_column='image' is not a column"):
        embedder.transform(frame)


def test_a_linear_probe_pipeline(images, y):
    probe = make_pipeline(CLIPEmbedder("skrank-tiny", None, device="cpu"), RidgeCV())
    pred = probe.fit(images, y).predict(images[:3])
    assert pred.shape == (3,) and np.isfinite(pred).all()
    scores = cross_val_score(probe, images, y, cv=KFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_pandas_output(images):
    out = tiny().fit().set_output(transform="pandas").transform(pd.Series(images))
    assert list(out.columns[:2]) == ["clipembedder0", "clipembedder1"] and out.shape == (N, 64)


# --------------------------------------------------------------------------- estimator contract


def test_pickle_round_trip(images):
    embedder = tiny().fit()
    blob = pickle.dumps(embedder)
    assert len(blob) < 10_000, "no backbone inside"
    restored = pickle.loads(blob)
    skrank._estimator.embedder.MEMORY_CACHE.clear()
    np.testing.assert_array_equal(restored.transform(images), embedder.transform(images))
    assert clone(embedder).get_params() == embedder.get_params()


def test_transform_before_fit_raises_not_fitted(images):
    with pytest.raises(NotFittedError):
        tiny().transform(images)
    with pytest.raises(NotFittedError):
        tiny().get_feature_names_out()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_size", 0),
        ("batch_size", 2.0),
        ("normalize", "yes"),
        ("normalize", 1),
        ("cache", "Memory"),
        ("cache_dir", 3),
        ("precision", "fp16"),
        ("device", "tpu"),
        ("num_workers", -1),
        ("backbone", ""),
        ("image_column", ["image"]),
    ],
)
def test_a_bad_parameter_is_refused_by_name_at_fit(name, value):
    embedder = tiny().set_params(**{name: value})  # __init__ and set_params check nothing
    with pytest.raises(InvalidParameterError) as info:
        embedder.fit()
    assert str(info.value).startswith(f"{name}={value!r} ({type(value).__name__}) is not valid")


def test_bf16_off_cuda_is_refused_on_a_cpu_without_native_bf16(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with pytest.raises(InvalidParameterError, match="precision='bf16' needs a CUDA device or"):
        tiny(precision="bf16").fit()


@pytest.mark.parametrize("cache", ["memory", "disk", None])
def test_unreadable_images_are_all_named(images, files, tmp_path, cache):
    embedder = tiny(cache=cache, cache_dir=tmp_path, batch_size=2).fit()
    missing = str(tmp_path / "no-such.png")
    X = [files[0], missing, images[1], np.full((8, 8, 3), 2.0), files[2]]
    with pytest.raises(ImageLoadError) as info:
        embedder.transform(X)
    assert info.value.indices == [1, 3]
    assert missing in str(info.value) and "[0, 1]" in str(info.value)


def test_transform_leaves_the_estimator_unchanged(images, tmp_path):
    for cache in ("memory", "disk", None):
        embedder = tiny(cache=cache, cache_dir=tmp_path).fit()
        before = copy.deepcopy(embedder.__dict__)
        embedder.transform(images)
        embedder.transform(images)
        assert embedder.__dict__ == before


def test_another_backbone_at_transform_is_refused(images):
    embedder = tiny().fit()
    embedder.backbone_info_ = {**embedder.backbone_info_, "weights_identity": "file:abc@x:1"}
    with pytest.raises(ValueError, match="this CLIPEmbedder was fitted with .*weights_identity"):
        embedder.transform(images)
    embedder = tiny().fit().set_params(backbone="ViT-B-32")
    with pytest.raises(ValueError, match="differ in name"):
        embedder.transform(images)


def test_missing_weights_fail_fast_offline():
    from skrank._encoding.backbone import weights_on_disk
    from skrank._encoding.weights import WeightsUnavailableError

    if weights_on_disk("ViT-B-16", "openai"):
        pytest.skip("ViT-B-16/openai weights are on this machine")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="ViT-B-16"):
        CLIPEmbedder().fit()
    assert time.perf_counter() - start < 5


def test_threads_share_the_memory_cache(images):
    from concurrent.futures import ThreadPoolExecutor

    expected = tiny(cache=None).fit().transform(images)
    embedder = tiny(batch_size=3).fit()
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: embedder.transform(images), range(8)))
    for out in outs:
        np.testing.assert_allclose(out, expected, atol=1e-5)
    assert len(skrank._estimator.embedder.MEMORY_CACHE) == N


def test_sklearn_api_checks():
    from sklearn.utils import estimator_checks as ec

    est = tiny()
    failed = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = ec.check_estimator(est, on_fail=None)  # data checks skipped: not 2-D input
        assert all(r["status"] == "passed" for r in results)
        for check in ec._yield_api_checks(est):
            try:
                check(type(est).__name__, clone(est))
            except Exception as exc:  # noqa: BLE001 - collecting which checks apply
                failed[getattr(check, "__name__", str(check))] = exc
    # Only the check that transforms a 2-D float array, refused as a single image.
    assert set(failed) == {"check_fit_score_takes_y"}
    assert "single image" in str(failed["check_fit_score_takes_y"])
