"""Files, the command line, loaders and I/O under hostile conditions (issue 29).

Special files as destinations, files changed while a model loads, outputs that
cannot be written (a closed stdout, a full device), SIGTERM during a fit, huge
values quoted in messages, errors that must name their cause, and results
that must never be silently wrong.
"""

import errno
import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from skrank import load, save
from skrank._files import NotRegularFileError, atomic_write
from tests.helpers import tiny_ranker

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def small_images(n=8, size=16):
    """``n`` graded grey images as uint8 arrays."""
    return [np.full((size, size, 3), 20 + 25 * i, np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def saved(tiny_fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile-io") / "model.skrank"
    save(tiny_fitted, path)
    return path


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


@needs_fifo
def test_a_fifo_where_a_cache_entry_goes_is_left_and_reported(tmp_path):
    from skrank.diskstore import content_key

    X, y = small_images(), np.arange(8.0)
    cache_dir = tmp_path / "cache"
    ranker = tiny_ranker(cache="disk", cache_dir=cache_dir, max_epochs=1, batch_size=4)
    ranker.fit(X, y)
    entry = next(p for p in cache_dir.rglob("*.npy") if content_key(X[3]) in p.name)
    entry.unlink()
    os.mkfifo(entry)
    again = tiny_ranker(cache="disk", cache_dir=cache_dir, max_epochs=1, batch_size=4)
    with pytest.warns(UserWarning) as record:
        again.fit(X, y)  # recomputes the entry it cannot read, and cannot store it
    assert any("could not write 1 token cache entry" in str(w.message) for w in record)
    assert stat.S_ISFIFO(os.lstat(entry).st_mode)


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
        import skrank.persistence as p

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


# ---------------------------------------------------------- 6. errors naming their cause


def test_a_read_only_cache_folder_is_named_not_a_missing_file(tmp_path, monkeypatch):
    """The store's folder cannot be made (a read-only file system): say so, not ENOENT."""
    cache_dir = tmp_path / "ro"
    real_mkdir = pathlib.Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):
        if str(self).startswith(str(cache_dir)) and kwargs.get("parents"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only_mkdir)
    ranker = tiny_ranker(cache="disk", cache_dir=cache_dir, max_epochs=1, batch_size=4)
    with pytest.warns(UserWarning, match="could not write") as record:
        ranker.fit(small_images(), np.arange(8.0))
    [message] = [str(w.message) for w in record if "could not write" in str(w.message)]
    assert "the cache folder is not writable" in message and "Read-only" in message
    assert "No such file" not in message
