"""save and load under hostile conditions (issue 29).

Special files as destinations (of ``save`` and of every atomic write), files
changed while a model loads, oversized files, overrides and devices that must be
blamed by name rather than the file.
"""

import os
import stat
import subprocess
import sys
import textwrap

import pytest

import skrank._devices
from skrank import load, save
from skrank._files import NotRegularFileError, atomic_write
from tests.helpers import needs_fifo, small_images

# ------------------------------------------------- 1. special files as destinations


@needs_fifo
def test_save_refuses_a_fifo_and_leaves_it(tiny_fitted, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError, match="not a regular file"):
        save(tiny_fitted, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]  # no temporary left either


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mknod needs root")
def test_save_refuses_a_device_and_leaves_it(tiny_fitted, tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    with pytest.raises(OSError, match="not a regular file"):
        save(tiny_fitted, null)
    assert stat.S_ISCHR(os.lstat(null).st_mode)


@needs_fifo
def test_a_link_to_a_fifo_is_refused_a_link_to_a_file_is_replaced(tiny_fitted, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-pipe").symlink_to(tmp_path / "pipe")
    with pytest.raises(NotRegularFileError):
        save(tiny_fitted, tmp_path / "to-pipe")
    assert (tmp_path / "to-pipe").is_symlink()

    (tmp_path / "old.skrank").write_bytes(b"old")
    (tmp_path / "to-file").symlink_to(tmp_path / "old.skrank")
    save(tiny_fitted, tmp_path / "to-file")  # as the command line does: the link is replaced
    assert not (tmp_path / "to-file").is_symlink()
    assert (tmp_path / "old.skrank").read_bytes() == b"old"
    assert load(tmp_path / "to-file").instructions_ == tiny_fitted.instructions_

    from skrank._files import check_destination

    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    check_destination(tmp_path / "dangling")  # nothing there to lose


@needs_fifo
def test_every_atomic_write_refuses_special_files(tmp_path):
    """The disk cache, the command line's outputs and save share one check."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotRegularFileError):
        atomic_write(tmp_path / "pipe", b"data")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "folder", b"data")
    assert sorted(os.listdir(tmp_path)) == ["folder", "pipe"]


# ------------------------------------------------------ 2. files changed while loading


def test_load_reads_the_file_once_without_mapping_it(saved, monkeypatch):
    import safetensors

    def refuse(*args, **kwargs):
        raise AssertionError("a model file must not be memory-mapped")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    assert load(saved).instructions_


def test_a_model_file_truncated_while_it_loads_is_a_clean_error(saved, tmp_path):
    """Truncated after its header was checked: mapped, the process died of SIGBUS."""
    victim = tmp_path / "victim.skrank"
    victim.write_bytes(saved.read_bytes())
    script = textwrap.dedent(
        f"""
        import os
        import skrank.persistence._io as p

        original = p.check_tensor_table

        def truncate_then_check(*args):
            os.truncate({str(victim)!r}, 200)
            return original(*args)

        p.check_tensor_table = truncate_then_check
        try:
            p.load({str(victim)!r})
        except ValueError as exc:
            print("refused:", exc)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "refused:" in done.stdout and "shrank while it was read" in done.stdout


def test_an_oversized_model_file_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.skrank"
    with open(big, "wb") as fh:
        fh.truncate(5 * 2**30)  # sparse: costs no disk
    with pytest.raises(ValueError, match="more than any skrank model holds"):
        load(big)


# --------------------------------------------- 6. causes named; 8. the docs' promises


def with_params(saved, tmp_path, **changes):
    """A copy of the model file ``saved`` with some of its saved parameters changed."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(saved), framework="pt") as fh:
        meta, tensors = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    meta["params"] = json.dumps({**json.loads(meta["params"]), **changes})
    path = tmp_path / "edited.skrank"
    save_file(tensors, str(path), metadata=meta)
    return path


def test_a_wrong_backbone_override_is_blamed_not_the_file(saved):
    with pytest.raises(ValueError) as info:
        load(saved, backbone="ViT-B-32")
    message = str(info.value)
    assert "backbone given does not fit" in message and "damaged" not in message
    assert "not a readable" not in message


@pytest.mark.skipif(skrank._devices.resolve_device("auto").type == "cuda", reason="has CUDA")
def test_a_file_saved_for_an_absent_device_warns_with_the_fix(saved, tmp_path):
    path = with_params(saved, tmp_path, device="cuda")
    with pytest.warns(UserWarning, match=r"saved with device='cuda'.*load\(path, device='cpu'\)"):
        assert load(path).device == "cuda"  # still loads: its parameters can be read anywhere
    assert load(path, device="cpu").predict(small_images(2)).shape == (2,)


def test_a_torch_device_comes_back_as_its_string(tiny_fitted, tmp_path):
    import copy

    import torch

    ranker = copy.deepcopy(tiny_fitted).set_params(device=torch.device("cpu"))
    save(ranker, tmp_path / "m.skrank")
    # docs/persistence.md: equal parameters, but a device as its string (JSON holds no device)
    assert load(tmp_path / "m.skrank").get_params()["device"] == "cpu"
