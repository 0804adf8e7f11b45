"""Beyond one machine: encoding and prediction on a Dask cluster.

Two entry points, both usable without a cluster (``client=None`` runs in this
process):

- :func:`encode` fills the shared disk cache (the :class:`~skrank._encoding.cache.DiskStore`
  that ``CLIPRanker(cache="disk", cache_dir=...)`` reads) from many workers,
  chunk by chunk. Every token file is written atomically, so a run that stops
  half way is resumed by running it again: only the missing entries are encoded.
- :func:`predict` scores a pandas or Dask collection of images with a fitted
  ranker, shipped to the workers once.

Grid searches need nothing from here: ``GridSearchCV(..., n_jobs=-1)`` inside
``joblib.parallel_backend("dask")`` fits the clones on the workers, and clones
that share a ``cache_dir`` share their encoded tokens (see ``docs/scaling.md``).

Dask is optional: ``pip install "skrank[dask]"``.
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
from dataclasses import dataclass

import pandas as pd
from sklearn.utils.validation import check_is_fitted

from skrank._devices import resolve_device
from skrank._encoding.backbone import load_backbone
from skrank._encoding.cache import resolve_cache_dir
from skrank._encoding.diskstore import DiskStore
from skrank._encoding.encoder import BOTH, PLAIN, Encoder
from skrank._encoding.images import as_image_list, check_on_error
from skrank._quote import shown

__all__ = ["encode", "predict"]

_CHUNK_BATCHES = 16  # default chunk: this many encoding batches per task
_CHUNKS_PER_SLOT = 4  # ... but at least this many tasks per worker thread, to balance load
_DEFAULT_PARTITION = 1024  # rows per prediction task for in-memory inputs


# --------------------------------------------------------------------------- encode


@dataclass(frozen=True)
class _Task:
    """What every encoding task shares (sent to each worker, small and picklable)."""

    backbone: str
    pretrained: str | None
    device: str
    cache_dir: str
    batch_size: int
    with_flips: bool
    num_workers: int


def _encode_chunk(items: list, start: int, task: _Task, progress=None) -> dict:
    """Encode what the cache lacks of ``items`` (positions ``start``... of the whole set)."""
    backbone = load_backbone(task.backbone, task.pretrained, resolve_device(task.device))
    encoder = Encoder(backbone, batch_size=task.batch_size, num_workers=task.num_workers)
    store = DiskStore(backbone, task.cache_dir)
    views = BOTH if task.with_flips else PLAIN
    filled = encoder.fill(store, items, range(len(items)), views=views, progress=progress)
    store.report()  # unusable or unwritable entries: one warning per chunk, on its worker
    return {
        "images": len(items),
        "already_cached": filled.hits,
        "encoded": filled.misses,
        "views_encoded": filled.views_encoded,
        "failures": [(start + i, path, reason) for i, path, reason in filled.failures],
        "cache_root": str(store.root),
    }


def _n_slots(client) -> int:
    """Tasks the cluster runs at once (worker threads); 1 in this process."""
    return max(1, sum(client.nthreads().values())) if client is not None else 1


def _chunk_size(n: int, batch_size: int, n_slots: int) -> int:
    spread = math.ceil(n / (_CHUNKS_PER_SLOT * n_slots))
    return max(1, min(_CHUNK_BATCHES * batch_size, spread))


def _merge(summary: dict, part: dict) -> None:
    for key in ("images", "already_cached", "encoded", "views_encoded"):
        summary[key] += part[key]
    summary["failures"] += part["failures"]
    summary["cache_root"] = summary["cache_root"] or part["cache_root"]


def encode(
    images,
    backbone: str = "ViT-B-16",
    pretrained: str | os.PathLike | None = "openai",
    cache_dir: str | os.PathLike | None = None,
    client=None,
    batch_size: int = 64,
    with_flips: bool = True,
    progress: bool = True,
    *,
    chunk_size: int | None = None,
    device: str = "auto",
    num_workers: int = 0,
) -> dict:
    """Encode ``images`` into the shared disk cache, on a Dask cluster or here.

    The tokens land where ``CLIPRanker(backbone=backbone, pretrained=pretrained,
    cache="disk", cache_dir=cache_dir)`` looks for them, so its ``fit`` and
    ``predict`` on these images encode nothing. Entries already in the cache
    are skipped, so an interrupted run is resumed by calling again.

    Parameters
    ----------
    images : sequence or pandas Series of images
        File paths are what a cluster should get: every worker must be able to
        open them, at the same path. PIL images and arrays work too, but are
        sent to the workers.
    backbone, pretrained : str
        As in :class:`~skrank.CLIPRanker`. A checkpoint file must exist on
        every worker, at the same path.
    cache_dir : str or path, default=None
        The cache folder, on storage every worker shares; None uses
        ``$SKRANK_CACHE_DIR`` or ``~/.cache/skrank`` as the ranker does.
    client : distributed.Client, default=None
        Where to run. None encodes in this process.
    batch_size : int, default=64
        Images per forward pass of the frozen image tower.
    with_flips : bool, default=True
        Also encode the horizontally flipped twin, which ``fit`` with
        ``augment=True`` (the default) needs; prediction needs only the plain view.
    progress : bool, default=True
        Show a tqdm progress bar (per image here, per chunk on a cluster).
    chunk_size : int, default=None
        Images per task. None: ``16 * batch_size``, made smaller when needed so
        every worker thread gets at least 4 tasks.
    device : str, default="auto"
        Resolved on each worker: "auto" uses the worker's GPU when it has one.
    num_workers : int, default=0
        Threads decoding images inside each task.

    Returns
    -------
    summary : dict
        ``images``; ``already_cached`` (images with every view asked for
        already in the cache); ``encoded`` (images that had at least one view
        encoded); ``views_encoded`` (forward passes, a flip counting as one);
        ``failures``, a list of ``(index, path, reason)`` for unreadable
        images (they are skipped, not fatal); ``chunks``; ``seconds``;
        ``cache_root``, the folder of this backbone's token files.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from skrank.parallel import encode
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 25)]
    >>> folder = tempfile.mkdtemp()
    >>> s = encode(images, "skrank-tiny", None, folder, progress=False)
    >>> s["encoded"], s["already_cached"]
    (10, 0)
    >>> encode(images, "skrank-tiny", None, folder, progress=False)["already_cached"]
    10
    """
    t0 = time.perf_counter()
    items = as_image_list(images)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not valid; expected an integer >= 1")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size={chunk_size!r} is not valid; expected None or an int >= 1")
    cache_dir = os.fspath(resolve_cache_dir(cache_dir))
    size = chunk_size or _chunk_size(len(items), batch_size, _n_slots(client))
    starts = range(0, len(items), size)
    task = _Task(
        backbone=backbone,
        pretrained=None if pretrained is None else os.fspath(pretrained),
        device=device,
        cache_dir=cache_dir,
        batch_size=batch_size,
        with_flips=with_flips,
        num_workers=num_workers,
    )
    summary = {
        "images": 0,
        "already_cached": 0,
        "encoded": 0,
        "views_encoded": 0,
        "failures": [],
        "chunks": len(starts),
        "seconds": 0.0,
        "cache_root": None,
    }
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="encoding", unit="img")
    try:
        if client is None:
            for s in starts:
                _merge(summary, _encode_chunk(items[s : s + size], s, task, progress=bar))
        else:
            from distributed import as_completed

            futures = [
                client.submit(_encode_chunk, items[s : s + size], s, task, pure=False)
                for s in starts
            ]
            try:
                for future in as_completed(futures):
                    part = future.result()
                    _merge(summary, part)
                    if bar is not None:
                        bar.update(part["images"])
            finally:
                client.cancel([f for f in futures if not f.done()])
    finally:
        if bar is not None:
            bar.close()
    summary["failures"].sort(key=lambda f: f[0])
    summary["seconds"] = time.perf_counter() - t0
    return summary


# --------------------------------------------------------------------------- predict


# The text Python gives an array, a tensor, an image or bytes, as Dask's
# "dataframe.convert-string" option (on by default) makes of an object column.
_REPR = re.compile(r"array\(|tensor\(|<PIL\.|<[\w.]+ object at 0x|b['\"]")
_NUMBERS = re.compile(r"[\[\]\s\d.,eE+-]+")  # a small array's text: "[0 1 2]"


def _is_repr(text: str) -> bool:
    if text.startswith("["):  # a numpy array's: "[[[0 0 0]\n  [0 0 0]..." (not "[2020] a.jpg")
        return text.rstrip().endswith("]") and ("\n" in text or bool(_NUMBERS.fullmatch(text)))
    return bool(_REPR.match(text))


_CONVERTED = (
    "Dask turned an object column of images into text (its 'dataframe.convert-string' "
    "option, on by default, converts the column when the collection is made). Make the "
    "collection under dask.config.set({'dataframe.convert-string': False}) so arrays and "
    "PIL images survive, or pass file paths"
)


def _check_not_converted(part, ranker) -> None:
    """Refuse a string-typed image column that holds the text of arrays or images.

    Its rows are not paths: read as paths, every one would be unreadable (all NaN
    with ``on_error="nan"``), so this is an error whatever ``on_error`` says.
    """
    if isinstance(part, pd.DataFrame):
        column = ranker.image_column
        if column not in part.columns:
            return  # CLIPRanker.predict names the missing column
        values = part[column]
    else:
        values = part
    if isinstance(values, pd.Series) and values.dtype == object:
        return  # objects are kept as they are: arrays stay arrays
    for label, value in values.items():
        if isinstance(value, str) and _is_repr(value) and not os.path.exists(value):
            raise ValueError(
                f"images: row {shown(label)} of the image column is the text of an array or "
                f"image, not a path ({shown(value, 40)}): {_CONVERTED}"
            )


def _predict_part(part, ranker, on_error: str) -> pd.Series:
    """One partition's predictions, indexed like the partition."""
    if len(part) == 0:
        return pd.Series([], index=part.index, dtype="float64", name="prediction")
    _check_not_converted(part, ranker)
    X = part if isinstance(part, pd.DataFrame) else part.tolist()
    # CLIPRanker.predict leaves the ranker untouched: worker threads share it freely.
    values = ranker.predict(X, on_error=on_error)
    return pd.Series(values, index=part.index, dtype="float64", name="prediction")


def _is_dask_collection(obj) -> bool:
    try:
        import dask.dataframe as dd
    except ImportError:
        return False
    return isinstance(obj, (dd.Series, dd.DataFrame))


def predict(
    ranker,
    images,
    client=None,
    partition_size: int | None = None,
    *,
    on_error: str = "raise",
):
    """``ranker.predict`` over a pandas or Dask collection, on a Dask cluster or here.

    Parameters
    ----------
    ranker : fitted CLIPRanker
        Shipped to the workers once, not once per partition. Its ``device``
        is resolved on each worker and, with ``cache="disk"``, its
        ``cache_dir`` must be storage the workers share.
    images : list, pandas Series or DataFrame, or Dask Series or DataFrame
        What ``ranker.predict`` accepts (a DataFrame with the ranker's
        ``image_column`` and optional ``instruction_column``). On a cluster,
        file paths that every worker can open.
    client : distributed.Client, default=None
        For in-memory inputs: None predicts in this process, a client splits
        the rows into tasks of ``partition_size`` (the ranker scattered to
        every worker up front). For Dask inputs the ranker is one shared task
        of the graph, which Dask recomputes if a worker holding it dies; the
        result stays lazy and is computed wherever Dask computes it (the
        client is not needed).
    partition_size : int, default=None
        Rows per task for in-memory inputs with a client (None: 1024), rounded
        up to a multiple of ``ranker.batch_size``. Dask inputs keep their own
        partitions (repartition them first to change that); passing a size
        with one raises ``ValueError``.
    on_error : {"raise", "nan"}, default="raise"
        As in ``CLIPRanker.predict``, per partition: "nan" gives unreadable
        images NaN instead of failing the whole job.

    Raises
    ------
    ValueError
        When the image column is text that holds the printed form of arrays
        or PIL images rather than paths, whatever ``on_error`` says: Dask's
        ``"dataframe.convert-string"`` option (on by default) turns an object
        column into strings when the collection is made. Make it under
        ``dask.config.set({"dataframe.convert-string": False})`` to keep
        arrays and images as they are.

    Returns
    -------
    pandas.Series or dask.dataframe.Series
        float64 predictions named ``"prediction"``, with the index of
        ``images`` (a RangeIndex for a list); lazy for Dask inputs.

    Notes
    -----
    ``ranker.predict`` encodes and scores ``ranker.batch_size`` rows at a time,
    and which rows share a batch moves its results in the last float bits
    (about 1e-7 relative). In-memory inputs are cut at whole batches, so the
    result equals one ``ranker.predict(images)`` call bit for bit (one
    instruction); a Dask input does too when every partition's length is a
    multiple of ``ranker.batch_size``, and otherwise agrees to that rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from skrank import CLIPRanker
    >>> from skrank.parallel import predict
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 25)]
    >>> ranker = CLIPRanker("Sort by brightness.", backbone="skrank-tiny", max_epochs=1,
    ...                     random_state=0).fit(images, np.arange(10.0))
    >>> scores = predict(ranker, images)
    >>> bool((scores.to_numpy() == ranker.predict(images)).all())
    True
    """
    check_is_fitted(ranker, "adapter_")
    check_on_error(on_error)
    if _is_dask_collection(images):
        if partition_size is not None:
            raise ValueError(
                f"partition_size={partition_size!r} applies to in-memory inputs; a Dask "
                "collection keeps its partitions: repartition it first, e.g. "
                "images.repartition(npartitions=...)"
            )
        # One task of the graph, not scattered: a worker lost mid-job loses no data
        # that Dask cannot recompute (scattered data it can only forget).
        return images.map_partitions(
            _predict_part,
            _ship(ranker, None),
            on_error,
            meta=pd.Series([], dtype="float64", name="prediction"),
        )
    if partition_size is not None and (not isinstance(partition_size, int) or partition_size < 1):
        raise ValueError(
            f"partition_size={partition_size!r} is not valid; expected None or an int >= 1"
        )
    if isinstance(images, (pd.Series, pd.DataFrame)):
        frame = images
    else:
        frame = pd.Series(as_image_list(images), dtype=object)
    if client is None or len(frame) == 0:
        return _predict_part(frame, ranker, on_error)
    # Whole encoding batches per task: CLIPRanker.predict's last float bits depend on
    # which rows share a batch, so aligned tasks reproduce a single call bit for bit.
    batch = int(ranker.batch_size)
    size = math.ceil((partition_size or _DEFAULT_PARTITION) / batch) * batch
    parts = [frame.iloc[s : s + size] for s in range(0, len(frame), size)]
    handle = _ship(ranker, client)
    futures = client.map(_predict_part, parts, ranker=handle, on_error=on_error, pure=False)
    return pd.concat(client.gather(futures))


def _ship(ranker, client):
    """The ranker as one object in the task graph (scattered to every worker with a client)."""
    if client is not None:
        return client.scatter(ranker, broadcast=True, hash=False)
    import dask

    # Named, so Dask does not hash (pickle) the whole adapter to make a key.
    return dask.delayed(ranker, name=f"skrank-ranker-{uuid.uuid4().hex}", traverse=False)
