"""Property tests of the input-conversion layer (skrank._encoding.images), with hypothesis.

Whatever is thrown at it, converting an input either gives a finite (3, 16, 16)
float32 tensor or reports a documented failure (ImageLoadError, or the
``(index, path, reason)`` tuple of ``iter_pixel_batches``): never another
exception. Where the module docstring says what the pixels must be, they are.
"""

import contextlib
import io
import os
import tempfile
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from skrank._encoding.images import (
    DECODED_FORMATS,
    ImageLoadError,
    Preprocessor,
    iter_pixel_batches,
    load_image,
)

PRE = Preprocessor((16, 16), (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))


def fast(n):
    """``n`` examples, no per-example deadline (the first one pays for imports)."""
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def convert(item, path=None, again=None):
    """(pixels or None, reason or None) through both public entry points, checked.

    ``again`` is a fresh copy of ``item`` for the second entry point, for PIL
    images opened from damaged bytes: Pillow marks an image loaded even after
    its decoding failed, so only the first attempt can tell.
    """
    [(ok, px, failures)] = list(iter_pixel_batches([item], PRE, batch_size=1))
    assert px.dtype == torch.float32
    try:
        rgb = load_image(item if again is None else again)
    except ImageLoadError as exc:
        [(index, where, reason)] = exc.failures
        assert (index, where) == (0, path)
        assert failures == [(0, path, reason)] and len(ok) == 0
        assert tuple(px.shape) == (0, 3, 16, 16)
        assert isinstance(reason, str) and reason and reason in str(exc)
        return None, reason
    assert rgb.mode == "RGB" and rgb.width >= 1 and rgb.height >= 1
    assert failures == [] and ok.tolist() == [0]
    assert tuple(px.shape) == (1, 3, 16, 16) and bool(px.isfinite().all())
    return np.asarray(rgb), None


# --------------------------------------------------------------------------- arrays

VALID_DTYPES = [np.uint8, np.bool_, np.float16, np.float32, np.float64]
OTHER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.complex64]
side = st.integers(0, 9)
shapes = st.one_of(
    st.tuples(side, side),
    st.tuples(side, side, st.sampled_from([1, 2, 3, 4, 5])),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(VALID_DTYPES + OTHER_DTYPES + [object])))
    shape = draw(shapes)
    if dtype.kind == "f":
        width = dtype.itemsize * 8
        unit = st.floats(0, 1, width=width)
        anything = st.floats(width=width, allow_nan=True, allow_infinity=True)
        elements = unit if draw(st.booleans()) else st.one_of(unit, anything)
    elif dtype.kind == "O":
        elements = st.one_of(st.none(), st.integers(0, 255), st.text(max_size=2))
    else:
        elements = hnp.from_dtype(dtype)
    return draw(hnp.arrays(dtype, shape, elements=elements))


def expected_rgb(arr):
    """The documented RGB of an array, or the word its failure reason must contain."""
    if arr.size == 0:
        return "empty"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        return "shape"
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            return "NaN"
        if arr.min() < 0 or arr.max() > 1:
            return "[0, 1]"
        arr = np.round(arr.astype(np.float64) * 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        return str(arr.dtype)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.broadcast_to(arr[:, :, :3], (*arr.shape[:2], 3))


@fast(300)
@given(arrays())
def test_arrays_convert_or_fail_as_documented(arr):
    original = arr.copy()
    rgb, reason = convert(arr)
    expected = expected_rgb(arr)
    if isinstance(expected, str):
        assert rgb is None and expected in reason
    else:
        assert reason is None
        np.testing.assert_array_equal(rgb, expected)
    np.testing.assert_array_equal(arr, original)  # the caller's array is never touched


# --------------------------------------------------------------------------- PIL images

MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "HSV"]
MODES += ["LAB", "I", "I;16", "I;16L", "I;16B", "F"]


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(0, 20)), draw(st.integers(0, 20)))
    n = len(Image.new(mode, size).tobytes())
    if n == 0:
        return Image.new(mode, size)
    img = Image.frombytes(mode, size, draw(st.binary(min_size=n, max_size=n)))
    if mode == "P" and draw(st.booleans()):
        img.info["transparency"] = draw(st.integers(0, 255))
    return img


@fast(200)
@given(pil_images())
def test_pil_images_convert_or_fail_as_documented(img):
    values = np.asarray(img) if img.mode in ("F", "I") or img.mode.startswith("I;16") else None
    rgb, reason = convert(img)
    if img.width == 0 or img.height == 0:
        assert "size" in reason
        return
    if img.mode == "F" and not np.isfinite(values).all():
        assert "NaN" in reason
        return
    assert reason is None
    assert rgb.shape == (img.height, img.width, 3)
    if values is not None and img.mode != "F":  # 16-bit intensities, scaled by 255/65535
        levels = np.clip(np.rint(values.astype(np.float64) / 257), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(rgb, np.repeat(levels[:, :, None], 3, axis=2))
    elif img.mode in ("1", "L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "HSV", "F"):
        np.testing.assert_array_equal(rgb, np.asarray(img.convert("RGB")))


# --------------------------------------------------------------------------- files and paths


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as path:
        yield path


def encoded(fmt, mode):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 17, 3), np.uint8))
    buf = io.BytesIO()
    img.convert(mode).save(buf, fmt)
    return buf.getvalue()


FORMATS = [("PNG", "RGB"), ("PNG", "I;16"), ("JPEG", "RGB"), ("JPEG", "CMYK"), ("GIF", "P")]
FORMATS += [("TIFF", "F"), ("BMP", "RGB"), ("WEBP", "RGB"), ("PPM", "RGB"), ("ICO", "RGBA")]
# Formats skrank refuses (see skrank._encoding.imagefiles), damaged like the others.
FORMATS += [("TGA", "RGB"), ("EPS", "RGB"), ("PCX", "RGB"), ("SGI", "RGB"), ("QOI", "RGB")]
BLOBS = {(fmt, mode): encoded(fmt, mode) for fmt, mode in FORMATS}


@st.composite
def damaged_files(draw):
    """An encoded image, then maybe truncated and maybe with a few bytes overwritten."""
    data = bytearray(BLOBS[draw(st.sampled_from(FORMATS))])
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on corrupt metadata
@fast(150)
@given(data=damaged_files())
def test_damaged_files_decode_or_fail_as_documented(folder, data):
    path = os.path.join(folder, "image.bin")
    with open(path, "wb") as fh:
        fh.write(data)
    convert(path, path=path)
    # The same bytes opened by the caller and handed over as a PIL image.
    try:
        img, again = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(data))
    except Exception:
        return
    convert(img, again=again)


@contextlib.contextmanager
def plugins_outside_the_allow_list_forbidden():
    """Record any use of a Pillow opener outside ``DECODED_FORMATS``."""
    Image.init()
    calls = []

    def forbidden(fmt):
        def factory(*args, **kwargs):
            calls.append(fmt)
            raise AssertionError(f"the {fmt} plugin was used")

        return factory

    swapped = {
        fmt: (forbidden(fmt), accept)
        for fmt, (_, accept) in Image.OPEN.items()
        if fmt not in DECODED_FORMATS
    }
    with mock.patch.dict(Image.OPEN, swapped):
        yield calls


SIGNATURES = [b"", b"%!PS-Adobe-3.0 EPSF-3.0\n", b"\xc5\xd0\xd3\xc6", b"%PDF-1.7\n", b"<svg "]
SIGNATURES += [b"\x00\x00\x00\x18ftypheic", b"\x00\x00\x01\x00\x01\x00", b"8BPS", b"qoif"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on corrupt metadata
@fast(150)
@given(data=damaged_files(), prefix=st.sampled_from(SIGNATURES))
def test_no_file_reaches_a_plugin_outside_the_allow_list(folder, data, prefix):
    path = os.path.join(folder, "photo.jpg")
    with open(path, "wb") as fh:
        fh.write(prefix + data)
    with plugins_outside_the_allow_list_forbidden() as calls:
        rgb, reason = convert(path, path=path)
    assert calls == []
    if reason is None:  # then an allowed plugin decoded it
        with Image.open(path, formats=sorted(DECODED_FORMATS - {"MPO"})) as img:
            assert img.format in DECODED_FORMATS


@fast(100)
@given(st.text(max_size=12))
def test_any_missing_path_or_url_is_a_documented_failure(folder, name):
    path = folder + "/missing/" + name  # not os.path.join: ``name`` may be absolute
    rgb, reason = convert(path, path=path)
    assert rgb is None and "not found" in reason
    rgb, reason = convert("https://" + name, path="https://" + name)
    assert "URLs are not supported" in reason


# --------------------------------------------------------------------------- batches

items = st.one_of(arrays(), pil_images())


@fast(60)
@given(st.lists(items, max_size=7), st.integers(1, 4))
def test_a_batch_reports_exactly_what_single_conversions_report(batch, batch_size):
    singles = [convert(item) for item in batch]
    got_px, got_failures = {}, []
    for ok, px, failures in iter_pixel_batches(batch, PRE, batch_size):
        assert len(ok) + len(failures) <= batch_size and len(px) == len(ok)
        got_px.update(zip(ok.tolist(), px))
        got_failures += failures
    assert [f[0] for f in got_failures] == [i for i, (_, r) in enumerate(singles) if r]
    assert [f[2] for f in got_failures] == [r for _, r in singles if r]
    assert sorted(got_px) == [i for i, (_, r) in enumerate(singles) if r is None]
    for i, px in got_px.items():
        [(_, alone, _)] = list(iter_pixel_batches([batch[i]], PRE, 1))
        assert bool((alone[0] == px).all())
