"""The ranking-aware adapter: small torch modules, composed once (see ``docs/model.md``).

Shapes: B images, L image tokens, T text positions (+ P prompt tokens), R
relation tokens, d model width, h heads of width c = d / h.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from skrank._model.probe import LinearProbe

__all__ = ["AdapterConfig", "RankingAdapter", "dropout_generator"]

# The values each option may take; the first is the default (the mean-and-spread
# head, docs/model.md; no linear probe; no position code). CLIPRanker leaves
# score_pooling and image_positions to its preset. The layers themselves are always
# the reference's (docs/model.md, "The fidelity ablation"); what a model file from
# before an option existed means is the loader's rule (skrank.persistence._schema_compat).
OPTIONS = {
    "score_pooling": ("mean_std", "mean"),
    "probe": ("none", "ridge"),
    "image_positions": ("none", "sincos"),
}
POST_DROPOUT = 0.1  # the reference's post-fusion encoder layers (torch's default)

# The generator dropout draws from while a fit trains (training.train sets it). A
# ContextVar, not torch's process-wide generator: fits in threads (joblib's threading
# backend, a Dask worker) each draw their own stream. None: torch's global generator.
_DROPOUT_GENERATOR: ContextVar[torch.Generator | None] = ContextVar(
    "skrank_dropout_generator", default=None
)


@contextmanager
def dropout_generator(generator: torch.Generator) -> Iterator[None]:
    """Draw the adapters' dropout masks from ``generator`` within this context (and thread)."""
    token = _DROPOUT_GENERATOR.set(generator)
    try:
        yield
    finally:
        _DROPOUT_GENERATOR.reset(token)


def _dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """``F.dropout(x, p)`` (zero with probability p, scale the rest by 1 / (1 - p)), its
    mask drawn from the generator of :func:`dropout_generator`."""
    keep = torch.rand(x.shape, generator=_DROPOUT_GENERATOR.get(), device=x.device) >= p
    # The values of x * keep / (1 - p), but the backward keeps the boolean mask (a
    # byte a value), not a copy of it in x's dtype.
    return torch.where(keep, x / (1 - p), 0.0)


def in_fp32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` in float32 whatever autocast is in force: the few small layers whose
    output is a score or a logit, where bf16's 8-bit mantissa would round the very
    numbers a ranking and its loss compare (see the adapter's ``encode``)."""
    with torch.autocast(x.device.type, enabled=False):
        return module(x.float())


def _factory() -> dict:
    """Where and how new parameters are made: float32 whatever torch's default dtype
    (``torch.set_default_dtype``), on the CPU, where a fit's seeded generator draws,
    or on the meta device when building under it (checking a model file)."""
    meta = torch.get_default_device().type == "meta"
    return {"device": "meta" if meta else "cpu", "dtype": torch.float32}


def _linear(d_in: int, d_out: int, generator: torch.Generator | None, bias: bool = True):
    """``nn.Linear(d_in, d_out)`` initialised as its ``reset_parameters`` does (the
    same draws, in the same order), from ``generator`` (None: torch's global one)."""
    where = _factory()
    layer = nn.Linear(d_in, d_out, bias=bias, device="meta", dtype=where["dtype"])
    layer = layer.to_empty(device=where["device"])  # allocated, not drawn: drawn below
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if bias:
            bound = 1 / math.sqrt(d_in) if d_in > 0 else 0
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _norm(d: int) -> nn.LayerNorm:
    return nn.LayerNorm(d, **_factory())


def _tokens(n: int, d: int, generator: torch.Generator | None) -> nn.Parameter:
    """Learnable tokens, N(0, 0.02²): ``torch.randn(n, d) * 0.02`` drawn from ``generator``."""
    return nn.Parameter(torch.empty(n, d, **_factory()).normal_(generator=generator) * 0.02)


@dataclass
class AdapterConfig:
    image_dim: int  # width of the frozen image tokens
    text_dim: int  # width of the frozen text tokens
    d_model: int = 512
    n_fusion_layers: int = 2
    n_post_layers: int = 2
    n_heads: int = 8
    n_prompt_tokens: int = 32
    n_relation_tokens: int = 16
    mlp_ratio: int = 4
    # "mean_std": the score head pools each feature's mean and spread over tokens;
    # "mean": the paper's mean only.
    score_pooling: str = "mean_std"
    # "none": the paper's head alone; "ridge": the head's score blended after
    # training with a ridge probe on the frozen tokens, by a weight chosen on
    # held-out rows (skrank._model.probe).
    probe: str = "none"
    n_instructions: int = 1  # rows of the probe: one per fitted instruction
    # "sincos": a fixed 2-D sine-cosine code of each image token's place in the
    # grid, added to the projected tokens, so that the adapter (whose head pools
    # over tokens) can tell where in the image something is; "none": the reference's.
    image_positions: str = "none"

    def __post_init__(self):
        for name, allowed in OPTIONS.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))}; "
                    f"got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    """Multi-head attention; queries from ``x``, keys/values from ``context``.

    ``context`` (and ``key_valid``) may have batch size 1 while ``x`` has B:
    the instruction and prompt a batch of images shares. Its keys and values
    are then projected once and broadcast to the B images, not once per image.
    ``dropout`` drops attention weights while training (the post-LN layers').
    ``generator`` draws the initial weights (None: torch's global generator).
    """

    def __init__(self, d: int, n_heads: int, dropout: float = 0.0, generator=None):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.q = _linear(d, d, generator)
        self.kv = _linear(d, 2 * d, generator)
        self.out = _linear(d, d, generator)

    def forward(self, x, context, key_valid=None):
        B, Lq, d = x.shape
        h = self.n_heads
        q = self.q(x).view(B, Lq, h, d // h).transpose(1, 2)  # (B, h, Lq, c)
        Bc = context.shape[0]  # B, or 1 for a context every image shares
        k, v = self.kv(context).view(Bc, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)  # (Bc, h, Lk, c)
        k, v = k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)  # a view: no copy
        mask = None if key_valid is None else key_valid[:, None, None, :]  # (Bc, 1, 1, Lk)
        if self.training and self.dropout > 0:
            y = _attend_with_dropout(q, k, v, mask, self.dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, Lq, c)
        return self.out(y.transpose(1, 2).reshape(B, Lq, d))


def _attend_with_dropout(q, k, v, mask, p: float):
    """``F.scaled_dot_product_attention(q, k, v, mask, dropout_p=p)``, written out: torch's
    draws its dropout mask from the process-wide generator, this one through :func:`_dropout`."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, Lq, Lk)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return _dropout(torch.softmax(logits, dim=-1), p) @ v


class MLP(nn.Module):
    def __init__(self, d: int, ratio: int, generator=None):
        super().__init__()
        self.fc = _linear(d, ratio * d, generator)
        self.proj = _linear(ratio * d, d, generator)

    def forward(self, x):
        h = self.fc(x)
        a = F.gelu(h)
        # proj's backward needs a; keep h alone (gelu's backward keeps it anyway) and
        # compute a again from it then: one elementwise pass saves a hidden-wide copy.
        with torch.autograd.graph.saved_tensors_hooks(_AsGelu(h, a).pack, _AsGelu.unpack):
            return self.proj(a)


class _AsGelu:
    """Saved-tensor hooks that keep ``a = gelu(h)`` (or a view of it) as ``h`` and the
    view's geometry, and compute it again when the backward asks: the same values."""

    def __init__(self, h: torch.Tensor, a: torch.Tensor):
        self.h, self.a = h, a

    def pack(self, t: torch.Tensor):
        a = self.a
        if t.dtype != a.dtype or t.untyped_storage().data_ptr() != a.untyped_storage().data_ptr():
            return t
        return _GeluOf(self.h, t.size(), t.stride(), t.storage_offset())

    @staticmethod
    def unpack(packed):
        if not isinstance(packed, _GeluOf):
            return packed
        return F.gelu(packed.h).as_strided(packed.size, packed.stride, packed.offset)


class _GeluOf(NamedTuple):
    h: torch.Tensor
    size: torch.Size
    stride: tuple
    offset: int


class Block(nn.Module):
    """Pre-LN block: self-attention (``cross=False``) or cross-attention to the
    context (``cross=True``), then its own MLP.

    The reference's fusion layer is two of them: one with self-attention over
    the image's tokens, then one with cross-attention from them (LayerNorm on
    the queries) to the instruction and prompt (LayerNorm on the keys/values).
    """

    def __init__(self, d: int, n_heads: int, mlp_ratio: int, cross: bool, generator=None):
        super().__init__()
        self.cross = cross
        if cross:
            self.ln_query = _norm(d)
            self.ln_context = _norm(d)
            self.cross_attn = Attention(d, n_heads, generator=generator)
        else:
            self.ln_self = _norm(d)
            self.self_attn = Attention(d, n_heads, generator=generator)
        self.ln_mlp = _norm(d)
        self.mlp = MLP(d, mlp_ratio, generator)

    def forward(self, x, context=None, context_valid=None):
        if self.cross:
            x = x + self.cross_attn(self.ln_query(x), self.ln_context(context), context_valid)
        else:
            h = self.ln_self(x)
            x = x + self.self_attn(h, h)
        return x + self.mlp(self.ln_mlp(x))


class PostLNBlock(nn.Module):
    """A post-LN transformer encoder layer, as ``torch.nn.TransformerEncoderLayer``
    builds it for the reference: x = LN(x + drop(attn(x))), x = LN(x + drop(ff(x))),
    ff = Linear(d, d), ReLU, dropout, Linear(d, d)."""

    def __init__(self, d: int, n_heads: int, dropout: float = POST_DROPOUT, generator=None):
        super().__init__()
        self.dropout = dropout
        self.attn = Attention(d, n_heads, dropout, generator)
        self.ln_attn = _norm(d)
        self.fc = _linear(d, d, generator)
        self.proj = _linear(d, d, generator)
        self.ln_ff = _norm(d)

    def drop(self, x):
        return _dropout(x, self.dropout) if self.training and self.dropout > 0 else x

    def forward(self, x, context=None, context_valid=None):
        x = self.ln_attn(x + self.drop(self.attn(x, x)))
        return self.ln_ff(x + self.drop(self.proj(self.drop(F.relu(self.fc(x))))))


def _mlp_stack(d: int, n_blocks: int, d_in: int | None = None, generator=None) -> nn.Sequential:
    """``n_blocks`` × [Linear, LayerNorm, ReLU] (the first from ``d_in``), then Linear
    to one logit."""
    layers: list[nn.Module] = []
    for i in range(n_blocks):
        layers += [_linear(d_in if i == 0 and d_in else d, d, generator), _norm(d), nn.ReLU()]
    return nn.Sequential(*layers, _linear(d, 1, generator))


class ScoreHead(nn.Module):
    """LayerNorm, pool over tokens, two MLP blocks, one score per image.

    ``pooling="mean"`` is the paper's head. ``"mean_std"`` also pools each
    feature's standard deviation over the image's tokens: how much the image
    varies from patch to patch (pixelation, blur, noise) is a second-order
    statistic that a mean of per-token features reaches only through what the
    blocks before it learn, and on ~100 training images they do not
    (``docs/model.md``, "Score pooling"). Both are independent of the token count.
    """

    def __init__(self, d: int, pooling: str = "mean_std", generator=None):
        super().__init__()
        if pooling not in ("mean", "mean_std"):
            raise ValueError(f"pooling must be 'mean' or 'mean_std', got {pooling!r}")
        self.pooling = pooling
        self.ln = _norm(d)
        self.mlp = _mlp_stack(d, 2, 2 * d if pooling == "mean_std" else d, generator)

    @property
    def n_features(self) -> int:
        """Width of :meth:`pool`'s features: d, or 2d for ``"mean_std"``."""
        return self.mlp[0].in_features

    def pool(self, tokens):  # (B, L, d) → (B, d) or (B, 2d)
        """The per-image features the score MLP reads (``CLIPRanker.transform``)."""
        h = self.ln(tokens)
        pooled = h.mean(dim=1)
        if self.pooling == "mean_std":  # population std: no NaN at L = 1
            pooled = torch.cat([pooled, h.std(dim=1, correction=0)], dim=-1)  # (B, 2d)
        return pooled

    def forward(self, tokens):  # (B, L, d)
        return in_fp32(self.mlp, self.pool(tokens)).squeeze(-1)  # (B,)


class RelationAttention(nn.Module):
    """Ranking-aware attention, factorised exactly (see ``docs/model.md``).

    For relation query q, the joint softmax over both images' keys splits as
    O_i − O_j = w U_i − (1 − w) U_j with U the per-image attention output and
    w = sigmoid(log Z_i − log Z_j), Z the per-image softmax normaliser. So the
    per-image statistics (U, log Z) cost O(B·L) and each pair only O(d).

    As the reference: LayerNorm on the projected queries, and one projection,
    layer-normed per token, serving as both keys and values.
    """

    def __init__(self, d: int, n_heads: int, n_tokens: int, generator=None):
        super().__init__()
        self.n_heads = n_heads
        self.tokens = _tokens(n_tokens, d, generator)
        self.q = _linear(d, d, generator)
        self.ln_q = _norm(d)
        self.kv = _linear(d, d, generator)
        self.ln_kv = _norm(d)
        # No bias: the pair feature must stay antisymmetric, f(j, i) = −f(i, j).
        self.out = _linear(d, d, generator, bias=False)

    def stats(self, x):
        """Per-image attention output U (B, h, R, c) and log-normaliser (B, h, R).

        Keys = values = LN(W x + b), one per token of one image: per-image
        quantities, so the joint softmax over two images still splits exactly."""
        B, L, d = x.shape
        h, c = self.n_heads, d // self.n_heads
        q = self.ln_q(self.q(self.tokens)).view(-1, h, c) / math.sqrt(c)  # (R, h, c)
        kv = self.ln_kv(self.kv(x)).view(B, L, h, c)  # (B, L, h, c)
        logits = torch.einsum("rhc,blhc->bhrl", q.to(kv.dtype), kv).float()  # (B, h, R, L)
        log_z = torch.logsumexp(logits, dim=-1)  # (B, h, R)
        p = torch.softmax(logits, dim=-1).to(kv.dtype)
        return torch.einsum("bhrl,blhc->bhrc", p, kv), log_z  # (B, h, R, c), (B, h, R)

    def _project(self, diff):  # (..., h, c) averaged over R → (..., d)
        return self.out(diff.flatten(-2))

    def all_pairs(self, u, log_z, rows: slice = slice(None)):
        """Pair features for rows i in ``rows`` × every j: (len(rows), B, d)."""
        w = torch.sigmoid(log_z[rows, None] - log_z[None, :]).to(u.dtype)  # (b, B, h, R)
        R = u.shape[2]
        mine = torch.einsum("ijhr,ihrc->ijhc", w, u[rows])  # Σ_r w U_i: (b, B, h, c)
        theirs = torch.einsum("ijhr,jhrc->ijhc", 1 - w, u)  # Σ_r (1 − w) U_j
        # In place: einsum's backward needs its inputs, not its output; saves two copies.
        return self._project(mine.sub_(theirs).div_(R))  # (b, B, d)

    def pairs(self, u_a, log_z_a, u_b, log_z_b):
        """Pair features for explicit pairs (a_n, b_n): (N, d)."""
        w = torch.sigmoid(log_z_a - log_z_b).to(u_a.dtype)[..., None]  # (N, h, R, 1)
        return self._project((w * u_a - (1 - w) * u_b).mean(dim=2))  # (N, d)


class PairHead(nn.Module):
    """LayerNorm and three MLP blocks: the logit that image i ranks above j.

    The logit is the odd part of the MLP g in the pair feature, (g(f) − g(−f)) / 2,
    and the feature is antisymmetric in the pair, so logit(j, i) = −logit(i, j)
    and logit(i, i) = 0: P(i above j) + P(j above i) = 1, P(i above i) = 0.5.
    """

    def __init__(self, d: int, generator=None):
        super().__init__()
        self.ln = _norm(d)
        self.mlp = _mlp_stack(d, 3, generator=generator)

    def raw(self, feats):  # (..., d) → (...)
        """The MLP's logit g(f), not yet made odd."""
        return in_fp32(self.mlp, self.ln(feats.float())).squeeze(-1)

    def forward(self, feats):  # (..., d)
        """The odd logit (g(f) − g(−f)) / 2, both halves in one pass of the MLP."""
        both = self.raw(torch.stack([feats, -feats]))  # (2, ...)
        return 0.5 * (both[0] - both[1])


def _fusion_blocks(cfg: AdapterConfig, generator=None) -> list[nn.Module]:
    """The fusion layers' blocks in order, two per layer as the reference's: self-attention
    + MLP, then cross-attention to the instruction and prompt + MLP."""
    d, h, r, g = cfg.d_model, cfg.n_heads, cfg.mlp_ratio, generator
    blocks: list[nn.Module] = []
    for _ in range(cfg.n_fusion_layers):
        blocks += [
            Block(d, h, r, cross=False, generator=g),
            Block(d, h, r, cross=True, generator=g),
        ]
    return blocks


def grid_positions(n_tokens: int, d: int, device=None) -> torch.Tensor:
    """A fixed (n_tokens, d) code of each token's place in its grid, values in [-1, 1].

    Tokens are read as a row-major square grid when ``n_tokens`` is a square
    (ViT patches, a ConvNeXt map); then half the features code the row and half
    the column, each as sines and cosines of the position at ``d / 4``
    geometrically spaced frequencies (the 2-D form of the transformer's
    sinusoidal code). Otherwise the code is 1-D over the token index.
    """
    side = math.isqrt(n_tokens)
    if side * side == n_tokens:
        index = torch.arange(n_tokens, device=device, dtype=torch.float32)
        rows, cols = torch.div(index, side, rounding_mode="floor"), index % side
        half = d // 2
        return torch.cat([_sincos(rows, half, device), _sincos(cols, d - half, device)], dim=1)
    return _sincos(torch.arange(n_tokens, device=device, dtype=torch.float32), d, device)


def _sincos(position: torch.Tensor, d: int, device=None) -> torch.Tensor:
    """(n, d): sin and cos of ``position`` at d / 2 frequencies 1 / 100^(k / (d / 2))."""
    n_freq = max(1, d // 2)
    freq = 100.0 ** (-torch.arange(n_freq, device=device, dtype=torch.float32) / n_freq)
    angle = position[:, None] * freq[None]
    code = torch.cat([angle.sin(), angle.cos()], dim=1)
    return code[:, :d] if code.shape[1] >= d else F.pad(code, (0, d - code.shape[1]))


class RankingAdapter(nn.Module):
    """Frozen-CLIP tokens + instruction → a score per image and a logit per pair.

    Its parameters are float32 (whatever torch's default dtype) and drawn from
    ``generator``, torch's global generator when None: a fit passes its own
    seeded one, so fits in threads never draw from each other's stream.
    """

    def __init__(self, cfg: AdapterConfig, generator: torch.Generator | None = None):
        super().__init__()
        d, g = cfg.d_model, generator
        if d % cfg.n_heads:
            raise ValueError(f"d_model={d} must be divisible by n_heads={cfg.n_heads}")
        self.cfg = cfg
        self.image_in = _linear(cfg.image_dim, d, g)
        self.text_in = _linear(cfg.text_dim, d, g)
        self.prompt = _tokens(cfg.n_prompt_tokens, d, g)
        self.fusion = nn.ModuleList(_fusion_blocks(cfg, g))
        self.fusion_ln = _norm(d)
        self.fusion_out = _linear(d, d, g)
        self.post = nn.ModuleList(
            PostLNBlock(d, cfg.n_heads, generator=g) for _ in range(cfg.n_post_layers)
        )
        self.score_head = ScoreHead(d, cfg.score_pooling, g)
        self.relation = RelationAttention(d, cfg.n_heads, cfg.n_relation_tokens, g)
        self.pair_head = PairHead(d, generator=g)
        # "ridge": a linear probe whose weight in the score is chosen after training.
        self.probe = None
        if cfg.probe == "ridge":
            self.probe = LinearProbe(cfg.image_dim, cfg.n_instructions)

    def context(self, text, text_valid):
        """Instruction tokens + learnable prompt: keys/values (1, T + P, d) and mask."""
        ctx = self.text_in(text)  # (1, T, d)
        prompt = self.prompt[None].to(ctx.dtype)  # (1, P, d)
        valid = torch.cat([text_valid, text_valid.new_ones(1, prompt.shape[1])], dim=1)
        return torch.cat([ctx, prompt], dim=1), valid  # (1, T + P, d), (1, T + P)

    def encode(self, image_tokens, text, text_valid):
        """Fused, per-image tokens (B, L, d) for one instruction.

        ``image_tokens`` (B, L, C_img); ``text`` (1, T, C_txt); ``text_valid`` (1, T) bool.

        The residual stream is float32 under bf16 autocast too: each block's
        matrix products run in bf16, but what they add to is kept in float32
        (``x`` is cast after the two projections that start it), as are the
        LayerNorms that read it and the score and pair heads' MLPs
        (:func:`in_fp32`). In float32 the casts are no-ops.
        """
        x = self.image_in(image_tokens).float()  # (B, L, d)
        if self.cfg.image_positions == "sincos":
            x = x + grid_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        # One context for the batch: the cross-attention projects its keys and values
        # once, not once per image (Attention broadcasts them).
        ctx, valid = self.context(text, text_valid)  # (1, T + P, d), (1, T + P)
        for block in self.fusion:
            x = block(x, ctx, valid)
        x = self.fusion_out(self.fusion_ln(x)).float()
        for block in self.post:
            x = block(x)
        return x  # (B, L, d)

    def forward(self, image_tokens, text, text_valid, instruction: int = 0):
        """Scores (B,) and the fused tokens (B, L, d); ``instruction`` indexes the
        probe's rows (the fitted instructions, in order)."""
        tokens = self.encode(image_tokens, text, text_valid)
        scores = self.score_head(tokens)
        if self.probe is not None:
            scores = scores + self.probe(image_tokens, instruction).to(scores.dtype)
        return scores, tokens

    @property
    def n_features(self) -> int:
        """Width of :meth:`features`."""
        return self.score_head.n_features + (self.probe is not None)

    def features(self, image_tokens, tokens, instruction: int = 0):
        """What the score is computed from (``CLIPRanker.transform``): the pooled
        features the score head's MLP reads and, with a probe, the probe's score as
        the last column (the score is the MLP's output plus that column)."""
        pooled = self.score_head.pool(tokens)  # (B, k)
        if self.probe is None:
            return pooled
        probe = self.probe(image_tokens, instruction).to(pooled.dtype)
        return torch.cat([pooled, probe[:, None]], dim=-1)  # (B, k + 1)

    def pair_logits(self, tokens, max_pairs: int = 16384):
        """Logits (B, B) that image i ranks above image j, computed in row chunks
        of at most ``max_pairs`` pairs so peak memory stays bounded.

        The pair feature is antisymmetric, f(j, i) = −f(i, j), so the odd logit
        (g(f) − g(−f)) / 2 of every pair is (G − Gᵀ) / 2 with G = g(f) over all
        ordered pairs: one pass of the pair head's MLP, not two.
        """
        u, log_z = self.relation.stats(tokens)
        B = tokens.shape[0]
        step = max(1, max_pairs // B)
        rows = [
            self.pair_head.raw(self.relation.all_pairs(u, log_z, slice(i, i + step)))
            for i in range(0, B, step)
        ]
        g = torch.cat(rows, dim=0)  # (B, B)
        return 0.5 * (g - g.T)

    def compare_logits(self, tokens_a, tokens_b):
        """Logits (N,) that a_n ranks above b_n, for explicit pairs."""
        u_a, z_a = self.relation.stats(tokens_a)
        u_b, z_b = self.relation.stats(tokens_b)
        return self.pair_head(self.relation.pairs(u_a, z_a, u_b, z_b))

    def picked_compare_logits(self, tokens, pick_a, pick_b):
        """Logits (N,) that image a_n ranks above image b_n of one batch ``tokens``
        (B, L, d), the pairs given as one-hot rows ``pick_a``, ``pick_b`` (N, B) (see
        :func:`pick_rows`): each image's relation statistics are computed once, however
        many of the pairs it is in."""
        u, log_z = self.relation.stats(tokens)
        return self.pair_head(
            self.relation.pairs(
                pick_rows(pick_a, u), pick_rows(pick_a, log_z),
                pick_rows(pick_b, u), pick_rows(pick_b, log_z),
            )
        )  # fmt: skip


def one_hot_rows(index, n: int, device=None) -> torch.Tensor:
    """Float rows (len(index), n), row k one-hot at ``index[k]``, for :func:`pick_rows`."""
    index = torch.as_tensor(index, dtype=torch.long, device=device)
    return F.one_hot(index, n).float()


def pick_rows(pick: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x[index]`` for the one-hot rows ``pick`` of :func:`one_hot_rows`, as a product.

    The same values as indexing, but a different backward: indexing with a repeated
    index adds its gradients with atomic adds, in whatever order the threads (on CPU)
    or blocks (on CUDA) reach them, so a fit would not repeat bit for bit; a matrix
    product sums in a fixed order. Exact in any dtype (one term of each sum is not
    zero), and run outside autocast so float32 inputs stay float32.
    """
    with torch.autocast(x.device.type, enabled=False):
        flat = x.reshape(x.shape[0], -1)
        return (pick.to(x.dtype) @ flat).view(pick.shape[0], *x.shape[1:])
