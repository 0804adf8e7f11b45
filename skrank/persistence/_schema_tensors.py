"""The tensors a checked adapter config implies, and the checks of a file's tensors.

:func:`expected_tensors` builds the adapter on the ``meta`` device (no memory)
to know the names, shapes and dtype a file must hold; the loader compares the
safetensors header with that before reading a tensor byte, then checks each
tensor's values with :func:`check_values`. Part of the schema of
:mod:`skrank.persistence._schema`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from skrank._model.adapter import AdapterConfig, RankingAdapter
from skrank.persistence._schema import MAX_ABS_WEIGHT, MAX_TENSOR_BYTES
from skrank.persistence._schema_json import SchemaError, _shown

__all__ = [
    "check_tensor_names",
    "check_tensor_table",
    "check_values",
    "expected_tensors",
    "tensor_table",
]

_SAFETENSORS_DTYPES = {torch.float32: "F32"}


def expected_tensors(config: AdapterConfig) -> tuple[RankingAdapter, dict, int]:
    """The adapter ``config`` describes, built on the ``meta`` device, and its tensors.

    The config's bounds were checked, so building it costs no memory and little
    time; the adapter refuses configs it cannot build (``n_heads`` must divide
    ``d_model``, a known ``score_pooling``).

    Returns
    -------
    adapter : RankingAdapter
        On the ``meta`` device: ``load_state_dict(..., assign=True)`` fills it.
    table : dict
        ``{name: (shape, dtype name)}`` of its tensors.
    nbytes : int
        Their total size, at most :data:`MAX_TENSOR_BYTES`.
    """
    try:
        with torch.device("meta"):
            adapter = RankingAdapter(config)
    except ValueError as exc:
        raise SchemaError("adapter_config", str(exc)) from None
    table = tensor_table(adapter.state_dict())
    nbytes = sum(math.prod(t.shape) * t.element_size() for t in adapter.state_dict().values())
    if nbytes > MAX_TENSOR_BYTES:
        raise SchemaError("adapter_config", f"asks for {nbytes} bytes of weights (> 4 GiB)")
    return adapter, table, nbytes


def tensor_table(tensors: Mapping) -> dict:
    """``{name: (shape, dtype name)}``, dtypes named as in a safetensors header."""
    return {
        name: (tuple(t.shape), _SAFETENSORS_DTYPES.get(t.dtype, str(t.dtype)))
        for name, t in tensors.items()
    }


def check_tensor_names(found, expected: dict) -> None:
    """The file's tensor names are those of the adapter the config describes."""
    missing = sorted(set(expected) - set(found))
    if missing:
        raise SchemaError(f"tensor {missing[0]!r}", "is missing")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise SchemaError(f"tensor {_shown(extra[0])}", "is not a tensor of this adapter")


def check_tensor_table(found: dict, expected: dict) -> None:
    """The file's tensors (``{name: (shape, dtype name)}``) are those the config implies."""
    check_tensor_names(found, expected)
    for name, (shape, dtype) in found.items():
        want_shape, want_dtype = expected[name]
        if tuple(shape) != want_shape or dtype != want_dtype:
            raise SchemaError(
                f"tensor {name!r}",
                f"is {dtype} {list(shape)}; the adapter config implies {want_dtype} "
                f"{list(want_shape)}",
            )


# Tensors whose values have a meaning narrower than any weight's: (name ends with,
# lowest, lowest allowed itself, highest, what the range means).
_RANGES = (
    ("probe.scale", 0.0, False, MAX_ABS_WEIGHT, "a spread the probe divides by"),
    ("probe.gate", 0.0, True, 1.0, "the probe's weight in the blend"),
)


def check_values(name: str, tensor: torch.Tensor) -> None:
    """Finite, within :data:`MAX_ABS_WEIGHT` and, for the probe's spread and gate,
    within their meaning (one pass, no temporary copy)."""
    if tensor.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(tensor))  # NaN propagates
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SchemaError(f"tensor {name!r}", "holds NaN or infinite values")
    for suffix, lowest, closed, highest, meaning in _RANGES:
        if name.endswith(suffix) and not (
            (low >= lowest if closed else low > lowest) and high <= highest
        ):
            where = f"{'[' if closed else '('}{lowest:g}, {highest:g}]"
            raise SchemaError(
                f"tensor {name!r}",
                f"holds values in [{low:.3g}, {high:.3g}], not {where} ({meaning})",
            )
    if max(-low, high) > MAX_ABS_WEIGHT:
        raise SchemaError(
            f"tensor {name!r}",
            f"holds {max(-low, high):.3g}, beyond the |weight| <= {MAX_ABS_WEIGHT:g} of any "
            "trained adapter",
        )
