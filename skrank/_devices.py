"""Where the tensors run and in which precision: decided here, once.

:func:`resolve_device` turns the ``device`` parameter into a ``torch.device``;
:func:`use_bf16` is the one rule for mixed precision, and :func:`autocast` the
one context every forward pass (both frozen towers, the adapter in training
and in inference) enters, so ``precision="fp32"`` means fp32 everywhere. On a
CPU, ``"bf16"`` reaches the adapter only: the towers stay fp32 there.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "autocast", "cpu_bf16_native", "resolve_device", "use_bf16"]

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a device.

    ``"auto"`` picks CUDA, else MPS, else the CPU. Asking for an accelerator
    that is not there raises ``ValueError``.

    Examples
    --------
    >>> from skrank._devices import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda'; got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was asked for but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif dev.type == "mps":
        if not _mps_available():
            raise ValueError(f"device={device!r} was asked for but MPS is not available here")
    elif dev.type != "cpu":
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX),
    as oneDNN reports it: there bf16 autocast is faster than fp32, elsewhere slower."""
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def use_bf16(device: torch.device, precision: str = "auto", towers: bool = False) -> bool:
    """Whether forward passes on ``device`` run under bf16 autocast: the adapter's, or
    the frozen towers' (``towers=True``).

    ``"auto"`` and ``"bf16"`` mean bf16 on CUDA; ``"fp32"`` never. On a CPU,
    ``"bf16"`` means bf16 for the adapter where the CPU computes it natively
    (:func:`cpu_bf16_native`; ``CLIPRanker`` refuses it on other CPUs) and fp32
    for the towers: a fit on tokens the towers computed in bf16 ranked held-out
    images worse (0.893 within photo against fp32's 0.994, ``docs/model.md``,
    "Speed of a training step"), while they run once per image and the adapter's
    steps are the cost bf16 cuts. ``"auto"`` means fp32 on a CPU. On MPS
    everything is fp32 (``"bf16"`` is refused).

    Examples
    --------
    >>> import torch
    >>> from skrank._devices import use_bf16
    >>> use_bf16(torch.device("cuda"), "auto"), use_bf16(torch.device("cuda"), "fp32")
    (True, False)
    >>> use_bf16(torch.device("cpu"), "auto"), use_bf16(torch.device("cpu"), "bf16", towers=True)
    (False, False)
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; expected one of {PRECISIONS}")
    kind = torch.device(device).type
    if precision == "fp32" or kind not in ("cuda", "cpu"):
        return False
    if kind == "cuda":
        return True
    return precision == "bf16" and not towers and cpu_bf16_native()


def autocast(device: torch.device, precision: str = "auto", towers: bool = False):
    """The autocast context of a forward pass on ``device`` (a no-op in fp32): of the
    adapter, or of the frozen towers (``towers=True``); :func:`use_bf16` decides."""
    if not use_bf16(device, precision, towers):
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
