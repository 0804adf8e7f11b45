"""Prediction and pair comparison with a fitted adapter, without touching the estimator.

A :class:`Predictor` holds what inference needs on one device: the frozen
backbone, the instructions' text tokens, the adapter (the fitted one on the
CPU, a copy elsewhere) and a :class:`~skrank._encoding.cache.TokenStream`. It never
moves or changes the fitted ``adapter_``, so threads may predict with one
ranker at once.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from skrank import _devices as devices
from skrank._encoding.backbone import Backbone, backbone_mismatch, load_backbone
from skrank._encoding.cache import TokenStream
from skrank._encoding.encoder import Encoder
from skrank._model.adapter import RankingAdapter

__all__ = [
    "PARAMS",
    "Predictor",
    "TextBank",
    "encoder_for",
    "fitted_predictor",
    "load_fitted_backbone",
    "predict_tokens",
    "text_bank",
]

# The parameters inference reads: checked again by the ranker at every predict,
# transform, score and compare (set_params may have changed them since fit).
PARAMS = (
    "backbone",
    "pretrained",
    "device",
    "precision",
    "batch_size",
    "cache",
    "cache_dir",
    "num_workers",
)


@dataclass
class TextBank:
    """Frozen text tokens per instruction: (K, T, C) and their validity mask (K, T)."""

    tokens: torch.Tensor
    valid: torch.Tensor

    def get(self, k: int):
        return self.tokens[k : k + 1], self.valid[k : k + 1]  # (1, T, C), (1, T)

    def to(self, device) -> TextBank:
        return TextBank(self.tokens.to(device), self.valid.to(device))


def text_bank(backbone: Backbone, instructions: list[str], precision: str = "auto") -> TextBank:
    """The instructions through the frozen text tower; warns when one is truncated."""
    for text in instructions:
        n = backbone.n_text_tokens(text)
        if n > backbone.context_length:
            warnings.warn(
                f"instruction {text[:60]!r}... needs {n} tokens but backbone "
                f"{backbone.name!r} reads at most {backbone.context_length}: it was truncated",
                UserWarning,
                stacklevel=3,
            )
    return TextBank(*backbone.text_tokens(instructions, precision))


@torch.no_grad()
def predict_tokens(
    adapter: RankingAdapter,
    tokens: torch.Tensor,
    text,
    valid,
    precision: str = "auto",
    instruction: int = 0,
):
    """Standardised scores (B,) and fused tokens (B, L, d) for a batch of frozen tokens
    of instruction number ``instruction``."""
    with devices.autocast(tokens.device, precision):
        scores, fused = adapter(tokens, text, valid, instruction)
    return scores.float(), fused


def encoder_for(backbone: Backbone, params: dict) -> Encoder:
    """The :class:`~skrank._encoding.encoder.Encoder` an estimator's validated ``params``
    ask for (``batch_size``, ``num_workers``, ``precision``): the one place a fit, a
    prediction and ``CLIPEmbedder.transform`` build it."""
    return Encoder(
        backbone,
        batch_size=params["batch_size"],
        num_workers=params["num_workers"],
        precision=params["precision"],
    )


def load_fitted_backbone(estimator, device, what: str = "this ranker") -> Backbone:
    """The backbone ``estimator`` names now, refused when it is not the one ``fit`` loaded.

    ``estimator`` is a fitted ranker or embedder (``backbone``, ``pretrained``,
    ``backbone_info_``); ``what`` names it in the error.
    """
    fitted = estimator.backbone_info_
    if estimator.backbone != fitted.get("name"):  # refused before loading it: it may be huge
        diff = f"name: {fitted.get('name')!r} != {estimator.backbone!r}"
        raise _mismatch(estimator, None, [diff], what)
    backbone = load_backbone(estimator.backbone, estimator.pretrained, device)
    diffs = backbone_mismatch(fitted, backbone.info)
    if "embed_dim" in fitted and fitted["embed_dim"] != backbone.info["embed_dim"]:
        diffs.append(f"embed_dim: {fitted['embed_dim']!r} != {backbone.info['embed_dim']!r}")
    if diffs:
        raise _mismatch(estimator, backbone.info, diffs, what)
    return backbone


def fitted_predictor(estimator, params: dict, what: str = "this ranker") -> Predictor:
    """A :class:`Predictor` for a fitted ranker (``CLIPRanker`` or
    ``CLIPPreferenceRanker``, called ``what`` in errors), as its validated inference
    ``params`` (with ``device_``) now ask: the backbone it names, checked against
    the fitted one, and the token stream of its ``cache``."""
    backbone = load_fitted_backbone(estimator, params["device_"], what)
    encoder = encoder_for(backbone, params)
    return Predictor(estimator, TokenStream(encoder, params["cache"], params["cache_dir"]))


class Predictor:
    """Inference for one fitted ranker, with the tokens ``stream`` serves.

    ``stream``'s encoder holds the backbone (checked against the fitted one by
    :func:`load_fitted_backbone`), the device, the batch size and the precision.
    """

    def __init__(self, ranker, stream: TokenStream):
        encoder = stream.encoder
        device = encoder.backbone.device
        _check_adapter_fits(ranker.adapter_, encoder.backbone)
        self.precision = encoder.precision
        self.batch_size = encoder.batch_size
        self.text = text_bank(encoder.backbone, ranker.instructions_, self.precision).to(device)
        adapter = ranker.adapter_
        if adapter.training or next(adapter.parameters()).device != device:
            adapter = copy.deepcopy(adapter).to(device).eval()
        self.adapter = adapter
        self.stream = stream

    def _fused(self, items, rows, k, failures):
        """Stream (ok rows, standardised scores, fused tokens, frozen tokens) for ``rows``
        of instruction k."""
        text, valid = self.text.get(int(k))
        for ok, tokens, bad in self.stream(items, rows):
            failures += bad
            if len(ok):
                scores, fused = predict_tokens(
                    self.adapter, tokens, text, valid, self.precision, int(k)
                )
                yield ok, scores, fused, tokens

    def scores(self, items: list, codes: np.ndarray) -> tuple[np.ndarray, list]:
        """Standardised scores (NaN where an image failed) and the failures."""
        out = np.full(len(items), np.nan)
        failures: list = []
        for k in np.unique(codes):
            for ok, scores, _, _ in self._fused(items, np.flatnonzero(codes == k), k, failures):
                out[ok] = scores.cpu().numpy()
        self.stream.report()  # one cache warning per prediction, not per instruction
        return out, failures

    def features(self, items: list, codes: np.ndarray) -> tuple[np.ndarray, list]:
        """The adapter's features (n, k) float32 (NaN rows where an image failed)."""
        out = np.full((len(items), self.adapter.n_features), np.nan, np.float32)
        failures: list = []
        for k in np.unique(codes):
            rows = np.flatnonzero(codes == k)
            for ok, _, fused, tokens in self._fused(items, rows, k, failures):
                with torch.no_grad(), devices.autocast(fused.device, self.precision):
                    feats = self.adapter.features(tokens, fused, int(k))
                out[ok] = feats.float().cpu().numpy()
        self.stream.report()
        return out, failures

    def compare(self, items_a: list, items_b: list, codes: np.ndarray) -> tuple[np.ndarray, list]:
        """P(a ranks above b) per pair from the pair branch (NaN where an image failed).

        Each failure's reason starts with the side and position it came from
        (``images_a[i]`` or ``images_b[i]``): both sides share row numbers.
        """
        out = np.full(len(items_a), np.nan)
        failures: list = []
        for k in np.unique(codes):
            rows = np.flatnonzero(codes == k)
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                # A chunk is one encoding batch, so each side yields at most once.
                ok_a, fused_a = self._one(items_a, chunk, k, failures, "images_a")
                ok_b, fused_b = self._one(items_b, chunk, k, failures, "images_b")
                both = np.intersect1d(ok_a, ok_b)
                if len(both):
                    with torch.no_grad():
                        logits = self.adapter.compare_logits(
                            fused_a[np.searchsorted(ok_a, both)],
                            fused_b[np.searchsorted(ok_b, both)],
                        )
                    out[both] = torch.sigmoid(logits.float()).cpu().numpy()
        self.stream.report()
        return out, failures

    def _one(self, items, chunk, k, failures, side):
        """The first (ok rows, fused tokens) of ``chunk``; failures labelled with ``side``."""
        side_failures: list = []
        first = next(
            ((ok, fused) for ok, _, fused, _ in self._fused(items, chunk, k, side_failures)),
            (np.empty(0, dtype=np.int64), None),
        )
        failures += [(i, path, f"{side}[{i}]: {reason}") for i, path, reason in side_failures]
        return first


def _mismatch(
    estimator, current: dict | None, diffs: list[str], what: str = "this ranker"
) -> ValueError:
    """The error for a backbone other than the one ``estimator`` (a ranker or an
    embedder, called ``what``) was fitted with."""
    fitted = estimator.backbone_info_
    now = f" ({current['weights_identity']})" if current is not None else ""
    return ValueError(
        f"{what} was fitted with backbone={fitted.get('name')!r}, "
        f"pretrained={fitted.get('pretrained')!r} ({fitted.get('weights_identity')}), but it "
        f"now has backbone={estimator.backbone!r}, pretrained={estimator.pretrained!r}{now}; they "
        f"differ in {'; '.join(diffs)}. Set backbone and pretrained back to the fitted "
        "values (and restore the original checkpoint file), or fit again"
    )


def _check_adapter_fits(adapter: RankingAdapter, backbone: Backbone) -> None:
    """Refuse an adapter built for other token widths (a damaged or edited model)."""
    cfg = adapter.cfg
    got = {"image_dim": backbone.image_dim, "text_dim": backbone.text_dim}
    bad = [
        f"{k}: adapter {getattr(cfg, k)} != backbone {v}"
        for k, v in got.items()
        if getattr(cfg, k) != v
    ]
    if bad:
        raise ValueError(
            f"the fitted adapter does not fit the tokens of backbone {backbone.name!r} "
            f"({'; '.join(bad)}): the model is damaged or was edited; fit it again"
        )
