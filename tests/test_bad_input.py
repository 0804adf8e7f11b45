"""Bad input, faults and atomicity (issue 5): what CLIPRanker does when things go wrong.

Unreadable images are gathered into one ImageLoadError before any training;
odd but valid images work; bad targets and parameters fail in ``fit`` before
the backbone is loaded; a failed, interrupted or diverging fit leaves the
estimator exactly as it was.
"""

import copy
import io
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import skrank.ranker
import skrank.training
from skrank import CLIPRanker, ImageLoadError
from skrank.images import load_image
from skrank.sampling import BatchPlan, epoch_batches
from skrank.training import TrainingDivergedError

INSTR = "Sort the images by brightness."
N_TRAIN = 24
BATCH = 8
PLAN = BatchPlan(BATCH, "balanced", "all")


def quick(instruction=INSTR, **kw):
    params = dict(
        backbone="skrank-tiny", max_epochs=1, batch_size=BATCH, random_state=0, device="cpu"
    )
    return CLIPRanker(instruction, **{**params, **kw})


def textured(level, seed, size=16):
    """A small RGB image of mean brightness ~``level`` with some texture."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-30, 31, (size, size, 3))
    return np.clip(level + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """skrank-tiny's matrices are too small for threads: on a busy machine torch's
    spinning worker threads make a fit ~50× slower than one thread does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def train_data():
    levels = np.linspace(20, 235, N_TRAIN)
    return [textured(v, i) for i, v in enumerate(levels)], levels


@pytest.fixture(scope="module")
def fitted(train_data):
    X, y = train_data
    return quick().fit(X, y)


@pytest.fixture
def probes():
    return [textured(v, 100 + i) for i, v in enumerate(np.linspace(0, 255, 10))]


def write(img, path, fmt=None, **kw):
    img.save(path, fmt, **kw)
    return str(path)


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
    monkeypatch.setattr(skrank.ranker, "train", refuse)
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
    monkeypatch.setattr(skrank.ranker, "train", refuse)
    with pytest.raises(ImageLoadError) as info:
        quick().fit(items, np.arange(len(items), dtype=float))
    assert [i for i, _, _ in info.value.failures] == sorted(bad)
    for index, path, reason in info.value.failures:
        assert path is None and bad[index] in reason
        assert f"[{index}]: {reason}" in str(info.value)


# --------------------------------------------------------------------------- odd but valid images


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


# --------------------------------------------------------------------------- targets and parameters

X4 = [textured(v, i, size=8) for i, v in enumerate((10, 90, 170, 250))]
Y4 = [0.0, 1.0, 2.0, 3.0]

BAD_FITS = {
    "y_nan": (dict(), X4, [0.0, np.nan, 2.0, 3.0], ValueError, r"NaN/inf.*rows \[1\]"),
    "y_inf": (dict(), X4, [0.0, 1.0, np.inf, 3.0], ValueError, r"NaN/inf.*rows \[2\]"),
    "y_text": (dict(), X4, ["a", "b", "c", "d"], TypeError, "y must be numeric.*'a'"),
    "y_none_value": (dict(), X4, [0.0, None, 2.0, 3.0], ValueError, "NaN/inf"),
    "y_missing": (dict(), X4, None, ValueError, "y is required"),
    "y_too_short": (dict(), X4, Y4[:3], ValueError, "4 images but y has 3"),
    "y_2d": (dict(), X4, np.zeros((4, 2)), ValueError, r"1-D.*\(4, 2\)"),
    "one_sample": (dict(), X4[:1], Y4[:1], ValueError, "1 sample"),
    "no_samples": (dict(), [], [], ValueError, "no images"),
    "one_target_value": (dict(), X4, [5.0] * 4, ValueError, "1 distinct target"),
    "empty_instruction": (dict(instruction=""), X4, Y4, ValueError, "instruction=''"),
    "blank_instruction": (dict(instruction="  \n"), X4, Y4, ValueError, "empty"),
    "number_instruction": (dict(instruction=7), X4, Y4, TypeError, "instruction.*int"),
    "negative_lr": (dict(lr=-1e-3), X4, Y4, ValueError, r"lr=-0\.001"),
    "zero_lr": (dict(lr=0.0), X4, Y4, ValueError, r"lr=0\.0"),
    "nan_lr": (dict(lr=math.nan), X4, Y4, ValueError, "lr=nan"),
    "word_lr": (dict(lr="fast"), X4, Y4, ValueError, r"lr='fast'.*\"auto\" or a float"),
    "batch_size_1": (dict(batch_size=1), X4, Y4, ValueError, "batch_size=1.*>= 2"),
    "batch_size_0": (dict(batch_size=0), X4, Y4, ValueError, "batch_size=0"),
    "batch_size_float": (dict(batch_size=8.0), X4, Y4, ValueError, r"batch_size=8\.0"),
    "device_unknown": (dict(device="tpu"), X4, Y4, ValueError, "device='tpu'"),
    "device_garbage": (dict(device="gpu:zero"), X4, Y4, ValueError, "device='gpu:zero'"),
    "device_number": (dict(device=0), X4, Y4, TypeError, "device.*0"),
    "device_cuda": (dict(device="cuda"), X4, Y4, ValueError, "device='cuda'.*not available"),
    "device_cuda_1": (dict(device="cuda:1"), X4, Y4, ValueError, "device='cuda:1'"),
    "negative_fraction_1": (
        dict(negative_fraction=1.0),
        X4,
        Y4,
        ValueError,
        r"negative_fraction=1\.0 \(float\).*a float in \[0, 1\) \(the share of a batch",
    ),
    "negative_fraction_negative": (
        dict(negative_fraction=-0.2),
        X4,
        Y4,
        ValueError,
        r"negative_fraction=-0\.2",
    ),
    "negative_fraction_text": (
        dict(negative_fraction="0.2"),
        X4,
        Y4,
        TypeError,
        r"negative_fraction='0\.2' \(str\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_bad_targets_and_parameters_fail_before_the_backbone_loads(case, monkeypatch):
    params, X, y, error, match = BAD_FITS[case]

    def no_backbone(*args, **kwargs):
        raise AssertionError("validation must happen before the backbone is loaded")

    monkeypatch.setattr(skrank.ranker, "load_backbone", no_backbone)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ranker = quick(**params)
    with pytest.raises(error, match=match):
        ranker.fit(X, y)
    assert not [a for a in vars(ranker) if a.endswith("_")]


def test_complex_targets_are_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        with pytest.raises(TypeError, match="y must be real numbers; got complex"):
            quick().fit(X4, np.array(Y4) + 1j)


def test_targets_too_large_to_standardise_are_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow notice
        with pytest.raises(ValueError, match="y"):
            quick().fit(X4, [1e308, -1e308, 0.0, 1.0])


def test_instruction_longer_than_the_text_context_warns(probes):
    from skrank.backbone import load_backbone

    backbone = load_backbone("skrank-tiny", None)
    assert backbone.context_length == 32
    fits = "a " * 30  # 30 words + start and end markers: exactly 32 tokens
    assert backbone.n_text_tokens(fits) == 32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quick(instruction=fits).fit(X4, Y4)
    long = "Sort the images by how bright they are, " * 6
    with pytest.warns(UserWarning, match=r"needs \d+ tokens.*at most 32: it was truncated"):
        ranker = quick(instruction=long).fit(X4, Y4)
    with pytest.warns(UserWarning, match="truncated"):
        assert np.isfinite(ranker.predict(probes)).all()


# --------------------------------------------------------------------------- atomic fits


def snapshot(ranker):
    """Everything in ``vars(ranker)``, deep-copied (the adapter as its identity and weights)."""
    state = {}
    for name, value in vars(ranker).items():
        if isinstance(value, torch.nn.Module):
            weights = {k: v.clone() for k, v in value.state_dict().items()}
            state[name] = (id(value), weights)
        else:
            state[name] = copy.deepcopy(value)
    return state


def assert_same_state(before, ranker):
    after = snapshot(ranker)
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            assert value[0] == after[name][0], f"{name} was replaced"
            for key, tensor in value[1].items():
                assert torch.equal(tensor, after[name][1][key]), f"{name}.{key} changed"
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[name])
        else:
            assert value == after[name], name


def interrupt_mid_epoch(monkeypatch):
    """Make ``train`` raise KeyboardInterrupt after the second optimiser step of epoch 1."""
    original = skrank.ranker.train
    seen = []

    def on_step(epoch, step):
        seen.append((epoch, step))
        if step == 2:
            raise KeyboardInterrupt

    def train(*args, **kwargs):
        return original(*args, on_step=on_step, **kwargs)

    monkeypatch.setattr(skrank.ranker, "train", train)
    return seen


def failing_loss(monkeypatch, value=None, after=0):
    """Replace the ranking loss: raise (value None) or return ``value`` after ``after`` calls."""
    original = skrank.training.ranking_loss
    calls = []

    def loss(logits, y, mask):
        calls.append(1)
        if len(calls) <= after:
            return original(logits, y, mask)
        if value is None:
            raise RuntimeError("injected fault in the ranking loss")
        return original(logits, y, mask) * value

    monkeypatch.setattr(skrank.training, "ranking_loss", loss)
    return calls


FAULTS = ["interrupt", "loss_raises", "loss_nan", "diverging_lr", "bad_image"]


def inject(fault, monkeypatch, ranker, X, y):
    """Arrange ``fault`` and return (X, y, expected exception type, match)."""
    if fault == "interrupt":
        interrupt_mid_epoch(monkeypatch)
        return X, y, KeyboardInterrupt, None
    if fault == "loss_raises":
        failing_loss(monkeypatch)
        return X, y, RuntimeError, "injected fault"
    if fault == "loss_nan":
        failing_loss(monkeypatch, value=math.nan)
        return X, y, TrainingDivergedError, "epoch 1"
    if fault == "diverging_lr":
        ranker.set_params(lr=1e6)
        return X, y, TrainingDivergedError, "epoch 1"
    bad_X = X[:5] + [np.zeros((4, 4, 2), np.uint8)] + X[5:]
    return bad_X, np.r_[y[:5], 0.5, y[5:]], ImageLoadError, r"\[5\]: array of shape"


@pytest.mark.parametrize("fault", FAULTS)
def test_failed_fit_leaves_an_unfitted_ranker_unfitted(fault, train_data, monkeypatch):
    X, y = train_data
    ranker = quick()
    X, y, error, match = inject(fault, monkeypatch, ranker, list(X), y)
    before = snapshot(ranker)
    with pytest.raises(error, match=match):
        ranker.fit(X, y)
    assert_same_state(before, ranker)
    assert not [a for a in vars(ranker) if a.endswith("_")]


@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("fault", FAULTS)
def test_failed_fit_keeps_the_previous_model(
    fault, warm_start, fitted, train_data, probes, monkeypatch
):
    X, y = train_data
    ranker = copy.deepcopy(fitted).set_params(warm_start=warm_start)
    expected = ranker.predict(probes)
    # Different targets, so a fit that got through would change the model.
    X, y, error, match = inject(fault, monkeypatch, ranker, list(X), y[::-1].copy())
    before = snapshot(ranker)
    with pytest.raises(error, match=match):
        ranker.fit(X, y)
    assert_same_state(before, ranker)
    np.testing.assert_array_equal(ranker.predict(probes), expected)


def test_interrupt_really_lands_mid_epoch(train_data, monkeypatch):
    X, y = train_data
    seen = interrupt_mid_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        quick().fit(X, y)
    steps = len(epoch_batches(np.random.default_rng(0), np.zeros(N_TRAIN, int), y, None, PLAN))
    assert seen == [(1, 1), (1, 2)] and steps > 2


# --------------------------------------------------------------------------- numerics


def test_divergence_names_the_epoch_it_happened_in(train_data, monkeypatch):
    X, y = train_data
    steps = len(epoch_batches(np.random.default_rng(0), np.zeros(N_TRAIN, int), y, None, PLAN))
    calls = failing_loss(monkeypatch, value=math.inf, after=steps)  # epoch 1 fine, then inf
    ranker = quick(max_epochs=3)
    with pytest.raises(TrainingDivergedError, match=rf"epoch 2 \(step {steps + 1}\)") as info:
        ranker.fit(X, y)
    assert isinstance(info.value, FloatingPointError)
    # Losses are read once per epoch (no host sync per step): the fit stops at the
    # end of the epoch that diverged, never later, and names the first bad step.
    assert len(calls) == 2 * steps
    assert not hasattr(ranker, "adapter_")


def test_huge_learning_rate_diverges_with_a_clear_error(train_data):
    X, y = train_data
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch \d+.*lower lr"):
        quick(lr=1e6, max_epochs=3).fit(X, y)


# --------------------------------------------------------------------------- disk cache keys


def palette_images():
    """Two P images with the same indices but different palettes: different pictures."""
    indices = (np.arange(16 * 16) % 4).tolist()
    images = []
    for palette in ([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255], [250, 250, 0, 0, 90] * 3):
        img = Image.new("P", (16, 16))
        img.putdata(indices)
        img.putpalette(palette + [0] * (768 - len(palette)))
        images.append(img)
    return images


def test_disk_cache_tells_apart_images_that_look_different(fitted, tmp_path):
    ranker = copy.deepcopy(fitted).set_params(cache="disk", cache_dir=str(tmp_path))
    a, b = palette_images()
    expected = fitted.predict([a, b])
    gap = abs(expected[0] - expected[1])  # the cache's fp16 tokens move predictions far less
    assert gap > 1e-3
    assert abs(ranker.predict([a])[0] - expected[0]) < gap / 2
    assert abs(ranker.predict([b])[0] - expected[1]) < gap / 2


def test_disk_cache_reports_an_unreadable_pil_image(fitted, probes, tmp_path):
    ranker = copy.deepcopy(fitted).set_params(cache="disk", cache_dir=str(tmp_path))
    buf = io.BytesIO()
    Image.fromarray(textured(128, 0, size=32)).save(buf, "PNG")
    cut = Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) * 3 // 4]))
    with pytest.raises(ImageLoadError, match=r"\[1\]: .*truncated"):
        ranker.predict([probes[0], cut])


# --------------------------------------------------------------------------- misleading messages


def no_backbone(monkeypatch):
    """Fail the test if the backbone is loaded: the input must be refused before."""

    def refuse_backbone(*args, **kwargs):
        raise AssertionError("validation must happen before the backbone is loaded")

    monkeypatch.setattr(skrank.ranker, "load_backbone", refuse_backbone)


@pytest.mark.parametrize(
    "y",
    [
        np.arange(4) * 1e-200,  # the squares of the deviations are 0 in float64
        np.arange(4) * 1e-160,  # ... or subnormal: a std that is not the data's
        np.array([0.0, 5e-324, 1e-323, 1.5e-323]),  # subnormal targets
        np.arange(4) * 1e-200 + 1e-190,  # near-zero spread around a tiny offset
    ],
    ids=["1e-200", "1e-160", "subnormal", "offset"],
)
def test_targets_with_a_spread_too_small_to_standardise_say_so(y, monkeypatch):
    no_backbone(monkeypatch)
    with pytest.raises(ValueError, match="spread too small to standardise.*rescale y") as err:
        quick().fit(X4, y)
    assert "diverged" not in str(err.value) and "lr" not in str(err.value)


@pytest.mark.parametrize(
    "y",
    [
        [1e308, -1e308, 0.0, 1.0],
        [1e300, 1e300 * (1 + 1e-15), 1e300, 1e300],
        [0.0, 1e200, 2e200, 3e200],
    ],
)
def test_targets_too_wide_to_standardise_say_so(y, monkeypatch):
    no_backbone(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused without numpy's overflow notices
        with pytest.raises(ValueError, match="too wide a range to standardise.*rescale y"):
            quick().fit(X4, y)


def test_small_but_representable_targets_fit_and_predict_in_their_units():
    y = np.array(Y4) * 1e-100
    ranker = quick().fit(X4, y)
    assert ranker.y_scale_[0] == pytest.approx(np.std(y))
    pred = ranker.predict(X4)
    assert np.isfinite(pred).all() and np.abs(pred).max() < 1e-98


def test_targets_beyond_float64_are_refused():
    with pytest.raises(ValueError, match="too large for float64"):
        quick().fit(X4, [0, 1, 2, 10**400])


def frame(instructions, index=None):
    import pandas as pd

    return pd.DataFrame({"image": X4, "instruction": instructions}, index=index)


BAD_INSTRUCTIONS = {
    "integers": ([1, 2, 3, 4], r"must hold strings.*rows \[0, 1, 2, 3\] hold int.*first: 1"),
    "mixed": ([INSTR, 7, INSTR, 2.5], r"rows \[1, 3\] hold float, int"),
    "bytes": ([INSTR, INSTR.encode(), INSTR, INSTR], r"rows \[1\] hold bytes"),
    "none": ([INSTR, None, INSTR, np.nan], r"missing instructions \(None/NaN\) at rows \[1, 3\]"),
    "whitespace": ([INSTR, "   ", "\t\n", INSTR], r"whitespace-only instructions at rows \[1, 2\]"),
    "empty": ([INSTR, INSTR, INSTR, ""], r"empty or whitespace-only .* rows \[3\]"),
}


@pytest.mark.parametrize("case", sorted(BAD_INSTRUCTIONS))
def test_bad_instruction_cells_say_which_rows_and_what_they_hold(case, monkeypatch):
    no_backbone(monkeypatch)
    instructions, match = BAD_INSTRUCTIONS[case]
    with pytest.raises(ValueError, match=match) as err:
        quick(instruction=None).fit(frame(instructions), Y4)
    assert "instruction_column='instruction'" in str(err.value)


def test_bad_instruction_rows_also_give_the_index_labels(monkeypatch):
    no_backbone(monkeypatch)
    X = frame([INSTR, INSTR, 3, INSTR], index=[10, 20, 30, 40])
    with pytest.raises(ValueError, match=r"rows \[2\] \(index labels \[30\]\) hold int"):
        quick(instruction=None).fit(X, Y4)


@pytest.mark.parametrize("duplicated", ["image", "instruction", "group"])
def test_duplicated_column_names_are_named(duplicated, monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    columns = {"image": X4, "instruction": [INSTR] * 4, "group": list("aabb")}
    X = pd.concat([pd.DataFrame(columns), pd.DataFrame({duplicated: columns[duplicated]})], axis=1)
    ranker = quick(instruction=None, group_column="group")
    with pytest.raises(ValueError, match=rf"{duplicated}_column='{duplicated}' names 2 columns"):
        ranker.fit(X, Y4)


def test_a_column_level_of_a_multiindex_is_refused_by_name(monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    X = pd.DataFrame({("image", "a"): X4, ("image", "b"): X4})
    with pytest.raises(ValueError, match="image_column='image' names 2 columns"):
        quick().fit(X, Y4)


@pytest.mark.parametrize("missing", [np.nan, None])
def test_missing_group_labels_are_refused(missing, monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    X = pd.DataFrame({"image": X4, "g": ["a", missing, "b", "b"]})
    with pytest.raises(ValueError, match=r"group_column='g' has 1 missing label.*rows \[1\]"):
        quick(group_column="g").fit(X, Y4)
    with pytest.raises(ValueError, match=r"groups has 1 missing label.*rows \[2\]"):
        quick().fit(X4, Y4, groups=[1.0, 2.0, missing, 2.0])


def test_groups_as_a_series_name_their_index_labels(monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    groups = pd.Series([1.0, 1.0, np.nan, 2.0], index=list("wxyz"))
    with pytest.raises(ValueError, match=r"rows \[2\] \(index labels \['y'\]\)"):
        quick().fit(X4, Y4, groups=groups)


@pytest.mark.parametrize("container", [dict, set])
def test_unordered_or_keyed_containers_are_refused(container, monkeypatch):
    no_backbone(monkeypatch)
    X = {"a.png": 1, "b.png": 2} if container is dict else {"a.png", "b.png"}
    with pytest.raises(TypeError, match=f"X is a {container.__name__}"):
        quick().fit(X, [0.0, 1.0])


def test_series_with_a_non_default_index_behave_like_lists(fitted, probes):
    import pandas as pd

    index = [f"img{i}" for i in range(len(probes))][::-1]
    X = pd.Series(probes, index=index)
    np.testing.assert_array_equal(fitted.predict(X), fitted.predict(probes))
    y = pd.Series(np.arange(len(probes), dtype=float), index=index)
    assert fitted.score(X, y) == pytest.approx(fitted.score(probes, np.arange(len(probes))))
    ranker = quick().fit(pd.Series(X4, index=[7, 3, 9, 1]), pd.Series(Y4, index=[0, 1, 2, 3]))
    np.testing.assert_array_equal(ranker.predict(X4), quick().fit(X4, Y4).predict(X4))


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
