"""How the estimators pickle, and the one skrank-version warning pickles and files share."""

from __future__ import annotations

import copy
import warnings

from skrank._estimator.presets import BEFORE
from skrank._version import __version__
from skrank.persistence._schema import estimator_of
from skrank.persistence._schema_compat import check_pickled_state

__all__ = ["PickleRules", "older_defaults", "warn_if_other_version"]


def warn_if_other_version(saved: str | None, what: str, stacklevel: int = 3) -> None:
    """Warn that ``what`` was written by another skrank version than this one."""
    if saved != __version__:
        warnings.warn(
            f"{what} was saved by skrank {saved}; this is skrank {__version__}: it may not "
            "behave identically",
            UserWarning,
            stacklevel=stacklevel,
        )


class PickleRules:
    """How an estimator (CLIPRanker, CLIPPreferenceRanker) pickles: the adapter on the
    CPU, the skrank version recorded.

    The frozen backbone is never pickled (it is rebuilt from its spec), and
    tensors are stored on the CPU so a CUDA-fitted ranker loads anywhere. A
    pickle from another skrank version loads with a warning. A pickle from
    before skrank 0.1's architecture variants were removed loads when its
    adapter is the reference's and is refused when not; one whose adapter
    predates a current option is refused (``skrank.persistence._schema_compat``).
    """

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: Python 3.11+ gives __dict__ itself
        if "adapter_" in state:
            state["adapter_"] = copy.deepcopy(state["adapter_"]).cpu()
        state["_skrank_version"] = __version__
        return state

    def __setstate__(self, state):
        saved = state.pop("_skrank_version", None)
        if saved is not None:
            warn_if_other_version(saved, f"this {type(self).__name__}", stacklevel=4)
        check_pickled_state(state)  # the loader's rules for older models
        fitted = estimator_of(type(self)).fitted
        if "adapter_" in state and "best_epoch_" in fitted and "best_epoch_" not in state:
            state["best_epoch_"] = None  # pickled before it was recorded: unknown
        super().__setstate__({**_missing_params(state, type(self)), **state})


def _missing_params(state: dict, cls) -> dict:
    """Parameters a pickle from before they existed lacks: the adapter's own architecture
    options where it has an adapter (so parameters and weights agree), else defaults
    (``preset``: the small-data settings every such fit used)."""
    missing = {k: v for k, v in older_defaults(cls).items() if k not in state}
    adapter = state.get("adapter_")
    if adapter is not None:
        missing.update({k: getattr(adapter.cfg, k) for k in missing if hasattr(adapter.cfg, k)})
    return missing


def older_defaults(cls) -> dict:
    """What fills the parameters an older pickle or file lacks: the defaults of ``cls``
    (``CLIPRanker``, ``CLIPPreferenceRanker``), but ``preset`` is the one every fit made
    before it existed used."""
    return {**cls().get_params(deep=False), "preset": BEFORE}
