"""Fixtures of the encoding tests: counters of what the frozen image tower computes."""

import pytest


def count_images(monkeypatch, method: str) -> list:
    """Wrap ``Backbone.<method>`` to record how many images each forward pass gets."""
    from skrank._encoding.backbone import Backbone

    counts = []
    original = getattr(Backbone, method)

    def counting(self, pixels, *args, **kwargs):  # precision, passed since the precision fix
        counts.append(len(pixels))
        return original(self, pixels, *args, **kwargs)

    monkeypatch.setattr(Backbone, method, counting)
    return counts


@pytest.fixture
def encodes(monkeypatch):
    """Images the frozen image tower encodes into tokens, one count per forward pass."""
    return count_images(monkeypatch, "image_tokens")


@pytest.fixture
def embeds(monkeypatch):
    """Images the frozen image tower embeds, one count per forward pass."""
    return count_images(monkeypatch, "image_embeddings")
