"""Odd but valid images (issue 5): every Pillow mode, 16-bit files, EXIF orientation,
animated GIFs, one-pixel and extreme-aspect images decode to their documented RGB and
predict like it."""

import numpy as np
import pytest
from PIL import Image

from skrank import ImageLoadError
from skrank._encoding.images import load_image
from tests.helpers import textured, write

pytestmark = pytest.mark.usefixtures("one_thread")


def base_rgb():
    """20×28 RGB with a gradient, a bright block and noise: every transform shows."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:20, 0:28]
    img = np.stack([xx * 9, yy * 12, (xx + yy) * 5], axis=-1).astype(float)
    img[2:7, 3:10] = 250
    return np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


def as16(gray8):
    """16-bit intensities close to ``gray8`` × 257, with detail below the 8-bit step."""
    detail = np.random.default_rng(2).integers(-128, 129, gray8.shape)
    return (gray8.astype(np.int64) * 257 + detail).clip(0, 65535).astype(np.uint16)


def odd_images():
    """{name: (odd image, the RGB image skrank must see)}."""
    rgb = Image.fromarray(base_rgb())
    gray = rgb.convert("L")
    g = np.asarray(gray)
    alpha = Image.fromarray((np.arange(20 * 28).reshape(20, 28) % 256).astype(np.uint8))
    cases = {}
    for name, img in {
        "1": gray.convert("1"),
        "L": gray,
        "LA": Image.merge("LA", (gray, alpha)),
        "RGBA": Image.merge("RGBA", (*rgb.split(), alpha)),
        "CMYK": rgb.convert("CMYK"),
        "F": Image.fromarray(g.astype(np.float32) * 1.3 - 20.0),  # beyond 0..255: clipped
    }.items():
        cases[name] = (img, img.convert("RGB"))
    palette = rgb.quantize(16)
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    cases["P_transparent"] = (palette, palette.convert("RGB"))
    # 16-bit intensities are scaled by 255/65535, not clipped at 255 (images.py docstring).
    a16 = as16(g)
    scaled = Image.fromarray(np.rint(a16 / 257.0).astype(np.uint8)).convert("RGB")
    cases["I;16"] = (Image.fromarray(a16), scaled)
    a32 = a16.astype(np.int32)
    a32[0, :5] = [-5000, -1, 65535, 70000, 2**31 - 1]  # out of the 16-bit range: clipped
    expected = np.rint(a32 / 257.0).clip(0, 255).astype(np.uint8)
    cases["I"] = (Image.fromarray(a32), Image.fromarray(expected).convert("RGB"))
    return cases


def pixels(img):
    return np.asarray(load_image(img))


def same(a, b):
    """Equal up to float rounding: rows of one batch need not match bit for bit."""
    return bool(np.isclose(a, b, rtol=1e-6, atol=1e-6))


def test_odd_modes_decode_to_their_documented_rgb():
    for name, (img, expected) in odd_images().items():
        np.testing.assert_array_equal(pixels(img), np.asarray(expected), err_msg=name)


def test_odd_modes_predict_like_their_rgb_version(fitted):
    cases = odd_images()
    odd = [img for img, _ in cases.values()]
    rgb = [expected for _, expected in cases.values()]
    np.testing.assert_array_equal(fitted.predict(odd), fitted.predict(rgb))


def test_sixteen_bit_files_are_scaled_not_clipped_to_white(tmp_path):
    half = np.full((6, 9), 32896, np.uint16)  # 128 × 257: mid grey in 16 bits
    for fmt in ("PNG", "TIFF"):
        path = write(Image.fromarray(half), tmp_path / f"grey16.{fmt.lower()}")
        assert Image.open(path).mode == "I;16"
        np.testing.assert_array_equal(pixels(path), np.full((6, 9, 3), 128, np.uint8))
    pgm = tmp_path / "grey16.pgm"  # Pillow decodes 16-bit PGM to mode "I"
    pgm.write_bytes(b"P5\n9 6\n65535\n" + half.astype(">u2").tobytes())
    assert Image.open(pgm).mode == "I"
    np.testing.assert_array_equal(pixels(str(pgm)), np.full((6, 9, 3), 128, np.uint8))


def test_odd_modes_read_from_files_match_the_in_memory_images(tmp_path):
    for name, (img, _) in odd_images().items():
        fmt = "TIFF" if name in ("CMYK", "F", "I") else "PNG"
        path = write(img, tmp_path / f"{name.replace(';', '')}.{fmt.lower()}", fmt)
        np.testing.assert_array_equal(pixels(path), pixels(img), err_msg=name)


def test_float_image_with_nan_is_an_error():
    values = np.zeros((4, 4), np.float32)
    values[1, 2] = np.nan
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(Image.fromarray(values))


@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(fitted, tmp_path, orientation, turns):
    """Orientation 6 is shown turned 90° clockwise, 8 counter-clockwise, 3 upside down."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write(Image.fromarray(base_rgb()), tmp_path / "photo.jpg", exif=exif)
    stored = np.asarray(Image.open(path).convert("RGB"))  # as encoded, orientation ignored
    upright = np.ascontiguousarray(np.rot90(stored, k=turns))
    np.testing.assert_array_equal(pixels(path), upright)
    np.testing.assert_array_equal(pixels(Image.open(path)), upright)
    pred = fitted.predict([path, Image.open(path), upright, stored])
    assert same(pred[0], pred[1]) and same(pred[0], pred[2]) and not same(pred[0], pred[3])


def test_animated_gif_gives_its_first_frame(fitted, tmp_path):
    frames = [Image.fromarray(textured(v, 0, size=20)) for v in (40, 220)]
    path = write(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(path) as gif:
        assert gif.n_frames == 2
        first = gif.convert("RGB")
        gif.seek(1)
        second = gif.convert("RGB")
    np.testing.assert_array_equal(pixels(path), np.asarray(first))
    pred = fitted.predict([path, first, second])
    assert same(pred[0], pred[1]) and not same(pred[0], pred[2])


def test_tiny_and_extreme_aspect_images(fitted, tmp_path):
    strip = np.random.default_rng(0).integers(0, 256, (50, 10000, 3), np.uint8)
    dot = np.array([[[200, 10, 50]]], np.uint8)
    odd = [
        dot,
        Image.fromarray(dot),
        strip,
        write(Image.fromarray(strip), tmp_path / "strip.png"),
        np.ascontiguousarray(strip.transpose(1, 0, 2)),  # 50 wide, 10000 high
    ]
    assert [pixels(x).shape for x in odd] == [(1, 1, 3)] * 2 + [(50, 10000, 3)] * 2 + [
        (10000, 50, 3)
    ]
    pred = fitted.predict(odd)
    assert np.isfinite(pred).all()
    assert same(pred[0], pred[1]) and same(pred[2], pred[3])
