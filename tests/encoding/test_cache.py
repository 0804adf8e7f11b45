"""The frozen-feature cache: in memory, on disk, shared between fits and processes; its
keys tell apart images that look different."""

import copy

import numpy as np
import pytest
from joblib import Parallel, delayed
from PIL import Image
from sklearn.model_selection import GridSearchCV, GroupKFold

from skrank._encoding.backbone import Backbone, load_backbone
from skrank._encoding.cache import TokenStream
from skrank._encoding.diskstore import DiskStore, content_key
from skrank._encoding.encoder import Encoder
from skrank.metrics import spearman_scorer
from tests.helpers import tiny_ranker as tiny

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def data(brightness_task):
    d = brightness_task
    keep = np.isin(d["g_train"], np.unique(d["g_train"])[:6])
    return [x for x, k in zip(d["X_train"], keep) if k], d["y_train"][keep], d["g_train"][keep]


def test_disk_cache_trains_the_same_model_as_memory(data, tmp_path):
    X, y, _ = data
    mem = tiny().fit(X, y)
    disk = tiny(cache="disk", cache_dir=tmp_path).fit(X, y)
    # Same training tokens (fp16 in both); predict reads fp16 from disk, fp32 fresh in memory.
    np.testing.assert_allclose(disk.predict(X[:8]), mem.predict(X[:8]), rtol=1e-4, atol=1e-4)
    assert disk.cache_info_["misses"] == len(X) and disk.cache_info_["hits"] == 0
    assert disk.cache_info_["images_encoded"] == 2 * len(X)  # image and flipped twin
    assert disk.cache_info_["bytes"] > 0


def test_second_fit_encodes_nothing(data, tmp_path, encodes):
    X, y, _ = data
    tiny(cache="disk", cache_dir=tmp_path).fit(X, y)
    first = sum(encodes)
    again = tiny(cache="disk", cache_dir=tmp_path, lr=2e-3).fit(X, y)
    assert again.cache_info_["hits"] == len(X) and again.cache_info_["images_encoded"] == 0
    again.predict(X)  # predictions read the cache too
    assert sum(encodes) == first == 2 * len(X)


def test_grid_search_encodes_each_image_once(data, tmp_path, encodes):
    X, y, g = data
    search = GridSearchCV(
        tiny(cache="disk", cache_dir=tmp_path, max_epochs=1),
        {"lr": [1e-3, 2e-3], "n_prompt_tokens": [0, 4]},
        cv=GroupKFold(2),
        scoring=spearman_scorer,
    )
    search.fit(X, y, groups=g)
    # 4 candidates x 2 folds + refit, yet every image is encoded once, and its flip once.
    assert sum(encodes) == 2 * len(X)


def test_same_content_shares_an_entry(tmp_path):
    from PIL import Image

    img = (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)
    a, b = tmp_path / "a.png", tmp_path / "copy.png"
    Image.fromarray(img).save(a)
    b.write_bytes(a.read_bytes())
    assert content_key(a) == content_key(str(b)) != content_key(img)
    assert content_key(tmp_path / "missing.png") is None


def _encode_into(cache_dir, images):
    bb = load_backbone("skrank-tiny", None)
    stream = TokenStream(Encoder(bb, batch_size=8), "disk", cache_dir)
    return [t.numpy() for _, t, _ in stream(images, np.arange(len(images)))]


def test_concurrent_writers_leave_valid_entries(tmp_path, brightness_task):
    images = brightness_task["X_test"][:24]
    outs = Parallel(n_jobs=2, backend="loky")(
        delayed(_encode_into)(tmp_path, images) for _ in range(2)
    )
    bb = load_backbone("skrank-tiny", None)
    batches = Encoder(bb, batch_size=8).stream(images)
    expected = np.concatenate([batch.views[0].numpy() for batch in batches])
    for out in outs:
        np.testing.assert_allclose(np.concatenate(out), expected, atol=2e-3, rtol=2e-3)
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 24 and not list(tmp_path.rglob(".tmp-*"))
    store = DiskStore(bb, tmp_path)
    for i, img in enumerate(images):
        np.testing.assert_allclose(
            store.read(content_key(img), False), expected[i], atol=2e-3, rtol=2e-3
        )


def test_cache_key_depends_on_backbone_weights(tmp_path):
    from skrank._encoding.backbone import _Weights

    bb = load_backbone("skrank-tiny", None)
    other = Backbone(bb.model, "skrank-tiny", None, _Weights("file", None, "other"), "cpu")
    assert DiskStore(bb, tmp_path).root != DiskStore(other, tmp_path).root


# ----------------------------------------------------------------------- disk cache keys (issue 5)


def palette_images():
    """Two P images with the same indices but different palettes: different pictures."""
    indices = (np.arange(16 * 16) % 4).tolist()
    images = []
    for palette in ([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255], [250, 250, 0, 0, 90] * 3):
        img = Image.new("P", (16, 16))
        img.putdata(indices)
        img.putpalette(palette + [0] * (768 - len(palette)))
        images.append(img)
    return images


def test_disk_cache_tells_apart_images_that_look_different(fitted, tmp_path):
    ranker = copy.deepcopy(fitted).set_params(cache="disk", cache_dir=str(tmp_path))
    a, b = palette_images()
    expected = fitted.predict([a, b])
    gap = abs(expected[0] - expected[1])  # the cache's fp16 tokens move predictions far less
    assert gap > 1e-3
    assert abs(ranker.predict([a])[0] - expected[0]) < gap / 2
    assert abs(ranker.predict([b])[0] - expected[1]) < gap / 2
