"""Fixtures of the persistence tests."""

import pytest


@pytest.fixture(scope="module")
def saved(tiny_fitted, tmp_path_factory):
    """``tiny_fitted`` saved by ``skrank.save``: the path of the file."""
    from skrank import save

    path = tmp_path_factory.mktemp("saved") / "model.skrank"
    save(tiny_fitted, path)
    return path
