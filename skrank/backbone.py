"""Frozen open_clip backbones: loading, token extraction and ``skrank-tiny``.

skrank talks to open_clip only here. A :class:`Backbone` wraps a frozen CLIP
model and offers what the adapter needs: per-image tokens (DESIGN §2.1), per-
instruction text tokens with a padding mask (§2.2), pooled image embeddings
(for baselines) and the preprocessing constants (input size, mean, std).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from torch import nn

__all__ = [
    "TINY",
    "Backbone",
    "WeightsUnavailableError",
    "load_backbone",
    "resolve_device",
    "weights_on_disk",
]

TINY = "skrank-tiny"
_CONFIG_DIR = Path(__file__).parent / "model_configs"
_SEED = 0  # every random initialisation is seeded, so a rebuilt backbone is identical
_PROBE_TIMEOUT_S = 3.0

open_clip.add_model_config(_CONFIG_DIR)


class WeightsUnavailableError(RuntimeError):
    """The pretrained weights asked for are neither on disk nor downloadable."""


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a device.

    ``"auto"`` picks CUDA, else MPS, else the CPU. Asking for an accelerator
    that is not there raises ``ValueError``.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda'; got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was asked for but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif dev.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError(f"device={device!r} was asked for but MPS is not available here")
    elif dev.type != "cpu":
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class _Weights:
    """Where a backbone's weights come from, resolved before anything is built."""

    kind: str  # "random", "file", "tag" or "hub"
    path: str | None  # local checkpoint (file, or cached download of a tag)
    identity: str  # what distinguishes these weights in a cache key
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


def _resolve_weights(name: str, pretrained: str | os.PathLike | None) -> _Weights:
    if name == TINY and pretrained in (None, "openai"):
        return _Weights("random", None, f"{TINY}:seed{_SEED}")
    if pretrained is None:
        return _Weights("random", None, f"random:seed{_SEED}")
    pretrained = os.fspath(pretrained)
    if os.path.isfile(pretrained):
        path = os.path.abspath(pretrained)
        return _Weights("file", path, f"file:{file_sha256(path)}")
    if name.startswith(open_clip.factory.HF_HUB_PREFIX):
        return _Weights("hub", None, f"hub:{name}")
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
    identity = f"tag:{name}:{pretrained}"
    if found is not None:
        return _Weights("tag", found, identity, tag_cfg)
    if not _hub_reachable():
        raise _unavailable(name, pretrained, where)
    return _Weights("tag", None, identity, tag_cfg)


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


# --------------------------------------------------------------------------- the backbone


class Backbone:
    """A frozen open_clip model and the token views of it that skrank needs.

    Build it with :func:`load_backbone`, which caches one instance per
    (name, weights, device) in the process so clones and folds share it.
    """

    def __init__(
        self, model: nn.Module, name: str, pretrained: str | None, weights: _Weights, device
    ):
        model.eval().requires_grad_(False)
        self.model = model.to(device)
        self.name = name
        self.pretrained = pretrained
        self.weights_identity = weights.identity
        self.device = torch.device(device)
        visual = model.visual
        self.is_timm = hasattr(visual, "trunk")
        size = visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        pp = getattr(visual, "preprocess_cfg", {}) or {}
        if weights.tag_cfg:
            pp = {**pp, **{k: weights.tag_cfg[k] for k in ("mean", "std") if k in weights.tag_cfg}}
        self.mean = tuple(float(v) for v in pp.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(float(v) for v in pp.get("std", open_clip.OPENAI_DATASET_STD))
        self.tokenizer = open_clip.get_tokenizer(name)
        text = getattr(model, "text", model)
        if not all(hasattr(text, a) for a in ("token_embedding", "transformer", "ln_final")):
            raise NotImplementedError(
                f"backbone={name!r} has a text tower skrank cannot read tokens from "
                f"({type(text).__name__}); use a CLIP model with open_clip's own text transformer"
            )
        self._text = text
        self.context_length = int(text.context_length)
        self.text_dim = int(text.ln_final.weight.shape[0])
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self.image_size, device=self.device)
            self.n_image_tokens, self.image_dim = self.image_tokens(probe).shape[1:]
            self.embed_dim = int(self.image_embeddings(probe).shape[1])

    @property
    def info(self) -> dict:
        """Plain description, safe to pickle and to write as JSON."""
        return {
            "name": self.name,
            "pretrained": self.pretrained,
            "weights_identity": self.weights_identity,
            "image_size": list(self.image_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "image_dim": int(self.image_dim),
            "n_image_tokens": int(self.n_image_tokens),
            "text_dim": self.text_dim,
            "embed_dim": self.embed_dim,
            "context_length": self.context_length,
            "family": "timm" if self.is_timm else "vit",
        }

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    @torch.no_grad()
    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Frozen per-image tokens, (N, 3, H, W) normalised pixels → (N, L, C) float32."""
        visual = self.model.visual
        pixels = pixels.to(self.device, non_blocking=True)
        with self._autocast():
            if self.is_timm:
                feats = visual.trunk.forward_features(pixels)
                if feats.ndim == 4:  # ConvNeXt-like map (N, C, h, w) → (N, h·w, C)
                    tokens = feats.flatten(2).transpose(1, 2)
                else:  # a timm ViT trunk: drop its prefix (class/register) tokens
                    tokens = feats[:, getattr(visual.trunk, "num_prefix_tokens", 0) :]
            else:
                x = visual._embeds(pixels)  # (N, 1 + L, width)
                x = visual.transformer(x)
                x = visual.ln_post(x)
                tokens = x[:, 1:]  # drop CLS: (N, L, width)
                if visual.proj is not None:
                    tokens = tokens @ visual.proj  # (N, L, embed_dim)
        return tokens.float()

    @torch.no_grad()
    def image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP's pooled, projected image embeddings (N, embed_dim), for baselines."""
        with self._autocast():
            out = self.model.encode_image(pixels.to(self.device))
        return out.float()

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """CLIP's pooled, projected text embeddings (T, embed_dim), for zero-shot baselines."""
        ids = self.tokenizer(list(texts)).to(self.device)
        with self._autocast():
            out = self.model.encode_text(ids)
        return out.float()

    def n_text_tokens(self, text: str) -> int:
        """Tokens the instruction needs, start and end markers included."""
        return len(self.tokenizer.encode(text)) + 2

    @torch.no_grad()
    def text_tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every position of the frozen text transformer after ``ln_final``.

        Returns ``(tokens, valid)``: (T, Lt, Ct) float32 and a (T, Lt) bool mask that
        is True up to and including the end-of-text token, False on padding.
        """
        text = self._text
        ids = self.tokenizer(list(texts)).to(self.device)  # (T, Lt), 0-padded
        with self._autocast():
            x = text.token_embedding(ids) + text.positional_embedding  # (T, Lt, Ct)
            x = text.transformer(x, attn_mask=text.attn_mask)
            x = text.ln_final(x)
        eot = ids.argmax(dim=-1)  # CLIP's end-of-text id is the largest in the vocabulary
        positions = torch.arange(ids.shape[1], device=ids.device)
        valid = positions[None, :] <= eot[:, None]  # (T, Lt)
        return x.float(), valid


_LOADED: dict[tuple, Backbone] = {}
_MAX_LOADED = 4


def load_backbone(
    name: str, pretrained: str | os.PathLike | None, device: str | torch.device = "cpu"
) -> Backbone:
    """Build (or reuse) the frozen backbone ``name`` with weights ``pretrained``.

    Parameters
    ----------
    name : str
        An open_clip model name (``"ViT-B-16"``, ``"convnext_large_d_320"``, ...),
        an ``"hf-hub:org/repo"`` id, or ``"skrank-tiny"``.
    pretrained : str, path or None
        An open_clip tag (``"openai"``), a local checkpoint file, or None for
        seeded random weights (with a warning). Ignored for ``hf-hub:`` names.
        For ``"skrank-tiny"``, None and ``"openai"`` both mean its built-in
        seeded weights.
    device : str or torch.device

    Returns
    -------
    Backbone

    Examples
    --------
    >>> from skrank.backbone import load_backbone
    >>> bb = load_backbone("skrank-tiny", None)
    >>> bb.image_size, bb.n_image_tokens, bb.image_dim
    ((64, 64), 64, 64)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"backbone must be a non-empty string naming an open_clip model; got {name!r}"
        )
    if not name.startswith(open_clip.factory.HF_HUB_PREFIX) and name not in open_clip.list_models():
        raise ValueError(
            f"backbone={name!r} is not an open_clip model; see open_clip.list_models() "
            f"(e.g. 'ViT-B-16', 'ViT-B-32', 'convnext_large_d_320') or use {TINY!r}"
        )
    if pretrained is not None:
        pretrained = os.fspath(pretrained)
    if pretrained is None and name != TINY:
        warnings.warn(
            f"backbone={name!r} with pretrained=None has random (seeded) weights: fine for "
            "tests and speed measurements, meaningless for real ranking",
            UserWarning,
            stacklevel=2,
        )
    weights = _resolve_weights(name, pretrained)
    device = torch.device(device)
    key = (name, weights.identity, str(device))
    backbone = _LOADED.get(key)
    if backbone is None:
        backbone = Backbone(
            _create_model(name, pretrained, weights), name, pretrained, weights, device
        )
        while len(_LOADED) >= _MAX_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = backbone
    return backbone
