"""Every public name documented in the API reference has a docstring with an example."""

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).parents[2] / "docs" / "api.rst"


def public_names():
    module = None
    names = []
    for line in API.read_text().splitlines():
        m = re.match(r"\.\. currentmodule:: (\S+)", line)
        if m:
            module = m.group(1)
        elif re.match(r"^   [A-Za-z_]\w*$", line):
            names.append((module, line.strip()))
    return names


def test_the_api_reference_lists_the_public_names():
    import skrank

    listed = {name for mod, name in public_names() if mod == "skrank"}
    assert set(skrank.__all__) - {"__version__"} <= listed


@pytest.mark.parametrize(("module", "name"), public_names())
def test_docstring_has_an_example(module, name):
    obj = getattr(importlib.import_module(module), name)
    doc = obj.__doc__ or ""
    assert doc.strip(), f"{module}.{name} has no docstring"
    assert "Examples\n" in doc and ">>>" in doc, f"{module}.{name} has no example"
