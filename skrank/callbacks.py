"""What a training callback receives: :class:`EpochState`.

``CLIPRanker(callbacks=[...])`` calls each callback after every epoch with an
:class:`EpochState`; a callback that returns True stops training after that
epoch (with early stopping, the best epoch's weights are still the ones
kept). An exception raised by a callback ends ``fit``, which then leaves the
estimator as it was before the call, as any failed fit does: raising is how
an Optuna pruner ends a trial (``optuna.TrialPruned``).

A callback is any callable: a function, or an object with ``__call__`` that
keeps what it sees. ``clone`` (and so every scikit-learn search) deep-copies
the parameters, callback objects included: a search's fits write into copies,
never into the object you passed; read what they keep from
``search.best_estimator_.callbacks`` or log it from inside the callback.
Callbacks are code of the session that fits: :func:`skrank.save` does not
store them, and :func:`skrank.load` gives ``callbacks=None``.

Examples
--------
Stop when the validation Spearman reaches 0.95, keep a checkpoint of every
epoch's model, and record a metric of your own on a validation set::

    import skrank
    from skrank.metrics import kendall_score

    def enough(state):
        return state.record["val_score"] is not None and state.record["val_score"] >= 0.95

    def checkpoint(state):
        skrank.save(state.ranker(), f"checkpoint-{state.epoch}.skrank")

    class Kendall:
        def __init__(self):
            self.values = []

        def __call__(self, state):
            y_true, y_pred = state.predictions["faces"]
            self.values.append(kendall_score(y_true, y_pred))

    ranker = CLIPRanker(callbacks=[enough, checkpoint, Kendall()])
    ranker.fit(X, y, validation_data={"faces": (X_faces, y_faces)})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EpochState"]


@dataclass(frozen=True)
class EpochState:
    """What a training callback sees after an epoch.

    Attributes
    ----------
    epoch : int
        The epoch just trained, numbered as in ``history_`` (on across
        ``warm_start`` fits).
    max_epochs : int
        The last epoch the budget of this fit allows (training may stop
        before: early stopping, or a callback).
    record : dict
        The epoch's entry of ``history_`` (a copy): ``epoch``, ``loss``,
        ``reg_loss``, ``rank_loss``, ``lr``, ``val_score`` (the monitored
        validation rows' score by ``scoring``, or None), ``validation``
        (the named sets' scores, when ``fit`` has ``validation_data``) and
        ``seconds``.
    validation : tuple of (ndarray, ndarray) or None
        ``(y_true, y_pred)`` of the monitored validation rows (``X_val``, the
        held-out split or the first named set), in the units of ``y``; None
        without them.
    predictions : dict
        Per named validation set, ``(y_true, y_pred)`` in the units of ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from skrank import CLIPRanker
    >>> images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 25)]
    >>> seen = []
    >>> ranker = CLIPRanker(backbone="skrank-tiny", max_epochs=3, verbose=0,
    ...                     callbacks=[lambda state: seen.append(state.epoch)])
    >>> ranker = ranker.fit(images, np.arange(10.0))
    >>> seen
    [1, 2, 3]
    """

    epoch: int
    max_epochs: int
    record: dict
    validation: tuple[np.ndarray, np.ndarray] | None = None
    predictions: dict = field(default_factory=dict)
    _snapshot: Callable | None = field(default=None, repr=False)

    def ranker(self):
        """A fitted copy of the ranker as it is after this epoch: a checkpoint.

        It predicts, scores and saves (:func:`skrank.save`) as a fitted
        ``CLIPRanker`` does; its ``history_`` ends at this epoch. Made on
        request (it copies the adapter), from the weights of this epoch,
        before early stopping picks its best and before a linear probe
        (``probe="ridge"``) is weighed into the score.

        Returns
        -------
        ranker : CLIPRanker
        """
        if self._snapshot is None:
            raise RuntimeError("this EpochState was not made by a fit; it has no ranker")
        return self._snapshot()
