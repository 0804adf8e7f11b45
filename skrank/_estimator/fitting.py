"""What a ``fit`` trains and what it leaves: the step between parsed inputs and the loop.

:func:`prepare` builds a new (or warm-started) adapter, a
:class:`~skrank._model.training.TrainData` (frozen token source, text bank,
standardised targets, the rows to train and validate on, a user's ``X_val``
rows appended) and a :class:`~skrank._model.training.TrainConfig`, whose fields are
named after the ``CLIPRanker`` parameters they come from.
:func:`fitted_state` is every fitted attribute a successful fit sets, at once;
:class:`FitHistory` gives ``history_`` the names ``MLPRegressor`` uses.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import fields
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skrank import _progress as progress
from skrank._bounds import MAX_HISTORY
from skrank._encoding.backbone import backbone_mismatch, forget_backbone
from skrank._encoding.cache import token_source
from skrank._encoding.encoder import Encoder
from skrank._estimator.inference import encoder_for, text_bank
from skrank._estimator.inputs import TargetScaling
from skrank._estimator.presets import Preset
from skrank._estimator.validation import Validation
from skrank._model.adapter import AdapterConfig, RankingAdapter
from skrank._model.evaluation import EvalSet, check_sets, standardised_scores
from skrank._model.probe import MIN_BLEND_ROWS, LinearProbe, blend, choose_weight, fit_probe
from skrank._model.sampling import validation_split
from skrank._model.training import TrainConfig, TrainData, Trained, resolve_lr

__all__ = [
    "FitHistory",
    "FitRows",
    "FitSettings",
    "adapter_config",
    "continued_history",
    "continues",
    "epoch_hook",
    "fitted_state",
    "holdout_fraction",
    "initial_adapter",
    "prepare",
    "release_towers",
    "settings",
    "train_data",
    "weigh_probe",
]


class FitHistory:
    """MLPRegressor's names for what ``history_`` records (a mixin of CLIPRanker)."""

    @property
    def loss_curve_(self) -> list[float]:
        """The mean training loss of every epoch (``history_``), as MLPRegressor has it.

        Returns
        -------
        loss_curve : list of float of length ``len(history_)``
            Epoch by epoch, across ``warm_start`` fits.
        """
        _check_fitted(self)
        return [entry["loss"] for entry in self.history_]

    @property
    def validation_scores_(self) -> list | None:
        """Each epoch's validation Spearman (None for epochs without), or None if none had one.

        Returns
        -------
        scores : list of float or None, or None
            The adapter's Spearman on the validation rows (``X_val``, or the
            early-stopping split) after each epoch of ``history_``; None when
            no epoch was validated.
        """
        _check_fitted(self)
        scores = [entry["val_score"] for entry in self.history_]
        return None if all(v is None for v in scores) else scores

    @property
    def best_validation_score_(self) -> float | None:
        """The best of ``validation_scores_`` (NaN scores skipped), or None.

        Returns
        -------
        score : float or None
            The highest validation Spearman of any epoch; None when no epoch
            has one.
        """
        scores = [v for v in self.validation_scores_ or () if v is not None and v == v]
        return max(scores) if scores else None


def _check_fitted(estimator) -> None:
    check_is_fitted(estimator, "adapter_")


class FitSettings(NamedTuple):
    """A fit's settings, built once from the validated parameters by :func:`settings`."""

    adapter: AdapterConfig  # a new adapter's architecture
    train: TrainConfig  # how the loop trains it
    encoder: Encoder | None  # the frozen backbone and how it encodes (None: released)
    backbone_info: dict  # the backbone's identity (backbone_info_), kept when it is released
    cache: str | None  # where the training tokens are kept: "memory", "disk" or None
    cache_dir: object  # the disk cache's folder (None: the default one)
    preset: Preset  # the preset the fit resolved "auto" to
    auto_stopping: bool  # early stopping was turned on by early_stopping="auto"
    verbose: int | str  # 0, 1, 2 or "auto" (skrank._estimator.progress)
    callbacks: tuple  # the user's epoch callbacks


class FitRows(NamedTuple):
    """What ``fit`` parsed from ``X``, ``y``, ``groups``, ``sample_weight``, ``X_val`` and
    ``validation_data``."""

    items: list  # the training images
    y: np.ndarray  # their targets
    scaling: TargetScaling  # per-instruction standardisation, and each row's code
    groups: np.ndarray | None  # integer group codes
    weight: np.ndarray | None  # sample_weight
    val: Validation | None  # a user's validation set (X_val)
    named: tuple[Validation, ...] = ()  # the named validation sets (validation_data)


def settings(params: dict, backbone, n_instructions: int, auto_stopping: bool) -> FitSettings:
    """The one place where a fit's validated parameters become its settings objects.

    ``params`` are the ranker's parameters after :func:`skrank._estimator.params.validate_params`
    and :func:`skrank._estimator.presets.resolve` (with ``device_`` and ``preset_``);
    ``backbone`` the loaded frozen towers; ``n_instructions`` the instructions
    of the fit (rows of a linear probe); ``auto_stopping``: the ranker's
    ``early_stopping`` was ``"auto"``. The seed of the adapter, the batches,
    the flips and dropout is drawn here from ``random_state``.
    """
    seed = int(check_random_state(params["random_state"]).randint(np.iinfo(np.int32).max))
    adapter = adapter_config(params, backbone, n_instructions)
    lr = resolve_lr(params["lr"], adapter.d_model, adapter.n_fusion_layers, adapter.n_post_layers)
    train = TrainConfig(
        lr=lr,
        weight_decay=params["weight_decay"],
        batch_size=params["batch_size"],
        max_epochs=params["max_epochs"],
        warmup_fraction=params["warmup_fraction"],
        reg_weight=params["reg_weight"],
        rank_weight=params["rank_weight"],
        sampling=params["sampling"],
        pair_scope=params["pair_scope"],
        augment=params["augment"],
        n_iter_no_change=params["n_iter_no_change"],
        early_stopping=params["early_stopping"],
        validation_fraction=params["validation_fraction"],
        precision=params["precision"],
        device=params["device_"],
        seed=seed,
        tol=params["tol"],
        scoring=params["scoring"],
        negative_fraction=params["negative_fraction"],
        min_steps=params["preset_"].min_steps,
    )
    encoder = encoder_for(backbone, params)
    return FitSettings(
        adapter=adapter,
        train=train,
        encoder=encoder,
        backbone_info=backbone.info,
        cache=params["cache"],
        cache_dir=params["cache_dir"],
        preset=params["preset_"],
        auto_stopping=auto_stopping,
        verbose=params["verbose"],
        callbacks=tuple(params["callbacks"] or ()),
    )


def adapter_config(params: dict, backbone, n_instructions: int) -> AdapterConfig:
    """The architecture of a new adapter for ``backbone``'s tokens, from an estimator's
    validated, preset-resolved parameters, with a probe row per instruction."""
    return AdapterConfig(
        image_dim=backbone.image_dim,
        text_dim=backbone.text_dim,
        d_model=params["d_model"] or backbone.embed_dim,
        n_fusion_layers=params["n_fusion_layers"],
        n_post_layers=params["n_post_layers"],
        n_heads=params["n_heads"],
        n_prompt_tokens=params["n_prompt_tokens"],
        n_relation_tokens=params["n_relation_tokens"],
        score_pooling=params["score_pooling"],
        probe=params.get("probe", "none"),
        n_instructions=n_instructions,
        image_positions=params["image_positions"],
    )


def train_data(
    source, text, rows: FitRows, fraction: float | None, seed: int, monitor_named: bool = False
) -> TrainData:
    """The rows of a fit: the training rows, then ``X_val``'s, then each named set's.

    ``source`` must serve the training images followed by ``rows.val.items``
    and the named sets' items, in that order; the rows after the training
    rows are validated on and never trained on (unit weight, a group of their
    own). The monitored rows (early stopping's, ``val_idx``) are ``X_val``'s;
    else, with ``monitor_named``, the first named set's; else ``fraction``
    (``validation_fraction`` under ``early_stopping``, else None) of the
    training rows, held out.
    """
    scaling, groups, weight = rows.scaling, rows.groups, rows.weight
    extra = ([] if rows.val is None else [rows.val]) + list(rows.named)
    n = len(rows.y)
    sizes = [len(v.y) for v in extra]
    starts = n + np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    blocks = [np.arange(a, a + m) for a, m in zip(starts, sizes)]
    m = sum(sizes)
    if groups is not None:
        groups = np.concatenate([groups, np.full(m, -1, dtype=groups.dtype)])
    if weight is not None:
        weight = np.concatenate([weight, np.ones(m)])
    data = TrainData(
        source,
        text,
        np.concatenate([scaling.standardise(rows.y), *(v.y_std for v in extra)]),
        np.concatenate([scaling.codes, *(v.codes for v in extra)]),
        groups,
        np.arange(n),
        zero=-scaling.means / scaling.scales,  # per instruction: a target of 0, standardised
        weight=weight,
        y=np.concatenate([rows.y, *(v.y for v in extra)]),
        means=scaling.means,
        scales=scaling.scales,
    )
    named = blocks[len(blocks) - len(rows.named) :]
    data.eval_sets = tuple(
        EvalSet(v.name, idx, v.groups, v.weight) for v, idx in zip(rows.named, named)
    )
    if rows.val is not None:
        data.val_idx = blocks[0]
    elif monitor_named and rows.named:
        data.val_idx, data.monitored = named[0], rows.named[0].name
    else:
        split = validation_split(scaling.codes, rows.groups, fraction, seed)
        data.train_idx, data.val_idx = split
    return data


def prepare(ranker, fit: FitSettings, rows: FitRows) -> tuple[RankingAdapter, TrainData]:
    """What ``ranker.fit`` trains: the adapter and its :class:`TrainData`.

    The adapter is the fitted one when ``warm_start`` continues it, else a new
    one of ``fit.adapter`` seeded by ``fit.train.seed``. The token source
    serves ``rows.items``, then the validation set's.
    """
    cfg, encoder, scaling = fit.train, fit.encoder, rows.scaling
    text = text_bank(encoder.backbone, scaling.instructions, encoder.precision)
    previous = (None, None)
    warm = continues(ranker)
    if warm:
        previous = (ranker.adapter_, getattr(ranker, "backbone_info_", None))
    adapter = initial_adapter(fit.adapter, encoder.backbone, cfg.seed, *previous)
    if warm and adapter.probe is not None:
        _carry_probe(adapter, ranker.instructions_, scaling.instructions)
    val = rows.val
    items = rows.items + ([] if val is None else val.items)
    items += [item for named in rows.named for item in named.items]
    source = token_source(
        encoder,
        items,
        cache=fit.cache,
        augment=cfg.augment,
        cache_dir=fit.cache_dir,
        verbose=fit.verbose,
    )
    given = val is not None or (cfg.early_stopping and bool(rows.named))
    fraction = cfg.validation_fraction if cfg.early_stopping else None
    blending = adapter.probe is not None and not warm
    if blending and not given and fraction is None and rows.groups is not None:
        fraction = holdout_fraction(rows.groups, cfg.validation_fraction)
    try:
        data = train_data(source, text, rows, fraction, cfg.seed, cfg.early_stopping)
    except ValueError:
        if cfg.early_stopping:
            raise
        # Too few rows (or groups) to hold any out: the adapter stands alone.
        data = train_data(source, text, rows, None, cfg.seed)
    data.holdout = not given and data.val_idx is not None
    check_sets(data, cfg.scoring)
    if cfg.early_stopping:
        where = None
        if given:
            where = "X_val" if val is not None else f"validation_data[{data.monitored!r}]"
        warn_small_validation(data, where, cfg.validation_fraction, fit.auto_stopping)
    if cfg.reg_weight == 0:
        warnings.warn(
            "reg_weight=0 leaves the score head untrained, and predict, transform and score "
            "read it (the ranking loss trains the pair branch, which only compare uses): "
            "its scores are those of random weights, of either sign"
            + (", blended with the linear probe's" if adapter.probe is not None else "")
            + ". Set reg_weight > 0 (None: the preset's value)",
            UserWarning,
            stacklevel=3,
        )
    # A warm start keeps the probe and its weight; without held-out rows to weigh it
    # on, the probe keeps weight 0 and is not fitted (no pass over the tokens).
    if blending and data.val_idx is not None:
        data.weigh_probe = True
        fit_probe(adapter.probe, data, data.train_idx, cfg.batch_size)
    return adapter, data


def release_towers(fit: FitSettings) -> FitSettings:
    """``fit`` without its frozen towers, when the adapter trains on cached tokens.

    With ``cache="memory"`` or ``"disk"`` every token the loop reads is encoded
    before it starts (and the text bank built), so the towers are not needed
    until the next fit or ``predict``: large ones are dropped from the process
    (:func:`skrank._encoding.backbone.forget_backbone`) and from ``fit``, and
    their memory serves training (``docs/model.md``, "Speed of a training
    step"). The caller must drop its own references too. ``cache=None``
    encodes at every step and keeps them.
    """
    if fit.cache is None or not forget_backbone(fit.encoder.backbone):
        return fit
    return fit._replace(encoder=None)


# Early stopping that validates on fewer images (or held-out groups) than these
# picks its epoch by noise: a warning names the counts and the fixes.
MIN_VALIDATION_IMAGES = 10
MIN_VALIDATION_GROUPS = 3


def warn_small_validation(data: TrainData, given: str | None, fraction: float, auto: bool) -> None:
    """Warn when early stopping validates on too few images, or too few groups.

    ``given``: the validation rows are the user's, named so (``"X_val"``, or the
    named set's ``validation_data[...]``); None: the ``validation_fraction``
    split (``fraction``) (whole groups when groups are known).
    ``auto``: ``early_stopping="auto"`` turned it on (the message says so).
    """
    idx = data.val_idx
    n_images = len(idx)
    n_groups = None if given or data.groups is None else len(np.unique(data.groups[idx]))
    few_groups = n_groups is not None and n_groups < MIN_VALIDATION_GROUPS
    if n_images >= MIN_VALIDATION_IMAGES and not few_groups:
        return
    held = f"{n_images} image(s)" + ("" if n_groups is None else f" in {n_groups} group(s)")
    if given:
        where, fix = given, f"give {given} more images"
    else:
        where = f"validation_fraction={fraction} of the training rows"
        fix = "raise validation_fraction, or pass X_val and y_val with more images" + (
            "" if n_groups is None else " (or more groups)"
        )
    switched = " (turned on by early_stopping='auto')" if auto else ""
    warnings.warn(
        f"early stopping{switched} validates on {held} ({where}): fewer than "
        f"{MIN_VALIDATION_IMAGES} images"
        + ("" if n_groups is None else f" or {MIN_VALIDATION_GROUPS} groups")
        + " rank too noisily to choose an epoch, and the one kept may be the first; "
        f"{fix}, or set "
        "early_stopping=False to train every epoch",
        UserWarning,
        stacklevel=4,
    )


def holdout_fraction(groups: np.ndarray, fraction: float) -> float | None:
    """The share of the training groups held out to weigh the linear probe, or None.

    ``validation_fraction`` of the groups, raised to hold out at least two groups
    and ``MIN_BLEND_ROWS`` rows; None (no holdout: the adapter alone) when that
    would take more than a fifth of either. Rows, not groups, are never held out
    for this: held-out images of a source that also has training images favour
    the probe, which memorises sources (``docs/model.md``, "The linear probe").
    """
    n_groups, n_rows = len(np.unique(groups)), len(groups)
    share = max(fraction, 2 / n_groups, MIN_BLEND_ROWS / n_rows)
    return None if share > 0.2 else share


def weigh_probe(adapter, data, cfg) -> float | None:
    """After training: blend the probe into ``adapter``'s score; returns its weight.

    The weight is chosen on ``data.val_idx`` (the head and the ridge fitted
    without those rows: :func:`skrank._model.probe.choose_weight`, Spearman within
    instruction and group). Rows held out from the training set only for this
    (``data.holdout``) then join the ridge's fit. None, and the adapter
    unchanged, without a new probe to weigh (``data.weigh_probe``: a
    ``warm_start`` fit keeps the probe and weight it has) or rows to weigh it on.
    """
    val = data.val_idx
    if not data.weigh_probe or val is None or len(val) < 2:
        return None
    head, ridge = standardised_scores(adapter, data, cfg, val, parts=True)
    groups = data.instr[val]
    if data.groups is not None:
        groups = np.unique(np.stack([groups, data.groups[val]]), axis=1, return_inverse=True)[1]
    weight = None if data.weight is None else data.weight[val]
    m = choose_weight(head, ridge, data.y_std[val], groups.reshape(-1), weight)
    if data.holdout:
        fit_probe(adapter.probe, data, np.concatenate([data.train_idx, val]), cfg.batch_size)
    blend(adapter, m)
    return m


def _carry_probe(adapter, before: list[str], now: list[str]) -> None:
    """Give a warm-started adapter's probe one row per instruction of this fit.

    Instructions fitted before keep their ridge rows and weights; new ones get
    an empty row of weight 0 (the adapter reads instructions as text, so
    ``warm_start`` may bring new ones).
    """
    if list(before) == list(now):
        return
    old = adapter.probe
    new = LinearProbe(old.center.numel() // 2, len(now))
    new.center.copy_(old.center)
    new.scale.copy_(old.scale)
    for k, text in enumerate(now):
        if text in before:
            j = list(before).index(text)
            for name in ("weight", "bias", "gate"):
                getattr(new, name)[k] = getattr(old, name)[j]
    adapter.probe = new
    adapter.cfg.n_instructions = len(now)


def epoch_hook(ranker, fit: FitSettings, data: TrainData, rows: FitRows):
    """This fit's ``on_epoch`` (:func:`skrank._progress.epoch_hook`) and its closer.

    Its checkpoints (:meth:`skrank.callbacks.EpochState.ranker`) are clones of
    ``ranker`` given the fitted state a fit ending at that epoch would set.
    """
    warm = continues(ranker)
    offset = ranker.history_[-1]["epoch"] if warm and ranker.history_ else 0

    def snapshot(end, records: list) -> object:
        checkpoint = clone(ranker)
        adapter = copy.deepcopy(end.adapter).cpu().eval()
        trained = Trained(list(records), len(records), len(records))
        state = fitted_state(ranker, adapter, data, fit, rows, trained)
        for name, value in state.items():
            setattr(checkpoint, name, value)
        return checkpoint

    return progress.epoch_hook(fit.verbose, fit.callbacks, fit.train.scoring, offset, snapshot)


def continues(ranker) -> bool:
    """Whether ``ranker.fit`` continues the fitted adapter (``warm_start``)."""
    return bool(ranker.warm_start) and hasattr(ranker, "adapter_")


def fitted_state(
    ranker, adapter, data: TrainData, fit: FitSettings, rows: FitRows, trained
) -> dict:
    """The fitted attributes a ``fit`` that succeeded sets on ``ranker``, all at once.

    ``trained`` is what :func:`skrank._model.training.train` returned. A
    ``warm_start`` fit continues the ``history_`` and ``n_iter_`` of the fit
    before (call this before setting any of them).
    """
    warm = continues(ranker)
    scaling = rows.scaling
    return {
        "adapter_": adapter,
        "instructions_": scaling.instructions,
        "y_mean_": scaling.means,
        "y_scale_": scaling.scales,
        "history_": continued_history(ranker.history_ if warm else None, trained.history),
        "n_iter_": (ranker.n_iter_ if warm else 0) + trained.n_iter,
        "best_epoch_": (ranker.n_iter_ if warm else 0) + trained.best_epoch,
        "lr_": fit.train.lr,
        "preset_": fit.preset.name,
        "backbone_info_": fit.backbone_info,
        "cache_info_": dict(data.source.info),
    }


def continued_history(previous: list[dict] | None, history: list[dict]) -> list[dict]:
    """``history`` after the epochs of ``previous`` (a ``warm_start`` fit), renumbered.

    As MLPRegressor's ``loss_curve_``: a warm start continues the record. At
    most ``MAX_HISTORY`` epochs are kept (the latest).
    """
    done = previous[-1]["epoch"] if previous else 0
    ahead = [{**entry, "epoch": done + entry["epoch"]} for entry in history]
    return (list(previous or []) + ahead)[-MAX_HISTORY:]


def initial_adapter(
    cfg: AdapterConfig, backbone, seed: int, previous=None, previous_backbone=None
) -> RankingAdapter:
    """A copy of ``previous`` (``warm_start``), or a new adapter of ``cfg`` seeded by ``seed``.

    ``previous_backbone`` is the ``backbone_info_`` that ``previous`` was
    trained on: it must be ``backbone``, and every architecture setting must
    still have the value ``previous`` was built with, or the ranker would
    report parameters its adapter does not have.

    Parameters
    ----------
    cfg : AdapterConfig
        The architecture the ranker's parameters ask for.
    backbone : Backbone
    seed : int
    previous : RankingAdapter, optional
        The fitted adapter to continue (``warm_start=True``).
    previous_backbone : dict, optional
        Its ``backbone_info_``.

    Returns
    -------
    RankingAdapter
    """
    if previous is None:
        # A generator of the fit's own, not torch's process-wide one: fits in threads
        # would reseed each other (and it yields torch.manual_seed(seed)'s stream).
        return RankingAdapter(cfg, torch.Generator().manual_seed(seed))
    changed = []
    before = previous_backbone or {}
    diffs = backbone_mismatch(before, backbone.info)
    if diffs:
        changed.append(
            f"backbone={before.get('name')!r}, pretrained={before.get('pretrained')!r} -> "
            f"backbone={backbone.name!r}, pretrained={backbone.pretrained!r} "
            f"({'; '.join(diffs)})"
        )
    # The settings that shape the adapter: the token widths are the backbone's (checked
    # above) and the probe's rows follow the instructions (carried by _carry_probe).
    for field in fields(AdapterConfig):
        if field.name not in ("image_dim", "text_dim", "n_instructions"):
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
