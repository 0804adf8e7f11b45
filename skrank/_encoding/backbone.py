"""Frozen open_clip towers: pixels to tokens and embeddings, and ``skrank-tiny``.

A :class:`Backbone` wraps a frozen CLIP model (built by :func:`load_backbone`
from weights that :mod:`skrank._encoding.weights` resolves) and offers what the adapter
needs: per-image tokens, per-instruction text tokens with a padding mask,
pooled image embeddings (for baselines) and the preprocessing constants (input
size, mean, std). :class:`skrank._encoding.encoder.Encoder` turns decoded pixel batches
(:mod:`skrank._encoding.images`) into those tokens and embeddings. Every forward pass
enters :func:`skrank._devices.autocast` with the caller's ``precision``, as the
towers' (``towers=True``: fp32 on a CPU).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import open_clip
import torch
from torch import nn

from skrank import _devices as devices
from skrank._encoding.weights import (
    TINY,
    WeightsUnavailableError,
    _Weights,
    create_model,
    resolve_weights,
    weights_on_disk,
)

__all__ = [
    "TINY",
    "Backbone",
    "WeightsUnavailableError",
    "backbone_mismatch",
    "end_of_text_id",
    "forget_backbone",
    "load_backbone",
    "text_mask",
    "weights_on_disk",
]

_CONFIG_DIR = Path(__file__).parents[1] / "model_configs"
open_clip.add_model_config(_CONFIG_DIR)


class Backbone:
    """A frozen open_clip model and the token views of it that skrank needs.

    Build it with :func:`load_backbone`, which caches one instance per
    (name, weights, device) in the process so clones and folds share it.
    """

    def __init__(
        self, model: nn.Module, name: str, pretrained: str | None, weights: _Weights, device
    ):
        # float32 whatever torch's default dtype when it was built (create_model builds
        # under float32; a model given here built under float64 is cast).
        model.float().eval().requires_grad_(False)
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
        # ConvNeXt-like trunks: their feature map through the trunk's own pretrained
        # head norm (a LayerNorm over channels), as the reference reads it.
        norm = getattr(getattr(getattr(visual, "trunk", None), "head", None), "norm", None)
        self.token_kind = "head_norm" if isinstance(norm, nn.Module) else None
        self.context_length = int(text.context_length)
        self.text_dim = int(text.ln_final.weight.shape[0])
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self.image_size, dtype=torch.float32, device=self.device)
            self.n_image_tokens, self.image_dim = self.image_tokens(probe, "fp32").shape[1:]
            self.embed_dim = int(self.image_embeddings(probe, "fp32").shape[1])

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
            **({"tokens": self.token_kind} if self.token_kind else {}),
        }

    @torch.no_grad()
    def image_tokens(self, pixels: torch.Tensor, precision: str = "auto") -> torch.Tensor:
        """Frozen per-image tokens, (N, 3, H, W) normalised pixels → (N, L, C) float32."""
        visual = self.model.visual
        pixels = pixels.to(self.device, non_blocking=True)
        with devices.autocast(self.device, precision, towers=True):
            if self.is_timm:
                feats = visual.trunk.forward_features(pixels)
                if feats.ndim == 4:  # ConvNeXt-like map (N, C, h, w) → (N, h·w, C)
                    if self.token_kind == "head_norm":  # the trunk's pretrained head norm
                        feats = visual.trunk.head.norm(feats)
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
    def image_embeddings(self, pixels: torch.Tensor, precision: str = "auto") -> torch.Tensor:
        """CLIP's pooled, projected image embeddings (N, embed_dim), for baselines."""
        with devices.autocast(self.device, precision, towers=True):
            out = self.model.encode_image(pixels.to(self.device))
        return out.float()

    @torch.no_grad()
    def text_embeddings(self, texts: list[str], precision: str = "auto") -> torch.Tensor:
        """CLIP's pooled, projected text embeddings (T, embed_dim), for zero-shot baselines."""
        ids = self.tokenizer(list(texts)).to(self.device)
        with devices.autocast(self.device, precision, towers=True):
            out = self.model.encode_text(ids)
        return out.float()

    def n_text_tokens(self, text: str) -> int:
        """Tokens the instruction needs, start and end markers included."""
        return len(self.tokenizer.encode(text)) + 2

    @torch.no_grad()
    def text_tokens(
        self, texts: list[str], precision: str = "auto"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every position of the frozen text transformer after ``ln_final``.

        Returns ``(tokens, valid)``: (T, Lt, Ct) float32 and a (T, Lt) bool mask that
        is True up to and including the end-of-text token, False on padding.
        """
        text = self._text
        ids = self.tokenizer(list(texts)).to(self.device)  # (T, Lt), 0-padded
        with devices.autocast(self.device, precision, towers=True):
            x = text.token_embedding(ids) + text.positional_embedding  # (T, Lt, Ct)
            x = text.transformer(x, attn_mask=text.attn_mask)
            x = text.ln_final(x)
        return x.float(), text_mask(ids, end_of_text_id(self.tokenizer))


def end_of_text_id(tokenizer) -> int | None:
    """The id the tokenizer ends every text with, or None when it names none.

    open_clip's CLIP tokenizer calls it ``eot_token_id``; Hugging Face
    tokenizers (SigLIP and others) ``eos_token_id``. It is not always the
    largest id: added special tokens come after CLIP's, and other vocabularies
    put it anywhere (T5's is 1).
    """
    for holder in (tokenizer, getattr(tokenizer, "tokenizer", None)):
        for name in ("eot_token_id", "eos_token_id"):
            value = getattr(holder, name, None)
            if isinstance(value, int):
                return value
    return None


def text_mask(ids: torch.Tensor, end_id: int | None) -> torch.Tensor:
    """(T, Lt) bool: True up to and including each row's first end-of-text id.

    A row without one (truncated by a tokenizer that adds no end marker) is
    valid throughout; with no known end id, CLIP's rule (the largest id ends
    the text) applies.
    """
    positions = torch.arange(ids.shape[1], device=ids.device)
    if end_id is None:
        end = ids.argmax(dim=-1)
    else:
        is_end = ids == end_id
        first = is_end.int().argmax(dim=-1)  # the first True (0 when none)
        end = torch.where(is_end.any(dim=-1), first, torch.full_like(first, ids.shape[1] - 1))
    return positions[None, :] <= end[:, None]


# What must agree between the backbone an adapter was fitted on and the one it
# meets later: the identity (weights and architecture) and the token shapes the
# adapter's layers were built for.
_MUST_MATCH = (
    "name",
    "weights_identity",
    "image_size",
    "n_image_tokens",
    "image_dim",
    "text_dim",
    "context_length",
)


def _legacy_source(identity: str, name: str) -> str | None:
    """The weights source of an identity written before it named the architecture.

    skrank 0.x wrote ``skrank-tiny:seed0``, ``random:seed0``, ``file:<sha>``,
    ``tag:<name>:<tag>`` and ``hub:<name>``; None when ``identity`` is of today's
    ``<source>@<name>:<digest>`` form.
    """
    if "@" in identity:
        return None
    if identity == f"{TINY}:seed0":
        return "random:seed0"
    if identity.startswith(f"tag:{name}:"):
        return "tag:" + identity[len(f"tag:{name}:") :]
    if identity == f"hub:{name}":
        return "hub"
    return identity


def backbone_mismatch(fitted: dict, current: dict) -> list[str]:
    """How the backbone ``current`` differs from ``fitted`` (both ``Backbone.info``).

    An identity of the older form without an architecture digest (a model
    saved by an earlier skrank) matches on its weights source; the name and
    token shapes are then what tell architectures apart.

    Parameters
    ----------
    fitted : dict
        ``backbone_info_`` of a fitted ranker.
    current : dict
        ``info`` of the backbone loaded now.

    Returns
    -------
    list of str
        One ``"key: fitted != current"`` entry per difference; empty when they agree.
    """
    diffs = []
    # Which tokens a trunk gives: a timm ConvNeXt fitted before the head norm read raw maps.
    raw = "raw" if fitted.get("family") == "timm" else None
    if fitted.get("tokens", raw) != current.get("tokens", raw):
        diffs.append(
            f"tokens: {fitted.get('tokens', raw)!r} != {current.get('tokens', raw)!r} (the "
            "adapter was trained on other image tokens of this trunk; fit it again)"
        )
    for key in _MUST_MATCH:
        if key not in fitted or key not in current:
            continue
        old, new = fitted[key], current[key]
        if key == "weights_identity":
            source = _legacy_source(str(old), str(fitted.get("name")))
            if source is not None:
                old, new = source, str(new).split("@", 1)[0]
        elif key == "image_size":
            old, new = list(old), list(new)
        if old != new:
            diffs.append(f"{key}: {fitted[key]!r} != {current[key]!r}")
    return diffs


_LOADED: dict[tuple, Backbone] = {}
_MAX_LOADED = 4
_LOADING = threading.Lock()  # threads of one process (Dask workers) build each backbone once
# Towers at least this large are dropped from the process while an adapter trains on
# their cached tokens (forget_backbone): their memory serves training, and rebuilding
# them for the next use costs seconds. Smaller ones (skrank-tiny) stay.
FORGET_BYTES = 256 * 2**20


def weight_bytes(backbone: Backbone) -> int:
    """Bytes held by the frozen towers' parameters and buffers."""
    tensors = [*backbone.model.parameters(), *backbone.model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def forget_backbone(backbone: Backbone, at_least: int | None = None) -> bool:
    """Drop ``backbone`` from the process-wide cache if its towers take ``at_least`` bytes
    (None: :data:`FORGET_BYTES`).

    Its memory is freed once no caller holds it any more (a fit drops its own
    references; another fit or thread still using it keeps it alive); the next
    :func:`load_backbone` builds it again. Returns whether it was dropped.
    """
    if weight_bytes(backbone) < (FORGET_BYTES if at_least is None else at_least):
        return False
    with _LOADING:
        for key in [k for k, v in _LOADED.items() if v is backbone]:
            del _LOADED[key]
    return True


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
        seeded random weights, and ``"synthetic"`` the pretrained weights shipped
        with skrank (contrastive pretraining on captioned synthetic scenes).
    device : str or torch.device

    Returns
    -------
    Backbone

    Examples
    --------
    >>> from skrank._encoding.backbone import load_backbone
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
    weights = resolve_weights(name, pretrained)
    device = torch.device(device)
    key = (name, weights.identity, str(device))
    with _LOADING:
        backbone = _LOADED.get(key)
        if backbone is None:
            backbone = Backbone(
                create_model(name, pretrained, weights), name, pretrained, weights, device
            )
            while len(_LOADED) >= _MAX_LOADED:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = backbone
    return backbone
