"""Small helpers shared by the tests."""

import importlib.util
from pathlib import Path

from skrank import CLIPRanker

INSTRUCTION = "Sort the images by brightness."


def tiny_ranker(instruction=INSTRUCTION, **kw):
    """A quick skrank-tiny ranker on the CPU; keyword arguments override the defaults."""
    params = dict(
        backbone="skrank-tiny", lr=1e-3, max_epochs=2, batch_size=16, device="cpu", random_state=0
    )
    params.update(kw)
    return CLIPRanker(instruction, **params)


def benchmark_script(name: str):
    """The module ``benchmarks/<name>.py``, imported from its file (the benchmarks are
    scripts, not a package)."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
