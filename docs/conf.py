"""Sphinx configuration for skrank's documentation (built with -W in CI)."""

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message=".*random.*weights")

import skrank  # noqa: E402

project = "skrank"
author = "the skrank developers"
copyright = "2026, the skrank developers"
release = version = skrank.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = [
    "_build",
    "_templates",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
]
autosummary_generate = True
# A class's page documents its methods through docs/_templates/autosummary/class.rst,
# which names them one by one; autodoc adds no members on its own, and numpydoc adds
# no second table of them.
templates_path = ["_templates"]
autodoc_default_options = {"members": False, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
html_theme = "pydata_sphinx_theme"
html_title = "skrank"
html_theme_options = {"navigation_with_keys": False}
intersphinx_mapping = {}
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}
