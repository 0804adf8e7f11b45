"""Shared fixtures. Tests are offline: no weights or datasets are downloaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: give --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def brightness_task():
    """Brightness ranking task at 64 px, split by source photo (no photo on both sides)."""
    from skrank.datasets import holdout_by_source, make_ranking_task

    task = make_ranking_task("brightness", image_size=64, random_state=0)
    groups = np.asarray(task.groups)
    test = holdout_by_source(groups)
    images = task.images
    return {
        "task": task,
        "X_train": [im for im, t in zip(images, test) if not t],
        "y_train": task.target[~test],
        "g_train": groups[~test],
        "X_test": [im for im, t in zip(images, test) if t],
        "y_test": task.target[test],
        "g_test": groups[test],
    }


@pytest.fixture(scope="session")
def tiny_fitted(brightness_task):
    """A quickly fitted skrank-tiny ranker, shared by tests that only read it."""
    from skrank import CLIPRanker

    d = brightness_task
    return CLIPRanker(
        d["task"].instruction,
        backbone="skrank-tiny",
        lr=1e-3,
        max_epochs=4,
        batch_size=32,
        random_state=0,
        device="cpu",
    ).fit(d["X_train"], d["y_train"])
