"""What a ``fit`` trains and what it leaves: the step between parsed inputs and the loop.

:func:`prepare` builds a new (or warm-started) adapter, a
:class:`~skrank.training.TrainData` (frozen token source, text bank,
standardised targets, the rows to train and validate on, a user's ``X_val``
rows appended) and a :class:`~skrank.training.TrainConfig`, whose fields are
named after the ``CLIPRanker`` parameters they come from.
:func:`fitted_state` is every fitted attribute a successful fit sets, at once;
:class:`FitHistory` gives ``history_`` the names ``MLPRegressor`` uses.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from skrank.adapter import AdapterConfig, RankingAdapter
from skrank.cache import token_source
from skrank.inference import text_bank
from skrank.probe import LinearProbe, fit_probe
from skrank.training import TrainConfig, TrainData, resolve_lr, validation_split

__all__ = [
    "FitHistory",
    "continued_history",
    "fitted_state",
    "holdout_fraction",
    "initial_adapter",
    "prepare",
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
    continues = _continues(ranker)
    if continues:
        previous = (ranker.adapter_, getattr(ranker, "backbone_info_", None))
    n_instructions = len(scaling.instructions)
    adapter = initial_adapter(backbone, params, seed, *previous, n_instructions=n_instructions)
    if continues and adapter.probe is not None:
        _carry_probe(adapter, ranker.instructions_, scaling.instructions)
    items = parsed.items + ([] if val is None else val.items)
    source = by_name(token_source, params, backbone=backbone, items=items)
    fraction = params["validation_fraction"] if params["early_stopping"] else None
    blending = adapter.probe is not None and not continues
    if blending and val is None and fraction is None and groups is not None:
        fraction = holdout_fraction(groups, params["validation_fraction"])
    y_std, zero = scaling.standardise(y), -scaling.means / scaling.scales
    try:
        data = train_data(
            source, text, y_std, scaling.codes, groups, weight, val, fraction, seed, zero
        )
    except ValueError:
        if params["early_stopping"]:
            raise
        # Too few rows (or groups) to hold any out: the adapter stands alone.
        data = train_data(source, text, y_std, scaling.codes, groups, weight, val, None, seed, zero)
    data.holdout = val is None and data.val_idx is not None
    if params["early_stopping"]:
        auto = ranker.early_stopping == "auto"  # the preset turned it on
        warn_small_validation(data, val is not None, params, auto)
    if params["reg_weight"] == 0:
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
        fit_probe(adapter.probe, data, data.train_idx, params["batch_size"])
    c = adapter.cfg
    lr = resolve_lr(params["lr"], c.d_model, c.n_fusion_layers, c.n_post_layers)
    cfg = by_name(
        TrainConfig,
        params,
        lr=lr,
        device=params["device_"],
        seed=seed,
        min_steps=params["preset_"].min_steps,
    )
    return adapter, data, cfg


# Early stopping that validates on fewer images (or held-out groups) than these
# picks its epoch by noise: a warning names the counts and the fixes.
MIN_VALIDATION_IMAGES = 10
MIN_VALIDATION_GROUPS = 3


def warn_small_validation(data: TrainData, given: bool, params: dict, auto: bool) -> None:
    """Warn when early stopping validates on too few images, or too few groups.

    ``given``: the validation rows are the user's ``X_val``; else the
    ``validation_fraction`` split (whole groups when groups are known).
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
        where, fix = "X_val", "pass an X_val and y_val of more images"
    else:
        where = f"validation_fraction={params['validation_fraction']} of the training rows"
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
    from skrank.probe import MIN_BLEND_ROWS

    n_groups, n_rows = len(np.unique(groups)), len(groups)
    share = max(fraction, 2 / n_groups, MIN_BLEND_ROWS / n_rows)
    return None if share > 0.2 else share


def weigh_probe(adapter, data, cfg) -> float | None:
    """After training: blend the probe into ``adapter``'s score; returns its weight.

    The weight is chosen on ``data.val_idx`` (the head and the ridge fitted
    without those rows: :func:`skrank.probe.choose_weight`, Spearman within
    instruction and group). Rows held out from the training set only for this
    (``data.holdout``) then join the ridge's fit. None, and the adapter
    unchanged, without a new probe to weigh (``data.weigh_probe``: a
    ``warm_start`` fit keeps the probe and weight it has) or rows to weigh it on.
    """
    from skrank.probe import blend, choose_weight
    from skrank.training import validation_scores

    val = data.val_idx
    if not data.weigh_probe or val is None or len(val) < 2:
        return None
    head, ridge = validation_scores(adapter, data, cfg, parts=True)
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


def adapter_config(backbone, params: dict, n_instructions: int = 1) -> AdapterConfig:
    """The config of a new adapter: the adapter parameters by name, ``d_model=None``
    the backbone's embedding width."""
    from skrank.params import by_name

    return by_name(
        AdapterConfig,
        params,
        image_dim=backbone.image_dim,
        text_dim=backbone.text_dim,
        d_model=params["d_model"] or backbone.embed_dim,
        n_instructions=n_instructions,
    )


def initial_adapter(
    backbone, params: dict, seed: int, previous=None, previous_backbone=None, n_instructions=1
):
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
    n_instructions : int, default=1
        Instructions of the fit (rows of a new adapter's linear probe).

    Returns
    -------
    RankingAdapter
    """
    from dataclasses import fields

    from skrank.backbone import backbone_mismatch

    cfg = adapter_config(backbone, params, n_instructions)
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
