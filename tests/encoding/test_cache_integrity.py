"""The disk cache trusts nothing it finds: every entry is verified on every read.

A damaged entry of any kind is a miss (recomputed, replaced, one warning per
call) and predictions stay those of sound tokens; an image file is read once,
so a file that changes meanwhile cannot store one image's tokens under
another's key; temporaries of killed writers are removed; entries follow the
umask; a cache that cannot be written to still serves what it holds.
"""

import builtins
import copy
import errno
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import time
import warnings
import weakref
from functools import partial

import numpy as np
import pytest
from PIL import Image

import skrank._encoding.diskstore
import skrank._files
from skrank._encoding.backbone import load_backbone
from skrank._encoding.cache import DiskCache
from skrank._encoding.diskstore import DiskStore, content_key
from skrank._encoding.encoder import BOTH, Encoder
from tests import helpers
from tests.helpers import needs_fifo, small_images, tiny_ranker

N = 12
BATCH = 8


pytestmark = pytest.mark.usefixtures("one_thread")


textured = partial(helpers.textured, size=24)  # this module's images: 24 pixels


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, level in enumerate(np.linspace(20, 235, N)):
        path = folder / f"img{i}.png"
        Image.fromarray(textured(level, i)).save(path)
        paths.append(str(path))
    return paths, np.linspace(0.0, 1.0, N)


@pytest.fixture(scope="module")
def clean(files, tmp_path_factory):
    """A ranker fitted through a sound disk cache, that cache, and its predictions."""
    X, y = files
    folder = tmp_path_factory.mktemp("clean-cache")
    ranker = tiny_ranker(cache="disk", cache_dir=folder, max_epochs=1, batch_size=BATCH)
    ranker.fit(X, y)
    return ranker, folder, ranker.predict(X)


def store_at(folder) -> DiskStore:
    return DiskStore(load_backbone("skrank-tiny", None), folder)


def cache_copy(clean, tmp_path):
    ranker, folder, _ = clean
    shutil.copytree(folder, tmp_path / "cache")
    return copy.deepcopy(ranker).set_params(cache_dir=tmp_path / "cache"), store_at(
        tmp_path / "cache"
    )


def cache_warnings(record, words):
    return [str(w.message) for w in record if words in str(w.message)]


# --------------------------------------------------------------------------- damaged entries


def _with_valid_checksum(store, key, flip, payload):
    """An entry whose checksum is right for ``payload``, as only a forger could write."""
    body = store._header + payload
    return body + skrank._encoding.diskstore._MAGIC + store._checksum(key, flip, body)


DAMAGE = {
    "truncated": lambda data, store, key, other: data[: len(data) // 2],
    "empty": lambda data, store, key, other: b"",
    "random_bytes": lambda data, store, key, other: os.urandom(len(data)),
    "random_short": lambda data, store, key, other: os.urandom(100),
    "one_flipped_bit": lambda data, store, key, other: (
        data[:200] + bytes([data[200] ^ 1]) + data[201:]
    ),
    "wrong_shape": lambda data, store, key, other: npy(np.zeros((3, 5), np.float16)),
    "wrong_dtype": lambda data, store, key, other: npy(np.zeros(store.shape, np.float32)),
    "wrong_dtype_same_size": lambda data, store, key, other: (
        npy(np.zeros(store.shape, np.int16)) + data[-40:]
    ),
    "old_format": lambda data, store, key, other: npy(store.read(key, False)),
    "nan_filled": lambda data, store, key, other: (
        data[:128] + np.full(store.shape, np.nan, "<f2").tobytes() + data[-40:]
    ),
    "nan_with_valid_checksum": lambda data, store, key, other: _with_valid_checksum(
        store, key, False, np.full(store.shape, np.nan, "<f2").tobytes()
    ),
    "swapped_from_another_key": lambda data, store, key, other: store.path(
        other, False
    ).read_bytes(),
    "swapped_from_the_mirrored_view": lambda data, store, key, other: store.path(
        key, True
    ).read_bytes(),
}


def npy(arr):
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_entry_is_recomputed_and_replaced(clean, files, tmp_path, encodes, kind):
    X, _ = files
    ranker, store = cache_copy(clean, tmp_path)
    key, other = content_key(X[3]), content_key(X[5])
    sound = store.read(key, False).copy()
    path = store.path(key, False)
    path.write_bytes(DAMAGE[kind](path.read_bytes(), store, key, other))
    assert store.load(key, False)[0] is None  # detected

    with pytest.warns(UserWarning) as record:
        pred = ranker.predict(X)
    [message] = cache_warnings(record, "token cache")
    assert message.startswith("1 token cache entry under ") and str(store.root) in message
    assert sum(encodes) == 1  # only the damaged image was encoded again
    # The same predictions as from sound tokens, and the entry is sound again.
    np.testing.assert_allclose(pred, clean[2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(store.read(key, False), sound, rtol=1e-3, atol=1e-3)
    assert path.stat().st_size == store.entry_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        np.testing.assert_array_equal(ranker.predict(X), pred)
    assert sum(encodes) == 1


def test_predictions_through_the_disk_cache_match_the_memory_cache(clean, files):
    X, y = files
    ranker, _, disk = clean
    memory = tiny_ranker(cache="memory", max_epochs=1, batch_size=BATCH).fit(X, y).predict(X)
    np.testing.assert_allclose(disk, memory, rtol=1e-4, atol=1e-4)  # fp16 tokens vs fp32


def test_one_warning_per_call_names_how_many_entries_were_bad(clean, files, tmp_path):
    X, y = files
    ranker, store = cache_copy(clean, tmp_path)
    for i in (0, 9):  # two different prediction batches
        store.path(content_key(X[i]), False).write_bytes(b"garbage")
    store.path(content_key(X[10]), False).write_bytes(b"")
    with pytest.warns(UserWarning) as record:
        pred = ranker.predict(X)
    [message] = cache_warnings(record, "token cache")
    assert message.startswith("3 token cache entries under") and "2 wrong size, 1 empty" in message
    np.testing.assert_allclose(pred, clean[2], rtol=1e-6, atol=1e-6)

    # fit verifies every entry, both views, before training: one warning again.
    store.path(content_key(X[1]), True).write_bytes(os.urandom(store.entry_bytes))
    store.path(content_key(X[2]), False).write_bytes(b"x")
    refit = tiny_ranker(cache="disk", cache_dir=tmp_path / "cache", max_epochs=1, batch_size=BATCH)
    with pytest.warns(UserWarning) as record:
        refit.fit(X, y)
    [message] = cache_warnings(record, "token cache")
    assert message.startswith("2 token cache entries") and "1 wrong header" in message
    assert refit.cache_info_["hits"] == N - 2 and refit.cache_info_["misses"] == 2
    np.testing.assert_allclose(refit.predict(X), clean[2], rtol=1e-5, atol=1e-5)


def test_an_entry_damaged_during_a_fit_stops_it_rather_than_train_on_it(files, tmp_path):
    X, _ = files
    bb = load_backbone("skrank-tiny", None)
    cache = DiskCache(Encoder(bb, batch_size=BATCH), X, augment=False, cache_dir=tmp_path)
    cache.store.path(content_key(X[0]), False).write_bytes(b"")
    assert cache.tokens(np.array([1]), np.array([False]), "cpu").shape[0] == 1
    with pytest.raises(LookupError, match="is empty.*changed meanwhile"):
        cache.tokens(np.array([1, 0]), np.array([False, False]), "cpu")


# --------------------------------------------------------------------------- one read per file


def test_a_file_that_changes_after_it_is_read_cannot_poison_the_cache(files, tmp_path, monkeypatch):
    """Every way of opening the file is watched; right after the first open the file is
    replaced with another image. Whatever is stored under the original bytes' key must
    be the original image's tokens."""
    X, y = files
    target = tmp_path / "changing.png"
    original, other = textured(30, 100), textured(220, 101)
    Image.fromarray(original).save(target)
    key = content_key(str(target))
    replacement = tmp_path / "other.png"
    Image.fromarray(other).save(replacement)
    opens = []

    def watched(real):
        def opener(file, *args, **kwargs):
            result = real(file, *args, **kwargs)
            if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file) == str(target):
                opens.append(1)
                if len(opens) == 1:  # the file changes as soon as it has been opened once
                    os.replace(shutil.copy(replacement, tmp_path / "swap.png"), target)
            return result

        return opener

    monkeypatch.setattr(os, "open", watched(os.open))
    monkeypatch.setattr(builtins, "open", watched(builtins.open))
    items = [str(target)] + X[:5]
    tiny_ranker(cache="disk", cache_dir=tmp_path / "cache", max_epochs=1).fit(items, y[:6])
    monkeypatch.undo()

    bb = load_backbone("skrank-tiny", None)
    store = DiskStore(bb, tmp_path / "cache")
    [(_, (expected,), _)] = list(Encoder(bb, batch_size=1).stream([original]))
    np.testing.assert_allclose(store.read(key, False), expected[0], atol=2e-3, rtol=2e-3)
    [(_, (wrong,), _)] = list(Encoder(bb, batch_size=1).stream([other]))
    assert not np.allclose(store.read(key, False), wrong[0], atol=2e-3, rtol=2e-3)
    assert len(opens) == 1  # read once: hashed and decoded from the same bytes


def test_file_bytes_held_at_once_stay_within_a_few_batches(tmp_path, monkeypatch):
    paths = []
    for i in range(40):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(textured(6 * i, i, size=8)).save(paths[-1])
    alive, peak = [], [0]
    real = skrank._encoding.diskstore.read_file

    def tracked(item):
        blob = real(item)
        alive.append(weakref.ref(blob))
        peak[0] = max(peak[0], sum(ref() is not None for ref in alive))
        return blob

    monkeypatch.setattr(skrank._encoding.diskstore, "read_file", tracked)
    bb = load_backbone("skrank-tiny", None)
    store = DiskStore(bb, tmp_path / "cache")
    filled = Encoder(bb, batch_size=4).fill(store, paths, range(40), views=BOTH)
    assert filled.failures == [] and filled.misses == 40
    assert peak[0] <= 2 * 4  # one batch pending, one being encoded: not all 40


# --------------------------------------------------------------------------- temporaries, modes


def test_temporaries_of_a_killed_writer_are_removed(tmp_path, monkeypatch):
    store = store_at(tmp_path)
    folder = store.root / "ab"
    folder.mkdir()
    script = (  # loads skrank/_files.py alone: importing skrank would take seconds
        "import importlib.util, sys, time\n"
        "spec = importlib.util.spec_from_file_location('files', sys.argv[1])\n"
        "files = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(files)\n"
        "def slow(path):\n"
        "    open(path, 'wb').write(b'half')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "files.atomic_write(sys.argv[2], slow)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, skrank._files.__file__, str(folder / "entry.npy")],
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout.readline() == b"writing\n"
    finally:
        writer.kill()  # SIGKILL: no cleanup runs
        writer.wait()
    [left] = list(folder.iterdir())
    assert left.name.startswith(skrank._files.TEMP_PREFIX)
    fresh = folder / f"{skrank._files.TEMP_PREFIX}in-progress"
    fresh.write_bytes(b"")
    hours_ago = time.time() - 7200
    os.utime(left, (hours_ago, hours_ago))
    root_left = store.root / f"{skrank._files.TEMP_PREFIX}spec"
    root_left.write_bytes(b"")
    os.utime(root_left, (hours_ago, hours_ago))

    monkeypatch.setattr(skrank._encoding.diskstore, "_SWEPT", set())  # as in a new process
    store_at(tmp_path)
    assert not left.exists() and not root_left.exists()
    assert fresh.exists()  # it may be another process's write in progress
    assert not (folder / "entry.npy").exists()


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_neither_the_entry_nor_a_temporary(tmp_path, failure):
    (tmp_path / "entry.npy").write_bytes(b"previous")

    def fails(path):
        with open(path, "wb") as fh:
            fh.write(b"half")
        raise failure

    with pytest.raises(type(failure)):
        skrank._files.atomic_write(tmp_path / "entry.npy", fails)
    assert [p.name for p in tmp_path.iterdir()] == ["entry.npy"]
    assert (tmp_path / "entry.npy").read_bytes() == b"previous"


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_entries_and_folders_follow_the_umask(files, tmp_path, umask):
    X, y = files
    previous = os.umask(umask)
    try:
        ranker = tiny_ranker(cache="disk", cache_dir=tmp_path / "cache", max_epochs=1)
        ranker.fit(X[:4], y[:4])
    finally:
        os.umask(previous)
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 8  # image and mirrored twin
    for path in entries + list((tmp_path / "cache").rglob("spec.json")):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    for path in [p for p in (tmp_path / "cache").rglob("*") if p.is_dir()]:
        assert path.stat().st_mode & 0o777 == 0o777 & ~umask, path
    assert not list((tmp_path / "cache").rglob(f"{skrank._files.TEMP_PREFIX}*"))


# --------------------------------------------------------------------------- read-only caches


@pytest.fixture
def read_only(monkeypatch):
    """Writes fail as in a folder without write permission (root may write anywhere)."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(skrank._files.tempfile, "mkstemp", refuse)


def test_a_read_only_cache_still_serves_what_it_holds(clean, files, tmp_path, read_only, encodes):
    X, y = files
    ranker, store = cache_copy(clean, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        np.testing.assert_array_equal(ranker.predict(X), clean[2])
        refit = tiny_ranker(
            cache="disk", cache_dir=tmp_path / "cache", max_epochs=1, batch_size=BATCH
        ).fit(X, y)
    assert refit.cache_info_["hits"] == N and sum(encodes) == 0
    np.testing.assert_array_equal(refit.predict(X), clean[2])


def test_a_read_only_cache_computes_what_it_lacks_and_says_once(clean, files, tmp_path, read_only):
    X, y = files
    ranker, store = cache_copy(clean, tmp_path)
    for i in (2, 7):
        store.path(content_key(X[i]), False).unlink()
    with pytest.warns(UserWarning) as record:
        pred = ranker.predict(X)
    [message] = cache_warnings(record, "could not write")
    assert message.startswith("could not write 2 token cache entries under")
    assert "PermissionError" in message
    np.testing.assert_allclose(pred, clean[2], rtol=1e-6, atol=1e-6)

    fresh = tiny_ranker(cache="disk", cache_dir=tmp_path / "empty", max_epochs=1, batch_size=BATCH)
    with pytest.warns(UserWarning) as record:
        fresh.fit(X, y)  # nothing can be stored: the fit keeps its tokens in memory
    [message] = cache_warnings(record, "could not write")
    assert message.startswith(f"could not write {2 * N} token cache entries")
    with pytest.warns(UserWarning, match=f"could not write {N} token cache entries"):
        np.testing.assert_array_equal(fresh.predict(X), clean[2])


def test_a_cache_folder_that_cannot_exist_degrades_to_computing(files, tmp_path, clean):
    X, y = files
    (tmp_path / "a_file").write_text("not a folder")
    ranker = tiny_ranker(
        cache="disk", cache_dir=tmp_path / "a_file" / "cache", max_epochs=1, batch_size=BATCH
    )
    with pytest.warns(UserWarning, match="could not write 24 token cache entries"):
        ranker.fit(X, y)
    with pytest.warns(UserWarning, match="could not write 12 token cache entries"):
        np.testing.assert_array_equal(ranker.predict(X), clean[2])


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_a_folder_without_write_permission_is_read_as_is(clean, files, tmp_path):
    X, _ = files
    ranker, store = cache_copy(clean, tmp_path)
    store.path(content_key(X[4]), False).unlink()
    folders = [p for p in (tmp_path / "cache").rglob("*") if p.is_dir()] + [tmp_path / "cache"]
    for folder in folders:
        folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="could not write 1 token cache entry"):
            np.testing.assert_allclose(ranker.predict(X), clean[2], rtol=1e-6, atol=1e-6)
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_a_backbone_name_never_becomes_a_path_in_the_cache(tmp_path):
    from types import SimpleNamespace

    from skrank._encoding.backbone import load_backbone
    from skrank._encoding.diskstore import DiskStore

    real = load_backbone("skrank-tiny", None)
    hostile = SimpleNamespace(**vars(real))
    hostile.info = {**real.info, "name": "hf-hub:../../../escape/x"}
    store = DiskStore(hostile, tmp_path / "cache")
    assert store.root.parent == tmp_path / "cache" / "tokens"
    assert "/" not in store.root.name and not store.root.name.startswith(".")


def test_one_warning_per_prediction_with_several_instructions_and_in_compare(files, tmp_path):
    import pandas as pd

    X, y = files
    frame = pd.DataFrame(
        {"image": X, "instruction": ["Sort by brightness.", "Sort by darkness."] * (N // 2)}
    )
    target = np.where(frame.index % 2 == 0, y, -y)
    ranker = tiny_ranker(None, cache="disk", cache_dir=tmp_path, max_epochs=1, batch_size=BATCH)
    ranker.fit(frame, target)
    store = store_at(tmp_path)
    for i in (0, 1):  # one bad entry under each instruction
        store.path(content_key(X[i]), False).write_bytes(b"garbage")
    with pytest.warns(UserWarning) as record:
        ranker.predict(frame)
    [message] = cache_warnings(record, "token cache")
    assert message.startswith("2 token cache entries")
    store.path(content_key(X[2]), False).write_bytes(b"")
    store.path(content_key(X[4]), False).write_bytes(b"")
    with pytest.warns(UserWarning) as record:
        ranker.compare(frame.iloc[[2, 6]], frame.iloc[[4, 8]])
    [message] = cache_warnings(record, "token cache")
    assert message.startswith("2 token cache entries")


# --------------------------------------------------- special files and folders that cannot be made


@needs_fifo
def test_a_fifo_where_a_cache_entry_goes_is_left_and_reported(tmp_path):
    from skrank._encoding.diskstore import content_key

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
