"""The training loop on any device: no host sync inside an epoch, divergence still named.

On a GPU every ``.item()``, ``.cpu()`` or ``bool(tensor)`` inside the step
loop stalls the device until the host catches up. These tests run on the CPU
and record every such call that skrank's own code makes on a tensor, so a
per-step sync shows up wherever the tests run.
"""

import sys

import numpy as np
import pytest
import torch

from skrank._model.training import TrainingDivergedError
from tests.helpers import tiny_ranker

SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


@pytest.fixture
def events(monkeypatch):
    """A log of ("sync", method) calls from skrank code and ("step", epoch) marks."""
    log = []
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("skrank"):
                log.append(("sync", _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return log


def fit_logging(log, monkeypatch, **params):
    import skrank._estimator.ranker

    original = skrank._estimator.ranker.train

    def train(*args, **kwargs):
        return original(*args, on_step=lambda epoch, step: log.append(("step", epoch)), **kwargs)

    monkeypatch.setattr(skrank._estimator.ranker, "train", train)
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 8)]  # 32 images
    return tiny_ranker(batch_size=4, **params).fit(images, np.arange(32.0))


@pytest.mark.parametrize("cache", ["memory", "disk", None])
def test_no_host_sync_between_steps_of_an_epoch(events, monkeypatch, tmp_path, cache):
    ranker = fit_logging(events, monkeypatch, cache=cache, cache_dir=tmp_path, max_epochs=2)
    assert ranker.n_iter_ == 2
    for epoch in (1, 2):
        steps = [i for i, e in enumerate(events) if e == ("step", epoch)]
        assert len(steps) >= 6  # 32 images in batches of 4: a real loop to look inside
        inside = [e for e in events[steps[0] : steps[-1]] if e[0] == "sync"]
        assert inside == [], f"host syncs inside epoch {epoch}: {inside}"
    # The epoch's losses are read once, after its last step.
    assert any(e[0] == "sync" for e in events[steps[-1] :])


def test_history_is_still_the_mean_loss_of_each_epoch(monkeypatch):
    ranker = fit_logging([], monkeypatch, max_epochs=2)
    for h in ranker.history_:
        assert isinstance(h["loss"], float) and np.isfinite(h["loss"])
        assert h["loss"] == pytest.approx(h["reg_loss"] + h["rank_loss"], rel=1e-5)


def test_a_loss_that_goes_nan_mid_epoch_is_named_at_its_step(monkeypatch):
    import skrank._model.training

    original = skrank._model.training.regression_loss
    calls = []

    def loss(scores, y):
        calls.append(1)
        out = original(scores, y)
        return out * float("nan") if len(calls) == 3 else out

    monkeypatch.setattr(skrank._model.training, "regression_loss", loss)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1 \(step 3\).*nan"):
        fit_logging([], monkeypatch, max_epochs=2)
    assert len(calls) == 8  # the rest of epoch 1 ran; epoch 2 never started


def test_tokens_go_to_the_gpu_only_when_they_fit_its_share(monkeypatch):
    from skrank._encoding.cache import token_placement

    cuda = torch.device("cuda")
    assert token_placement(10**12, torch.device("cpu")) == "host"
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    assert token_placement(500, cuda) == "device"  # half of the free memory: fits
    assert token_placement(501, cuda) == "pinned"
    assert token_placement(900, cuda, share=0.9) == "device"


@pytest.mark.parametrize("placement", ["host", "device"])
def test_resident_and_disk_token_sources_give_identical_batches(tmp_path, placement):
    from skrank._encoding.backbone import load_backbone
    from skrank._encoding.cache import DiskCache, MemoryCache
    from skrank._encoding.encoder import Encoder

    backbone = load_backbone("skrank-tiny", None, "cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(12)]
    encoder = Encoder(backbone, batch_size=5)
    resident = MemoryCache(encoder, images, augment=True, placement=placement)
    on_disk = DiskCache(encoder, images, augment=True, cache_dir=tmp_path)
    assert resident.info["placement"] == placement
    for _ in range(5):
        idx = rng.choice(12, size=6, replace=False)
        flip = rng.random(6) < 0.5
        a = resident.tokens(idx, flip, backbone.device)
        b = on_disk.tokens(idx, flip, backbone.device)
        assert a.dtype == b.dtype == torch.float32 and a.shape == (6, *a.shape[1:])
        assert torch.equal(a, b)
    assert not torch.equal(
        resident.tokens(idx, np.zeros(6, bool), backbone.device),
        resident.tokens(idx, np.ones(6, bool), backbone.device),
    )


@pytest.mark.parametrize("cache", ["memory", "disk", None])
def test_large_towers_are_released_while_the_adapter_trains_on_cached_tokens(
    cache, tmp_path, monkeypatch
):
    """With cached tokens the fit drops the frozen towers before training (when they are
    large: here any size) and predict rebuilds them; predictions are those of a fit that
    kept them. Without a cache (tokens encoded every step) they stay."""
    import gc
    import weakref

    import skrank._encoding.backbone as backbones
    import skrank._estimator.ranker

    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 25)]
    y = np.arange(10.0)
    common = dict(max_epochs=2, cache=cache, cache_dir=tmp_path / "cache", random_state=0)
    kept = tiny_ranker(**common).fit(images, y).predict(images)
    towers = weakref.ref(backbones.load_backbone("skrank-tiny", None, "cpu"))
    alive = []
    real = skrank._estimator.ranker.train

    def spying(adapter, data, cfg, **hooks):
        gc.collect()
        alive.append(towers() is not None)
        return real(adapter, data, cfg, **hooks)

    monkeypatch.setattr(backbones, "FORGET_BYTES", 0)
    monkeypatch.setattr(skrank._estimator.ranker, "train", spying)
    ranker = tiny_ranker(**common).fit(images, y)
    assert alive == [cache is None]
    np.testing.assert_array_equal(ranker.predict(images), kept)
    assert backbones.weight_bytes(backbones.load_backbone("skrank-tiny", None)) < 2**30
