"""Which containers of images skrank accepts, and what it says about the others.

:func:`as_image_list` is the one place that turns the ``X`` of ``fit``,
``predict`` and the helpers into a list of images (without decoding any), so
each way of passing something that is not a sequence of images (one image, a
generator, a set, a dict, a tensor, an array of the wrong layout) gets one
message, naming the problem, wherever it is passed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MappingView, Sequence, Set

import numpy as np
import pandas as pd
import torch
from PIL import Image

from skrank._quote import shown

__all__ = ["as_image_list"]


def as_image_list(images) -> list:
    """Normalise the container of images into a Python list (no decoding).

    Parameters
    ----------
    images : sequence, pandas Series or Index, or ndarray
        A list, tuple or other sequence of images; a Series or Index (its
        values); a 4-D array (N, H, W, C), a 1-D array of paths or objects, or an (N, 1)
        array of them (one column, as a ``ColumnTransformer`` gives).

    Returns
    -------
    list
        One item per image, in order.

    Raises
    ------
    TypeError
        For a single image (path, ``bytes``, PIL image), a generator or other
        one-shot iterator, a set (no order to match predictions to), a dict or
        one of its views, a torch tensor, a DataFrame, or another non-sequence.
        Generators are refused, not read into a list: like scikit-learn's
        estimators, which refuse them for ``X``, skrank counts the samples and
        may read them more than once; ``list(X)`` makes that choice explicit.
    ValueError
        For an array that is one image (2-D, 3-D), channels-first, or of
        another shape.
    """
    if isinstance(images, pd.DataFrame):
        raise TypeError("a DataFrame must be handled by the caller (select its image column)")
    if isinstance(images, (pd.Series, pd.Index)):
        return images.tolist()
    if isinstance(images, np.ndarray):
        return _array_as_list(images)
    problem = _container_problem(images)
    if problem is not None:
        raise TypeError(f"images must be a sequence of images (e.g. a list of paths); {problem}")
    return list(images)


def _container_problem(images) -> str | None:
    """Why ``images`` (not an array or pandas object) is no container of images; None if it is."""
    kind = type(images).__name__
    if isinstance(images, (str, os.PathLike)):
        return f"got a single path {shown(os.fsdecode(images))}: wrap it in a list"
    if isinstance(images, (bytes, bytearray, memoryview)):
        return (
            f"got {kind} ({len(images)} bytes): encoded image bytes are not an input; write "
            "them to a file and pass [path]"
        )
    if isinstance(images, Image.Image):
        return "got a single PIL image: wrap it in a list"
    if isinstance(images, Iterator):
        return (
            f"got a {kind}, which can be read only once (a generator or other iterator). Like "
            "scikit-learn estimators, skrank refuses it, as it needs to count the images and "
            "may read them more than once: pass list(X)"
        )
    if isinstance(images, (Mapping, MappingView)):
        return f"got a {kind}: pass a list of its values, e.g. list(d.values())"
    if isinstance(images, Set):
        return f"got a {kind}, which has no order, so predictions could not be matched to images"
    if isinstance(images, torch.Tensor):
        return (
            f"got a torch tensor of shape {tuple(images.shape)}: pass a numpy array "
            "(N, H, W, C), e.g. tensor.permute(0, 2, 3, 1).cpu().numpy(), or a list of arrays"
        )
    if not isinstance(images, Sequence):
        return f"got an object of type {kind}: pass a list, tuple, 4-D numpy array or pandas Series"
    return None


def _array_as_list(images: np.ndarray) -> list:
    """The images of an array container: its rows, or why it is not one."""
    if images.ndim == 1 and (images.dtype == object or images.dtype.kind in "US"):
        return images.tolist()
    if images.ndim == 2 and (images.dtype == object or images.dtype.kind in "US"):
        # (n, 1): the image column a ColumnTransformer passes through.
        if images.shape[1] == 1:
            return images[:, 0].tolist()
        raise ValueError(
            f"a 2-D array of paths/objects must have one column of images; got shape "
            f"{images.shape}. Select the image column (e.g. X[:, 0]), or pass a DataFrame "
            "with an image column"
        )
    if images.ndim == 4 and images.dtype != object:
        if images.shape[-1] not in (1, 3, 4) and images.shape[1] in (1, 3, 4):
            raise ValueError(
                f"an array of images of shape {images.shape} looks channels-first "
                "(N, C, H, W); skrank expects (N, H, W, C): use X.transpose(0, 2, 3, 1)"
            )
        return list(images)
    if images.ndim in (2, 3) and images.dtype != object:
        raise ValueError(
            f"got one {images.ndim}-D array of shape {images.shape}: that is a single image "
            "(or, 3-D, a stack of grayscale images); pass a list of images, e.g. [array], "
            "or a 4-D array (N, H, W, C)"
        )
    raise ValueError(
        f"an array of images must be 4-D (N, H, W, C) or 1-D of paths/objects; got shape "
        f"{images.shape} and dtype {images.dtype}. To pass one image, use [array]"
    )
