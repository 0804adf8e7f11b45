"""Training losses: log-smooth-L1 regression and pairwise BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pair_targets", "ranking_loss", "regression_loss"]


def regression_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``log(1 + SmoothL1(pred, target))`` on standardised targets, batch mean.

    With ``weight`` (B,), the SmoothL1 mean is weighted by the rows' weights.
    """
    if weight is None:
        return torch.log1p(F.smooth_l1_loss(pred.float(), target.float()))
    per_row = F.smooth_l1_loss(pred.float(), target.float(), reduction="none")
    return torch.log1p((per_row * weight).sum() / weight.sum().clamp_min(1e-12))


def pair_targets(y: torch.Tensor) -> torch.Tensor:
    """(B, B) soft labels that i ranks above j: 1 if y_i > y_j, 0 if below, 0.5 on ties."""
    diff = y[:, None] - y[None, :]
    return (diff > 0).float() + 0.5 * (diff == 0).float()


def ranking_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    pair_mask: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean BCE-with-logits over the ordered pairs where ``pair_mask`` is True.

    With ``weight`` (B,), pair (i, j) counts ``weight[i] * weight[j]``.
    ``pair_mask`` (B, B) must already exclude the diagonal and any pair that
    should not be compared (another instruction or, with ``pair_scope="group"``,
    another group). Returns 0 when no pair is left. A weighted mean rather than
    boolean indexing: selecting by a mask makes the GPU wait for the host.
    """
    pairs = pair_mask.float()
    if weight is not None:
        pairs = pairs * (weight[:, None] * weight[None, :])
    per_pair = F.binary_cross_entropy_with_logits(
        logits.float(), pair_targets(y), weight=pairs, reduction="sum"
    )
    return per_pair / pairs.sum().clamp_min(1e-12)  # 0 when no pair is left
