"""Prediction and pair comparison with a fitted adapter, without touching the estimator.

A :class:`Predictor` holds what inference needs on one device: the frozen
backbone, the instructions' text tokens, the adapter (the fitted one on the
CPU, a copy elsewhere) and a :class:`~skrank.cache.TokenStream`. It never
moves or changes the fitted ``adapter_``, so threads may predict with one
ranker at once.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from skrank import devices
from skrank.adapter import RankingAdapter
from skrank.backbone import Backbone, load_backbone
from skrank.cache import TokenStream

__all__ = ["Predictor", "TextBank", "predict_tokens", "text_bank"]


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
    adapter: RankingAdapter, tokens: torch.Tensor, text, valid, precision: str = "auto"
):
    """Standardised scores (B,) and fused tokens (B, L, d) for a batch of frozen tokens."""
    with devices.autocast(tokens.device, precision):
        scores, fused = adapter(tokens, text, valid)
    return scores.float(), fused


class Predictor:
    """Inference for one fitted ranker on the device its ``device`` resolves to."""

    def __init__(self, ranker):
        device = devices.resolve_device(ranker.device)
        backbone = load_backbone(ranker.backbone, ranker.pretrained, device)
        fitted = ranker.backbone_info_["weights_identity"]
        if backbone.info["weights_identity"] != fitted:
            raise ValueError(
                f"the backbone weights differ from those the ranker was fitted with "
                f"({backbone.info['weights_identity']} != {fitted}); restore the original "
                "checkpoint"
            )
        self.precision = ranker.precision
        self.batch_size = ranker.batch_size
        self.text = text_bank(backbone, ranker.instructions_, self.precision).to(device)
        adapter = ranker.adapter_
        if adapter.training or next(adapter.parameters()).device != device:
            adapter = copy.deepcopy(adapter).to(device).eval()
        self.adapter = adapter
        self.stream = TokenStream(
            ranker.cache,
            backbone,
            batch_size=ranker.batch_size,
            num_workers=ranker.num_workers,
            cache_dir=ranker.cache_dir,
            precision=self.precision,
        )

    def _fused(self, items, rows, k, failures):
        """Stream (ok rows, standardised scores, fused tokens) for ``rows`` of instruction k."""
        text, valid = self.text.get(int(k))
        for ok, tokens, bad in self.stream(items, rows):
            failures += bad
            if len(ok):
                scores, fused = predict_tokens(self.adapter, tokens, text, valid, self.precision)
                yield ok, scores, fused

    def scores(self, items: list, codes: np.ndarray) -> tuple[np.ndarray, list]:
        """Standardised scores (NaN where an image failed) and the failures."""
        out = np.full(len(items), np.nan)
        failures: list = []
        for k in np.unique(codes):
            for ok, scores, _ in self._fused(items, np.flatnonzero(codes == k), k, failures):
                out[ok] = scores.cpu().numpy()
        return out, failures

    def compare(self, items_a: list, items_b: list, codes: np.ndarray) -> tuple[np.ndarray, list]:
        """P(a ranks above b) per pair from the pair branch (NaN where an image failed)."""
        out = np.full(len(items_a), np.nan)
        failures: list = []
        for k in np.unique(codes):
            rows = np.flatnonzero(codes == k)
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                # A chunk is one encoding batch, so each side yields at most once.
                ok_a, fused_a = self._one(items_a, chunk, k, failures)
                ok_b, fused_b = self._one(items_b, chunk, k, failures)
                both = np.intersect1d(ok_a, ok_b)
                if len(both):
                    with torch.no_grad():
                        logits = self.adapter.compare_logits(
                            fused_a[np.searchsorted(ok_a, both)],
                            fused_b[np.searchsorted(ok_b, both)],
                        )
                    out[both] = torch.sigmoid(logits.float()).cpu().numpy()
        return out, failures

    def _one(self, items, chunk, k, failures):
        for ok, _, fused in self._fused(items, chunk, k, failures):
            return ok, fused
        return np.empty(0, dtype=np.int64), None
