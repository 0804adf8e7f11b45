"""Small helpers shared by the tests (plain functions; the shared fixtures are in conftest.py)."""

import json
import os

import numpy as np
import pytest

from skrank import CLIPRanker

INSTRUCTION = "Sort the images by brightness."
N_TRAIN = 24  # images in the ``train_data`` fixture
BATCH = 8  # quick_ranker's batch size

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def failed_api_checks(est) -> dict:
    """Run scikit-learn's ``check_estimator`` (every result must pass) and each of its
    API checks on a clone of ``est``; the API checks that raised, by name, with their
    messages: the ones a 2-D numeric ``X`` cannot apply to, for the caller to name."""
    import warnings

    from sklearn.base import clone
    from sklearn.utils import estimator_checks as ec

    failed = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = ec.check_estimator(est, on_fail=None)
        assert all(r["status"] == "passed" for r in results), results
        for check in ec._yield_api_checks(est):
            name = getattr(check, "__name__", str(check))
            try:
                check(type(est).__name__, clone(est))
            except Exception as exc:  # noqa: BLE001 - collecting which checks apply
                failed[name] = str(exc)
    return failed


def tiny_ranker(instruction=INSTRUCTION, **kw):
    """A quick skrank-tiny ranker on the CPU; keyword arguments override the defaults."""
    params = dict(
        backbone="skrank-tiny", lr=1e-3, max_epochs=2, batch_size=16, device="cpu", random_state=0
    )
    params.update(kw)
    return CLIPRanker(instruction, **params)


def quick_ranker(instruction=INSTRUCTION, **kw):
    """A one-epoch skrank-tiny ranker in batches of ``BATCH``; keyword arguments override."""
    params = dict(
        backbone="skrank-tiny", max_epochs=1, batch_size=BATCH, random_state=0, device="cpu"
    )
    return CLIPRanker(instruction, **{**params, **kw})


def textured(level, seed, size=16):
    """A small RGB image of mean brightness ~``level`` with some texture."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-30, 31, (size, size, 3))
    return np.clip(level + noise, 0, 255).astype(np.uint8)


def small_images(n=8, size=16):
    """``n`` graded grey images as uint8 arrays."""
    return [np.full((size, size, 3), 20 + 25 * i, np.uint8) for i in range(n)]


def write(img, path, fmt=None, **kw):
    """Save the PIL image ``img`` at ``path``; the path as a string."""
    img.save(path, fmt, **kw)
    return str(path)


def parts(path):
    """A safetensors file's metadata and tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}


def as_format_1(meta):
    """``meta`` as skrank wrote it before skrank 0.1's architecture variants were removed
    (format 1): the reference's value of each removed option in the adapter config and
    the parameters."""
    from skrank.persistence._schema_compat import REMOVED_OPTIONS

    reference = {name: values[0] for name, values in REMOVED_OPTIONS.items()}
    config, params = json.loads(meta["adapter_config"]), json.loads(meta["params"])
    return {
        **meta,
        "format_version": "1",
        "adapter_config": json.dumps({**config, **reference}),
        "params": json.dumps(dict(sorted({**params, **reference}.items()))),
    }


def capture_train(monkeypatch):
    """Replace the training loop by one that records its TrainData and trains nothing."""
    import skrank._estimator.ranker
    from skrank._model.training import Trained

    seen = {}

    def fake(adapter, data, cfg, on_epoch=None):
        seen["data"], seen["cfg"] = data, cfg
        return Trained(
            [
                dict(
                    epoch=1,
                    loss=1.0,
                    reg_loss=1.0,
                    rank_loss=0.0,
                    lr=0.0,
                    val_score=None,
                    seconds=0.0,
                )
            ],
            1,
            1,
        )

    monkeypatch.setattr(skrank._estimator.ranker, "train", fake)
    return seen
