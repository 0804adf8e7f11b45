"""Reading image files: the bytes, read once, and the formats decoded.

A file is read whole into memory (:func:`read_path`), after checks that it is
a regular, non-empty file of a plausible size, and opened from those bytes
(:func:`open_image`), so what is hashed for the disk cache is what is decoded.
:mod:`skrank._encoding.images` turns the opened image into RGB.

Pillow registers some forty formats. Several are not raster images at all,
and one of them, EPS, renders PostScript by running Ghostscript, an external
program, on the file; others are rarely used and their decoders see little
scrutiny. A ranking library needs the formats photographs and datasets come
in, so files are decoded by an explicit allow-list of Pillow plugins,
:data:`DECODED_FORMATS`:

- JPEG, and MPO (the multi-picture JPEG that many cameras write: Pillow's JPEG
  plugin opens it, and its first picture is used);
- PNG (and APNG), GIF, WebP;
- TIFF (every compression Pillow's libtiff handles) and BMP;
- PNM, that is PBM, PGM and PPM, which image-processing datasets use for
  8- and 16-bit grey levels.

Left out on purpose: EPS (Ghostscript), TGA (it has no signature, so Pillow
tries it on any unrecognised bytes and random data can "decode"), ICO/CUR
(icons), HEIC and AVIF, JPEG 2000, PSD, and the scientific and legacy formats
(FITS, DDS, PCX, SGI, ...). A file in one of them is refused with a reason
that names what it is, recognised from its first bytes by this module (which
asks Pillow's plugins only for their signature checks, pure functions of the
first 16 bytes), so a refused file never reaches another decoder.

Truncated files are refused (:func:`truncation`): Pillow raises on image data
that ends early, unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set, and
does not notice a PNG whose compressed stream is complete but holds fewer rows
than the header says (it fills the rest with black); both are checked here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import struct
import threading
import warnings
import zlib

from PIL import Image, ImageFile

from skrank._files import FileTooLargeError, NotRegularFileError, read_regular_file

__all__ = [
    "DECODED_FORMATS",
    "BadImage",
    "decodable",
    "open_image",
    "read_path",
    "truncation",
    "unsupported",
]


class BadImage(Exception):
    """Why one input could not be turned into an image (the reason, one line)."""


# The order Pillow tries them in: the most common first.
_OPENED_BY_PLUGIN = ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", "PPM")
# What ``Image.format`` may say for a file those plugins open: the JPEG plugin
# opens an MPO file and returns an ``MpoImageFile`` (format "MPO").
DECODED_FORMATS = frozenset(_OPENED_BY_PLUGIN) | {"MPO"}
_LISTED = "JPEG, PNG, WebP, TIFF, BMP, GIF and PNM (PBM/PGM/PPM)"

# Names for formats a user may meet, with what they are when the name alone says little.
_ABOUT = {
    "EPS": "EPS (PostScript)",
    "PDF": "PDF (a document)",
    "WMF": "WMF/EMF (a Windows vector metafile)",
    "SVG": "SVG (vector graphics)",
    "XML": "XML (text)",
    "HTML": "HTML (a web page, not an image: was it downloaded from an error page?)",
    "HEIF": "HEIC/HEIF",
    "ISO_MEDIA": "MP4/QuickTime (a video)",
    "ICO": "ICO (an icon)",
    "CUR": "CUR (a cursor)",
    "PSD": "PSD (Photoshop)",
    "ZIP": "ZIP (an archive)",
    "GZIP": "gzip (a compressed file)",
}

# (offset, magic bytes, format) for formats outside the allow-list.
_SIGNATURES = (
    (0, b"%!PS", "EPS"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS"),  # the DOS EPS binary header
    (0, b"%PDF", "PDF"),
    (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\xd7\xcd\xc6\x9a", "WMF"),
    (40, b" EMF", "WMF"),
    (0, b"Image type:", "IM"),
    (0, b"PK\x03\x04", "ZIP"),
    (0, b"\x1f\x8b", "GZIP"),
    (128, b"DICM", "DICOM"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1"}
_AVIF_BRANDS = {b"avif", b"avis"}


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def read_path(path: str) -> bytes:
    """The bytes of the image file at ``path``, or :class:`BadImage` saying why not."""
    if _URL.match(path):
        raise BadImage("URLs are not supported: download the file and pass its local path")
    cap = _max_file_bytes()
    try:
        data = read_regular_file(path, cap)
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL byte
        raise BadImage("file not found") from None
    except IsADirectoryError:
        raise BadImage("is a directory, not an image file") from None
    except NotRegularFileError:  # a FIFO or device could block or never end
        raise BadImage("not a regular file") from None
    except FileTooLargeError as exc:
        raise BadImage(
            f"file too large ({exc.size} bytes): no image within "
            f"PIL.Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS} needs more than {cap}"
        ) from None
    except OSError as exc:
        raise BadImage(f"cannot read ({type(exc).__name__}: {exc.strerror or exc})") from None
    if not data:
        raise BadImage("file is empty (0 bytes)")
    return data


def _max_file_bytes() -> int | None:
    """The largest file that can hold an image within Pillow's pixel limit (None: no limit).

    Files are read whole, so a huge file named like an image must not be: 16
    bytes a pixel covers four float32 channels uncompressed, 64 MiB the metadata.
    """
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) * 16 + (64 << 20) if limit else None


def open_image(data: bytes) -> Image.Image:
    """Open file bytes with the allow-listed plugins only (pixels not decoded yet).

    Refuses, as :class:`BadImage`, other formats (naming them), unrecognised
    bytes, and images over ``PIL.Image.MAX_IMAGE_PIXELS``.
    """
    with _quiet_bomb_warning():
        try:
            img = Image.open(io.BytesIO(data), formats=openers())
        except Image.DecompressionBombError as exc:
            raise BadImage(f"image too large (decompression-bomb limit): {exc}") from None
        except Image.UnidentifiedImageError:
            raise BadImage(_unrecognised(data)) from None
        except MemoryError:
            raise
        except Exception as exc:
            raise BadImage(f"cannot open ({type(exc).__name__}: {exc})") from None
    if not decodable(img.format):  # a plugin that handed over to another class
        img.close()
        raise BadImage(unsupported(str(img.format)))
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        img.close()
        raise BadImage(
            f"image too large (decompression-bomb limit): {img.width}×{img.height} = "
            f"{img.width * img.height} pixels exceeds PIL.Image.MAX_IMAGE_PIXELS={limit}"
        )
    return img


@contextlib.contextmanager
def _quiet_bomb_warning():
    """Silence PIL's decompression-bomb warning: skrank refuses such files itself.

    ``catch_warnings`` swaps process-wide state, which is only safe from the main
    thread; decoding threads (``num_workers``) leave the warning visible.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


@functools.cache
def openers() -> tuple[str, ...]:
    """The allow-listed Pillow formats this Pillow build can open, for ``Image.open``."""
    Image.init()  # registers every plugin; only their signature checks run here
    return tuple(f for f in _OPENED_BY_PLUGIN if f in Image.OPEN)


def decodable(fmt: str | None) -> bool:
    """Whether images of Pillow format ``fmt`` may be decoded."""
    return fmt in DECODED_FORMATS


def unsupported(fmt: str) -> str:
    """The failure reason for an image of format ``fmt`` (a Pillow or :data:`_ABOUT` name)."""
    return (
        f"unsupported format {_ABOUT.get(fmt, fmt)}; skrank decodes only {_LISTED} files "
        "(convert it, e.g. to PNG)"
    )


def _unrecognised(data: bytes) -> str:
    """The failure reason for file bytes that no allow-listed plugin could open."""
    fmt = _sniff(data)
    if fmt is None:
        return f"not an image file skrank can read (it decodes only {_LISTED} files)"
    if decodable(fmt):
        return f"not a readable {fmt} file (its header is damaged)"
    return unsupported(fmt)


def _sniff(data: bytes) -> str | None:
    """The format of ``data`` judged from its bytes alone, or None if unrecognised."""
    for offset, magic, fmt in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return fmt
    if data[4:8] == b"ftyp":  # ISO base media: HEIF and AVIF images, MP4 and MOV videos
        brand = data[8:12]
        return "HEIF" if brand in _HEIF_BRANDS else "AVIF" if brand in _AVIF_BRANDS else "ISO_MEDIA"
    text = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg", b"<!doctype svg")):
        return "SVG" if b"<svg" in text else "XML"
    if text.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    if (
        data[:2] == b"\x00\x00"
        and data[2:4] in (b"\x01\x00", b"\x02\x00")
        and data[4:6] != b"\x00\x00"
    ):
        return "ICO" if data[2] == 1 else "CUR"  # reserved 0, type, a non-zero image count
    if data.endswith(b"TRUEVISION-XFILE.\x00") or _looks_like_tga(data):
        return "TGA"
    return _sniff_with_pillow(data[:16])


def _looks_like_tga(data: bytes) -> bool:
    """A TGA header (which has no magic): colour-map flag, image type, pixel depth."""
    return (
        len(data) > 18
        and data[1] in (0, 1)
        and data[2] in (1, 2, 3, 9, 10, 11)
        and data[16] in (8, 15, 16, 24, 32)
    )


def _sniff_with_pillow(prefix: bytes) -> str | None:
    """Ask Pillow's signature checks, which look at the first 16 bytes and nothing else."""
    Image.init()
    for fmt, (_, accept) in list(Image.OPEN.items()):
        try:
            result = accept is not None and accept(prefix)
        except Exception:  # a third-party plugin's check is not ours to trust
            continue
        if result and not isinstance(result, str):  # a str is Pillow's "maybe" warning
            return fmt
    return None


# ------------------------------------------------------------------ truncated files

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples a pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
_ADAM7 += ((0, 1, 1, 2),)
_INFLATE_STEP = 1 << 20  # bytes inflated at a time: the check holds no second image


def truncation(data: bytes, fmt: str | None) -> str | None:
    """Why the image file ``data`` (opened as ``fmt``) is truncated, or None.

    PNG: the image data (its IDAT chunks) must inflate to every row the header
    declares. JPEG (and MPO), only while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
    is set (otherwise Pillow refuses a truncated one itself): an end-of-image
    marker must follow the last scan. Other formats: Pillow's own checks.
    """
    if fmt == "PNG":
        return _png_truncation(data)
    if fmt in ("JPEG", "MPO") and ImageFile.LOAD_TRUNCATED_IMAGES:
        if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
            return "truncated: the JPEG ends inside its image data (no end-of-image marker)"
    return None


def _png_truncation(data: bytes) -> str | None:
    chunks = _png_chunks(data)
    if chunks is None:
        return None  # malformed: Pillow's decoder says how
    header, idat = chunks
    width, height, depth, colour, _, _, interlace = header
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or not idat:
        return None

    def row_bytes(w: int) -> int:
        return 1 + (w * channels * depth + 7) // 8  # a filter byte, then the samples

    if interlace:
        passes = [
            ((height - y0 + dy - 1) // dy, (width - x0 + dx - 1) // dx) for x0, y0, dx, dy in _ADAM7
        ]
        expected = sum(h * row_bytes(w) for h, w in passes if h > 0 and w > 0)
    else:
        expected = height * row_bytes(width)
    got = _inflated_size(b"".join(idat), expected)
    if got is None or got >= expected:
        return None
    if interlace:
        return f"truncated: its image data holds {got} of {expected} bytes (interlaced)"
    return f"truncated: its image data holds {got // row_bytes(width)} of its {height} rows"


def _png_chunks(data: bytes):
    """(IHDR fields, IDAT payloads) of a PNG file, or None when it cannot be parsed."""
    pos, header, idat = 8, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            break  # cut inside a chunk: Pillow's decoder reports it
        if kind == b"IHDR" and length == 13:
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND" or (idat and kind != b"IDAT"):
            break  # the image data is one run of IDAT chunks
        pos += 12 + length
    return None if header is None else (header, idat)


def _inflated_size(stream: bytes, expected: int) -> int | None:
    """How many bytes ``stream`` inflates to, counted up to ``expected``; None if invalid."""
    inflater = zlib.decompressobj()
    total, pending = 0, stream
    try:
        while total < expected:
            out = inflater.decompress(pending, min(_INFLATE_STEP, expected - total))
            total += len(out)
            pending = inflater.unconsumed_tail
            if not out:
                break
    except zlib.error:
        return None  # Pillow's decoder reports a corrupt stream
    return total
