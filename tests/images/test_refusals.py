"""Refused images: every way an image can be unreadable is refused, named and gathered.

Decoding never reaches a Pillow plugin outside ``DECODED_FORMATS`` (EPS runs
Ghostscript); files that are not what their names say, truncated files, odd
paths, bad arrays and odd containers are refused, each failure naming its real
cause on one line of the error. ``fit``, ``predict`` and ``compare`` gather
every unreadable image of a call into one ``ImageLoadError`` (``fit`` before any
training, issue 5), or ``predict`` marks them NaN with ``on_error="nan"``.
"""

import copy
import io
import os
import shutil
import struct
import subprocess
import warnings
from collections import deque

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import EpsImagePlugin, Image

import skrank._estimator.ranker
from skrank import ImageLoadError
from skrank._encoding.diskstore import content_key
from skrank._encoding.images import (
    DECODED_FORMATS,
    Preprocessor,
    as_image_list,
    iter_pixel_batches,
    load_image,
)
from tests.helpers import quick_ranker as quick
from tests.helpers import textured, tiny_ranker, write

pytestmark = pytest.mark.usefixtures("one_thread")

PRE = Preprocessor((16, 16), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
_ROWS, _COLS = np.mgrid[0:12, 0:10]
# Smooth, so that lossy formats stay close to it; three distinct channels.
PIXELS = np.stack([_ROWS * 20, _COLS * 25, 255 - _ROWS * 10 - _COLS * 5], -1).astype(np.uint8)

POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 12 10\n0 0 moveto showpage\n%%EOF\n"


def dos_eps(postscript: bytes) -> bytes:
    """The DOS EPS binary header (magic, offset and length of the PostScript) before it."""
    header = struct.pack("<IIIIIIIH", 0xC6D3D0C5, 30, len(postscript), 0, 0, 0, 0, 0xFFFF)
    return header + postscript


def saved(fmt: str, img: Image.Image | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    (img or Image.fromarray(PIXELS)).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def no_foreign_decoder(monkeypatch):
    """Fail the test if any plugin outside the allow-list, or any external program, is used.

    Every non-allowed format's opener in Pillow's registry is replaced by one
    that records the call, and so are the ways to start a program.
    """
    calls = []
    Image.init()
    for fmt, (_, accept) in list(Image.OPEN.items()):
        if fmt not in DECODED_FORMATS:

            def refuse(*args, _fmt=fmt, **kwargs):
                calls.append(f"Pillow {_fmt} plugin")
                raise AssertionError(f"the {_fmt} plugin must not be used")

            monkeypatch.setitem(Image.OPEN, fmt, (refuse, accept))

    def external(name):
        def run(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} must not be called")

        return run

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, external(f"subprocess.{name}"))
    monkeypatch.setattr(shutil, "which", external("shutil.which"))
    monkeypatch.setattr(os, "system", external("os.system"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", external("Ghostscript"))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", external("has_ghostscript"))
    yield calls
    assert calls == []


def reason_of(item) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_image(item)
    [(index, _, reason)] = info.value.failures
    assert index == 0 and "\n" not in reason
    return reason


# --------------------------------------------------------------------------- formats

REFUSED = {
    "eps": (POSTSCRIPT, "EPS (PostScript)"),
    "dos_eps": (dos_eps(POSTSCRIPT), "EPS (PostScript)"),
    "plain_postscript": (b"%!PS\n/Times findfont 12 scalefont setfont\nshowpage\n", "EPS"),
    "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n", "PDF"),
    "svg": (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    "svg_bom": (b'\xef\xbb\xbf  <svg width="4" height="4"></svg>', "SVG"),
    "html": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
    "heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC"),
    "avif_header": (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(64), "AVIF"),
    "mp4": (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64), "MP4"),
    "psd": (b"8BPS\x00\x01" + bytes(64), "PSD"),
    "zip": (b"PK\x03\x04" + bytes(64), "ZIP"),
    "tga": (saved("TGA"), "TGA"),
    "ico": (saved("ICO"), "ICO"),
    "pcx": (saved("PCX"), "PCX"),
    "sgi": (saved("SGI"), "SGI"),
    "qoi": (saved("QOI"), "QOI"),
    "dds": (saved("DDS"), "DDS"),
    "im": (b"Image type: RGB image\r\nName: x\r\nImage size (x*y): 4*4\r\n\x1a", "IM"),
    "xbm": (saved("XBM", Image.fromarray(PIXELS).convert("1")), "XBM"),
    "jpeg2000": (saved("JPEG2000"), "JPEG 2000"),
    "avif": (saved("AVIF"), "AVIF"),
}


@pytest.mark.parametrize("name", ["x.jpg", "x.png"])
@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_file_in_another_format_is_refused_naming_it(tmp_path, no_foreign_decoder, kind, name):
    data, words = REFUSED[kind]
    path = tmp_path / name
    path.write_bytes(data)
    reason = reason_of(str(path))
    assert reason.startswith(f"unsupported format {words}"), reason
    assert "skrank decodes only JPEG, PNG" in reason
    [(ok, _, failures)] = list(iter_pixel_batches([str(path)], PRE, 1))
    assert len(ok) == 0 and failures == [(0, str(path), reason)]


@pytest.mark.parametrize("cache", ["memory", "disk", None])
def test_postscript_never_reaches_ghostscript_through_the_ranker(
    tmp_path, brightness_task, no_foreign_decoder, cache
):
    good = [tmp_path / f"good{i}.png" for i in range(3)]
    for i, path in enumerate(good):
        Image.fromarray(brightness_task["X_train"][i]).save(path)
    trap = tmp_path / "holiday.jpg"
    trap.write_bytes(dos_eps(POSTSCRIPT))
    X, y = [str(p) for p in good] + [str(trap)], [0.0, 1.0, 2.0, 3.0]
    ranker = tiny_ranker(cache=cache, cache_dir=tmp_path / "cache", max_epochs=1)
    with pytest.raises(ImageLoadError, match=r"\[3\] .*holiday.jpg: unsupported format EPS"):
        ranker.fit(X, y)
    ranker.fit(X[:3], y[:3])
    with pytest.warns(UserWarning, match="unsupported format EPS"):
        pred = ranker.predict(X, on_error="nan")
    assert np.isnan(pred[3]) and np.isfinite(pred[:3]).all()


def test_a_lazily_opened_pil_image_of_another_format_is_refused_before_loading(
    tmp_path, monkeypatch
):
    path = tmp_path / "drawing.eps"
    path.write_bytes(POSTSCRIPT)
    img = Image.open(path)  # the caller's own full-plugin open: parses the header only
    assert img.format == "EPS" and img.tile
    loads = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", lambda self, *a: loads.append(1))
    assert "unsupported format EPS (PostScript)" in reason_of(img)
    assert "not loaded yet" in reason_of(img)
    with pytest.raises(ImageLoadError, match="unsupported format EPS"):
        content_key(img)
    assert loads == [] and img.tile  # still not loaded


def test_a_loaded_pil_image_is_used_whatever_its_format(tmp_path):
    path = tmp_path / "icon.tga"
    Image.fromarray(PIXELS).save(path)
    img = Image.open(path)
    img.load()
    assert img.format == "TGA" and not img.tile
    np.testing.assert_array_equal(np.asarray(load_image(img)), PIXELS)


def _mpo() -> bytes:
    second = Image.fromarray(255 - PIXELS)
    return saved("MPO", save_all=True, append_images=[second], quality=95)


ALLOWED = {  # kind: (bytes, Pillow opener, lossless? None: lossless after a conversion)
    "png": (lambda: saved("PNG"), "PNG", True),
    "apng": (
        lambda: saved("PNG", save_all=True, append_images=[Image.new("RGB", (10, 12))]),
        "PNG",
        True,
    ),
    "jpeg": (lambda: saved("JPEG", quality=95), "JPEG", False),
    "mpo": (_mpo, "JPEG", False),
    "webp_lossless": (lambda: saved("WEBP", lossless=True), "WEBP", True),
    "webp": (lambda: saved("WEBP", quality=90), "WEBP", False),
    "tiff": (lambda: saved("TIFF"), "TIFF", True),
    "tiff_lzw": (lambda: saved("TIFF", compression="tiff_lzw"), "TIFF", True),
    "bmp": (lambda: saved("BMP"), "BMP", True),
    "gif": (lambda: saved("GIF", Image.fromarray(PIXELS).quantize(256)), "GIF", None),
    "ppm": (lambda: saved("PPM"), "PPM", True),
    "pgm": (lambda: saved("PPM", Image.fromarray(PIXELS).convert("L")), "PPM", None),
    "pbm": (lambda: saved("PPM", Image.fromarray(PIXELS).convert("1")), "PPM", None),
}


@pytest.mark.parametrize("kind", sorted(ALLOWED))
def test_every_allowed_format_decodes(tmp_path, no_foreign_decoder, kind):
    make, opener, lossless = ALLOWED[kind]
    data = make()
    path = tmp_path / "image.bin"  # the content decides, not the name
    path.write_bytes(data)
    rgb = np.asarray(load_image(str(path)))
    with Image.open(io.BytesIO(data), formats=[opener]) as reference:
        assert reference.format in DECODED_FORMATS
        expected = np.asarray(reference.convert("RGB"))  # the first frame
    assert rgb.shape == (12, 10, 3)
    np.testing.assert_array_equal(rgb, expected)
    if lossless:
        np.testing.assert_array_equal(rgb, PIXELS)
    elif lossless is False:
        assert np.abs(rgb.astype(int) - PIXELS).mean() < 12


def test_a_damaged_allowed_file_is_not_reported_as_another_format(tmp_path, no_foreign_decoder):
    path = tmp_path / "cut.png"
    path.write_bytes(saved("PNG")[:20])
    reason = reason_of(str(path))
    assert "unsupported format" not in reason
    path.write_bytes(b"these are my notes, not a JPEG\n")
    assert reason_of(str(path)).startswith("not an image file")


def test_a_huge_file_is_refused_without_being_read(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "huge.png"
    with open(path, "wb") as fh:  # sparse: no disk space used
        fh.truncate(1000 * 16 + (64 << 20) + 1)
    assert reason_of(str(path)).startswith("file too large")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_an_image_does_not_block(tmp_path):
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    assert reason_of(str(path)) == "not a regular file"
    assert content_key(str(path)) is None


# --------------------------------------------------------------------------- messages

ODD_NAMES = {
    "newline": "two\nlines.png",
    "carriage_return": "over\rwritten.png",
    "tab": "tab\there.png",
    "escape": "\x1b[31mred.png",
    "trailing_space": "photo.png ",
    "undecodable_bytes": os.fsdecode(b"caf\xe9.png"),
}


def test_every_failure_stays_on_its_own_line_with_its_reason(tmp_path):
    items = [str(tmp_path / name) for name in ODD_NAMES.values()] + ["", str(tmp_path / "ok.png")]
    [(_, _, failures)] = list(iter_pixel_batches(items, PRE, len(items)))
    message = str(ImageLoadError(failures))
    lines = message.splitlines()
    assert len(lines) == 1 + len(items)
    for line, (index, path, reason) in zip(lines[1:], failures):
        assert reason == "file not found"
        assert line.startswith(f"  [{index}] ") and line.endswith(": file not found")
        shown = line[len(f"  [{index}] ") : -len(": file not found")]
        if path == str(tmp_path / "ok.png"):
            assert shown == path  # ordinary names are shown as they are
        else:
            assert shown == repr(path)  # odd ones unambiguously
    assert ImageLoadError(failures).failures == failures  # the data keep the real names


def test_a_reason_with_control_characters_stays_on_one_line():
    message = str(ImageLoadError([(3, None, "bad\nthing\x1b[0m"), (4, "a.png", "fine")]))
    assert message.splitlines()[1:] == ["  [3]: bad\\nthing\\x1b[0m", "  [4] a.png: fine"]


# --------------------------------------------------------------------------- containers

IMG = np.zeros((4, 4, 3), np.uint8)
REFUSED_CONTAINERS = {
    "generator": (lambda: (x for x in [IMG, IMG]), TypeError, "generator.*list\\(X\\)"),
    "list_iterator": (lambda: iter([IMG]), TypeError, "list_iterator.*only once"),
    "map": (lambda: map(np.asarray, [IMG]), TypeError, "map.*only once"),
    "set": (lambda: {"a.png", "b.png"}, TypeError, "set, which has no order"),
    "frozenset": (lambda: frozenset({"a.png"}), TypeError, "frozenset, which has no order"),
    "dict": (lambda: {"a": IMG}, TypeError, "dict: pass a list of its values"),
    "dict_values": (lambda: {"a": IMG}.values(), TypeError, "dict_values"),
    "dict_keys": (lambda: {"a.png": 1}.keys(), TypeError, "dict_keys"),
    "str": (lambda: "a.png", TypeError, "single path 'a.png': wrap it in a list"),
    "pathlike": (lambda: __import__("pathlib").Path("a.png"), TypeError, "single path"),
    "bytes": (lambda: b"\x89PNG\r\n", TypeError, "bytes .*write them to a file"),
    "pil": (lambda: Image.new("RGB", (4, 4)), TypeError, "single PIL image"),
    "one_2d_array": (lambda: IMG[..., 0], ValueError, "single image"),
    "one_3d_array": (lambda: IMG, ValueError, "single image"),
    "channels_first": (lambda: np.zeros((2, 3, 8, 8), np.uint8), ValueError, "channels-first"),
    "5d_array": (lambda: np.zeros((1, 2, 4, 4, 3), np.uint8), ValueError, "must be 4-D"),
    "0d_array": (lambda: np.array(3), ValueError, "must be 4-D"),
    "numbers": (lambda: np.arange(3), ValueError, "must be 4-D"),
    "tensor": (lambda: torch.zeros(2, 4, 4, 3), TypeError, "torch tensor of shape"),
    "int": (lambda: 7, TypeError, "got an object of type int"),
    "dataframe": (lambda: pd.DataFrame({"image": [IMG]}), TypeError, "DataFrame"),
}


@pytest.mark.parametrize("kind", sorted(REFUSED_CONTAINERS))
def test_an_odd_container_is_refused_naming_the_problem(kind):
    make, error, words = REFUSED_CONTAINERS[kind]
    with pytest.raises(error, match=words):
        as_image_list(make())


ACCEPTED_CONTAINERS = {
    "list": lambda: [IMG, IMG],
    "tuple": lambda: (IMG, IMG),
    "deque": lambda: deque([IMG, IMG]),
    "series": lambda: pd.Series([IMG, IMG], index=[7, 3]),
    "index": lambda: pd.Index(["a.png", "b.png"]),
    "4d_array": lambda: np.stack([IMG, IMG]),
    "paths_array": lambda: np.array(["a.png", "b.png"]),
    "objects_array": lambda: objects(IMG, "a.png"),
}


def objects(*items):
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


@pytest.mark.parametrize("kind", sorted(ACCEPTED_CONTAINERS))
def test_a_sequence_of_images_gives_its_items(kind):
    items = as_image_list(ACCEPTED_CONTAINERS[kind]())
    assert isinstance(items, list) and len(items) == 2


def test_fit_refuses_a_generator_instead_of_calling_it_empty(brightness_task):
    X, y = brightness_task["X_train"][:8], brightness_task["y_train"][:8]
    with pytest.raises(TypeError, match="generator") as info:
        tiny_ranker(max_epochs=1).fit((x for x in X), y)
    assert "no images" not in str(info.value)


# --------------------------------------------------------------------------- truncated files


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
    from skrank._encoding.images import load_image

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

    from skrank._encoding.images import load_image

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (37, 23, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / "whole.png"
    image.save(path)
    assert load_image(path).size == (23, 37)
    path.write_bytes(short_png(64, height=64))  # all its rows: the builder is sound
    assert load_image(path).size == (64, 64)


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
    from skrank._encoding.images import load_image

    path = tmp_path / "interlaced.png"
    path.write_bytes(_interlaced_png(1.0))
    assert load_image(path).size == (16, 16)
    path.write_bytes(_interlaced_png(0.5))
    with pytest.raises(ImageLoadError, match=r"truncated: .* bytes \(interlaced\)"):
        load_image(path)


# --------------------------------------------------------------------------- unreadable files


@pytest.fixture
def bad_files(tmp_path, monkeypatch):
    """{kind: (path, words the reason must contain)}; PIL's pixel limit lowered to 1000."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30, 3), np.uint8))

    def truncated(fmt, name, keep):
        buf = io.BytesIO()
        noise.save(buf, fmt)
        path = tmp_path / name
        path.write_bytes(buf.getvalue()[: int(len(buf.getvalue()) * keep)])
        return str(path)

    (tmp_path / "a_folder.png").mkdir()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("these are my notes, not a JPEG\n")
    return {
        "missing": (str(tmp_path / "missing.png"), "not found"),
        "directory": (str(tmp_path / "a_folder.png"), "directory"),
        "empty": (str(tmp_path / "empty.png"), "empty"),
        "truncated_jpeg_header": (truncated("JPEG", "cut_early.jpg", 0.5), "truncated"),
        "truncated_jpeg": (truncated("JPEG", "cut.jpg", 0.75), "truncated"),
        "truncated_png": (truncated("PNG", "cut.png", 0.5), "truncated"),
        "text_as_jpeg": (str(tmp_path / "notes.jpg"), "not an image"),
        "url": ("http://example.com/cat.jpg", "URLs are not supported"),
        # 40×40 = 1.6× the limit (PIL only warns); 64×64 = 4.1× (PIL raises).
        "bomb_warned": (
            write(Image.new("L", (40, 40)), tmp_path / "big.png"),
            "decompression-bomb",
        ),
        "bomb_raised": (
            write(Image.new("L", (64, 64)), tmp_path / "huge.png"),
            "decompression-bomb",
        ),
    }


def mixed(bad_files, tmp_path):
    """Good 16×16 PNG files with every bad file at a different index; returns items, bad."""
    items, bad = [], {}
    for k, (path, words) in enumerate(bad_files.values()):
        level = 30 + 20 * k
        items.append(write(Image.fromarray(textured(level, k)), tmp_path / f"good{k}.png"))
        bad[len(items)] = (path, words)
        items.append(path)
    items.append(write(Image.fromarray(textured(200, 99)), tmp_path / "good_last.png"))
    return items, bad


def assert_names_every_failure(exc, bad):
    assert isinstance(exc, ValueError)
    assert [i for i, _, _ in exc.failures] == sorted(bad)
    message = str(exc)
    for index, path, reason in exc.failures:
        expected_path, words = bad[index]
        assert path == expected_path
        assert words.lower() in reason.lower(), (index, path, reason)
        assert f"[{index}] {path}: {reason}" in message


def refuse(*args, **kwargs):
    raise AssertionError("training must not start when an input is bad")


@pytest.mark.parametrize("cache", ["memory", None, "disk"])
def test_fit_gathers_every_unreadable_file_into_one_error(bad_files, tmp_path, monkeypatch, cache):
    items, bad = mixed(bad_files, tmp_path)
    monkeypatch.setattr(skrank._estimator.ranker, "train", refuse)
    ranker = quick(cache=cache, cache_dir=str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's bomb warning is not shown: skrank refuses
        with pytest.raises(ImageLoadError) as info:
            ranker.fit(items, np.arange(len(items), dtype=float))
    assert_names_every_failure(info.value, bad)
    assert not [a for a in vars(ranker) if a.endswith("_")]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_predict_gathers_every_unreadable_file_into_one_error(
    fitted, bad_files, tmp_path, num_workers
):
    items, bad = mixed(bad_files, tmp_path)
    ranker = copy.deepcopy(fitted).set_params(num_workers=num_workers)
    with warnings.catch_warnings():
        # Decoding threads may let PIL's own warning through (images.py explains why).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageLoadError) as info:
            ranker.predict(items)
    assert_names_every_failure(info.value, bad)


def test_on_error_nan_warns_once_and_keeps_every_good_prediction(fitted, bad_files, tmp_path):
    items, bad = mixed(bad_files, tmp_path)
    good = [i for i in range(len(items)) if i not in bad]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = fitted.predict(items, on_error="nan")
    assert len(caught) == 1
    message = str(caught[0].message)
    for index, (path, _) in bad.items():
        assert f"[{index}] {path}" in message
    assert np.isnan(pred[sorted(bad)]).all()
    alone = fitted.predict([items[i] for i in good])
    np.testing.assert_allclose(pred[good], alone, rtol=1e-6, atol=1e-6)
    assert np.isfinite(pred[good]).all()


@pytest.mark.parametrize("on_error", ["bogus", None, "ignore"])
def test_unknown_on_error_is_a_value_error(fitted, probes, on_error):
    with pytest.raises(ValueError, match=f"on_error={on_error!r}"):
        fitted.predict(probes, on_error=on_error)


def test_unreadable_pil_image_is_reported_not_silently_accepted(fitted, probes):
    """A lazily opened, truncated file handed over as a PIL image is a bad image too."""
    images = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(textured(128, 0, size=32)).save(buf, fmt)
        data = buf.getvalue()
        images.append(Image.open(io.BytesIO(data[: len(data) * 3 // 4])))  # header intact
    with pytest.raises(ImageLoadError) as info:
        fitted.predict(probes[:2] + images)
    assert [i for i, _, _ in info.value.failures] == [2, 3, 4, 5, 6]
    assert all("truncated" in reason for _, _, reason in info.value.failures)


def test_disk_cache_reports_an_unreadable_pil_image(fitted, probes, tmp_path):
    ranker = copy.deepcopy(fitted).set_params(cache="disk", cache_dir=str(tmp_path))
    buf = io.BytesIO()
    Image.fromarray(textured(128, 0, size=32)).save(buf, "PNG")
    cut = Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) * 3 // 4]))
    with pytest.raises(ImageLoadError, match=r"\[1\]: .*truncated"):
        ranker.predict([probes[0], cut])


# --------------------------------------------------------------------------- bad arrays

BAD_ARRAYS = {
    "two_channels": (np.zeros((8, 8, 2), np.uint8), "shape"),
    "five_channels": (np.zeros((8, 8, 5), np.uint8), "shape"),
    "one_d": (np.zeros(8, np.uint8), "shape"),
    "four_d": (np.zeros((2, 8, 8, 3), np.uint8), "shape"),
    "zero_d": (np.array(0.5), "shape"),
    "empty": (np.zeros((0, 8, 3), np.uint8), "empty"),
    "empty_width": (np.zeros((8, 0)), "empty"),
    "nan": (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    "inf": (np.full((8, 8), np.inf), "inf"),
    "float_above_1": (np.full((8, 8, 3), 1.5), "[0, 1]"),
    "float_below_0": (np.full((8, 8, 3), -0.1, np.float16), "[0, 1]"),
    "uint8_range_float": (np.full((8, 8, 3), 200.0), "divide uint8-range data by 255"),
    "int64": (np.full((8, 8, 3), 100, np.int64), "int64"),
    "uint16": (np.full((8, 8), 100, np.uint16), "uint16"),
    "complex": (np.zeros((8, 8, 3), np.complex64), "complex64"),
    "object": (np.full((8, 8, 3), None, object), "object"),
    "none": (None, "unsupported input type NoneType"),
    "number": (3, "unsupported input type int"),
    "tensor": (torch.zeros(8, 8, 3), "unsupported input type Tensor"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
def test_bad_array_is_an_image_load_error_naming_the_reason(kind):
    item, words = BAD_ARRAYS[kind]
    with pytest.raises(ImageLoadError) as info:
        load_image(item)
    [(index, path, reason)] = info.value.failures
    assert (index, path) == (0, None)
    assert words in reason


def test_fit_names_every_bad_array(train_data, monkeypatch):
    X, _ = train_data
    items, bad = list(X[:4]), {}
    for item, words in BAD_ARRAYS.values():
        bad[len(items)] = words
        items += [item, X[len(items) % len(X)]]
    monkeypatch.setattr(skrank._estimator.ranker, "train", refuse)
    with pytest.raises(ImageLoadError) as info:
        quick().fit(items, np.arange(len(items), dtype=float))
    assert [i for i, _, _ in info.value.failures] == sorted(bad)
    for index, path, reason in info.value.failures:
        assert path is None and bad[index] in reason
        assert f"[{index}]: {reason}" in str(info.value)


# --------------------------------------------------------------------------- which row, which side


def test_an_object_column_of_images_and_missing_values(fitted, probes):
    import pandas as pd

    X = pd.DataFrame({"image": pd.Series([probes[0], None, probes[2], np.nan], dtype=object)})
    with pytest.raises(ImageLoadError) as err:
        fitted.predict(X)
    assert err.value.indices == [1, 3]
    with pytest.warns(UserWarning, match="could not be read"):
        pred = fitted.predict(X, on_error="nan")
    assert np.isnan(pred[[1, 3]]).all() and np.isfinite(pred[[0, 2]]).all()


def test_compare_says_which_side_an_unreadable_image_is_on(fitted, probes):
    bad = np.zeros((4, 4, 2), np.uint8)
    with pytest.raises(ImageLoadError) as err:
        fitted.compare(probes[:3], [probes[3], bad, probes[5]])
    (failure,) = err.value.failures
    assert failure[0] == 1 and failure[2].startswith("images_b[1]: array of shape")
    assert "images_b[1]" in str(err.value) and "images_a" not in str(err.value)
    with pytest.raises(ImageLoadError) as err:
        fitted.compare([bad, probes[1], bad], [bad, probes[4], probes[5]])
    sides = [reason.split(":")[0] for _, _, reason in err.value.failures]
    assert sorted(sides) == ["images_a[0]", "images_a[2]", "images_b[0]"]
