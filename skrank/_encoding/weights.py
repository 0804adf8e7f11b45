"""Where a backbone's weights come from, resolved before anything is built.

An open_clip tag (looked up in the local caches first), an ``hf-hub:`` id, a
local checkpoint file, or seeded random weights. A machine without network
fails within seconds with :class:`WeightsUnavailableError`, never after
minutes of download retries. skrank talks to open_clip's factory only here and
in :mod:`skrank._encoding.backbone`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from torch import nn

__all__ = [
    "SYNTHETIC",
    "TINY",
    "WeightsUnavailableError",
    "architecture_digest",
    "builtin_weights_file",
    "create_model",
    "resolve_weights",
    "weights_on_disk",
]

TINY = "skrank-tiny"
# skrank-tiny's pretrained tag: contrastive pretraining on captioned synthetic scenes
# (skrank._encoding.pretraining), shipped in the package.
SYNTHETIC = "synthetic"
_WEIGHTS_DIR = Path(__file__).parents[1] / "model_weights"
_SEED = 0  # every random initialisation is seeded, so a rebuilt backbone is identical
_PROBE_TIMEOUT_S = 3.0


class WeightsUnavailableError(RuntimeError):
    """The pretrained weights asked for are neither on disk nor downloadable.

    Raised within seconds by ``fit`` (or ``skrank.load``) when the weights of
    ``backbone`` and ``pretrained`` are not in the Hugging Face or open_clip
    cache and there is no network (or ``HF_HUB_OFFLINE=1``); the message says
    how to get them or which local checkpoint file to pass instead.

    Examples
    --------
    >>> from skrank import CLIPEmbedder, WeightsUnavailableError
    >>> try:  # offline, with no weights cached for this tag
    ...     CLIPEmbedder("ViT-B-32", "openai").fit()
    ... except WeightsUnavailableError as exc:
    ...     print("offline:", str(exc)[:40])  # doctest: +SKIP
    offline: Pretrained weights for backbone='ViT-B-3
    """


@dataclass(frozen=True)
class _Weights:
    """Where a backbone's weights come from, resolved before anything is built."""

    kind: str  # "random", "file", "tag" or "hub"
    path: str | None  # local checkpoint (file, or cached download of a tag)
    identity: str  # "<source>@<name>:<architecture digest>": see resolve_weights
    tag_cfg: dict | None = None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (memoised on path, size and mtime)."""
    st = os.stat(path)
    return _sha256_of(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hub_reachable() -> bool:
    """One quick connection to the hub, so an offline machine fails in seconds.

    huggingface_hub retries a failing request with back-off for tens of seconds;
    asking once with a short timeout first turns that hang into a clear error.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    try:
        with socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _cached_hub_file(repo_id: str, filenames: list[str]) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _unavailable(name: str, pretrained: str, where: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"Pretrained weights for backbone={name!r}, pretrained={pretrained!r} are not on this "
        f"machine ({where}) and cannot be downloaded (no network, or HF_HUB_OFFLINE=1). "
        f"Download them once where there is a network, or pass a local checkpoint file: "
        f"CLIPRanker(backbone={name!r}, pretrained='/path/to/open_clip_model.safetensors'), "
        f"or use backbone={TINY!r} to work offline."
    )


def architecture_digest(model_cfg: dict | None, **create_kwargs) -> str:
    """Short hash of an open_clip model config and the options that change the model built.

    Two names may share a width but not a depth, a patch size or a context
    length, and one name may be re-registered with another config: only the
    config itself tells architectures apart.

    Parameters
    ----------
    model_cfg : dict or None
        What ``open_clip.get_model_config(name)`` returns.
    **create_kwargs
        Options passed to ``open_clip.create_model`` that change the network
        (``force_quick_gelu``).

    Returns
    -------
    str
        The first 12 hex digits of the SHA-256 of the canonical JSON.
    """
    spec = {"model_cfg": model_cfg, **create_kwargs}
    text = json.dumps(spec, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_weights(name: str, pretrained: str | os.PathLike | None) -> _Weights:
    """Where the weights of ``name`` come from, and their identity.

    The identity is ``"<source>@<name>:<digest>"``: ``source`` is ``random:seed0``
    (seeded random weights, skrank-tiny's included), ``file:<sha256 of the
    file>``, ``tag:<tag>`` (an open_clip tag), ``hub`` (an ``hf-hub:`` id,
    which is also the name) or ``builtin:synthetic:<sha256, 16 digits>``
    (skrank-tiny's pretrained weights shipped in the package); ``digest`` is
    :func:`architecture_digest` of the model's open_clip config. The source alone
    cannot tell apart two random backbones, or one checkpoint loaded into two
    architectures; the digest can.

    Parameters
    ----------
    name : str
        An open_clip model name or an ``hf-hub:`` id.
    pretrained : str, path or None

    Returns
    -------
    _Weights
    """
    if pretrained is not None:
        pretrained = os.fspath(pretrained)
    if name.startswith(open_clip.factory.HF_HUB_PREFIX):
        return _Weights("hub", None, _identity("hub", name, _hub_model_cfg(name)))
    model_cfg = open_clip.get_model_config(name)
    if pretrained is None or (name == TINY and pretrained == "openai"):
        return _Weights("random", None, _identity(f"random:seed{_SEED}", name, model_cfg))
    if name == TINY and pretrained == SYNTHETIC:
        return _builtin_weights(name, model_cfg)
    if os.path.isfile(pretrained):
        path = os.path.abspath(pretrained)
        return _Weights("file", path, _identity(f"file:{file_sha256(path)}", name, model_cfg))
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not tag_cfg:
        if any(sep in pretrained for sep in ("/", os.sep, ".")):
            raise FileNotFoundError(
                f"pretrained={pretrained!r} is neither an open_clip tag of {name!r} nor an "
                "existing checkpoint file"
            )
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(
            f"pretrained={pretrained!r} is not a known open_clip tag for backbone={name!r}; "
            f"known tags: {tags or 'none'}; or pass a local checkpoint path, or None for random "
            "weights"
        )
    found, where = _cached_tag_file(tag_cfg)
    quick_gelu = bool(tag_cfg.get("quick_gelu", False))
    identity = _identity(f"tag:{pretrained}", name, model_cfg, force_quick_gelu=quick_gelu)
    if found is not None:
        return _Weights("tag", found, identity, tag_cfg)
    if not _hub_reachable():
        raise _unavailable(name, pretrained, where)
    return _Weights("tag", None, identity, tag_cfg)


def builtin_weights_file(name: str = TINY, tag: str = SYNTHETIC) -> Path:
    """Where the weights shipped inside the package for ``name`` and ``tag`` lie."""
    return _WEIGHTS_DIR / f"{name}-{tag}.safetensors"


def _builtin_weights(name: str, model_cfg: dict | None) -> _Weights:
    """skrank-tiny's ``"synthetic"`` weights: a file inside the package, loaded as any
    checkpoint file is, under an identity of their own (``builtin:synthetic:<sha>``),
    so caches and model files never mix them with the random tower's."""
    path = builtin_weights_file(name, SYNTHETIC)
    if not path.is_file():
        raise FileNotFoundError(
            f"skrank's built-in weights {path.name} are missing from this installation "
            f"({path}); reinstall skrank, or regenerate them with "
            f"`python -m skrank._encoding.pretraining {path}`"
        )
    source = f"builtin:{SYNTHETIC}:{file_sha256(path)[:16]}"
    return _Weights("file", str(path), _identity(source, name, model_cfg))


def _identity(source: str, name: str, model_cfg: dict | None, **create_kwargs) -> str:
    return f"{source}@{name}:{architecture_digest(model_cfg, **create_kwargs)}"


def _hub_model_cfg(name: str) -> dict:
    """The model config of an ``hf-hub:`` id: the cached copy, else downloaded (quickly)."""
    repo_id = name[len(open_clip.factory.HF_HUB_PREFIX) :]
    cached = _cached_hub_file(repo_id, ["open_clip_config.json"])
    if cached is None:
        if not _hub_reachable():
            raise _unavailable(name, "", "hub model config not in the local cache")
        return open_clip.get_model_config(name)
    with open(cached, encoding="utf-8") as fh:
        config = json.load(fh)
    return config.get("model_cfg", config)


def _cached_tag_file(tag_cfg: dict) -> tuple[str | None, str]:
    """The local copy of a tag's weights, if any, and where it was looked for."""
    hub = tag_cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else []
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return _cached_hub_file(repo_id, names), f"not in the Hugging Face cache as {repo_id}"
    url = tag_cfg.get("url", "")
    candidate = Path("~/.cache/clip").expanduser() / os.path.basename(urlparse(url).path)
    return (str(candidate) if candidate.is_file() else None), f"not at {candidate}"


def weights_on_disk(name: str, pretrained: str) -> bool:
    """Whether the open_clip tag ``pretrained`` of ``name`` is already downloaded.

    Looks only at local caches: never touches the network.
    """
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    return bool(tag_cfg) and _cached_tag_file(tag_cfg)[0] is not None


@contextlib.contextmanager
def _float32_default():
    """torch's default dtype float32 while open_clip builds a model.

    A session that set ``torch.set_default_dtype(torch.float64)`` would otherwise
    get float64 towers, whose random initialisation draws other values than the
    float32 one its weights identity names. Nothing changes when the default is
    already float32 (the usual case); otherwise it is restored afterwards.
    """
    before = torch.get_default_dtype()
    if before == torch.float32:
        yield
        return
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def create_model(name: str, pretrained: str | None, weights: _Weights) -> nn.Module:
    """The open_clip model of ``weights``, in float32 whatever torch's default dtype."""
    with _float32_default():
        return _create_model(name, pretrained, weights).float()


def _create_model(name: str, pretrained: str | None, weights: _Weights) -> nn.Module:
    kwargs: dict = {}
    if weights.kind == "hub":
        if not _hub_reachable() and not _hub_config_cached(name):
            raise _unavailable(name, pretrained or "", "hub model not in the local cache")
        return open_clip.create_model(name)
    if weights.tag_cfg is not None:
        kwargs["force_quick_gelu"] = bool(weights.tag_cfg.get("quick_gelu", False))
        if weights.path is not None:
            return open_clip.create_model(name, pretrained=weights.path, **kwargs)
        return open_clip.create_model(name, pretrained=pretrained, **kwargs)
    if weights.kind == "file":
        return open_clip.create_model(name, pretrained=weights.path)
    with torch.random.fork_rng(devices=[]), _quiet_random_init_log():
        torch.manual_seed(_SEED)
        return open_clip.create_model(name, pretrained=None, pretrained_text=False)


class _DropRandomInitNotice(logging.Filter):
    def filter(self, record):
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init_log():
    """open_clip logs a warning for random weights; skrank already warned, once, clearly."""
    root = logging.getLogger()
    notice = _DropRandomInitNotice()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


def _hub_config_cached(name: str) -> bool:
    repo_id = name[len(open_clip.factory.HF_HUB_PREFIX) :]
    return _cached_hub_file(repo_id, ["open_clip_config.json"]) is not None
