"""Fixtures shared by more than one folder. Tests are offline: no weights or datasets are
downloaded.

A fixture used by one folder only lives in that folder's ``conftest.py``; plain helper
functions live in ``tests/helpers.py``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a whole module: ask for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``.

    skrank-tiny's matrices are too small to gain from threads: on a busy or shared
    machine torch's spinning worker threads make a fit 25 to 50 times slower than one
    thread does. One thread also fixes the order of the float sums, so fits repeat bit
    for bit (as on Dask's workers, whose nanny sets OMP_NUM_THREADS=1). Module-scoped,
    so that the module's own module-scoped fixtures (fits, clusters) run under it too.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture(scope="module")
def train_data():
    """``N_TRAIN`` textured 16-pixel images of rising brightness, and the brightness."""
    from tests.helpers import N_TRAIN, textured

    levels = np.linspace(20, 235, N_TRAIN)
    return [textured(v, i) for i, v in enumerate(levels)], levels


@pytest.fixture(scope="module")
def fitted(train_data):
    """A one-epoch skrank-tiny ranker (``quick_ranker``) fitted on ``train_data``.

    Several modules fit a ranker of their own under this name (a fixture of a module
    overrides this one)."""
    from tests.helpers import quick_ranker

    X, y = train_data
    return quick_ranker().fit(X, y)


@pytest.fixture
def probes():
    """Ten textured images from black to white, none of them in ``train_data``."""
    from tests.helpers import textured

    return [textured(v, 100 + i) for i, v in enumerate(np.linspace(0, 255, 10))]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """skrank-tiny's towers saved as a file: pretrained weights, as far as a preset knows."""
    import torch

    from skrank._encoding.backbone import load_backbone

    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(load_backbone("skrank-tiny", None, torch.device("cpu")).model.state_dict(), path)
    return path
