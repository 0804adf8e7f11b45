"""Files, the command line, loaders and I/O under hostile conditions (issue 29).

Special files as destinations, files changed while a model loads, outputs that
cannot be written (a closed stdout, a full device), SIGTERM during a fit, huge
values quoted in messages, errors that must name their cause, and results
that must never be silently wrong.
"""

import errno
import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import skrank.devices
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


# ------------------------------------------- 3 and 4. the command line's outputs, SIGTERM

TINY_FIT = ("--backbone", "skrank-tiny", "--device", "cpu", "--quiet", "--epochs", "1",
            "--batch-size", "4", "--random-state", "0")  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    """12 graded PNGs, a CSV of them and a model fitted on them by `skrank fit`."""
    import pandas as pd
    from PIL import Image

    from skrank.cli import main

    root = tmp_path_factory.mktemp("cli-io")
    rows = []
    for i in range(12):
        Image.new("RGB", (16, 16), (20 * i, 20 * i, 10 * i)).save(root / f"{i}.png")
        rows.append({"file": f"{i}.png", "y": float(i)})
    pd.DataFrame(rows).to_csv(root / "d.csv", index=False)
    argv = ["fit", "--csv", str(root / "d.csv"), "--image-column", "file", "--target-column"]
    argv += ["y", "--instruction", "Sort by brightness.", "--out", str(root / "m.skrank")]
    assert main([*argv, *TINY_FIT]) == 0
    return root


def skrank_cli(*argv, redirect="", **kwargs):
    """``python -m skrank.cli ARGV`` with a shell redirection of its own (``>&-``)."""
    command = ["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "skrank.cli"]
    return subprocess.run(
        [*command, *map(str, argv)], capture_output=not redirect, env=ENV, text=True,
        timeout=300, **({"stderr": subprocess.PIPE} if redirect else {}),
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ("predict", "{model}", "{root}", "--out", "-"),
        ("evaluate", "{model}", "--csv", "{csv}", "--json"),
    ],
    ids=["predict", "evaluate"],
)
@pytest.mark.parametrize(
    "redirect, needle",
    [
        (">&-", "standard output is closed"),
        ("1<{csv}", "open for reading only"),
        ("> /dev/full", "cannot write to standard output: No space left on device"),
    ],
    ids=["closed", "read-only", "full"],
)
def test_output_to_a_stdout_that_cannot_take_it_fails(cli_data, argv, redirect, needle):
    where = {"model": cli_data / "m.skrank", "root": cli_data, "csv": cli_data / "d.csv"}
    if "full" in redirect and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    done = skrank_cli(*(a.format(**where) for a in argv), redirect=redirect.format(**where))
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skrank {argv[0]}: error:"), done.stderr
    assert needle in lines[0]
    assert "wrote" not in done.stderr


def test_a_full_device_as_out_is_refused_before_the_work(cli_data):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    done = skrank_cli("predict", cli_data / "m.skrank", cli_data, "--out", "/dev/full")
    assert done.returncode == 2 and "is not a regular file" in done.stderr


@pytest.mark.skipif(not hasattr(os, "kill") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_while_fit_writes_the_model_leaves_no_temporary(cli_data, tmp_path):
    """SIGTERM arrives while the model's temporary is half written: cleaned up as Ctrl-C."""
    out, mark = tmp_path / "out", tmp_path / "writing"
    out.mkdir()
    script = textwrap.dedent(
        f"""
        import sys, time
        import safetensors.torch as st
        from skrank.cli import main

        real = st.save_file

        def slow_save(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            open({str(mark)!r}, "w").close()
            time.sleep(120)

        st.save_file = slow_save
        sys.exit(main(sys.argv[1:]))
        """
    )
    argv = ["fit", "--csv", cli_data / "d.csv", "--image-column", "file", "--target-column"]
    argv += ["y", "--instruction", "Sort.", "--out", out / "m.skrank", *TINY_FIT]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, argv)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), proc.communicate(timeout=5)
        assert [p.name for p in out.iterdir()][0].startswith(".tmp-skrank-")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.strip() == "skrank fit: terminated"
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ 5. unbounded echoes

HUGE = 5_000_000


def fit_csv(capsys, csv, out, target="y"):
    from skrank.cli import main

    argv = ["fit", "--csv", str(csv), "--image-column", "file", "--target-column", target]
    rc = main([*argv, "--instruction", "Sort.", "--out", str(out), *TINY_FIT])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("where", ["target", "image", "header"])
def test_a_huge_csv_value_is_quoted_short(cli_data, tmp_path, capsys, where):
    import pandas as pd

    df = pd.read_csv(cli_data / "d.csv")
    df["file"] = [str(cli_data / f) for f in df["file"]]
    df = df.astype(object)
    if where == "target":
        df.loc[3, "y"] = "7" * HUGE
    elif where == "image":
        df.loc[3, "file"] = "a" * HUGE + ".png"
    else:
        df["q" * HUGE] = 1
    df.to_csv(tmp_path / "huge.csv", index=False)
    target = "nope" if where == "header" else "y"
    rc, err = fit_csv(capsys, tmp_path / "huge.csv", tmp_path / "m.skrank", target)
    assert rc == 2
    assert len(err) < 2000, err[:3000]
    if where != "header":  # a list's items are cut by reprlib, without their length
        assert f"({HUGE + (4 if where == 'image' else 0)} characters)" in err


def test_a_huge_parameter_value_is_quoted_short():
    from skrank import CLIPRanker

    with pytest.raises(ValueError) as info:
        CLIPRanker(backbone="skrank-tiny", device="x" * HUGE).fit(small_images(), np.arange(8.0))
    assert len(str(info.value)) < 2000
    assert f"({HUGE} characters)" in str(info.value)


def test_shown_cuts_long_values_and_keeps_short_ones():
    from skrank._quote import shown

    assert shown("abc") == "'abc'"
    assert shown(b"x" * 1000, limit=3) == "b'xxx'... (1000 bytes)"
    assert len(shown(["y" * 10_000] * 10_000)) < 1000


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


def test_complex_targets_are_one_clear_message(tiny_fitted):
    from skrank.inputs import check_targets

    with pytest.raises(TypeError) as info:
        check_targets(np.array([1 + 2j, 3, 4]), 3)
    assert str(info.value) == "y must be real numbers; got complex values (complex128)"


@pytest.mark.skipif(skrank.devices.resolve_device("auto").type == "cuda", reason="has CUDA")
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


# ------------------------------------------------------------ truncated image files


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def short_png(rows: int, height: int = 64, width: int = 64, cut: bool = False) -> bytes:
    """An RGB PNG declaring ``height`` rows whose image data holds ``rows``: a complete
    zlib stream of fewer rows, or (``cut``) the whole stream cut short."""
    import struct
    import zlib

    pixels = np.random.default_rng(0).integers(1, 255, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\0" + pixels[r].tobytes() for r in range(height if cut else rows))
    stream = zlib.compress(raw)
    if cut:
        stream = stream[: len(stream) * rows // height]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    import io

    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    return data[: len(data) * 2 // 3]


@pytest.fixture(params=[False, True], ids=["pillow-default", "LOAD_TRUNCATED_IMAGES"])
def load_truncated(request, monkeypatch):
    """Pillow's own truncation check on (its default) or off, as a user may set it."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", request.param)
    return request.param


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("ten-rows.png", short_png(10), "holds 10 of its 64 rows"),
        ("cut.png", short_png(10, cut=True), "truncated"),
        ("cut.jpg", truncated_jpeg(), "truncated"),
    ],
)
def test_a_truncated_image_file_is_refused(tmp_path, load_truncated, name, data, reason):
    from skrank import ImageLoadError
    from skrank.images import load_image

    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match=reason) as info:
        load_image(path)
    assert info.value.indices == [0]


def test_a_truncated_png_is_an_unreadable_image_in_predict(tiny_fitted, tmp_path):
    from skrank import ImageLoadError

    whole, short = tmp_path / "whole.png", tmp_path / "short.png"
    whole.write_bytes(short_png(64))
    short.write_bytes(short_png(10))
    with pytest.raises(ImageLoadError, match=r"short\.png: truncated") as info:
        tiny_fitted.predict([str(whole), str(short)])
    assert info.value.indices == [1]
    with pytest.warns(UserWarning, match="truncated"):
        out = tiny_fitted.predict([str(whole), str(short)], on_error="nan")
    assert np.isfinite(out[0]) and np.isnan(out[1])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "1", "I;16", "LA"])
def test_complete_pngs_of_every_kind_still_decode(tmp_path, load_truncated, mode):
    from PIL import Image

    from skrank.images import load_image

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (37, 23, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / "whole.png"
    image.save(path)
    assert load_image(path).size == (23, 37)
    path.write_bytes(short_png(64, height=64))  # all its rows: the builder is sound
    assert load_image(path).size == (64, 64)


# ------------------------------------------- dataset files that name their problems


def _loader_tree(kind: str, root: pathlib.Path):
    """A small dataset tree as tests/test_loaders.py builds them; its loader."""
    from tests import test_loaders as tl

    if kind == "koniq":
        return tl._koniq(root), tl.load_koniq10k
    if kind == "ava":
        return tl._ava(root), tl.load_ava
    if kind == "adience":
        return tl._adience(root), tl.load_adience
    raise ValueError(kind)


def _edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


KONIQ_SCORES = "koniq10k_scores_and_distributions.csv"


@pytest.mark.parametrize(
    "kind, file, old, new, column, quoted",
    [
        ("koniq", KONIQ_SCORES, "3.828571428571", "good", "MOS", "'good'"),
        ("koniq", KONIQ_SCORES, "3.828571428571", "", "MOS", "data row 1"),  # empty: NaN
        ("koniq", KONIQ_SCORES, "3.828571428571", "inf", "MOS", "the first inf"),
        ("ava", "AVA.txt", "0 1 5 17", "0 x 5 17", "votes_2", "'x'"),
        ("ava", "AVA.txt", "0 1 5 17", "0 1.5 5 17", "votes_2", "'1.5'"),
        ("ava", "AVA.txt", "953958", "9" * 40, "image_id", "9" * 40),  # beyond int64
        ("ava", "aesthetics_image_lists/generic_test.jpgl", "953958", "x.jpg", "image_id", "x.jpg"),
    ],
)
def test_a_non_numeric_value_names_the_file_and_the_column(
    tmp_path, kind, file, old, new, column, quoted
):
    root, loader = _loader_tree(kind, tmp_path / kind)
    _edit(root / file, old, new)
    with pytest.raises(ValueError, match=f"column '{column}'") as info:
        with warnings.catch_warnings():  # a listed image is missing, as in test_loaders
            warnings.simplefilter("ignore", UserWarning)
            loader(root)
    message = str(info.value)
    assert pathlib.Path(file).name in message and "Expected" in message
    assert quoted in message
    assert len(message) < 2000


def test_a_non_numeric_face_id_of_adience_names_the_fold_file(tmp_path):
    from tests.test_loaders import load_adience

    root, _ = _loader_tree("adience", tmp_path / "adience")
    fold = sorted(root.glob("fold_*_data.txt"))[0]
    lines = fold.read_text().splitlines()
    fields = lines[1].split("\t")
    header = [h.strip() for h in lines[0].split("\t")]
    fields[header.index("face_id")] = "face"
    fold.write_text("\n".join([lines[0], "\t".join(fields), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"{fold.name}: column 'face_id'.*'face'"):
        load_adience(root)


def test_a_csv_pandas_cannot_parse_names_the_file(tmp_path):
    root, loader = _loader_tree("koniq", tmp_path / "koniq")
    (root / KONIQ_SCORES).write_bytes(b'"image_name","MOS"\n"unclosed,1\n')
    with pytest.raises(ValueError, match=f"cannot parse {KONIQ_SCORES}") as info:
        loader(root)
    assert "Expected KonIQ-10k layout" in str(info.value)


def test_an_absurd_age_in_a_utkface_name_is_skipped_and_named(tmp_path):
    from tests.test_loaders import _jpeg, load_utkface

    folder = tmp_path / "UTKFace"
    absurd = "9" * 30 + "_0_0_20170116174525125.jpg.chip.jpg"
    _jpeg(folder / "26_1_2_20170116174525125.jpg.chip.jpg")
    _jpeg(folder / absurd)
    _jpeg(folder / "151_1_2_20170116174525126.jpg.chip.jpg")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) whose age field is over") as rec:
        utk = load_utkface(tmp_path)
    assert absurd[:20] in str(rec[0].message)
    assert utk.target.tolist() == [26]
    (folder / "26_1_2_20170116174525125.jpg.chip.jpg").unlink()
    with pytest.raises(ValueError, match="age over 150") as info:
        load_utkface(tmp_path)
    assert "Expected UTKFace layout" in str(info.value)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"train_id": ' + "[" * 50_000 + "]" * 50_000 + ', "test_id": []}', "nested too deeply"),
        ('{"train_id": [' + "1" * 5000 + '], "test_id": []}', "is not JSON"),
        ('{"train_id": [[["a"]]], "test_id": []}', "ids are strings"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"train_id": ["' + "x" * 100_000 + '"], "test_id": [1.5]}', "ids are strings"),
    ],
    ids=["nested-list", "nested-ids", "huge-int", "list-id", "not-utf8", "float-id"],
)
def test_a_malformed_split_file_names_the_file(tmp_path, content, match):
    from tests.test_loaders import _koniq, load_koniq10k

    root = _koniq(tmp_path / "koniq")
    path = tmp_path / "hostile-split.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            load_koniq10k(root, split_file=path)
    message = str(info.value)
    assert "hostile-split.json" in message and "Expected KonIQ-10k layout" in message
    assert len(message) < 2000


def _interlaced_png(fraction: float, size: int = 16) -> bytes:
    """An interlaced (Adam7) 8-bit RGB PNG whose zlib stream is complete but holds
    ``fraction`` of the image data its header declares."""
    import struct
    import zlib

    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4))
    passes += ((1, 0, 2, 2), (0, 1, 1, 2))
    rng = np.random.default_rng(0)
    raw = b""
    for x0, y0, dx, dy in passes:
        width, height = (size - x0 + dx - 1) // dx, (size - y0 + dy - 1) // dy
        for _ in range(height if width else 0):
            raw += b"\0" + rng.integers(0, 255, 3 * width, dtype=np.uint8).tobytes()
    raw = raw[: int(len(raw) * fraction)]
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def test_an_interlaced_png_is_checked_pass_by_pass(tmp_path, load_truncated):
    from skrank import ImageLoadError
    from skrank.images import load_image

    path = tmp_path / "interlaced.png"
    path.write_bytes(_interlaced_png(1.0))
    assert load_image(path).size == (16, 16)
    path.write_bytes(_interlaced_png(0.5))
    with pytest.raises(ImageLoadError, match=r"truncated: .* bytes \(interlaced\)"):
        load_image(path)
