"""Pickles, joblib and skrank's pickle-free save/load, and what load refuses."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import skrank
from skrank import InvalidParameterError, load, save
from tests.helpers import as_format_1, parts, tiny_ranker

DELETE = object()
PLAIN = (int, float, bool, str, type(None))


@pytest.fixture(scope="module")
def probe_images(brightness_task):
    return brightness_task["X_test"][:12]


def edited(meta, doc, key, value):
    """``meta`` with ``key`` (dotted, inside the JSON document ``doc``) set or deleted."""
    meta = dict(meta)
    if doc == "metadata":
        target, last = meta, key
    else:
        target = loaded = json.loads(meta[doc])
        *head, last = key.split(".")
        for k in head:
            target = target[k]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    if doc != "metadata":
        meta[doc] = json.dumps(loaded)
    return meta


def a_copy(ranker):
    return pickle.loads(pickle.dumps(ranker))


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
    meta, tensors = parts(path)
    meta["format_version"] = "99"
    newer = tmp_path / "newer.skrank"
    save_file(tensors, str(newer), metadata=meta)
    with pytest.raises(ValueError, match="newer"):
        load(newer)
    meta["format_version"] = str(skrank.persistence._io.FORMAT_VERSION)
    meta["params"] = json.dumps({"no_such_parameter": 1})
    damaged = tmp_path / "damaged.skrank"
    save_file(tensors, str(damaged), metadata=meta)
    with pytest.raises(ValueError, match="damaged"):
        load(damaged)


def test_files_saved_before_score_pooling_load_with_the_mean_head(tiny_fitted, tmp_path):
    # An older file: a mean-pooled head and no "score_pooling" in its adapter config.
    from skrank._model.adapter import ScoreHead

    torch.manual_seed(0)
    old = a_copy(tiny_fitted)
    old.adapter_.score_head = ScoreHead(old.adapter_.cfg.d_model, "mean")
    old.adapter_.cfg.score_pooling = "mean"
    old.set_params(score_pooling="mean")  # save refuses parameters its adapter contradicts
    path = tmp_path / "old.skrank"
    save(old, path)
    meta, tensors = parts(path)
    meta = as_format_1(meta)
    config, params = json.loads(meta["adapter_config"]), json.loads(meta["params"])
    del config["score_pooling"], params["score_pooling"]  # neither existed then
    meta["adapter_config"], meta["params"] = json.dumps(config), json.dumps(params)
    save_file(tensors, str(path), metadata=meta)
    loaded = load(path)
    assert loaded.adapter_.score_head.pooling == "mean"
    assert loaded.get_params()["score_pooling"] == "mean"  # the parameter says what it has
    images = np.random.default_rng(0).random((3, 32, 32, 3))
    np.testing.assert_array_equal(loaded.predict(images), old.predict(images))


def test_save_needs_a_fitted_ranker(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save(skrank.CLIPRanker("x", backbone="skrank-tiny"), tmp_path / "m.skrank")


# --------------------------------------------------------------------------- save: values


def test_a_grid_search_over_numpy_grids_saves_and_reloads_identically(tmp_path):
    from sklearn.model_selection import GridSearchCV

    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 256, 16)]
    y = np.arange(16.0)
    grid = {
        "lr": np.logspace(-3, -2, 2),
        "n_post_layers": np.arange(1, 2),
        "augment": np.array([True, False]),
    }
    base = tiny_ranker(
        max_epochs=1,
        batch_size=8,
        n_fusion_layers=1,
        n_heads=np.int64(2),
        n_prompt_tokens=2,
        random_state=np.int64(3),
        warmup_fraction=np.float32(0.25),
        early_stopping=np.bool_(False),
    )
    best = GridSearchCV(base, grid, cv=2).fit(images, y).best_estimator_
    assert isinstance(best.lr, np.floating) and isinstance(best.augment, np.bool_)
    save(best, tmp_path / "best.skrank")
    loaded = load(tmp_path / "best.skrank")
    assert loaded.get_params() == best.get_params()
    assert {k: type(v) for k, v in loaded.get_params().items() if type(v) not in PLAIN} == {}
    assert loaded.random_state == 3 and loaded.warmup_fraction == 0.25
    np.testing.assert_array_equal(loaded.predict(images), best.predict(images))


def test_devices_paths_and_numpy_scalars_reload_as_plain_values(tiny_fitted, tmp_path):
    ranker = a_copy(tiny_fitted).set_params(
        device=torch.device("cpu"),
        pretrained=Path("openai"),
        batch_size=np.int32(32),  # as fitted: the same batches, the same sums
        reg_weight=np.float32(0.5),
        early_stopping=np.bool_(False),
        image_column=np.str_("img"),
        group_column=np.int64(2),
        lr=np.float64(1e-3),
    )
    ranker.history_ = [
        {k: np.float32(v) if isinstance(v, float) else v for k, v in h.items()}
        for h in ranker.history_
    ]
    save(ranker, tmp_path / "m.skrank")
    loaded = load(tmp_path / "m.skrank")
    expected = {
        "device": "cpu",
        "pretrained": "openai",
        "batch_size": 32,
        "reg_weight": 0.5,
        "early_stopping": False,
        "image_column": "img",
        "group_column": 2,
        "lr": 1e-3,
    }
    got = {k: loaded.get_params()[k] for k in expected}
    assert got == expected and {type(v) for v in got.values()} <= set(PLAIN)
    assert all(type(v) in PLAIN for h in loaded.history_ for v in h.values())
    np.testing.assert_allclose(
        [h["loss"] for h in loaded.history_], [h["loss"] for h in tiny_fitted.history_], rtol=1e-6
    )
    probe = np.random.default_rng(0).random((3, 32, 32, 3))
    np.testing.assert_array_equal(loaded.predict(probe), tiny_fitted.predict(probe))


def test_a_randomstate_is_saved_as_none_with_a_warning(tiny_fitted, tmp_path):
    ranker = a_copy(tiny_fitted).set_params(random_state=np.random.RandomState(0))
    with pytest.warns(UserWarning, match="random_state is a RandomState"):
        save(ranker, tmp_path / "m.skrank")
    assert load(tmp_path / "m.skrank").random_state is None


def test_a_nan_validation_score_and_old_files_without_lr_round_trip(tiny_fitted, tmp_path):
    ranker = a_copy(tiny_fitted)
    ranker.history_[0]["val_score"] = float("nan")  # Spearman of constant predictions
    save(ranker, tmp_path / "m.skrank")
    assert np.isnan(load(tmp_path / "m.skrank").history_[0]["val_score"])
    meta, tensors = parts(tmp_path / "m.skrank")
    save_file(tensors, str(tmp_path / "old.skrank"), metadata=edited(meta, "fitted", "lr_", DELETE))
    assert not hasattr(load(tmp_path / "old.skrank"), "lr_")  # files from before lr_ existed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image_column": ("a", "b")}, "params.image_column"),
        ({"group_column": frozenset({1})}, "params.group_column"),
        ({"reg_weight": float("nan")}, "reg_weight"),
        ({"instruction": "x" * 5000}, "params.instruction"),
        ({"history_": [{"epoch": object()}]}, "fitted.history_[0].epoch"),
        ({"adapter_": "nan"}, "tensor"),
    ],
)
def test_save_refuses_what_it_cannot_store_before_writing(tiny_fitted, tmp_path, change, field):
    ranker = a_copy(tiny_fitted)
    for key, value in change.items():
        if key == "adapter_":
            with torch.no_grad():
                ranker.adapter_.prompt.fill_(float("nan"))
        elif key.endswith("_"):
            setattr(ranker, key, value)
        else:
            ranker.set_params(**{key: value})
    with pytest.raises(ValueError, match="cannot save") as info:
        save(ranker, tmp_path / "m.skrank")
    assert field in str(info.value)
    assert os.listdir(tmp_path) == []


def test_save_needs_an_existing_folder_and_a_file_name(tiny_fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save(tiny_fitted, tmp_path / "no" / "such" / "m.skrank")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save(tiny_fitted, tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_save_leaves_no_temporary_and_the_old_file(
    tiny_fitted, tmp_path, monkeypatch, error
):
    import skrank.persistence._io

    path = tmp_path / "m.skrank"
    path.write_bytes(b"the previous model")

    def half_written(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise error

    monkeypatch.setattr(skrank.persistence._io, "save_file", half_written)
    with pytest.raises(type(error)):
        save(tiny_fitted, path)
    assert os.listdir(tmp_path) == ["m.skrank"]
    assert path.read_bytes() == b"the previous model"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_permissions_of_the_umask(tiny_fitted, tmp_path, umask):
    previous = os.umask(umask)
    try:
        save(tiny_fitted, tmp_path / "m.skrank")
    finally:
        os.umask(previous)
    assert (tmp_path / "m.skrank").stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------- load: trust


def test_where_skrank_writes_never_comes_from_a_file(tiny_fitted, saved, tmp_path):
    ranker = a_copy(tiny_fitted).set_params(cache="disk", cache_dir=str(tmp_path / "mine"))
    save(ranker, tmp_path / "m.skrank")
    meta, tensors = parts(tmp_path / "m.skrank")
    assert {"cache", "cache_dir"}.isdisjoint(json.loads(meta["params"]))
    # An older file (or a hostile one) may still hold them: they are checked and ignored.
    evil = tmp_path / "evil"
    meta = edited(edited(meta, "params", "cache", "disk"), "params", "cache_dir", str(evil))
    save_file(tensors, str(tmp_path / "e.skrank"), metadata=meta)
    loaded = load(tmp_path / "e.skrank")
    assert (loaded.cache, loaded.cache_dir) == ("memory", None)
    probe = np.random.default_rng(0).random((3, 32, 32, 3))
    loaded.predict(probe)
    assert not evil.exists()
    mine = tmp_path / "chosen"
    loaded = load(tmp_path / "e.skrank", cache="disk", cache_dir=mine)
    assert (loaded.cache, loaded.cache_dir) == ("disk", mine)
    # The disk cache holds fp16 tokens: close to, not equal to, the fp32 ones.
    np.testing.assert_allclose(loaded.predict(probe), tiny_fitted.predict(probe), rtol=1e-4)
    assert any(mine.rglob("*.npy")) and not evil.exists()


def test_load_arguments_are_the_callers_to_get_right(saved):
    with pytest.raises(TypeError, match="unknown parameter"):
        load(saved, no_such_parameter=1)
    with pytest.raises(InvalidParameterError, match="batch_size") as info:
        load(saved, batch_size=1)
    assert str(saved) not in str(info.value)  # the file is fine; the argument is not
    assert load(saved, batch_size=7, verbose=0).batch_size == 7


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_model_saved_for_cuda_loads_on_a_machine_without_it(saved, tmp_path, probe_images):
    meta, tensors = parts(saved)
    save_file(
        tensors, str(tmp_path / "gpu.skrank"), metadata=edited(meta, "params", "device", "cuda")
    )
    loaded = load(tmp_path / "gpu.skrank")  # the device is checked where it is used
    assert loaded.device == "cuda"
    with pytest.raises(ValueError, match="CUDA is not available"):
        loaded.predict(probe_images)
    moved = load(tmp_path / "gpu.skrank", device="cpu")
    assert moved.device == "cpu" and np.isfinite(moved.predict(probe_images)).all()


@pytest.mark.parametrize("device", ["bpu", "tpu", "cuda:x", "", "meta"])
def test_a_device_no_machine_has_is_refused_at_load(saved, tmp_path, device):
    # Devices are resolved where the model is used, but a misspelled one is the file's fault.
    meta, tensors = parts(saved)
    path = tmp_path / "bad-device.skrank"
    save_file(tensors, str(path), metadata=edited(meta, "params", "device", device))
    with pytest.raises(ValueError, match="device"):
        load(path)


FIELD_CASES = [
    # adapter_config: wrong types and ranges once crashed the adapter's constructor.
    ("adapter_config", "n_heads", 0, "adapter_config.n_heads"),
    ("adapter_config", "n_heads", 3, "must be divisible"),
    ("adapter_config", "d_model", "64", "adapter_config.d_model"),
    ("adapter_config", "d_model", 64.0, "adapter_config.d_model"),
    ("adapter_config", "d_model", 128, "tensor"),
    ("adapter_config", "n_fusion_layers", 100_000, "adapter_config.n_fusion_layers"),
    ("adapter_config", "n_post_layers", -1, "adapter_config.n_post_layers"),
    ("adapter_config", "mlp_ratio", True, "adapter_config.mlp_ratio"),
    ("adapter_config", "score_pooling", "max", "pooling"),
    ("adapter_config", "image_dim", DELETE, "adapter_config.image_dim: is missing"),
    ("adapter_config", "extra", 1, "adapter_config.extra: is not a known key"),
    # fitted: only the known attributes, each checked.
    ("fitted", "predict", "x", "fitted.predict: is not a known key"),
    ("fitted", "__class__", "x", "fitted.__class__: is not a known key"),
    ("fitted", "\x1b[2J", "x", "fitted['\\x1b[2J']: is not a known key"),
    ("fitted", "y_scale_", [0.0], "fitted.y_scale_[0]"),
    ("fitted", "y_scale_", [float("nan")], "fitted.y_scale_[0]"),
    ("fitted", "y_scale_", [-1.0], "fitted.y_scale_[0]"),
    ("fitted", "y_scale_", [1.0, 1.0], "fitted.y_scale_"),
    ("fitted", "y_mean_", [1e300], "fitted.y_mean_[0]"),
    ("fitted", "y_mean_", DELETE, "fitted.y_mean_: is missing"),
    ("fitted", "instructions_", [], "fitted.instructions_"),
    ("fitted", "instructions_", [5], "fitted.instructions_[0]"),
    ("fitted", "instructions_", ["a\udc00"], "not valid Unicode"),
    ("fitted", "n_iter_", -1, "fitted.n_iter_"),
    ("fitted", "lr_", 0, "fitted.lr_"),
    ("fitted", "history_", "x", "fitted.history_"),
    ("fitted", "history_", [{"epoch": 1}], "fitted.history_[0].loss"),
    ("fitted", "history_", [[[[[[]]]]]], "nested deeper"),
    ("fitted", "backbone_info_", {}, "fitted.backbone_info_.name"),
    ("fitted", "backbone_info_.std", [1.0, 0.0, 1.0], "fitted.backbone_info_.std[1]"),
    ("fitted", "backbone_info_.image_dim", 32, "adapter_config.image_dim"),
    ("fitted", "cache_info_", {"kind": "disk"}, "fitted.cache_info_.hits"),
    ("fitted", "cache_info_.kind", "/tmp", "fitted.cache_info_.kind"),
    # params: the estimator's own table, the known names only.
    ("params", "batch_size", 1, "batch_size=1"),
    ("params", "n_heads", "8", "n_heads='8'"),
    ("params", "predict", 1, "params.predict: is not a known key"),
    ("params", "backbone", "ViT-B-32", "params.backbone"),
    ("params", "instruction", "x" * 5000, "params.instruction"),
    ("params", "random_state", 2**64, "does not fit in 64 bits"),
    # metadata
    ("metadata", "format_version", "one", "metadata.format_version"),
    ("metadata", "format_version", "0", "metadata.format_version"),
    ("metadata", "skrank_version", "\x1b[2J", "metadata.skrank_version"),
    ("metadata", "extra", "1", "metadata.extra: is not a known key"),
    ("metadata", "fitted", DELETE, "metadata.fitted: is missing"),
    ("metadata", "params", "[" * 5000, "params: is not valid JSON"),
    ("metadata", "params", "[" * 300_000, "params: has"),
    ("metadata", "fitted", '{"a": 1, "a": 2}', "appears twice"),
    ("metadata", "adapter_config", "NaN", "adapter_config: nan is not a JSON object"),
]


@pytest.mark.parametrize(("doc", "key", "value", "field"), FIELD_CASES)
def test_load_refuses_each_bad_field_by_name(saved, tmp_path, doc, key, value, field):
    meta, tensors = parts(saved)
    path = tmp_path / "bad.skrank"
    save_file(tensors, str(path), metadata=edited(meta, doc, key, value))
    with pytest.raises(ValueError) as info:
        load(path)
    assert str(path) in str(info.value) and field in str(info.value)


def test_load_refuses_a_config_that_asks_for_too_much_memory(saved, tmp_path):
    """Within every field's bound, a config whose weights would pass 4 GiB (here 4
    fusion layers of width 4096) is refused before anything is allocated."""
    meta, tensors = parts(saved)
    meta = edited(
        edited(meta, "adapter_config", "d_model", 4096), "adapter_config", "n_fusion_layers", 4
    )
    path = tmp_path / "huge.skrank"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match="adapter_config: asks for .* bytes of weights"):
        load(path)


def _swap(tensors):
    tensors["prompt"], tensors["relation.tokens"] = tensors["relation.tokens"], tensors["prompt"]


TENSOR_CASES = [
    (lambda t: t.update(prompt=t["prompt"].long()), "is I64"),
    (lambda t: t.update(prompt=t["prompt"].double()), "is F64"),
    (lambda t: t.update(prompt=t["prompt"].half()), "is F16"),
    (lambda t: t["prompt"].view(-1).__setitem__(0, float("nan")), "NaN or infinite"),
    (lambda t: t["prompt"].view(-1).__setitem__(0, float("-inf")), "NaN or infinite"),
    (lambda t: t["prompt"].mul_(1e30), "beyond the |weight|"),
    (lambda t: t.update(prompt=t["prompt"].reshape(-1)), "the adapter config implies"),
    (lambda t: t.update(prompt=t["prompt"][:-1].clone()), "the adapter config implies"),
    (_swap, "the adapter config implies"),
    (lambda t: t.pop("prompt"), "'prompt': is missing"),
    (lambda t: t.update(extra=torch.zeros(1)), "'extra': is not a tensor of this adapter"),
]


@pytest.mark.parametrize(("change", "message"), TENSOR_CASES)
def test_load_refuses_tensors_the_config_does_not_imply(saved, tmp_path, change, message):
    meta, tensors = parts(saved)
    assert tensors["prompt"].shape != tensors["relation.tokens"].shape
    tensors = {k: v.clone() for k, v in tensors.items()}
    change(tensors)
    path = tmp_path / "bad.skrank"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match="tensor") as info:
        load(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_load_checks_the_file_size_and_header_length(saved, tmp_path):
    data = saved.read_bytes()
    for name, bad in [
        ("short", data[:5]),
        ("huge-header", (2**40).to_bytes(8, "little") + data[8:]),
        ("trailing", data + b"\0" * 16),
    ]:
        path = tmp_path / f"{name}.skrank"
        path.write_bytes(bad)
        with pytest.raises(ValueError, match="skrank model file"):
            load(path)


def test_load_builds_nothing_on_the_cpu_before_the_checks_and_leaves_the_rng(saved):
    state = torch.random.get_rng_state()
    loaded = load(saved)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(p.device.type == "cpu" and p.requires_grad for p in loaded.adapter_.parameters())
    assert not loaded.adapter_.training


def test_a_loaded_ranker_warm_starts(saved):
    loaded = load(saved).set_params(warm_start=True, max_epochs=1, batch_size=8)
    before = {k: v.clone() for k, v in loaded.adapter_.state_dict().items()}
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 256, 32)]
    loaded.fit(images, np.arange(8.0))
    after = loaded.adapter_.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- save: what it takes


def test_save_refuses_a_pipeline_or_a_search_saying_what_to_do(tiny_fitted, tmp_path):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipeline = make_pipeline(FunctionTransformer(), a_copy(tiny_fitted))
    with pytest.raises(TypeError, match="not a Pipeline") as info:
        save(pipeline, tmp_path / "m.skrank")
    assert "skrank.save(pipeline[-1], path)" in str(info.value)
    assert "joblib.dump(pipeline" in str(info.value) and "trust" in str(info.value)
    search = GridSearchCV(tiny_ranker(), {"lr": [1e-3, 1e-2]})
    with pytest.raises(TypeError, match="not a GridSearchCV") as info:
        save(search, tmp_path / "m.skrank")
    assert "skrank.save(search.best_estimator_, path)" in str(info.value)
    assert "joblib.dump(search" in str(info.value)
    with pytest.raises(TypeError, match=r"best_estimator_\[-1\]"):
        save(GridSearchCV(pipeline, {}), tmp_path / "m.skrank")
    with pytest.raises(TypeError, match="not the class CLIPRanker"):
        save(skrank.CLIPRanker, tmp_path / "m.skrank")
    assert os.listdir(tmp_path) == []
    # What the message advises works: the step saves, and the whole pipeline pickles.
    save(pipeline[-1], tmp_path / "step.skrank")
    joblib.dump(pipeline, tmp_path / "pipeline.joblib")
    images = np.random.default_rng(0).random((3, 32, 32, 3))
    expected = pipeline.predict(list(images))
    np.testing.assert_array_equal(load(tmp_path / "step.skrank").predict(list(images)), expected)
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "pipeline.joblib").predict(list(images)), expected
    )


# --------------------------------------------------------------------------- the cli record


def test_the_command_lines_record_is_optional_and_round_trips(tiny_fitted, saved, tmp_path):
    from skrank.persistence._io import load_with_cli, save_with_cli

    assert "cli" not in parts(saved)[0]  # skrank.save writes none
    assert load_with_cli(saved)[1] == {}
    path = tmp_path / "cli.skrank"
    save_with_cli(tiny_fitted, path, {"target_column": "âge (years)"})
    meta, _ = parts(path)
    assert json.loads(meta["cli"]) == {"target_column": "âge (years)"}
    ranker, record = load_with_cli(path)
    assert record == {"target_column": "âge (years)"}
    probe = np.random.default_rng(0).random((3, 32, 32, 3))
    np.testing.assert_array_equal(load(path).predict(probe), tiny_fitted.predict(probe))
    assert not hasattr(ranker, "target_column") and not hasattr(ranker, "target_column_")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[]", "cli: [] is not a JSON object"),
        ('"age"', "cli: 'age' is not a JSON object"),
        ('{"target_column": 5}', "cli.target_column: 5 is not a column name"),
        ('{"target_column": ""}', "cli.target_column: '' is not a column name"),
        ('{"target_column": null}', "cli.target_column: None is not a column name"),
        ('{"target_column": ["a"]}', "cli.target_column"),
        ('{"image_column": "x"}', "cli.image_column: is not a known key"),
        ('{"target_column": "' + "x" * 5000 + '"}', "cli.target_column: is a string of 5000"),
        ('{"target_column": "a\\udc00"}', "not valid Unicode"),
        ('{"target_column": "a", "target_column": "b"}', "appears twice"),
        ("{", "cli: is not valid JSON"),
        ("x" * 20_000, "metadata.cli: has 20000 characters"),
    ],
)
def test_load_refuses_a_malformed_cli_record_by_name(saved, tmp_path, text, field):
    meta, tensors = parts(saved)
    path = tmp_path / "bad-cli.skrank"
    save_file(tensors, str(path), metadata={**meta, "cli": text})
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and field in message and len(message.splitlines()) == 1


def test_save_with_cli_refuses_a_record_load_would_refuse(tiny_fitted, tmp_path):
    from skrank.persistence._io import save_with_cli

    for record, field in [({"target_column": ""}, "cli.target_column"), ({"y": "a"}, "cli.y")]:
        with pytest.raises(ValueError, match="cannot save") as info:
            save_with_cli(tiny_fitted, tmp_path / "m.skrank", record)
        assert field in str(info.value)
    assert os.listdir(tmp_path) == []
    save_with_cli(tiny_fitted, tmp_path / "m.skrank", {})  # empty: a plain file
    assert "cli" not in parts(tmp_path / "m.skrank")[0]
