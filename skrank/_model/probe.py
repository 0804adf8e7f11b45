"""The linear probe an adapter's score can be blended with: ridge on the frozen tokens.

With ``probe="ridge"`` (off by default), a fit also fits, in closed form, a
ridge regression per instruction on each frozen token feature's mean and
spread over the image (its penalty chosen by exact leave-one-out error),
trains the adapter as the paper does, and then blends the two:
``score = (1 - m) * head(adapter tokens) + m * ridge(frozen tokens)``, with one
weight ``m`` in {0, 0.25, 0.5, 0.75, 1} chosen by Spearman correlation on
images neither was fitted on (``X_val``, the early-stopping split, or held-out
groups; never held-out rows of groups that also train, which favour the probe).
A linear probe on frozen features is a practitioner's first baseline; the blend
keeps the adapter where it is better and the probe where it is. It costs the
adapter the held-out images, which is why it is not the default:
``docs/model.md`` ("The linear probe") has the measurements.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from skrank.metrics import spearman_score

__all__ = [
    "ALPHAS",
    "WEIGHTS",
    "LinearProbe",
    "blend",
    "choose_weight",
    "fit_probe",
    "fit_ridge",
    "token_statistics",
]

# Ridge penalties tried, relative to the features' standardised scale (as RidgeCV's
# grid in the benchmarks' baselines).
ALPHAS = np.logspace(-3, 4, 15)
# The probe's weights in the blend a fit chooses from: 0 is the adapter alone.
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Fewest held-out rows the weight is chosen on; with fewer the adapter stands alone.
MIN_BLEND_ROWS = 8


def token_statistics(tokens: torch.Tensor) -> torch.Tensor:
    """Each feature's mean and (population) standard deviation over an image's tokens.

    ``tokens`` (B, L, C) → (B, 2C) float32. The probe reads these: blur, noise or
    pixelation change how much an image varies from patch to patch, which its
    mean token alone does not show.
    """
    tokens = tokens.float()
    return torch.cat([tokens.mean(dim=1), tokens.std(dim=1, correction=0)], dim=-1)


class LinearProbe(nn.Module):
    """A linear score per instruction on :func:`token_statistics`, times its weight.

    All tensors are buffers, saved with the adapter and never trained: the ridge
    solution (``center``, ``scale``, ``weight``, ``bias``) and ``gate``, the
    probe's weight ``m`` in the score (0 until :func:`blend` sets it, so the
    adapter trains alone).
    """

    def __init__(self, image_dim: int, n_instructions: int = 1):
        super().__init__()
        n, f32 = 2 * image_dim, torch.float32  # whatever torch's default dtype
        self.register_buffer("center", torch.zeros(n, dtype=f32))
        self.register_buffer("scale", torch.ones(n, dtype=f32))
        self.register_buffer("weight", torch.zeros(n_instructions, n, dtype=f32))
        self.register_buffer("bias", torch.zeros(n_instructions, dtype=f32))
        self.register_buffer("gate", torch.zeros(n_instructions, dtype=f32))

    def ridge(self, image_tokens: torch.Tensor, instruction: int = 0) -> torch.Tensor:
        """The ridge fit's scores (B,), before the gate."""
        x = (token_statistics(image_tokens) - self.center) / self.scale  # (B, 2C)
        return x @ self.weight[instruction] + self.bias[instruction]

    def forward(self, image_tokens: torch.Tensor, instruction: int = 0) -> torch.Tensor:
        return self.gate[instruction] * self.ridge(image_tokens, instruction)  # (B,)

    @torch.no_grad()
    def set(self, center, scale, weight, bias) -> None:
        """Load a closed-form fit (numpy arrays) into the buffers, in their dtype."""
        values = {"center": center, "scale": scale, "weight": weight, "bias": bias}
        for name, value in values.items():
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(np.asarray(value), dtype=buffer.dtype))


def fit_ridge(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, alphas=ALPHAS
) -> tuple[np.ndarray, float, float]:
    """Ridge regression with an intercept; the penalty with the least leave-one-out error.

    ``X`` (n, F), ``y`` (n,), optional ``weight`` (n,) > 0. Returns (coef (F,),
    intercept, alpha). The leave-one-out residuals are exact (``e_i / (1 - h_ii)``
    with the intercept's leverage included, as ``RidgeCV`` computes them), from
    one eigendecomposition of the smaller Gram matrix. Fewer than two rows give
    the (weighted) mean.
    """
    # Not RidgeCV(alphas=ALPHAS) with sample_weight = w * n, which chooses the same
    # penalty and coefficients (to 6e-13; benchmarks/experiments/library_kernels.py) but
    # took 6-7 times as long from 2,000 rows (99 s against 14 s at 20,000 x 2,048): its
    # "cov" mode recomputes the hat matrix's diagonal in O(n F^2) per penalty, where
    # the projection Q below, made once, leaves O(n F) per penalty.
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    w = w / w.sum()
    x_mean, y_mean = w @ X, float(w @ y)
    if len(y) < 2:
        return np.zeros(X.shape[1]), y_mean, float(alphas[-1])
    root = np.sqrt(w * len(y))  # rows scaled so that plain ridge is weighted ridge
    Xc, yc = (X - x_mean) * root[:, None], (y - y_mean) * root
    n, f = Xc.shape
    if n <= f:  # kernel form: H = U diag(lam / (lam + a)) U^T, Xc Xc^T = U diag(lam) U^T
        lam, Q = np.linalg.eigh(Xc @ Xc.T)
    else:  # primal form: H = Q diag(1 / (lam + a)) Q^T, Q = Xc V, Xc^T Xc = V diag(lam) V^T
        lam, V = np.linalg.eigh(Xc.T @ Xc)
        Q = Xc @ V
    lam = np.clip(lam, 0.0, None)
    Qy = Q.T @ yc
    best = (np.inf, float(alphas[0]))
    for alpha in alphas:
        factor = lam / (lam + alpha) if n <= f else 1.0 / (lam + alpha)
        # The unpenalised intercept adds its own leverage, w_i (the scaled rows'
        # intercept column is orthogonal to the centred features): without it an
        # interpolating fit (n <= F) would look perfect out of sample.
        leverage = (Q**2) @ factor + w
        loo = (yc - Q @ (factor * Qy)) / np.clip(1.0 - leverage, 1e-12, None)
        error = float(np.mean(loo**2))
        if error < best[0]:
            best = (error, float(alpha))
    alpha = best[1]
    if n <= f:
        coef = Xc.T @ (Q @ (Qy / (lam + alpha)))
    else:
        coef = V @ ((V.T @ (Xc.T @ yc)) / (lam + alpha))
    return coef, y_mean - float(x_mean @ coef), alpha


def fit_probe(probe: LinearProbe, data, rows: np.ndarray, batch_size: int) -> list[float]:
    """Fit ``probe``'s ridge on ``rows`` of ``data`` (a :class:`skrank._model.training.TrainData`).

    One pass over the rows' unflipped frozen tokens; features standardised over
    the rows, one ridge per instruction on its own rows (an instruction with
    fewer than two gets its mean). Returns the penalty chosen per instruction
    (NaN for an instruction without rows). The gate is left as it is.
    """
    rows = np.sort(np.asarray(rows))
    feats = np.empty((len(rows), probe.center.numel()), dtype=np.float64)
    no_flip = np.zeros(batch_size, dtype=bool)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        tokens = data.source.tokens(chunk, no_flip[: len(chunk)], "cpu")
        feats[start : start + len(chunk)] = token_statistics(tokens).double().numpy()
    center = feats.mean(axis=0)
    scale = feats.std(axis=0)
    scale = np.where(scale > 1e-8 * max(1.0, float(np.abs(center).max())), scale, 1.0)
    X = (feats - center) / scale
    n_instructions = probe.weight.shape[0]
    weight = np.zeros((n_instructions, X.shape[1]))
    bias = np.zeros(n_instructions)
    alphas = []
    instr, y = data.instr[rows], data.y_std[rows]
    for k in range(n_instructions):
        mine = instr == k
        if not mine.any():
            alphas.append(float("nan"))
            continue
        w = None if data.weight is None else data.weight[rows][mine]
        weight[k], bias[k], alpha = fit_ridge(X[mine], y[mine], w)
        alphas.append(alpha)
    probe.set(center, scale, weight, bias)
    return alphas


def choose_weight(head, ridge, y, groups, sample_weight=None, weights=WEIGHTS) -> float:
    """The probe's weight ``m`` whose blend ``(1 - m) * head + m * ridge`` ranks ``y``
    best (Spearman within ``groups``, weighted), the smallest on ties; 0 (the
    adapter alone) when no blend gives a finite correlation."""
    best, chosen = -np.inf, 0.0
    for m in weights:
        score = spearman_score(
            y, (1 - m) * head + m * ridge, groups=groups, sample_weight=sample_weight
        )
        if np.isfinite(score) and score > best + 1e-12:
            best, chosen = float(score), float(m)
    return chosen


@torch.no_grad()
def blend(adapter, m: float) -> None:
    """Make ``adapter``'s score ``(1 - m) * head + m * ridge``: the head's last layer
    scaled by ``1 - m``, the probe's gate set to ``m`` (every instruction)."""
    last = adapter.score_head.mlp[-1]
    last.weight.mul_(1.0 - m)
    last.bias.mul_(1.0 - m)
    adapter.probe.gate.fill_(m)
