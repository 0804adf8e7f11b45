"""Tests for the synthetic ranking tasks (skrank.datasets.make_ranking_task)."""

import doctest
import time

import numpy as np
import pytest
from scipy import ndimage

from skrank.datasets import KINDS, _synthetic, make_ranking_task
from skrank.datasets._photos import _load_sources

# Small images: the degradations must stay measurable there, and the tests stay fast.
SIZE = 32
N_LEVELS = 8


@pytest.fixture(scope="module")
def tasks():
    """One task per kind, every bundled photo at every level."""
    return {kind: make_ranking_task(kind, n_levels=N_LEVELS, image_size=SIZE) for kind in KINDS}


@pytest.fixture(scope="module")
def sources():
    """The clean images the tasks degrade (centre squares: no seed is involved)."""
    return _load_sources(SIZE, None, seed=0)[1]


def per_source(task, measure):
    """`measure` of every image, as an (n_sources, n_levels) array."""
    values = np.array([measure(image.astype(np.float64)) for image in task.images])
    return values.reshape(-1, N_LEVELS)


def grey(image):
    return image @ np.array([0.299, 0.587, 0.114])


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_dtypes_and_layout(kind):
    task = make_ranking_task(kind, n_levels=3, image_size=40, n_sources=4)
    assert len(task.images) == 12
    for image in task.images:
        assert isinstance(image, np.ndarray)
        assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert task.target.shape == (12,) and task.target.dtype == np.float64
    assert task.groups.dtype.kind == "i" and task.levels.dtype.kind == "i"
    np.testing.assert_array_equal(task.groups, np.repeat(np.arange(4), 3))
    np.testing.assert_array_equal(task.levels, np.tile(np.arange(3), 4))
    assert len(task.source_names) == 4
    assert isinstance(task.instruction, str) and task.instruction.endswith(".")
    assert task.instruction in task.DESCR


@pytest.mark.parametrize("kind", KINDS)
def test_target_grows_with_level_and_is_shared_by_sources(kind, tasks):
    targets = tasks[kind].target.reshape(-1, N_LEVELS)
    assert np.all(np.diff(targets, axis=1) > 0)
    assert np.all(targets == targets[0])


def test_default_sources_are_the_bundled_photos(tasks):
    names = tasks["blur"].source_names
    assert len(names) == len(set(names)) >= 20
    assert names[:3] == ["astronaut", "chelsea", "coffee"]
    assert {"china", "flower", "grace_hopper", "camera", "horse"} <= set(names)
    descr = tasks["blur"].DESCR
    assert all(name in descr for name in names)
    assert "within each group" in descr and "pooled" in descr


def test_n_sources_fewer_takes_the_first_and_more_adds_distinct_crops(tasks):
    default = tasks["contrast"].source_names
    few = make_ranking_task("contrast", n_levels=2, image_size=SIZE, n_sources=3)
    assert few.source_names == default[:3]

    n_more = len(default) + 10
    more = make_ranking_task("contrast", n_levels=2, image_size=SIZE, n_sources=n_more)
    assert more.source_names[: len(default)] == default
    assert len(set(more.source_names)) == n_more
    np.testing.assert_array_equal(np.unique(more.groups), np.arange(n_more))
    # Every source is a different picture: compare the level-0 images pairwise.
    firsts = np.stack(more.images[::2]).reshape(n_more, -1).astype(np.int32)
    distances = np.abs(firsts[:, None] - firsts[None]).mean(axis=2)
    assert np.all(distances[~np.eye(n_more, dtype=bool)] > 1)

    other = make_ranking_task(
        "contrast", n_levels=2, image_size=SIZE, n_sources=n_more, random_state=1
    )
    assert other.source_names[: len(default)] == default
    assert other.source_names[len(default) :] != more.source_names[len(default) :]


def test_photos_name_the_bundled_photo_every_source_was_cut_from(tasks):
    default = tasks["contrast"]
    n_photos = len(default.source_names)
    np.testing.assert_array_equal(default.photos, default.groups)  # one source per photo
    many = make_ranking_task("contrast", n_levels=2, image_size=SIZE, n_sources=3 * n_photos)
    assert many.photos.dtype == np.int64 and many.photos.shape == many.groups.shape
    for group in range(3 * n_photos):
        photo = many.photos[many.groups == group]
        assert len(set(photo)) == 1  # all levels of a source: one photo
        # A crop's name starts with its photo's name.
        assert many.source_names[group].startswith(default.source_names[photo[0]])
    # A split by photo keeps every photo's crops on one side.
    from sklearn.model_selection import GroupKFold

    for train, test in GroupKFold(2).split(many.groups, groups=many.photos):
        assert not set(many.groups[train]) & set(many.groups[test])
        assert not set(many.photos[train]) & set(many.photos[test])


def test_a_few_thousand_images_for_learning_curves():
    task = make_ranking_task("blur", n_levels=8, image_size=16, n_sources=500)
    assert len(task.images) == 4000 and len(np.unique(task.groups)) == 500
    assert len(set(task.source_names)) == 500


# --------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("kind", KINDS)
def test_same_arguments_give_byte_identical_images(kind):
    first = make_ranking_task(kind, n_levels=3, image_size=SIZE, random_state=7, n_sources=25)
    second = make_ranking_task(kind, n_levels=3, image_size=SIZE, random_state=7, n_sources=25)
    assert [a.tobytes() for a in first.images] == [b.tobytes() for b in second.images]
    np.testing.assert_array_equal(first.target, second.target)


@pytest.mark.parametrize("kind", ["noise", "count"])
def test_random_state_changes_the_random_parts(kind):
    first = make_ranking_task(kind, n_levels=3, image_size=SIZE, random_state=0, n_sources=2)
    second = make_ranking_task(kind, n_levels=3, image_size=SIZE, random_state=1, n_sources=2)
    # Level 0 of noise is the clean photo; every other image must change.
    changed = [not np.array_equal(a, b) for a, b in zip(first.images, second.images, strict=True)]
    assert changed == [kind == "count", True, True] * 2


def test_random_state_leaves_deterministic_degradations_alone():
    first = make_ranking_task("blur", n_levels=3, image_size=SIZE, random_state=0)
    second = make_ranking_task("blur", n_levels=3, image_size=SIZE, random_state=1)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, second.images, strict=True))


def test_random_state_accepts_none_and_randomstate():
    task = make_ranking_task("noise", n_levels=2, image_size=SIZE, random_state=None, n_sources=1)
    assert len(task.images) == 2
    rng = np.random.RandomState(3)
    task = make_ranking_task("noise", n_levels=2, image_size=SIZE, random_state=rng, n_sources=1)
    assert len(task.images) == 2


# --------------------------------------------------------------------------- larger target = more


def test_brightness_mean_increases_within_every_source(tasks):
    means = per_source(tasks["brightness"], np.mean)
    assert np.all(np.diff(means, axis=1) > 0)


def test_brightness_barely_clips(tasks, sources):
    brightest = tasks["brightness"].images[N_LEVELS - 1 :: N_LEVELS]
    for image, source in zip(brightest, sources, strict=True):
        assert np.mean(image == 255) - np.mean(source == 255) < 0.02


def test_contrast_std_increases_within_every_source(tasks):
    stds = per_source(tasks["contrast"], lambda image: grey(image).std())
    assert np.all(np.diff(stds, axis=1) > 0)
    # The mean grey level, the pivot, stays roughly where it was.
    means = per_source(tasks["contrast"], lambda image: grey(image).mean())
    assert np.all(np.ptp(means, axis=1) < 20)


def test_blur_laplacian_variance_decreases_within_every_source(tasks):
    sharpness = per_source(tasks["blur"], lambda image: ndimage.laplace(grey(image)).var())
    assert np.all(np.diff(sharpness, axis=1) < 0)


def test_noise_high_frequency_residual_increases_within_every_source(tasks):
    def residual(image):
        return (image - ndimage.median_filter(image, size=(3, 3, 1))).std()

    assert np.all(np.diff(per_source(tasks["noise"], residual), axis=1) > 0)


def test_jpeg_error_against_the_clean_photo_increases_within_every_source(tasks, sources):
    images = np.stack(tasks["jpeg"].images).astype(np.float64)
    images = images.reshape(len(sources), N_LEVELS, SIZE, SIZE, 3)
    clean = np.stack(sources).astype(np.float64)[:, None]
    errors = np.sqrt(((images - clean) ** 2).mean(axis=(2, 3, 4)))  # (n_sources, n_levels)
    assert np.all(np.diff(errors, axis=1) > 0)


def test_pixelate_share_of_repeated_neighbours_increases_within_every_source(tasks):
    def repeated(image):
        # Pixels equal to their right or lower neighbour: one per block edge is not.
        return np.mean(np.all(image[1:, 1:] == image[:-1, 1:], axis=2)) + np.mean(
            np.all(image[1:, 1:] == image[1:, :-1], axis=2)
        )

    assert np.all(np.diff(per_source(tasks["pixelate"], repeated), axis=1) > 0)


def test_count_draws_target_many_separate_visible_circles(tasks, sources):
    task = tasks["count"]
    for image, group, target in zip(task.images, task.groups, task.target, strict=True):
        source = sources[group]
        drawn = np.any(image != source, axis=2)
        labels, n_objects = ndimage.label(drawn, structure=np.ones((3, 3)))
        assert n_objects == target
        areas = ndimage.sum_labels(drawn, labels, np.arange(1, n_objects + 1))
        # All circles are the same size, and every pixel of them stands out from the photo
        # under it (so none hides half a circle, which would also split its component).
        assert areas.min() >= 0.6 * areas.max() and areas.min() >= 9
        contrast = np.abs(image.astype(int) - source.astype(int)).sum(axis=2)
        assert contrast[drawn].min() > 100


@pytest.mark.parametrize("kind", KINDS)
def test_strongest_level_is_visible_on_small_images(kind, tasks, sources):
    strongest = np.stack(tasks[kind].images[N_LEVELS - 1 :: N_LEVELS]).astype(np.float64)
    difference = np.abs(strongest - np.stack(sources)).mean(axis=(1, 2, 3))  # (n_sources,)
    assert np.median(difference) > 5


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "sharpness"}, r"kind must be one of \('blur'.*got 'sharpness'"),
        ({"kind": 3}, "kind must be one of"),
        ({"kind": "blur", "n_levels": 1}, "n_levels must be an integer >= 2, got 1"),
        ({"kind": "blur", "n_levels": 2.5}, "n_levels must be an integer >= 2, got 2.5"),
        ({"kind": "blur", "n_levels": True}, "n_levels must be an integer >= 2, got True"),
        ({"kind": "blur", "image_size": 7}, "image_size must be an integer >= 8, got 7"),
        ({"kind": "blur", "image_size": "64"}, "image_size must be an integer >= 8, got '64'"),
        ({"kind": "blur", "n_sources": 0}, "n_sources must be an integer >= 1, got 0"),
        ({"kind": "blur", "n_sources": 2.0}, "n_sources must be an integer >= 1, got 2.0"),
        ({"kind": "jpeg", "n_levels": 200}, "n_levels=200 is too many for kind='jpeg'"),
        ({"kind": "pixelate", "image_size": 8}, "n_levels=8 is too many for kind='pixelate'"),
        ({"kind": "count", "image_size": 16}, "kind='count' cannot draw n_levels=8"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_ranking_task(**kwargs)


def test_numpy_integers_are_accepted():
    task = make_ranking_task(
        "blur", n_levels=np.int64(2), image_size=np.int32(16), n_sources=np.int8(1)
    )
    assert len(task.images) == 2 and task.images[0].shape == (16, 16, 3)


# --------------------------------------------------------------------------- speed and docs


def test_cached_call_is_fast():
    make_ranking_task("brightness", image_size=64)
    start = time.perf_counter()
    make_ranking_task("brightness", image_size=64)
    assert time.perf_counter() - start < 0.5


def test_docstring_examples_run():
    result = doctest.testmod(_synthetic, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_holdout_by_source_keeps_every_source_on_one_side():
    from skrank.datasets import holdout_by_source

    groups = np.array(["b", "a", "c", "a", "d", "b", "e"])
    test = holdout_by_source(groups)
    assert set(groups[test]).isdisjoint(groups[~test])
    assert sorted(set(groups[test])) == ["a", "d"]  # sorted sources, every third from the first
    assert holdout_by_source(groups, every=2).sum() == 4  # a, c, e
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="every="):
            holdout_by_source(groups, every=bad)
    with pytest.raises(ValueError, match="1-D"):
        holdout_by_source(groups.reshape(-1, 1))


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize(
    "kwargs", [{"n_sources": 10**9}, {"image_size": 10**6}, {"n_levels": 10**9}]
)
def test_a_task_larger_than_memory_is_refused_before_any_pixel(kwargs):
    with pytest.raises(ValueError, match="GiB of memory available"):
        make_ranking_task("blur", **kwargs)


def test_the_size_check_reads_the_memory_left(monkeypatch):
    monkeypatch.setattr(_synthetic, "_available_bytes", lambda: 10 * 16 * 16 * 3)
    with pytest.raises(ValueError, match="would hold 12 images of 16x16"):
        make_ranking_task("blur", n_levels=4, image_size=16, n_sources=3)
    assert len(make_ranking_task("blur", n_levels=2, image_size=16, n_sources=3).images) == 6
    monkeypatch.setattr(_synthetic, "_available_bytes", lambda: None)  # unknown: no check
    assert len(make_ranking_task("blur", n_levels=4, image_size=16, n_sources=3).images) == 12
