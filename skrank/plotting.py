"""Figures for rankings: contact sheets, predicted-vs-true scatter, training curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skrank._encoding.images import as_image_list, load_image

__all__ = ["plot_history", "plot_predictions", "plot_ranking"]


def _figure(**kw):
    """A pyplot-managed figure when the caller uses pyplot (so ``plt.show()`` and
    galleries see it); otherwise a plain Figure, which needs no GUI backend."""
    import sys

    if "matplotlib.pyplot" in sys.modules:
        return sys.modules["matplotlib.pyplot"].figure(**kw)
    from matplotlib.figure import Figure

    return Figure(**kw)


def plot_ranking(images, scores, y_true=None, n: int = 24, ncols: int = 8, thumb: int = 96):
    """Contact sheet of images in predicted order (highest score first).

    Parameters
    ----------
    images : sequence of images (paths, PIL images or arrays)
    scores : array-like of shape (n_images,)
        Predicted scores; the sheet is sorted by them, descending.
    y_true : array-like, default=None
        True targets, written under each thumbnail when given.
    n : int, default=24
        How many images to show: evenly spaced over the ranking when there are more.
    ncols : int, default=8
    thumb : int, default=96
        Thumbnail side in pixels.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skrank.plotting import plot_ranking
    >>> imgs = [np.full((8, 8, 3), v, np.uint8) for v in (10, 200, 90)]
    >>> fig = plot_ranking(imgs, [0.1, 0.9, 0.5], y_true=[1, 3, 2])
    >>> len(fig.axes)
    3
    """
    items = as_image_list(images)
    scores = np.asarray(scores, dtype=float)
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} images but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    if len(order) > n:
        order = order[np.linspace(0, len(order) - 1, n).round().astype(int)]
    ncols = min(ncols, len(order))
    nrows = int(np.ceil(len(order) / ncols))
    fig = _figure(figsize=(1.4 * ncols, 1.6 * nrows), layout="constrained")
    for k, i in enumerate(order):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        img = load_image(items[i]).copy()
        img.thumbnail((thumb, thumb))
        ax.imshow(np.asarray(img))
        label = f"#{rank[i]} s={scores[i]:.2f}"
        if y_true is not None:
            label += f"\ny={np.asarray(y_true)[i]:.3g}"
        ax.set_title(label, fontsize=7)
        ax.set_axis_off()
    return fig


def plot_predictions(y_true, y_pred, groups: Sequence | None = None, ax=None):
    """Predicted against true targets, with Spearman (pooled and within group) in the title.

    Examples
    --------
    >>> from skrank.plotting import plot_predictions
    >>> fig = plot_predictions([1, 2, 3, 4], [1.1, 1.9, 3.2, 3.9])
    >>> fig.axes[0].get_xlabel()
    'true'
    """
    from skrank.metrics import spearman_score

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig = ax.figure if ax is not None else _figure(figsize=(4.5, 4), layout="constrained")
    ax = ax if ax is not None else fig.add_subplot()
    colour = None if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    ax.scatter(y_true, y_pred, c=colour, cmap="tab20", s=14, alpha=0.8)
    lo, hi = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    title = f"Spearman {spearman_score(y_true, y_pred):.3f}"
    if groups is not None:
        title += f" (within group {spearman_score(y_true, y_pred, groups=groups):.3f})"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    return fig


def plot_history(history: Sequence[dict]):
    """Training curves of a fitted ranker's ``history_``: losses and validation score.

    Examples
    --------
    >>> from skrank.plotting import plot_history
    >>> h = [{"epoch": 1, "loss": 1.0, "reg_loss": 0.5, "rank_loss": 0.7, "val_score": None},
    ...      {"epoch": 2, "loss": 0.8, "reg_loss": 0.4, "rank_loss": 0.6, "val_score": None}]
    >>> len(plot_history(h).axes)
    1
    """
    epochs = [h["epoch"] for h in history]
    has_val = any(h.get("val_score") is not None for h in history)
    fig = _figure(figsize=(8 if has_val else 4.5, 3.5), layout="constrained")
    ax = fig.add_subplot(1, 2 if has_val else 1, 1)
    for key in ("loss", "reg_loss", "rank_loss"):
        ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    if has_val:
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(epochs, [h["val_score"] for h in history], color="C3")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation Spearman")
    return fig
