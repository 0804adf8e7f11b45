"""Pickles, joblib and skrank's pickle-free save/load."""

import json
import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest

import skrank
from skrank import load, save


@pytest.fixture(scope="module")
def probe_images(brightness_task):
    return brightness_task["X_test"][:12]


def adapter_bytes(ranker):
    return sum(p.numel() * 4 for p in ranker.adapter_.state_dict().values())


def test_joblib_is_small_and_loads_in_a_cpu_only_subprocess(tiny_fitted, probe_images, tmp_path):
    model = tmp_path / "ranker.joblib"
    joblib.dump(tiny_fitted, model)
    assert model.stat().st_size <= adapter_bytes(tiny_fitted) + 2**20  # no backbone inside
    images = tmp_path / "images.npy"
    np.save(images, np.stack(probe_images))
    expected = tiny_fitted.predict(probe_images)
    out = tmp_path / "pred.npy"
    code = (
        "import joblib, numpy as np, torch;"
        "assert not torch.cuda.is_available();"
        f"r = joblib.load({str(model)!r});"
        f"np.save({str(out)!r}, r.predict(list(np.load({str(images)!r}))))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    np.testing.assert_array_equal(np.load(out), expected)


def test_pickle_from_another_version_warns(tiny_fitted):
    blob = pickle.dumps(tiny_fitted)
    state = tiny_fitted.__getstate__()
    assert state["_skrank_version"] == skrank.__version__
    assert pickle.loads(blob).get_params() == tiny_fitted.get_params()
    state["_skrank_version"] = "0.0.1"
    fresh = skrank.CLIPRanker.__new__(skrank.CLIPRanker)
    with pytest.warns(UserWarning, match="0.0.1"):
        fresh.__setstate__(state)


def test_save_load_round_trip(tiny_fitted, probe_images, tmp_path):
    path = tmp_path / "model.skrank"
    save(tiny_fitted, path)
    loaded = load(path)
    np.testing.assert_array_equal(loaded.predict(probe_images), tiny_fitted.predict(probe_images))
    assert loaded.get_params() == tiny_fitted.get_params()
    assert loaded.history_ == tiny_fitted.history_
    assert loaded.instructions_ == tiny_fitted.instructions_
    with open(path, "rb") as fh:
        assert b"\x80\x04" not in fh.read(64)  # safetensors header (JSON), not a pickle


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_refuses_a_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.skrank"
    evil.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ValueError, match="not a readable skrank model"):
        load(evil)
    assert not marker.exists()
    # The same payload hidden in a real safetensors file's metadata is just a string.
    import torch
    from safetensors.torch import save_file

    hidden = tmp_path / "hidden.skrank"
    save_file(
        {"x": torch.zeros(1)},
        str(hidden),
        metadata={"format": "not-skrank", "p": pickle.dumps(1).hex()},
    )
    with pytest.raises(ValueError, match="not a skrank model"):
        load(hidden)
    assert not marker.exists()


def test_truncated_missing_and_newer_files(tiny_fitted, tmp_path):
    path = tmp_path / "model.skrank"
    save(tiny_fitted, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.skrank"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load(cut)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.skrank")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta["format_version"] = "99"
    newer = tmp_path / "newer.skrank"
    save_file(tensors, str(newer), metadata=meta)
    with pytest.raises(ValueError, match="newer"):
        load(newer)
    meta["format_version"] = "1"
    meta["params"] = json.dumps({"no_such_parameter": 1})
    damaged = tmp_path / "damaged.skrank"
    save_file(tensors, str(damaged), metadata=meta)
    with pytest.raises(ValueError, match="damaged"):
        load(damaged)


def test_files_saved_before_score_pooling_load_with_the_mean_head(tiny_fitted, tmp_path):
    # An older file: a mean-pooled head and no "score_pooling" in its adapter config.
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from skrank.adapter import ScoreHead

    torch.manual_seed(0)
    old = pickle.loads(pickle.dumps(tiny_fitted))
    old.adapter_.score_head = ScoreHead(old.adapter_.cfg.d_model, "mean")
    old.adapter_.cfg.score_pooling = "mean"
    path = tmp_path / "old.skrank"
    save(old, path)
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    config = json.loads(meta["adapter_config"])
    del config["score_pooling"]
    meta["adapter_config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=meta)
    loaded = load(path)
    assert loaded.adapter_.score_head.pooling == "mean"
    images = np.random.default_rng(0).random((3, 32, 32, 3))
    np.testing.assert_array_equal(loaded.predict(images), old.predict(images))


def test_save_needs_a_fitted_ranker(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save(skrank.CLIPRanker("x", backbone="skrank-tiny"), tmp_path / "m.skrank")
