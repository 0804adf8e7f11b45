"""Fixtures of the estimator tests."""

import pytest


@pytest.fixture(scope="module")
def data(brightness_task):
    """24 training and 8 held-out images of ``brightness_task``, with their targets:
    ``(X, y, X_test, y_test)``.

    test_estimator_checks.py and test_threads_and_bounds.py define a ``data`` of their
    own (a fixture of a module overrides this one)."""
    d = brightness_task
    return d["X_train"][:24], d["y_train"][:24], d["X_test"][:8], d["y_test"][:8]
