"""The package version, in one place: ``pyproject.toml`` reads it, and model files record it.

Also where the documentation lives, in one place: the estimators' notebook repr
(scikit-learn's "?" link) points at their API page under :data:`DOCS_URL`.
"""

__version__ = "0.1.0"

# The HTML documentation built from docs/ (Sphinx). It has no published address
# yet: this is where it is meant to go; change it here when it is published.
DOCS_URL = "https://skrank.readthedocs.io/en/latest/"
# An estimator's API page, as Sphinx's autosummary names it (docs/api.rst's
# ``:toctree: generated/``), in the form of scikit-learn's ``_doc_link_template``:
# ``estimator_module`` is the public module ("skrank"), ``estimator_name`` the class.
API_PAGE = DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"
