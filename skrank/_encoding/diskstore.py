"""The disk token cache: one verified file per image and view, shared between processes.

An entry lives at ``cache_dir/tokens/<name>-<digest>/<key[:2]>/<key>[.flip].npy``
(:class:`DiskStore`; the digest covers the backbone, its weights and the
preprocessing, the key the image's content, :func:`content_key`). Nothing
found there is trusted. Each entry is a valid ``.npy`` file (``np.load``
reads it) of the backbone's (L, C) tokens in little-endian float16, followed
by a 40-byte trailer: 8 magic bytes and a SHA-256 of the store's digest, the
entry's key and view, the ``.npy`` header and the tokens. Every read checks,
before any value is used, that the entry is a regular file of exactly the
expected size, that its header is the one of an (L, C) float16 array, that the
trailer matches (so a truncated, overwritten, random or swapped-in file, one
from another key, view or backbone, fails), and that every value is finite.
An entry that fails is a miss: its image is encoded again and the file
replaced, and the call warns once with the number of such entries.

A store of ``kind="embeddings"`` (:class:`skrank.CLIPEmbedder`'s disk cache)
is the same machinery for pooled image embeddings: entries
``cache_dir/embeddings/<name>-<digest>/<key[:2]>/<key>.npy`` of one
(embed_dim,) little-endian float32 vector each (the exact values computed),
with a digest and checksum that also cover the kind, so no token file
verifies as an embedding or the other way round.

Writes go through :func:`skrank._files.atomic_write` (a temporary, then a
rename; the user's umask), so concurrent writers (folds, Dask workers) only
replace identical bytes and no reader sees a partial file; what killed
writers left is removed when a process first opens the store. A store that
cannot be written to (read-only, full) still serves what it holds; what it
cannot store is computed for the call (kept in memory if training needs it
again) and the call warns once.

Image files are read once: their bytes are hashed for the key and those same
bytes decoded (:class:`skrank._encoding.images.EncodedFile`), so a file that changes
meanwhile cannot store one image's tokens under another's key.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from skrank._encoding.backbone import Backbone
from skrank._encoding.images import ImageLoadError, load_image, read_file
from skrank._files import (
    FileTooLargeError,
    NotRegularFileError,
    atomic_write,
    read_regular_file,
    remove_stale_temporaries,
)

__all__ = [
    "KINDS",
    "DiskStore",
    "content_key",
    "new_stats",
    "spec_digest",
]

_CACHE_FORMAT = 2  # bump when the stored tokens' meaning or layout changes (2: checksums)
_MAGIC = b"SKRANK\x02\x00"
_TRAILER = len(_MAGIC) + hashlib.sha256().digest_size
_SWEPT: set[str] = set()  # stores whose stale temporaries this process has removed
_SWEPT_LOCK = threading.Lock()
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # skrank/


# What a store of each kind holds: entry dtype and the word its messages use. The
# entry shape is the backbone's (L, C) for tokens and (embed_dim,) for embeddings.
KINDS = {"tokens": ("<f2", "token"), "embeddings": ("<f4", "embedding")}


def _spec(info: dict, kind: str) -> dict:
    """What identifies a store: backbone name, weights, preprocessing, format (and kind)."""
    spec = {k: info[k] for k in ("name", "weights_identity", "image_size", "mean", "std")}
    spec["format"] = _CACHE_FORMAT
    if "tokens" in info and kind == "tokens":  # which tokens a trunk gives (ConvNeXt head norm)
        spec["tokens"] = info["tokens"]
    if kind != "tokens":  # the token stores' spec (hence their folders) predates kinds
        spec["kind"] = kind
    return spec


def spec_digest(info: dict, kind: str = "tokens") -> str:
    """The 16 hex digits naming a store of ``kind`` for the backbone ``info`` describes.

    Examples
    --------
    >>> from skrank._encoding.backbone import load_backbone
    >>> from skrank._encoding.diskstore import spec_digest
    >>> info = load_backbone("skrank-tiny", None).info
    >>> spec_digest(info) != spec_digest(info, "embeddings")
    True
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not a store kind; expected one of {sorted(KINDS)}")
    spec = _spec(info, kind)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def new_stats() -> dict:
    """The counters of a disk token source (``cache_info_``)."""
    return {"kind": "disk", "hits": 0, "misses": 0, "images_encoded": 0, "bytes": 0}


def keyed(item) -> tuple[str | None, object]:
    """``(content key, what to decode in the item's place)`` for one input.

    A file is read once (:func:`skrank._encoding.images.read_file`): its key hashes the
    bytes that get decoded. A PIL image is keyed by, and replaced with, its
    decoded RGB pixels. Other types have no key (the decoder says why).
    Raises ``ImageLoadError`` as :func:`content_key` (and for bad paths).
    """
    h = hashlib.sha256()
    if isinstance(item, (str, os.PathLike)):
        source = read_file(item)
        h.update(source.data)
        h.update(b"file")
    elif isinstance(item, np.ndarray):
        source = item
        h.update(f"array{item.dtype.str}{item.shape}".encode())
        h.update(np.ascontiguousarray(item).tobytes())
    elif isinstance(item, Image.Image):
        # Hash what the model sees: palette, EXIF orientation and mode all applied.
        source = load_image(item)
        h.update(f"pil{source.size}".encode())
        h.update(source.tobytes())
    else:
        return None, item
    return h.hexdigest(), source


def content_key(item) -> str | None:
    """SHA-256 of an image input's content: file bytes, array bytes, or decoded RGB pixels.

    Two inputs with the same content share cache entries wherever they live.

    Parameters
    ----------
    item : path, PIL image or ndarray
        One image input.

    Returns
    -------
    str or None
        The hex digest; None for a path that is not a readable image file (the
        decoder then reports why) and for an input of an unsupported type.

    Raises
    ------
    ImageLoadError
        For a PIL image that fails to decode or is refused (its format).
    """
    try:
        return keyed(item)[0]
    except ImageLoadError:
        if isinstance(item, Image.Image):
            raise
        return None


class DiskStore:
    """The verified token (or embedding) files of one backbone under ``cache_dir``.

    See the module docstring for the format and what every read checks.

    One store serves one call (a fit, a prediction, an encoding task); it
    counts what went wrong for :meth:`report`.

    Parameters
    ----------
    backbone : Backbone
        Whose tokens; its name, weights and preprocessing choose the folder.
    cache_dir : str or os.PathLike
        The cache folder (``~`` expanded). It need not be writable.
    hold_unstored : bool, default=False
        Keep tokens that could not be written in memory, and serve them from
        :meth:`load`, for the rest of the call (training reads them again).
    kind : {"tokens", "embeddings"}, default="tokens"
        What the entries hold: a backbone's (L, C) float16 image tokens under
        ``cache_dir/tokens``, or its (embed_dim,) float32 pooled image
        embeddings under ``cache_dir/embeddings``.

    Attributes
    ----------
    root : pathlib.Path
        This backbone's folder under ``cache_dir``.
    shape, entry_bytes : tuple of int, int
        (L, C) (tokens) or (embed_dim,) (embeddings) of every entry; the exact
        size of a sound entry file.
    bad : collections.Counter
        Unusable entries met since the last :meth:`report`, by reason.
    unstored : int
        Entries not written since the last :meth:`report`; ``write_error`` says why.
    """

    def __init__(
        self,
        backbone: Backbone,
        cache_dir,
        *,
        hold_unstored: bool = False,
        kind: str = "tokens",
    ):
        info = backbone.info
        self.digest = spec_digest(info, kind)
        spec = _spec(info, kind)
        self.kind = kind
        self.dtype, self._word = KINDS[kind]
        # The name only labels the folder (the digest identifies it): never a path of its own.
        label = re.sub(r"[^A-Za-z0-9._-]", "_", info["name"]).lstrip(".")[:64]
        self.root = Path(cache_dir).expanduser() / kind / f"{label}-{self.digest}"
        if kind == "tokens":
            self.shape = (int(backbone.n_image_tokens), int(backbone.image_dim))
        else:
            self.shape = (int(backbone.embed_dim),)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": self.dtype, "fortran_order": False, "shape": self.shape}
        )
        self._header = header.getvalue()
        self._count = int(np.prod(self.shape))
        itemsize = np.dtype(self.dtype).itemsize
        self.entry_bytes = len(self._header) + itemsize * self._count + _TRAILER
        self.bad: Counter = Counter()
        self.unstored = 0
        self.write_error: str | None = None
        self._root_error: str | None = None
        self._held: dict | None = {} if hold_unstored else None
        try:
            self.root.mkdir(parents=True, exist_ok=True)  # folders follow the umask
            spec_file = self.root / "spec.json"
            if not spec_file.exists():
                atomic_write(spec_file, json.dumps(spec, indent=1).encode())
        except OSError as exc:  # read-only: serve what is there (see write)
            self.write_error = self._root_error = _error_text(exc)
        _sweep_once(self.root)

    def path(self, key: str, flip: bool) -> Path:
        return self.root / key[:2] / f"{key}{'.flip' if flip else ''}.npy"

    def load(self, key: str, flip: bool) -> tuple[np.ndarray | None, str | None]:
        """``(tokens, None)`` for a sound entry, ``(None, None)`` for none, ``(None, why)``.

        The tokens are a read-only view, of :attr:`shape` and the store's dtype
        ((L, C) float16 for tokens), of the bytes verified.
        """
        if self._held is not None and (key, flip) in self._held:
            return self._held[(key, flip)], None
        try:
            data = read_regular_file(self.path(key, flip), self.entry_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except (IsADirectoryError, NotRegularFileError):
            return None, self._bad("not a regular file")
        except FileTooLargeError:
            return None, self._bad("wrong size")
        except OSError as exc:
            return None, self._bad(f"unreadable ({type(exc).__name__})")
        if len(data) != self.entry_bytes:
            return None, self._bad("empty" if not data else "wrong size")
        if not data.startswith(self._header):
            return None, self._bad(f"wrong header (shape, dtype or not a {self._word} file)")
        body, trailer = data[:-_TRAILER], data[-_TRAILER:]
        if trailer != _MAGIC + self._checksum(key, flip, body):
            return None, self._bad("checksum mismatch")
        tokens = np.frombuffer(body, self.dtype, self._count, len(self._header))
        tokens = tokens.reshape(self.shape)
        if not np.isfinite(tokens).all():
            return None, self._bad("non-finite values")
        return tokens, None

    def read(self, key: str, flip: bool) -> np.ndarray:
        """The verified (L, C) float16 tokens of an entry; ``LookupError`` if it has none."""
        tokens, problem = self.load(key, flip)
        if tokens is None:
            raise LookupError(
                f"{self._word} cache entry {self.path(key, flip)} is {problem or 'missing'}; it "
                "was sound when this call began, so the cache folder changed meanwhile: run again "
                "to recompute it"
            )
        return tokens

    def write(self, key: str, flip: bool, tokens: np.ndarray) -> bool:
        """Store ``tokens`` (of :attr:`shape`); False when they could not be (then held, if so)."""
        tokens = np.ascontiguousarray(tokens, dtype=self.dtype)
        if tokens.shape != self.shape:
            raise ValueError(f"{self.kind} of shape {tokens.shape}; this store holds {self.shape}")
        stored = False
        if np.isfinite(tokens).all():  # a read would refuse anything else
            body = self._header + tokens.tobytes()
            path = self.path(key, flip)
            try:
                path.parent.mkdir(exist_ok=True)
                atomic_write(path, body + _MAGIC + self._checksum(key, flip, body))
                stored = True
            except OSError as exc:
                self.unstored += 1
                # Once the store's folder could not be made (read-only), that is the
                # cause: every entry's folder is then merely "missing".
                self.write_error = self._root_error or _error_text(exc)
        if not stored and self._held is not None:
            self._held[(key, flip)] = tokens
        return stored

    def report(self) -> None:
        """Warn, once each, about the unusable entries met and the entries not written."""
        if self.bad:
            n = sum(self.bad.values())
            kinds = ", ".join(f"{count} {why}" for why, count in self.bad.most_common())
            _warn(
                f"{n} {self._word} cache {'entry' if n == 1 else 'entries'} under {self.root} "
                f"{'was' if n == 1 else 'were'} unusable ({kinds}): recomputed from the "
                "images" + ("" if self.unstored else ", and the files replaced")
            )
        if self.unstored:
            _warn(
                f"could not write {self.unstored} {self._word} cache "
                f"{'entry' if self.unstored == 1 else 'entries'} under {self.root} "
                f"({self.write_error}): their {self.kind} serve this call only and will be "
                "computed again next time; make the folder writable or choose another cache_dir"
            )
        self.bad.clear()
        self.unstored = 0

    def _checksum(self, key: str, flip: bool, body: bytes) -> bytes:
        # The store, key and view are in the sum, so a sound file moved to another
        # entry's name (or folder) does not verify there.
        h = hashlib.sha256(f"skrank-{self.kind}\0{self.digest}\0{key}\0{int(flip)}\0".encode())
        h.update(body)
        return h.digest()

    def _bad(self, why: str) -> str:
        self.bad[why] += 1
        return why


def _error_text(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the cache folder is not writable; {type(exc).__name__}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _sweep_once(root: Path) -> None:
    """Remove what killed writers left in ``root``, once per process (a listing of every folder)."""
    with _SWEPT_LOCK:
        if str(root) in _SWEPT:
            return
        _SWEPT.add(str(root))
    try:
        folders = [root, *(p for p in root.iterdir() if p.is_dir())]
    except OSError:
        return
    for folder in folders:
        remove_stale_temporaries(folder)


def _warn(message: str) -> None:
    """A ``UserWarning`` attributed to the first caller outside skrank."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
