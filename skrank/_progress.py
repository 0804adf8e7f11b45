"""What a fit shows while it runs: progress bars, the training log, and epoch callbacks.

``verbose`` (a ``CLIPRanker`` parameter) says what is shown:

- ``0``: nothing;
- ``"auto"`` (the default): a progress bar for encoding and for the epochs,
  each only once it has run for :data:`AUTO_DELAY` seconds and only on a
  terminal or in a notebook, so short fits, searches and logs stay silent;
- ``1``: the bars from the start, and a summary line at the end;
- ``2``: the encoding bar, one line per epoch (:func:`epoch_line`) and the
  summary.

Every epoch's line also goes to the ``skrank`` logger at level INFO, whatever
``verbose`` is, for applications that collect logs (``logging.basicConfig(
level=logging.INFO)`` shows them).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from tqdm.auto import tqdm

from skrank.callbacks import EpochState

__all__ = ["AUTO_DELAY", "bar", "epoch_hook", "epoch_line", "logger"]

logger = logging.getLogger("skrank")

AUTO_DELAY = 10.0  # seconds before verbose="auto" shows a bar


def bar(verbose, total: int, desc: str, unit: str):
    """A tqdm progress bar as ``verbose`` asks (None for 0), closed by the caller."""
    if verbose == 0:
        return None
    if verbose == "auto":
        # disable=None: off where stderr is no terminal (tqdm's notebook bar still shows)
        return tqdm(total=total, desc=desc, unit=unit, leave=False, delay=AUTO_DELAY, disable=None)
    return tqdm(total=total, desc=desc, unit=unit, leave=False)


def epoch_line(record: dict, max_epochs: int, scoring: str) -> str:
    """One epoch of the training log: losses, validation scores, learning rate, seconds."""
    # The score head's loss: the regression's (CLIPRanker), or the comparisons' on the
    # scores (CLIPPreferenceRanker).
    head = "reg" if "reg_loss" in record else "score"
    parts = [
        f"epoch {record['epoch']}/{max_epochs}",
        f"loss {record['loss']:.4f} ({head} {record[head + '_loss']:.4f}, "
        f"rank {record['rank_loss']:.4f})",
    ]
    if record.get("val_score") is not None:
        parts.append(f"val {scoring} {record['val_score']:.4f}")
    for name, value in record.get("validation", {}).items():
        parts.append(f"{name} {value:.4f}")
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['seconds']:.1f} s")
    return ", ".join(parts)


def epoch_hook(
    verbose, callbacks, scoring: str, offset: int, snapshot: Callable
) -> tuple[Callable, Callable]:
    """The ``on_epoch`` of :func:`skrank._model.training.train` for a fit, and its closer.

    It logs each epoch (and prints it with ``verbose=2``), advances the epoch
    bar, and calls ``callbacks`` with an :class:`~skrank.callbacks.EpochState`
    whose epoch is ``offset`` on (a ``warm_start`` fit's earlier epochs);
    ``snapshot(end, records)`` makes its checkpoint ranker from the adapter
    of ``end`` and this fit's records so far. Returns True to stop when a
    callback does. Call the closer when training ends (the bar).
    """
    state = {"bar": None}
    records = []

    def on_epoch(end) -> bool:
        records.append(end.record)
        so_far = list(records)
        record = {**copy.deepcopy(end.record), "epoch": offset + end.record["epoch"]}
        line = epoch_line(record, offset + end.max_epochs, scoring)
        logger.info(line)
        if verbose == 2:
            print(line, flush=True)
        elif state["bar"] is None:
            state["bar"] = bar(verbose, end.max_epochs, "epochs", "epoch")
        if state["bar"] is not None:
            state["bar"].update(1)
            if record.get("val_score") is not None:
                state["bar"].set_postfix(val=f"{record['val_score']:.4f}", refresh=False)
        stop = False
        if callbacks:
            scores = end.scores
            epoch_state = EpochState(
                record["epoch"],
                offset + end.max_epochs,
                record,
                None if scores is None else scores.validation,
                {} if scores is None else dict(scores.predictions),
                lambda: snapshot(end, so_far),
            )
            for callback in callbacks:
                stop = bool(callback(epoch_state)) or stop
        return stop

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return on_epoch, close
