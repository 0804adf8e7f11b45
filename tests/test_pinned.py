"""Predictions of a seeded skrank-tiny fit, pinned bit for bit.

Refactors must not change what a fitted ranker predicts. The pinned values in
``tests/data/pinned_predictions.json`` change only when the model or its
training deliberately change; then regenerate them with
``python -m tests.test_pinned`` and say why in the commit.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

PINNED = Path(__file__).parent / "data" / "pinned_predictions.json"


def _split():
    from skrank.datasets import holdout_by_source, make_ranking_task

    task = make_ranking_task("brightness", image_size=64, random_state=0)
    groups = np.asarray(task.groups)
    test = holdout_by_source(groups)
    train_x = [im for im, t in zip(task.images, test) if not t]
    test_x = [im for im, t in zip(task.images, test) if t]
    return task, train_x, task.target[~test], test_x


def _predictions(cache_dir) -> dict:
    from skrank import CLIPRanker

    task, train_x, train_y, test_x = _split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the sum order of a multi-threaded matmul varies with threads

    def fitted(**params):
        return CLIPRanker(
            task.instruction,
            backbone="skrank-tiny",
            lr=1e-3,
            max_epochs=3,
            batch_size=16,
            device="cpu",
            random_state=0,
            cache_dir=cache_dir,
            **params,
        ).fit(train_x, train_y)

    try:
        out = {}
        for cache in ("memory", "disk", None):
            ranker = fitted(cache=cache)
            out[str(cache)] = [float(v).hex() for v in ranker.predict(test_x)]
        out["compare"] = [float(v).hex() for v in ranker.compare(test_x[:6], test_x[6:12])]
        # probe="ridge" without held-out groups: bit for bit the default probe="none".
        out["probe=ridge"] = [float(v).hex() for v in fitted(probe="ridge").predict(test_x)]
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    return _predictions(tmp_path_factory.mktemp("pinned-cache"))


@pytest.mark.parametrize("key", ["memory", "disk", "None", "compare", "probe=ridge"])
def test_seeded_fit_predicts_exactly_the_pinned_values(key, computed):
    want = json.loads(PINNED.read_text())[key]
    assert computed[key] == want, f"cache={key}: predictions changed bit-wise"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        PINNED.write_text(json.dumps(_predictions(tmp), indent=1) + "\n")
    print(f"rewrote {PINNED}")
