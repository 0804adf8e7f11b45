"""Fuzzing ``skrank.load`` with hypothesis over mutated valid files.

Whatever a file holds, ``load`` gives a working ranker (one that predicts
finite values) or one ``ValueError``, in under a second and under 200 MB of
memory. The mutations start from one valid file: bit flips anywhere,
truncations, edits of every metadata field (wrong types, huge and negative
numbers, missing and extra keys, nested garbage), and tensor edits (swaps
between names, dtype and shape changes, NaN and inf, huge values).

A configuration asking for a huge adapter must be refused before anything is
allocated; the tests at the end measure that directly. ``SKRANK_FUZZ_SCALE=20``
runs twenty times as many examples.
"""

import copy
import json
import math
import os
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from skrank import load, save
from skrank.persistence._schema import MAX_ABS_WEIGHT
from tests.helpers import tiny_ranker

pytestmark = pytest.mark.filterwarnings("ignore:.*was saved by skrank:UserWarning")

MAX_SECONDS = 1.0
MAX_GROWTH = 200 * 2**20
STATS = {"examples": 0, "loaded": 0, "refused": 0, "slowest_s": 0.0, "peak_growth_b": 0}
PROBE = [np.full((16, 16, 3), v, np.uint8) for v in (0, 80, 160, 240)]


def fuzz_settings(n):
    """``n`` examples (times $SKRANK_FUZZ_SCALE, for a longer hunt than CI's)."""
    return settings(
        max_examples=n * int(os.environ.get("SKRANK_FUZZ_SCALE", "1")),
        deadline=timedelta(seconds=5),  # load < 1 s is asserted; predict adds a little
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- memory


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


MEASURABLE = os.path.exists("/proc/self/status") and _can_reset_peak()


def measured(call):
    """(result or the ValueError raised, CPU seconds, peak resident-memory growth in bytes).

    CPU time, not wall time: the cores are shared, and another process's burst
    must not fail the test, while any work a hostile file causes here counts.
    Linux only: writing 5 to clear_refs resets the peak (VmHWM) to the current
    resident size, so the peak after the call is what the call itself added,
    torch's allocations included (tracemalloc sees only Python's).
    """
    if MEASURABLE:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status("VmRSS")
    start = time.process_time()
    try:
        result = call()
    except ValueError as exc:
        result = exc
    seconds = time.process_time() - start
    growth = _status("VmHWM") - before if MEASURABLE else 0
    return result, seconds, growth


# --------------------------------------------------------------------------- the base file


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One small valid file (two instructions, a validation score) and its parts."""
    rng = np.random.default_rng(0)
    images = [np.full((16, 16, 3), v, np.uint8) for v in range(0, 256, 16)]
    X = pd.DataFrame({"image": images, "instruction": ["brighter", "darker"] * 8})
    y = np.arange(16.0) + rng.random(16)
    small = dict(n_fusion_layers=1, n_post_layers=1, n_heads=2, n_prompt_tokens=2)
    ranker = tiny_ranker(None, max_epochs=2, batch_size=8, n_relation_tokens=2, **small)
    ranker.set_params(early_stopping=True, validation_fraction=0.25).fit(X, y)
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "base.skrank"
    save(ranker, path)
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    loaded = load(path)
    check_working(loaded)  # builds the backbone once, before anything is timed
    return Base(
        data=path.read_bytes(),
        meta=meta,
        docs={k: json.loads(meta[k]) for k in ("params", "adapter_config", "fitted")},
        tensors=tensors,
        case=folder / "case.skrank",
        identity=(ranker.pretrained, ranker.backbone_info_["weights_identity"]),
    )


class Base(dict):
    """The base file's parts; shown briefly in hypothesis's reports of a failure."""

    def __repr__(self):
        return f"<base file of {len(self['data'])} bytes>"


def check_working(ranker):
    out = ranker.set_params(instruction=ranker.instructions_[0]).predict(PROBE)
    assert out.shape == (len(PROBE),) and np.isfinite(out).all(), out


def check_file(path, base):
    """The property: a ValueError, or a ranker that predicts finite values; fast and small."""
    result, seconds, growth = measured(lambda: load(path))
    STATS["examples"] += 1
    STATS["slowest_s"] = max(STATS["slowest_s"], seconds)
    STATS["peak_growth_b"] = max(STATS["peak_growth_b"], growth)
    assert seconds < MAX_SECONDS, f"load took {seconds:.2f} s of CPU"
    assert growth < MAX_GROWTH, f"load grew memory by {growth / 2**20:.0f} MB"
    if isinstance(result, ValueError):
        STATS["refused"] += 1
        assert str(path) in str(result)  # names the file
        return
    STATS["loaded"] += 1
    try:
        check_working(result)
    except (ValueError, FileNotFoundError):
        # Only a file naming other weights may load and not predict: the backbone is
        # rebuilt on first use, and predict refuses weights that are not the fitted ones.
        assert (result.pretrained, result.backbone_info_["weights_identity"]) != base["identity"]


def write(base, meta=None, tensors=None):
    save_file(base["tensors"] if tensors is None else tensors, str(base["case"]), metadata=meta)
    return base["case"]


# --------------------------------------------------------------------------- raw bytes


@fuzz_settings(60)
@given(data=st.data())
def test_bit_flips_and_truncations(base, data):
    raw = bytearray(base["data"])
    header_end = 8 + int.from_bytes(raw[:8], "little")
    # Half the flips land in the header: a random byte of the file is almost always
    # a weight, and a flipped weight bit is the less interesting case.
    position = st.one_of(st.integers(0, header_end - 1), st.integers(0, len(raw) - 1))
    flips = data.draw(st.lists(st.tuples(position, st.integers(0, 7)), max_size=6))
    for where, bit in flips:
        raw[where] ^= 1 << bit
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    base["case"].write_bytes(bytes(raw))
    check_file(base["case"], base)


# --------------------------------------------------------------------------- metadata

SPECIAL = [
    0,
    -1,
    1,
    2,
    4096,
    100_000,
    2**31,
    2**63,
    2**64,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    1e-320,
    0.5,
    float("nan"),
    float("inf"),
    -float("inf"),
    True,
    False,
    None,
    "",
    " ",
    "x" * 5000,
    "cuda",
    "cpu",
    "disk",
    "memory",
    "mean",
    "/tmp",
    "NaN",
    [],
    {},
    [[[[[[]]]]]],
    {"a": {"b": {"c": {"d": {"e": {}}}}}},
    [0.0],
    [1.0, 1.0, 1.0],
    [64, 64],
]
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(SPECIAL)
)
VALUES = st.recursive(
    LEAVES,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=8,
)


def paths(doc, prefix=()):
    """Every key path in ``doc`` (the first history entry stands for all of them)."""
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc[:1] if prefix else doc)
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, (dict, list)) and value:
            out += paths(value, (*prefix, key))
    return out


def edit(doc, path, action, value, extra_key):
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "set":
        parent[path[-1]] = value
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[extra_key] = value
    else:
        parent.append(value)
    return doc


@fuzz_settings(90)
@given(data=st.data())
def test_metadata_edits(base, data):
    meta = dict(base["meta"])
    name = data.draw(st.sampled_from([*base["docs"], "format", "format_version", "skrank_version"]))
    kind = data.draw(st.sampled_from(["edit", "edit", "edit", "text", "cut", "delete", "extra"]))
    if name in base["docs"] and kind == "edit":
        doc = base["docs"][name]
        path = data.draw(st.sampled_from(paths(doc)))
        action = data.draw(st.sampled_from(["set", "set", "delete", "add"]))
        new = edit(doc, path, action, data.draw(VALUES), data.draw(st.text(max_size=8)))
        meta[name] = json.dumps(new)
    elif kind == "cut":
        meta[name] = meta[name][: data.draw(st.integers(0, len(meta[name])))]
    elif kind == "delete":
        del meta[name]
    elif kind == "extra":
        meta[data.draw(st.text(min_size=1, max_size=8))] = json.dumps(data.draw(VALUES))
    else:
        meta[name] = data.draw(st.text(max_size=40) | VALUES.map(json.dumps))
    check_file(write(base, meta=meta), base)


# --------------------------------------------------------------------------- tensors

DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.uint8]


@fuzz_settings(50)
@given(data=st.data())
def test_tensor_edits(base, data):
    tensors = dict(base["tensors"])
    names = sorted(tensors)
    name = data.draw(st.sampled_from(names))
    t = tensors[name]
    kind = data.draw(
        st.sampled_from(
            ["swap", "dtype", "poison", "scale", "reshape", "slice", "delete", "extra", "rename"]
        )
    )
    if kind == "swap":
        other = data.draw(st.sampled_from(names))
        tensors[name], tensors[other] = tensors[other], t
    elif kind == "dtype":
        tensors[name] = t.to(data.draw(st.sampled_from(DTYPES)))
    elif kind == "poison":
        t = t.clone()
        t.view(-1)[data.draw(st.integers(0, t.numel() - 1))] = data.draw(
            st.sampled_from([math.nan, math.inf, -math.inf, 1e38, -MAX_ABS_WEIGHT * 2])
        )
        tensors[name] = t
    elif kind == "scale":
        tensors[name] = t * data.draw(st.sampled_from([-1.0, 0.0, 10.0, 1e4, 1e30]))
    elif kind == "reshape":
        tensors[name] = t.reshape(-1) if t.dim() > 1 else t.reshape(1, -1)
    elif kind == "slice":
        tensors[name] = t[: max(0, len(t) - 1)].clone()
    elif kind == "delete":
        del tensors[name]
    elif kind == "extra":
        tensors["fusion.9.q.weight"] = torch.zeros(2, 2)
    else:
        tensors["x" + name] = tensors.pop(name)
    check_file(write(base, meta=base["meta"], tensors=tensors), base)


# --------------------------------------------------------------------------- allocation


def config_edit(base, **values):
    meta = dict(base["meta"])
    meta["adapter_config"] = json.dumps({**base["docs"]["adapter_config"], **values})
    return write(base, meta=meta)


@pytest.mark.skipif(not MEASURABLE, reason="needs Linux /proc to measure peak memory")
@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"d_model": 4096}, "tensor"),  # a small file asking for a wide adapter
        ({"n_fusion_layers": 100_000}, "adapter_config.n_fusion_layers"),
        ({"d_model": 10**12}, "adapter_config.d_model"),
        # Within every per-field bound, but 77 GB of weights in all.
        (
            {"d_model": 4096, "n_heads": 8, "n_fusion_layers": 32, "n_post_layers": 32},
            "adapter_config: asks for",
        ),
    ],
)
def test_huge_configs_are_refused_before_allocation(base, values, field):
    path = config_edit(base, **values)
    result, seconds, growth = measured(lambda: load(path))
    assert isinstance(result, ValueError) and field in str(result), result
    assert seconds < MAX_SECONDS
    assert growth < 50 * 2**20, f"{growth / 2**20:.0f} MB"


def test_zzz_fuzz_statistics(base):
    """Runs last in this module: every example above passed; say what they did."""
    if STATS["examples"] == 0:
        pytest.skip("the fuzz tests did not run")
    assert STATS["refused"] > 0 and STATS["loaded"] > 0  # both outcomes were exercised
    print(
        f"\nload fuzz: {STATS['examples']} files, {STATS['loaded']} loaded and predicted, "
        f"{STATS['refused']} refused; slowest load {STATS['slowest_s'] * 1000:.0f} ms; "
        f"peak memory growth {STATS['peak_growth_b'] / 2**20:.1f} MB"
    )
