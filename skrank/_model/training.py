"""Optimiser, schedule and the epoch loop (batches come from :mod:`skrank._model.sampling`).

:class:`TrainData` (frozen token source, text bank, standardised targets, the
rows to train and validate on) and :class:`TrainConfig` (fields named after the
``CLIPRanker`` parameters they come from) are what :func:`train` fits an
adapter on, in place; :mod:`skrank._estimator.fitting` builds them.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from skrank import _devices as devices
from skrank._estimator.inference import TextBank
from skrank._model.adapter import RankingAdapter, dropout_generator
from skrank._model.evaluation import EpochScores, EvalSet, evaluate
from skrank._model.losses import ranking_loss, regression_loss
from skrank._model.sampling import BatchPlan, epoch_batches

__all__ = [
    "EpochEnd",
    "TrainConfig",
    "TrainData",
    "Trained",
    "TrainingDivergedError",
    "build_optimizer",
    "check_finite",
    "epoch_budget",
    "optimizer_step",
    "resolve_lr",
    "summary_line",
    "train",
    "warmup_cosine",
    "warmup_schedule",
]


PAPER_EPOCHS = 30  # the default budget at the paper's scale of data
MIN_STEPS = 300  # optimiser steps the default budget never goes below (small data)
# lr="auto" under the small-data preset (skrank._estimator.presets): the rates measured best
# at two widths on random towers, for a shallow adapter (at most one fusion layer,
# no post-fusion layers: that preset's) and a deeper one.
AUTO_LR_SHALLOW = {64: 1e-3, 512: 3e-4}
AUTO_LR_DEEP_AT_512 = 1e-4  # deeper: 1e-4 · sqrt(512 / d), skrank 0.1's rule


def resolve_lr(lr, d_model: int, n_fusion_layers: int = 1, n_post_layers: int = 0) -> float:
    """The peak learning rate: ``lr`` itself, or for ``"auto"`` the small-data preset's
    rate, measured best on random towers for the adapter's depth and width
    (``docs/model.md``, "What costs on little data"; the paper's preset replaces
    ``"auto"`` by its 5e-5 before this: :func:`skrank._estimator.presets.resolve`;
    where 5e-5 is read: ``docs/model.md``, "Where the paper's settings come from").

    The shallow adapter (``n_fusion_layers <= 1`` and no post-fusion layers): 1e-3
    at d=64 (``skrank-tiny``) and 3e-4 at d=512 (ViT-B); at 1e-3 a random ViT-B-32's
    adapter fell on pixelate from 0.725 to 0.349. Deeper adapters: 1e-4 at d=512
    (3e-4 was unstable there) and 2.8e-4 at d=64, 1e-4 · sqrt(512 / d). Between and
    beyond the two widths the shallow rate is interpolated linearly in log rate and
    log width (2.4e-4 at d=768). The paper's 5e-5 learns too little in the 300-step
    floor of the default budget.
    """
    if not isinstance(lr, str):  # "auto" is the one string (CLIPRanker validates it)
        return float(lr)
    if n_fusion_layers > 1 or n_post_layers > 0:
        return AUTO_LR_DEEP_AT_512 * math.sqrt(512 / d_model)
    if d_model in AUTO_LR_SHALLOW:
        return AUTO_LR_SHALLOW[d_model]
    (d0, lr0), (d1, lr1) = sorted(AUTO_LR_SHALLOW.items())
    t = math.log(d_model / d0) / math.log(d1 / d0)
    return lr0 * (lr1 / lr0) ** t


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite.

    ``fit`` raises it at the end of the epoch that diverged, naming the epoch
    and the first bad step, and leaves the estimator as it was before the
    call; a lower ``lr`` (or targets of a sane scale) is the usual fix. It is
    a ``FloatingPointError``, so code that catches those catches it too.

    Examples
    --------
    >>> from skrank import TrainingDivergedError
    >>> issubclass(TrainingDivergedError, FloatingPointError)
    True
    """


@dataclass
class TrainConfig:
    """How to train; every field but device, seed, grad_clip and min_steps (the
    preset's step floor) is the ``CLIPRanker`` parameter of its name."""

    lr: float  # resolved: never "auto"
    weight_decay: float
    batch_size: int
    max_epochs: int | None  # None: PAPER_EPOCHS, raised to reach min_steps on small data
    warmup_fraction: float
    reg_weight: float
    rank_weight: float
    sampling: str
    pair_scope: str
    augment: bool
    n_iter_no_change: int
    early_stopping: bool  # with val_idx: stop and keep the best epoch (else only score it)
    validation_fraction: float  # the share held out for early stopping (whole groups if known)
    precision: str
    device: torch.device
    seed: int
    grad_clip: float = 1.0
    tol: float = 1e-4  # early stopping: an improvement of the score by more than this
    scoring: str = "spearman"  # the validation score (a skrank.metrics.get_scorer name)
    negative_fraction: float = 0.0
    min_steps: int = MIN_STEPS  # the preset's step floor (max_epochs=None), at the same lr


@dataclass
class TrainData:
    """What a fit trains on: one token source and per-row labels, indexed alike."""

    source: object  # a token source of skrank._encoding.cache: .tokens(idx, flip, device)
    text: TextBank
    y_std: np.ndarray  # targets standardised per instruction
    instr: np.ndarray  # instruction code per row
    groups: np.ndarray | None  # integer group codes, or None
    train_idx: np.ndarray
    val_idx: np.ndarray | None = None
    weight: np.ndarray | None = None  # sample_weight per row, or None
    zero: np.ndarray | None = None  # per instruction: a target of 0, standardised (negatives)
    # Whether the fit weighs a new linear probe (skrank._model.probe) on the val_idx rows
    # after training, and whether those are training rows held out (the probe is
    # then refitted on them) rather than a user's X_val.
    weigh_probe: bool = False
    holdout: bool = False
    # Validation is scored in the units of y: each row's target, and per instruction
    # the standardisation's mean and scale (predictions are mapped back with them).
    y: np.ndarray | None = None
    means: np.ndarray | None = None
    scales: np.ndarray | None = None
    eval_sets: tuple[EvalSet, ...] = ()  # named validation sets (never trained on)
    monitored: str | None = None  # the named set early stopping reads (else val_idx's rows)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with amsgrad; no decay on norms, biases, prompt and relation tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or name in ("prompt", "relation.tokens"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, amsgrad=True)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def epoch_budget(max_epochs: int | None, min_steps: int, steps_per_epoch: int) -> int:
    """The epochs a fit runs: ``max_epochs``, or for None ``PAPER_EPOCHS`` raised so that
    training takes at least ``min_steps`` optimiser steps (the preset's floor)."""
    if max_epochs is not None:
        return max_epochs
    return max(PAPER_EPOCHS, math.ceil(min_steps / steps_per_epoch))


def warmup_schedule(optimizer, total_steps: int, warmup_fraction: float):
    """Linear warm-up over ``warmup_fraction`` of ``total_steps``, then cosine decay to 0."""
    warmup = max(1, round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup))


def optimizer_step(loss, adapter: nn.Module, optimizer, schedule, grad_clip: float) -> None:
    """One step on ``loss``: gradients clipped to norm ``grad_clip``, then the schedule's.

    The gradients are dropped once the optimiser has used them, not kept until the
    next step's backward: the next forward pass, a step's peak of memory, runs
    without them (a parameter-sized buffer less).
    """
    loss.backward()
    nn.utils.clip_grad_norm_(adapter.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    schedule.step()


def _pair_mask(idx: np.ndarray, groups: np.ndarray | None, pair_scope: str, device):
    B = len(idx)
    mask = ~torch.eye(B, dtype=torch.bool, device=device)
    if pair_scope == "group":
        g = torch.as_tensor(groups[idx], device=device)
        mask &= g[:, None] == g[None, :]
    return mask


def check_finite(step_losses: torch.Tensor, epoch: int, first_step: int, lr: float) -> list:
    """Epoch means of (loss, reg, rank); raises at the first step whose loss was not finite.

    Read once per epoch (one host sync): a diverged step is still named, and
    ``fit`` is atomic, so the weights it spoiled are never kept.
    """
    values = step_losses.cpu()
    bad = torch.nonzero(~torch.isfinite(values[:, 0])).flatten()
    if len(bad):
        k = int(bad[0])
        raise TrainingDivergedError(
            f"training diverged at epoch {epoch} (step {first_step + k + 1}): the loss is "
            f"{float(values[k, 0])}; lower lr (now {lr}) or check the targets"
        )
    return values.double().mean(dim=0).tolist()


class Trained(NamedTuple):
    """What :func:`train` returns."""

    history: list[dict]  # one entry per epoch run (``CLIPRanker.history_``)
    n_iter: int  # epochs run
    best_epoch: int  # the epoch whose weights the adapter has (the best, early stopping)


class EpochEnd(NamedTuple):
    """What the loop reports after each epoch to :func:`train`'s ``on_epoch``."""

    record: dict  # the epoch's history entry
    max_epochs: int  # the epochs the budget allows (the loop may stop before)
    adapter: RankingAdapter  # as trained so far, in eval mode while on_epoch runs
    scores: EpochScores | None  # the validation, None without validation rows


def train(
    adapter: RankingAdapter,
    data: TrainData,
    cfg: TrainConfig,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[EpochEnd], bool | None] | None = None,
) -> Trained:
    """Train ``adapter`` in place on rows ``data.train_idx``.

    ``data.source.tokens(idx, flip, device)`` gives frozen tokens. After each
    epoch the validation rows are scored (:func:`skrank._model.evaluation.evaluate`);
    with ``cfg.early_stopping`` the best epoch by the monitored rows' score is
    kept and training stops after ``n_iter_no_change`` epochs without an
    improvement of more than ``cfg.tol``. ``on_step(epoch, step)`` is called
    after every optimiser step, ``on_epoch`` (an :class:`EpochEnd`) after every
    epoch; a true return stops training there.

    Batches and flips come from a numpy generator seeded by ``cfg.seed``, and
    dropout from a torch generator on the training device seeded by it too
    (:func:`skrank._model.adapter.dropout_generator`), never from torch's process-wide
    one: a fit is reproduced by its seed even while other fits run in threads,
    and it leaves the caller's torch RNG as it was.
    """
    generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    with dropout_generator(generator):
        return _train(adapter, data, cfg, on_step, on_epoch)


def _step_labels(batch, idx, weight, device):
    """The batch's targets (and weights), on the device in one copy: (y, {"weight": w} or {})."""
    if weight is None:
        return torch.as_tensor(batch.targets, dtype=torch.float32, device=device), {}
    both = torch.as_tensor(np.stack([batch.targets, weight[idx]]), dtype=torch.float32)
    both = both.to(device)
    return both[0], {"weight": both[1]}


class _Loop(NamedTuple):
    """What every step of one fit shares."""

    adapter: RankingAdapter
    data: TrainData
    cfg: TrainConfig
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator


def _run_epoch(loop: _Loop, batches: list, epoch: int, step: int, on_step) -> list:
    """One epoch's optimiser steps; returns the epoch means of (loss, reg, rank)."""
    adapter, data, cfg = loop.adapter, loop.data, loop.cfg
    device = cfg.device
    # Losses stay on the device: one host sync per epoch, not three per step.
    step_losses = torch.empty(len(batches), 3, dtype=torch.float32, device=device)
    for n, batch in enumerate(batches):
        idx = data.train_idx[batch.rows]
        flip = loop.rng.random(len(idx)) < 0.5 if cfg.augment else np.zeros(len(idx), bool)
        tokens = data.source.tokens(idx, flip, device)
        text, valid = data.text.get(batch.instruction)
        # Targets from the batch: a negative's is a target 0 of this instruction.
        y, w = _step_labels(batch, idx, data.weight, device)
        with devices.autocast(device, cfg.precision):
            scores, fused = adapter(tokens, text, valid, batch.instruction)
            reg = regression_loss(scores, y, **w)
            if cfg.rank_weight > 0 and len(idx) > 1:
                logits = adapter.pair_logits(fused)
                mask = _pair_mask(idx, data.groups, cfg.pair_scope, device)
                rank = ranking_loss(logits, y, mask, **w)
            else:
                rank = reg.new_zeros(())
            loss = cfg.reg_weight * reg + cfg.rank_weight * rank
        optimizer_step(loss, adapter, loop.optimizer, loop.schedule, cfg.grad_clip)
        step_losses[n] = torch.stack([loss.detach(), reg.detach(), rank.detach()]).float()
        if on_step is not None:
            on_step(epoch, step + n + 1)
    return check_finite(step_losses, epoch, step, cfg.lr)


def _train(adapter, data: TrainData, cfg: TrainConfig, on_step, on_epoch) -> Trained:
    rng = np.random.default_rng(cfg.seed)
    adapter.to(cfg.device).train()
    optimizer = build_optimizer(adapter, cfg.lr, cfg.weight_decay)
    train_idx = data.train_idx
    sub_groups = None if data.groups is None else data.groups[train_idx]
    plan = BatchPlan(cfg.batch_size, cfg.sampling, cfg.pair_scope, cfg.negative_fraction)

    def draw(generator):
        instr, y_std = data.instr[train_idx], data.y_std[train_idx]
        return epoch_batches(generator, instr, y_std, sub_groups, plan, data.zero)

    steps_per_epoch = len(draw(np.random.default_rng(0)))
    max_epochs = epoch_budget(cfg.max_epochs, cfg.min_steps, steps_per_epoch)
    schedule = warmup_schedule(optimizer, steps_per_epoch * max_epochs, cfg.warmup_fraction)
    loop = _Loop(adapter, data, cfg, optimizer, schedule, rng)
    history: list[dict] = []
    best_score, best_state, best_epoch, stale = -np.inf, None, 0, 0
    step = 0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        batches = draw(rng)
        means = _run_epoch(loop, batches, epoch, step, on_step)
        step += len(batches)
        record = {
            "epoch": epoch,
            "loss": means[0],
            "reg_loss": means[1],
            "rank_loss": means[2],
            "lr": optimizer.param_groups[0]["lr"],
            "val_score": None,
        }
        scores = evaluate(adapter, data, cfg)
        stop = False
        if scores is not None:
            record["val_score"] = scores.monitored
            if scores.named:
                record["validation"] = dict(scores.named)
        if cfg.early_stopping and scores is not None and scores.monitored is not None:
            if scores.monitored > best_score + cfg.tol:
                best_score, best_epoch, stale = scores.monitored, epoch, 0
                best_state = copy.deepcopy(adapter.state_dict())
            else:
                stale += 1
                stop = stale >= cfg.n_iter_no_change
        else:
            best_epoch = epoch
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        if on_epoch is not None:
            adapter.eval()
            stop = bool(on_epoch(EpochEnd(record, max_epochs, adapter, scores))) or stop
        adapter.train()
        if stop:
            break
    if best_state is not None:
        adapter.load_state_dict(best_state)
    else:  # no epoch improved on the first score (NaN throughout): the last is kept
        best_epoch = len(history)
    adapter.eval()
    return Trained(history, len(history), best_epoch)


def summary_line(trained: Trained, seconds: float, scoring: str) -> str:
    """The line ``verbose`` prints after a fit: epochs, the kept epoch's validation, time."""
    scores = {h["epoch"]: h["val_score"] for h in trained.history if h["val_score"] is not None}
    kept = ""
    if trained.best_epoch in scores:
        best = trained.best_epoch
        kept = f", kept epoch {best} (validation {scoring} {scores[best]:.4f})"
    return f"CLIPRanker: {len(trained.history)} epoch(s){kept}, {seconds:.1f} s"
