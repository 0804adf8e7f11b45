"""Saving and loading fitted rankers without pickle.

``save`` writes one safetensors file: the adapter's tensors, plus JSON metadata
(format version, parameters, target scaling, history, backbone spec). Loading
it parses JSON and raw tensor bytes only, so an untrusted file cannot run code.
The frozen backbone is not stored: it is rebuilt from its spec on first use.

Pickles (``pickle``, ``joblib.dump``) of a ranker also work and are small (no
backbone inside), but loading a pickle executes code: only load pickles from
sources you trust.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

__all__ = ["FORMAT_VERSION", "PickleRules", "load", "save"]

FORMAT_NAME = "skrank-ranker"
FORMAT_VERSION = 1
_FITTED = ("instructions_", "history_", "n_iter_", "lr_", "backbone_info_", "cache_info_")


def warn_if_other_version(saved: str | None, what: str, stacklevel: int = 3) -> None:
    """Warn that ``what`` was written by another skrank version than this one."""
    from skrank import __version__

    if saved != __version__:
        warnings.warn(
            f"{what} was saved by skrank {saved}; this is skrank {__version__}: it may not "
            "behave identically",
            UserWarning,
            stacklevel=stacklevel,
        )


class PickleRules:
    """How a CLIPRanker pickles: the adapter on the CPU, the skrank version recorded.

    The frozen backbone is never pickled (it is rebuilt from its spec), and
    tensors are stored on the CPU so a CUDA-fitted ranker loads anywhere. A
    pickle from another skrank version loads with a warning.
    """

    def __getstate__(self):
        import copy

        from skrank import __version__

        state = super().__getstate__()
        if "adapter_" in state:
            state["adapter_"] = copy.deepcopy(state["adapter_"]).cpu()
        state["_skrank_version"] = __version__
        return state

    def __setstate__(self, state):
        saved = state.pop("_skrank_version", None)
        if saved is not None:
            warn_if_other_version(saved, "this CLIPRanker", stacklevel=4)
        super().__setstate__(state)


def _jsonable_params(ranker) -> dict:
    params = {}
    for key, value in ranker.get_params(deep=False).items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if key == "random_state" and not (value is None or isinstance(value, int)):
            value = None  # a RandomState's position cannot be stored as JSON; refits reseed
        params[key] = value
    return params


def save(ranker, path: str | os.PathLike) -> None:
    """Write a fitted ranker to ``path`` (a safetensors file; no pickle inside).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skrank import CLIPRanker, save, load
    >>> imgs = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 250, 25)]
    >>> r = CLIPRanker("Sort by brightness.", backbone="skrank-tiny", max_epochs=1,
    ...                random_state=0).fit(imgs, np.arange(10.0))
    >>> path = os.path.join(tempfile.mkdtemp(), "ranker.skrank")
    >>> save(r, path)
    >>> np.allclose(load(path).predict(imgs), r.predict(imgs))
    True
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    import skrank

    check_is_fitted(ranker, "adapter_")
    tensors = {k: v.detach().cpu().contiguous() for k, v in ranker.adapter_.state_dict().items()}
    fitted = {k: getattr(ranker, k) for k in _FITTED if hasattr(ranker, k)}
    fitted["y_mean_"] = np.asarray(ranker.y_mean_).tolist()
    fitted["y_scale_"] = np.asarray(ranker.y_scale_).tolist()
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "skrank_version": skrank.__version__,
        "params": json.dumps(_jsonable_params(ranker)),
        "adapter_config": json.dumps(ranker.adapter_.cfg.to_dict()),
        "fitted": json.dumps(fitted),
    }
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)  # never leave a half-written model under the real name


def load(path: str | os.PathLike):
    """Read a ranker written by :func:`save`. Never unpickles anything.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a
    file that is not a skrank model, is truncated or corrupt, or was written
    by a newer format version.

    Examples
    --------
    >>> import os, tempfile
    >>> from skrank import load
    >>> bad = os.path.join(tempfile.mkdtemp(), "not-a-model.skrank")
    >>> with open(bad, "wb") as fh:
    ...     _ = fh.write(b"hello")
    >>> try:
    ...     load(bad)
    ... except ValueError as exc:
    ...     print("refused")
    refused
    """
    from safetensors import safe_open

    import skrank
    from skrank.adapter import AdapterConfig, RankingAdapter
    from skrank.ranker import CLIPRanker

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no skrank model file at {path!r}")
    try:
        with safe_open(path, framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT_NAME:
                raise ValueError(f"{path!r} is a safetensors file but not a skrank model")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except ValueError:
        raise
    except Exception as exc:  # safetensors' own errors: not safetensors, truncated, corrupt
        raise ValueError(
            f"{path!r} is not a readable skrank model file (not safetensors, truncated or "
            f"corrupt): {exc}"
        ) from None
    version = int(meta.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has format version {version}, newer than this skrank "
            f"({skrank.__version__}) reads (<= {FORMAT_VERSION}); upgrade skrank"
        )
    warn_if_other_version(meta.get("skrank_version"), repr(path))
    try:
        ranker = CLIPRanker(**json.loads(meta["params"]))
        fitted = json.loads(meta["fitted"])
        adapter = RankingAdapter(AdapterConfig.from_dict(json.loads(meta["adapter_config"])))
        adapter.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r} is a damaged skrank model file: {exc}") from None
    adapter.eval()
    ranker.adapter_ = adapter
    ranker.y_mean_ = np.asarray(fitted.pop("y_mean_"), dtype=float)
    ranker.y_scale_ = np.asarray(fitted.pop("y_scale_"), dtype=float)
    for key, value in fitted.items():
        setattr(ranker, key, value)
    return ranker
