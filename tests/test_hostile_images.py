"""Hostile image inputs: files that are not what their names say, odd paths, odd containers.

Decoding must never reach a Pillow plugin outside ``DECODED_FORMATS`` (EPS runs
Ghostscript), every failure must name its real cause on one line of the
error, and a container that is not a sequence of images must say so.
"""

import io
import os
import shutil
import struct
import subprocess
from collections import deque

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import EpsImagePlugin, Image

from skrank import ImageLoadError
from skrank.diskstore import content_key
from skrank.images import (
    DECODED_FORMATS,
    Preprocessor,
    as_image_list,
    iter_pixel_batches,
    load_image,
)
from tests.helpers import tiny_ranker

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
