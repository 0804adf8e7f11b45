"""Optimiser, schedule and the epoch loop (batches come from :mod:`skrank.sampling`).

:func:`prepare` builds what a ``fit`` trains: a new (or warm-started) adapter,
a :class:`TrainData` (frozen token source, text bank, standardised targets,
the rows to train and validate on) and a :class:`TrainConfig`, whose fields
are named after the ``CLIPRanker`` parameters they come from; :func:`train`
fits the adapter in place.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from skrank import devices
from skrank.adapter import AdapterConfig, RankingAdapter
from skrank.cache import token_source
from skrank.inference import TextBank, predict_tokens, text_bank
from skrank.losses import ranking_loss, regression_loss
from skrank.sampling import epoch_batches, validation_split

__all__ = [
    "FitHistory",
    "TrainConfig",
    "TrainData",
    "TrainingDivergedError",
    "build_optimizer",
    "continued_history",
    "epoch_batches",
    "fitted_state",
    "initial_adapter",
    "prepare",
    "resolve_lr",
    "summary_line",
    "train",
    "train_data",
    "validation_split",
    "warmup_cosine",
]


PAPER_EPOCHS = 30  # the default budget at the paper's scale of data
MIN_STEPS = 300  # optimiser steps the default budget never goes below (small data)
AUTO_LR_AT_512 = 1e-4  # lr="auto" at d_model=512, scaled by sqrt(512 / d_model)


def resolve_lr(lr, d_model: int) -> float:
    """The peak learning rate: ``lr`` itself, or for ``"auto"`` 1e-4 · sqrt(512 / d_model).

    On ~90 training images, 3e-4 suits the tiny backbone (d=64: the rule gives
    2.8e-4; ``benchmarks/sweep_defaults.py``) and 1e-4 a random ViT-B-32
    (d=512), where 3e-4 was unstable; the paper's 5e-5 learns too little in the
    300-step floor of the default budget. Narrower adapters take larger steps.
    """
    if isinstance(lr, str):  # "auto" (CLIPRanker validates the spelling)
        return AUTO_LR_AT_512 * math.sqrt(512 / d_model)
    return float(lr)


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """How to train; every field but device, seed, grad_clip and tol is the
    ``CLIPRanker`` parameter of its name."""

    lr: float  # resolved: never "auto"
    weight_decay: float
    batch_size: int
    max_epochs: int | None  # None: PAPER_EPOCHS, raised to reach MIN_STEPS on small data
    warmup_fraction: float
    reg_weight: float
    rank_weight: float
    sampling: str
    pair_scope: str
    augment: bool
    n_iter_no_change: int
    early_stopping: bool  # with val_idx: stop and keep the best epoch (else only score it)
    precision: str
    verbose: int
    device: torch.device
    seed: int
    grad_clip: float = 1.0
    tol: float = 1e-4
    negative_fraction: float = 0.0


@dataclass
class TrainData:
    """What a fit trains on: one token source and per-row labels, indexed alike."""

    source: object  # a token source of skrank.cache: .tokens(idx, flip, device)
    text: TextBank
    y_std: np.ndarray  # targets standardised per instruction
    instr: np.ndarray  # instruction code per row
    groups: np.ndarray | None  # integer group codes, or None
    train_idx: np.ndarray
    val_idx: np.ndarray | None = None
    weight: np.ndarray | None = None  # sample_weight per row, or None
    zero: np.ndarray | None = None  # per instruction: a target of 0, standardised (negatives)


class FitHistory:
    """MLPRegressor's names for what ``history_`` records (a mixin of CLIPRanker)."""

    @property
    def loss_curve_(self) -> list[float]:
        """The mean training loss of every epoch (``history_``), as MLPRegressor has it."""
        _check_fitted(self)
        return [entry["loss"] for entry in self.history_]

    @property
    def validation_scores_(self) -> list | None:
        """Each epoch's validation Spearman (None for epochs without), or None if none had one."""
        _check_fitted(self)
        scores = [entry["val_score"] for entry in self.history_]
        return None if all(v is None for v in scores) else scores

    @property
    def best_validation_score_(self) -> float | None:
        """The best of ``validation_scores_`` (NaN scores skipped), or None."""
        scores = [v for v in self.validation_scores_ or () if v is not None and v == v]
        return max(scores) if scores else None


def _check_fitted(estimator) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "adapter_")


def train_data(
    source, text, y_std, instr, groups, weight, val, fraction, seed, zero=None
) -> TrainData:
    """The rows of a fit: the training rows, then those of ``val`` (a user's validation set).

    With ``val`` (an :class:`skrank.inputs.Validation`), ``source`` must serve
    the training images followed by ``val.items``; its rows are validated on
    and never trained on (unit weight, a group of their own). Without it,
    ``fraction`` (``validation_fraction`` under ``early_stopping``, else None)
    holds out rows of the training set. ``zero`` is the label of negatives
    (``TrainData.zero``).
    """
    if val is None:
        train_idx, val_idx = validation_split(instr, groups, fraction, seed)
        return TrainData(source, text, y_std, instr, groups, train_idx, val_idx, weight, zero)
    n, m = len(y_std), len(val.y_std)
    if groups is not None:
        groups = np.concatenate([groups, np.full(m, -1, dtype=groups.dtype)])
    if weight is not None:
        weight = np.concatenate([weight, np.ones(m)])
    return TrainData(
        source,
        text,
        np.concatenate([y_std, val.y_std]),
        np.concatenate([instr, val.codes]),
        groups,
        np.arange(n),
        np.arange(n, n + m),
        weight,
        zero,
    )


def prepare(ranker, params: dict, backbone, parsed, y, scaling, groups, weight, val):
    """What ``ranker.fit`` trains: (adapter, :class:`TrainData`, :class:`TrainConfig`).

    ``params`` are the ranker's validated parameters (with ``device_``),
    ``parsed`` the :class:`skrank.inputs.Inputs` of ``X``, ``scaling`` its
    :class:`~skrank.inputs.TargetScaling`, ``val`` a
    :class:`~skrank.inputs.Validation` or None. The adapter is the fitted one
    when ``warm_start`` continues it. The seed of the adapter, the batches,
    the flips and dropout is drawn from ``random_state``; the token source
    serves ``X``'s images, then ``val``'s.
    """
    from sklearn.utils import check_random_state

    from skrank.params import by_name

    seed = int(check_random_state(params["random_state"]).randint(np.iinfo(np.int32).max))
    text = text_bank(backbone, scaling.instructions, params["precision"])
    previous = (None, None)
    if _continues(ranker):
        previous = (ranker.adapter_, getattr(ranker, "backbone_info_", None))
    adapter = initial_adapter(backbone, params, seed, *previous)
    items = parsed.items + ([] if val is None else val.items)
    source = by_name(token_source, params, backbone=backbone, items=items)
    fraction = params["validation_fraction"] if params["early_stopping"] else None
    y_std, zero = scaling.standardise(y), -scaling.means / scaling.scales
    data = train_data(source, text, y_std, scaling.codes, groups, weight, val, fraction, seed, zero)
    lr = resolve_lr(params["lr"], adapter.cfg.d_model)
    cfg = by_name(TrainConfig, params, lr=lr, device=params["device_"], seed=seed)
    return adapter, data, cfg


def _continues(ranker) -> bool:
    """Whether ``ranker.fit`` continues the fitted adapter (``warm_start``)."""
    return bool(ranker.warm_start) and hasattr(ranker, "adapter_")


def fitted_state(ranker, adapter, data, cfg, scaling, backbone, history, n_iter) -> dict:
    """The fitted attributes a ``fit`` that succeeded sets on ``ranker``, all at once.

    A ``warm_start`` fit continues the ``history_`` and ``n_iter_`` of the
    fit before (call this before setting any of them).
    """
    warm = _continues(ranker)
    return {
        "adapter_": adapter,
        "instructions_": scaling.instructions,
        "y_mean_": scaling.means,
        "y_scale_": scaling.scales,
        "history_": continued_history(ranker.history_ if warm else None, history),
        "n_iter_": (ranker.n_iter_ if warm else 0) + n_iter,
        "lr_": cfg.lr,
        "backbone_info_": backbone.info,
        "cache_info_": dict(data.source.info),
    }


def continued_history(previous: list[dict] | None, history: list[dict]) -> list[dict]:
    """``history`` after the epochs of ``previous`` (a ``warm_start`` fit), renumbered.

    As MLPRegressor's ``loss_curve_``: a warm start continues the record. At
    most ``MAX_HISTORY`` epochs are kept (the latest).
    """
    from skrank._schema import MAX_HISTORY

    done = previous[-1]["epoch"] if previous else 0
    ahead = [{**entry, "epoch": done + entry["epoch"]} for entry in history]
    return (list(previous or []) + ahead)[-MAX_HISTORY:]


def initial_adapter(backbone, params: dict, seed: int, previous=None, previous_backbone=None):
    """A copy of ``previous`` (``warm_start``), or a new adapter seeded by ``seed``.

    A new adapter's config takes the adapter parameters by name; ``d_model=None``
    is the backbone's embedding width. ``previous_backbone`` is the
    ``backbone_info_`` that ``previous`` was trained on: it must be this backbone,
    and every architecture parameter must still have the value ``previous`` was
    built with, or the ranker would report parameters its adapter does not have.

    Parameters
    ----------
    backbone : Backbone
    params : dict
        The validated parameters of the ranker.
    seed : int
    previous : RankingAdapter, optional
        The fitted adapter to continue (``warm_start=True``).
    previous_backbone : dict, optional
        Its ``backbone_info_``.

    Returns
    -------
    RankingAdapter
    """
    from dataclasses import fields

    from skrank.backbone import backbone_mismatch
    from skrank.params import by_name

    cfg = by_name(
        AdapterConfig,
        params,
        image_dim=backbone.image_dim,
        text_dim=backbone.text_dim,
        d_model=params["d_model"] or backbone.embed_dim,
    )
    if previous is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return RankingAdapter(cfg)
    changed = []
    before = previous_backbone or {}
    diffs = backbone_mismatch(before, backbone.info)
    if diffs:
        changed.append(
            f"backbone={before.get('name')!r}, pretrained={before.get('pretrained')!r} -> "
            f"backbone={backbone.name!r}, pretrained={backbone.pretrained!r} "
            f"({'; '.join(diffs)})"
        )
    # The parameters that shape the adapter: AdapterConfig fields named like one.
    for field in fields(AdapterConfig):
        if field.name in params:
            old, new = getattr(previous.cfg, field.name), getattr(cfg, field.name)
            if old != new:
                changed.append(f"{field.name}: {old!r} -> {new!r}")
    if changed:
        raise ValueError(
            "warm_start=True cannot continue the fitted adapter: since the last fit "
            f"{', '.join(changed)}. The adapter was built for the old values; set "
            "warm_start=False to train a new adapter with the new ones, or restore the old "
            "values to continue training"
        )
    return copy.deepcopy(previous)


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


def _pair_mask(idx: np.ndarray, groups: np.ndarray | None, pair_scope: str, device):
    B = len(idx)
    mask = ~torch.eye(B, dtype=torch.bool, device=device)
    if pair_scope == "group":
        g = torch.as_tensor(groups[idx], device=device)
        mask &= g[:, None] == g[None, :]
    return mask


def _validation_score(adapter, data: TrainData, cfg: TrainConfig) -> float:
    from skrank.metrics import spearman_score

    adapter.eval()
    val_idx, instr = data.val_idx, data.instr
    preds = np.empty(len(val_idx))
    no_flip = np.zeros(cfg.batch_size, dtype=bool)
    for k in np.unique(instr[val_idx]):
        rows = val_idx[instr[val_idx] == k]
        text, valid = data.text.get(int(k))
        for start in range(0, len(rows), cfg.batch_size):
            chunk = rows[start : start + cfg.batch_size]
            toks = data.source.tokens(chunk, no_flip[: len(chunk)], cfg.device)
            scores, _ = predict_tokens(adapter, toks, text, valid, cfg.precision)
            preds[np.searchsorted(val_idx, chunk)] = scores.cpu().numpy()
    adapter.train()
    weight = None if data.weight is None else data.weight[val_idx]
    return float(
        spearman_score(data.y_std[val_idx], preds, groups=instr[val_idx], sample_weight=weight)
    )


def _check_finite(step_losses: torch.Tensor, epoch: int, first_step: int, lr: float) -> list:
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


def train(
    adapter: RankingAdapter,
    data: TrainData,
    cfg: TrainConfig,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[list[dict], int]:
    """Train ``adapter`` in place on rows ``data.train_idx``; returns (history, n_epochs).

    ``data.source.tokens(idx, flip, device)`` gives frozen tokens. With
    ``data.val_idx`` the best epoch by validation Spearman is kept and training
    stops after ``n_iter_no_change`` epochs without improvement.

    Batches and flips come from a numpy generator seeded by ``cfg.seed``;
    torch's own randomness (dropout) runs on a forked torch RNG seeded by it
    too, so a fit is reproduced by its seed and leaves the caller's torch RNG
    (CPU, and the training device's) as it was.
    """
    device = cfg.device
    forked = [device] if device.type in ("cuda", "mps") else []
    kind = {"device_type": device.type} if forked else {}
    with torch.random.fork_rng(devices=forked, **kind):
        torch.manual_seed(cfg.seed)
        return _train(adapter, data, cfg, on_step)


def _step_labels(batch, idx, weight, device):
    """The batch's targets (and weights), on the device in one copy: (y, {"weight": w} or {})."""
    if weight is None:
        return torch.as_tensor(batch.targets, dtype=torch.float32, device=device), {}
    both = torch.as_tensor(np.stack([batch.targets, weight[idx]]), dtype=torch.float32)
    both = both.to(device)
    return both[0], {"weight": both[1]}


def _train(adapter, data: TrainData, cfg: TrainConfig, on_step) -> tuple[list[dict], int]:
    y_std, instr, groups = data.y_std, data.instr, data.groups
    train_idx, val_idx = data.train_idx, data.val_idx
    rng = np.random.default_rng(cfg.seed)
    device = cfg.device
    adapter.to(device).train()
    optimizer = build_optimizer(adapter, cfg.lr, cfg.weight_decay)
    sub_instr = instr[train_idx]
    sub_groups = None if groups is None else groups[train_idx]

    def draw(generator):
        return epoch_batches(
            generator,
            sub_instr,
            y_std[train_idx],
            sub_groups,
            cfg.batch_size,
            cfg.sampling,
            cfg.pair_scope,
            cfg.negative_fraction,
            data.zero,
        )

    steps_per_epoch = len(draw(np.random.default_rng(0)))
    max_epochs = cfg.max_epochs
    if max_epochs is None:
        max_epochs = max(PAPER_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))
    total = steps_per_epoch * max_epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total, max(1, round(cfg.warmup_fraction * total)))
    )
    history: list[dict] = []
    best_score, best_state, stale = -np.inf, None, 0
    epochs_run = 0
    step = 0
    bar = None
    if cfg.verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, desc="epochs", unit="epoch", leave=False)
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        local = draw(rng)
        # Losses stay on the device: one host sync per epoch, not three per step.
        step_losses = torch.empty(len(local), 3, device=device)
        for n, batch in enumerate(local):
            idx = train_idx[batch.rows]
            flip = rng.random(len(idx)) < 0.5 if cfg.augment else np.zeros(len(idx), bool)
            tokens = data.source.tokens(idx, flip, device)
            text, valid = data.text.get(batch.instruction)
            # Targets from the batch: a negative's is a target 0 of this instruction.
            y, w = _step_labels(batch, idx, data.weight, device)
            with devices.autocast(device, cfg.precision):
                scores, fused = adapter(tokens, text, valid)
                reg = regression_loss(scores, y, **w)
                if cfg.rank_weight > 0 and len(idx) > 1:
                    logits = adapter.pair_logits(fused)
                    mask = _pair_mask(idx, groups, cfg.pair_scope, device)
                    rank = ranking_loss(logits, y, mask, **w)
                else:
                    rank = reg.new_zeros(())
                loss = cfg.reg_weight * reg + cfg.rank_weight * rank
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(adapter.parameters(), cfg.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            step_losses[n] = torch.stack([loss.detach(), reg.detach(), rank.detach()]).float()
            if on_step is not None:
                on_step(epoch, step)
        means = _check_finite(step_losses, epoch, step - len(local), cfg.lr)
        record = {
            "epoch": epoch,
            "loss": means[0],
            "reg_loss": means[1],
            "rank_loss": means[2],
            "lr": optimizer.param_groups[0]["lr"],
            "val_score": None,
        }
        epochs_run = epoch
        stop = False
        if val_idx is not None and len(val_idx):
            score = _validation_score(adapter, data, cfg)
            record["val_score"] = score
            if cfg.early_stopping:  # else a validation set of the user's own, only scored
                if score > best_score + cfg.tol:
                    best_score, stale = score, 0
                    best_state = copy.deepcopy(adapter.state_dict())
                else:
                    stale += 1
                    stop = stale >= cfg.n_iter_no_change
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        if bar is not None:
            bar.update(1)
            shown = {"loss": f"{record['loss']:.4f}"}
            if record["val_score"] is not None:
                shown["val"] = f"{record['val_score']:.4f}"
            bar.set_postfix(shown)
        if stop:
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        adapter.load_state_dict(best_state)
    adapter.eval()
    return history, epochs_run


def summary_line(history: list[dict], seconds: float) -> str:
    """The line ``verbose`` prints after a fit: epochs, best validation score, time."""
    scores = [h["val_score"] for h in history if h["val_score"] is not None]
    best = f", best validation Spearman {max(scores):.4f}" if scores else ""
    return f"CLIPRanker: {len(history)} epoch(s){best}, {seconds:.1f} s"
