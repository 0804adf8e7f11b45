"""Training the adapter from comparisons: "image a ranks above image b", with a label.

A comparison's label is the probability that ``a`` ranks above ``b``: 1 or 0
for a verdict, 0.5 for a tie, or the share of annotators who chose ``a``. The
comparisons train the adapter twice over, as the issue of learning from
preferences asks:

- the score head, by a Bradley–Terry (RankNet) loss on the difference of the
  two images' scores, ``BCE(sigmoid(s_a - s_b), label)``: the per-image score
  ``predict`` and ranking read, whose differences are log-odds;
- the ranking-aware pair branch, by the same BCE on its logit for (a, b).

Each image is encoded once (the token source serves every image of the
comparisons by index), and a step encodes each image of its batch once
whatever the number of its comparisons. :func:`comparison_batches` draws the
batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from skrank import _devices as devices
from skrank._model.adapter import RankingAdapter, dropout_generator, one_hot_rows, pick_rows
from skrank._model.training import (
    EpochEnd,
    Trained,
    build_optimizer,
    check_finite,
    epoch_budget,
    optimizer_step,
    warmup_schedule,
)

__all__ = [
    "MAX_PER_IMAGE",
    "Comparisons",
    "PreferenceConfig",
    "comparison_batches",
    "preference_loss",
    "train_preferences",
]

# At most this many comparisons of one image in a batch: a batch spreads over many
# images rather than one image against many (balanced across images).
MAX_PER_IMAGE = 4


@dataclass
class Comparisons:
    """Comparisons of images served by index: ``a[n]`` against ``b[n]``, label ``y[n]``."""

    a: np.ndarray  # image index of the first image
    b: np.ndarray  # image index of the second
    y: np.ndarray  # P(a ranks above b): 1, 0, 0.5 (a tie) or an annotators' share
    instr: np.ndarray  # instruction code of each comparison
    weight: np.ndarray | None = None  # sample_weight per comparison


@dataclass
class PreferenceConfig:
    """How to train on comparisons; fields named after the estimator's parameters."""

    lr: float  # resolved: never "auto"
    weight_decay: float
    batch_size: int  # distinct images per step, at most
    max_epochs: int | None  # None: PAPER_EPOCHS, raised to reach min_steps
    warmup_fraction: float
    score_weight: float  # the Bradley–Terry loss on the scores
    rank_weight: float  # the pair branch's loss
    augment: bool
    precision: str
    device: torch.device
    seed: int
    min_steps: int
    grad_clip: float = 1.0


def comparison_batches(
    rng: np.random.Generator, comps: Comparisons, batch_size: int
) -> list[np.ndarray]:
    """One epoch: every comparison once, in batches of one instruction each.

    Comparisons are taken in a random order and packed greedily: a batch holds
    at most ``batch_size`` distinct images, and each image in at most
    :data:`MAX_PER_IMAGE` of its comparisons (one that would break either rule
    waits for a later batch). Returns arrays of comparison indices.
    """
    batches = []
    for k in np.unique(comps.instr):
        pending = rng.permutation(np.flatnonzero(comps.instr == k))
        while len(pending):
            count: dict = {}
            taken, left = [], []
            for n in pending:
                a, b = int(comps.a[n]), int(comps.b[n])
                new = (a not in count) + (b not in count)
                full = len(count) + new > batch_size
                if full or count.get(a, 0) >= MAX_PER_IMAGE or count.get(b, 0) >= MAX_PER_IMAGE:
                    left.append(n)
                    continue
                count[a] = count.get(a, 0) + 1
                count[b] = count.get(b, 0) + 1
                taken.append(n)
            batches.append(np.asarray(taken))
            pending = np.asarray(left, dtype=np.int64)
    order = rng.permutation(len(batches))  # instructions interleaved
    return [batches[i] for i in order]


def preference_loss(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """BCE-with-logits of ``logits`` (that a ranks above b) against labels ``y`` in
    [0, 1], weighted by ``weight`` when given."""
    per = F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="none")
    if weight is None:
        return per.mean()
    return (per * weight).sum() / weight.sum().clamp_min(1e-12)


def _step(adapter, source, text, comps: Comparisons, rows, cfg, rng):
    """The losses (total, score's, pair branch's) of one batch of comparisons."""
    images, where = np.unique(np.concatenate([comps.a[rows], comps.b[rows]]), return_inverse=True)
    ia, ib = where[: len(rows)], where[len(rows) :]
    flip = rng.random(len(images)) < 0.5 if cfg.augment else np.zeros(len(images), bool)
    tokens = source.tokens(images, flip, cfg.device)
    k = int(comps.instr[rows[0]])
    tokens_text, valid = text.get(k)
    y = torch.as_tensor(comps.y[rows], dtype=torch.float32, device=cfg.device)
    w = None
    if comps.weight is not None:
        w = torch.as_tensor(comps.weight[rows], dtype=torch.float32, device=cfg.device)
    # One-hot picks, not indexing: a fit repeats bit for bit with any number of threads.
    pick_a = one_hot_rows(ia, len(images), cfg.device)
    pick_b = one_hot_rows(ib, len(images), cfg.device)
    with devices.autocast(cfg.device, cfg.precision):
        scores, fused = adapter(tokens, tokens_text, valid, k)
        score_loss = preference_loss(pick_rows(pick_a, scores) - pick_rows(pick_b, scores), y, w)
        if cfg.rank_weight > 0:
            pair_loss = preference_loss(adapter.picked_compare_logits(fused, pick_a, pick_b), y, w)
        else:
            pair_loss = score_loss.new_zeros(())
        loss = cfg.score_weight * score_loss + cfg.rank_weight * pair_loss
    return loss, score_loss, pair_loss


def train_preferences(
    adapter: RankingAdapter, source, text, comps: Comparisons, cfg: PreferenceConfig, on_epoch=None
) -> Trained:
    """Train ``adapter`` in place on ``comps`` (images from ``source``, instructions'
    tokens from ``text``); ``on_epoch`` gets an :class:`~skrank._model.training.EpochEnd`
    after each epoch, and a true return stops.

    Seeded as :func:`skrank._model.training.train` is: batches and flips from a
    numpy generator, dropout from a torch generator of the fit's own.
    """
    generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    with dropout_generator(generator):
        return _train(adapter, source, text, comps, cfg, on_epoch)


def _train(adapter, source, text, comps, cfg, on_epoch) -> Trained:
    rng = np.random.default_rng(cfg.seed)
    adapter.to(cfg.device).train()
    optimizer = build_optimizer(adapter, cfg.lr, cfg.weight_decay)
    steps_per_epoch = len(comparison_batches(np.random.default_rng(0), comps, cfg.batch_size))
    max_epochs = epoch_budget(cfg.max_epochs, cfg.min_steps, steps_per_epoch)
    schedule = warmup_schedule(optimizer, steps_per_epoch * max_epochs, cfg.warmup_fraction)
    history, step = [], 0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        batches = comparison_batches(rng, comps, cfg.batch_size)
        losses = torch.empty(len(batches), 3, dtype=torch.float32, device=cfg.device)
        for n, rows in enumerate(batches):
            loss, score_loss, pair_loss = _step(adapter, source, text, comps, rows, cfg, rng)
            optimizer_step(loss, adapter, optimizer, schedule, cfg.grad_clip)
            losses[n] = torch.stack([loss.detach(), score_loss.detach(), pair_loss.detach()])
        means = check_finite(losses, epoch, step, cfg.lr)
        step += len(batches)
        record = {
            "epoch": epoch,
            "loss": means[0],
            "score_loss": means[1],
            "rank_loss": means[2],
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        if on_epoch is not None:
            adapter.eval()
            stop = on_epoch(EpochEnd(record, max_epochs, adapter, None))
            adapter.train()
            if stop:
                break
    adapter.eval()
    return Trained(history, len(history), len(history))
