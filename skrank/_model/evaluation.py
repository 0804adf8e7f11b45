"""Scoring a fit's validation rows after each epoch: early stopping's score and the record.

A fit validates on two kinds of rows of its :class:`~skrank._model.training.TrainData`:

- the *monitored* rows ``val_idx`` (a user's ``X_val``, else the first named
  validation set under early stopping, else the ``validation_fraction`` held
  out): their score is an epoch's ``val_score``, which early stopping reads;
- *named* validation sets (:class:`EvalSet`, ``fit(validation_data=...)``):
  each scored and recorded under the epoch's ``validation``, never trained on.

Every score is the one ``scoring`` names (a :func:`skrank.metrics.get_scorer`
name, greater is better: errors are negated), computed in the units of ``y``
within each instruction (and each of the set's groups, for the ranking
metrics), weighted where the set has weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from skrank import _devices as devices
from skrank._estimator.inference import predict_tokens
from skrank.metrics._scorers import Scoring, scoring

__all__ = ["EpochScores", "EvalSet", "check_sets", "evaluate", "standardised_scores"]


@dataclass(frozen=True)
class EvalSet:
    """A named validation set: its rows of the fit's token source, groups and weights."""

    name: str | None  # None: the monitored rows
    idx: np.ndarray
    groups: np.ndarray | None = None  # integer codes: ranking metrics score within each
    weight: np.ndarray | None = None


class EpochScores(NamedTuple):
    """One epoch's validation: early stopping's score, the named sets' and the predictions."""

    monitored: float | None  # the monitored rows' score (None without them)
    named: dict  # name -> score, for every named set
    validation: tuple | None  # (y_true, y_pred) of the monitored rows, units of y
    predictions: dict  # name -> (y_true, y_pred) of every named set, units of y


def standardised_scores(adapter, data, cfg, idx: np.ndarray, parts: bool = False) -> np.ndarray:
    """Standardised scores of rows ``idx`` of ``data``, in that order (``idx`` sorted).

    With ``parts``, an array (2, n): the score head's part and the linear
    probe's ungated ridge scores (:meth:`skrank._model.probe.LinearProbe.ridge`).
    Leaves the adapter in eval mode.
    """
    adapter.eval()
    instr = data.instr
    preds = np.empty((2, len(idx)) if parts else len(idx))
    no_flip = np.zeros(cfg.batch_size, dtype=bool)
    for k in np.unique(instr[idx]):
        rows = idx[instr[idx] == k]
        text, valid = data.text.get(int(k))
        for start in range(0, len(rows), cfg.batch_size):
            chunk = rows[start : start + cfg.batch_size]
            toks = data.source.tokens(chunk, no_flip[: len(chunk)], cfg.device)
            at = np.searchsorted(idx, chunk)
            scores, _ = predict_tokens(adapter, toks, text, valid, cfg.precision, int(k))
            if not parts:
                preds[at] = scores.cpu().numpy()
                continue
            with torch.no_grad(), devices.autocast(toks.device, cfg.precision):
                ridge = adapter.probe.ridge(toks, int(k)).float()
            gated = adapter.probe.gate[int(k)].float() * ridge  # what the score added
            preds[0, at] = (scores - gated).cpu().numpy()
            preds[1, at] = ridge.cpu().numpy()
    return preds


def _sets(data, early_stopping: bool) -> list[tuple[EvalSet, bool]]:
    """Every set an epoch is scored on, each with whether it is the monitored one.

    The monitored rows are the named set ``data.monitored`` names, else the
    anonymous ``val_idx`` rows (a user's ``X_val`` or the held-out split); rows
    held out only to weigh the linear probe (``data.holdout`` without early
    stopping) are not scored.
    """
    out = [(s, s.name == data.monitored) for s in data.eval_sets]
    anonymous = data.monitored is None and data.val_idx is not None and len(data.val_idx)
    if anonymous and (early_stopping or not data.holdout):
        weight = None if data.weight is None else data.weight[data.val_idx]
        out.insert(0, (EvalSet(None, data.val_idx, None, weight), True))
    return out


def _weight(entry: Scoring, eval_set: EvalSet, name: str) -> np.ndarray | None:
    """The set's weights as the metric takes them: None when absent or all equal."""
    w = eval_set.weight
    if w is None or np.all(w == w[0]):
        return None
    if not entry.weighted:
        where = "the validation rows" if eval_set.name is None else repr(eval_set.name)
        raise ValueError(
            f"scoring={name!r} takes no sample weights, and {where} have unequal "
            "ones; use scoring='spearman', 'neg_mean_absolute_error', 'ordinal_accuracy' "
            "or 'ordinal_mae', or drop the weights"
        )
    return w


def _score(name: str, data, eval_set: EvalSet, y_pred: np.ndarray) -> float:
    """``scoring`` ``name`` of predictions ``y_pred`` (units of y) of ``eval_set``'s rows."""
    entry = scoring(name)
    idx = eval_set.idx
    keywords = {}
    if entry.grouped:
        groups = data.instr[idx]
        if eval_set.groups is not None:
            pairs = np.stack([groups, eval_set.groups])
            groups = np.unique(pairs, axis=1, return_inverse=True)[1].reshape(-1)
        keywords["groups"] = groups
    weight = _weight(entry, eval_set, name)
    if weight is not None:
        keywords["sample_weight"] = weight
    value = float(entry.metric(data.y[idx], y_pred, **keywords))
    return value if entry.greater_is_better else -value


def check_sets(data, name: str) -> None:
    """Refuse, before training, validation rows that ``scoring`` ``name`` cannot score.

    Scores each set's true targets as predictions (the metric's own checks:
    NDCG's non-negative relevance, weights the metric does not take), so a
    fit never trains an epoch to fail on its first validation.
    """
    for eval_set, _ in _sets(data, early_stopping=True):  # every set a fit could score
        try:
            _score(name, data, eval_set, data.y[eval_set.idx])
        except ValueError as exc:
            where = "" if eval_set.name is None else f" of {eval_set.name!r}"
            raise ValueError(
                f"scoring={name!r} cannot score the validation rows{where}: {exc}"
            ) from None


def evaluate(adapter, data, cfg) -> EpochScores | None:
    """Score every validation set of ``data`` by ``cfg.scoring`` (None without any).

    Leaves ``adapter`` in eval mode.
    """
    sets = _sets(data, cfg.early_stopping)
    if not sets:
        return None
    monitored, validation, named, predictions = None, None, {}, {}
    for eval_set, is_monitored in sets:
        idx = eval_set.idx
        std = standardised_scores(adapter, data, cfg, idx)
        y_pred = std * data.scales[data.instr[idx]] + data.means[data.instr[idx]]
        value = _score(cfg.scoring, data, eval_set, y_pred)
        if is_monitored:
            monitored, validation = value, (data.y[idx], y_pred)
        if eval_set.name is not None:
            named[eval_set.name] = value
            predictions[eval_set.name] = (data.y[idx], y_pred)
    return EpochScores(monitored, named, validation, predictions)
