"""Every public name documented in the API reference has a docstring with an example."""

import importlib
import inspect
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


# --------------------------------------------------------------- the estimators' numpydoc

ESTIMATORS = ["CLIPRanker", "CLIPEmbedder"]
SECTION = re.compile(r"^(\w[\w ]*)\n-+$", re.MULTILINE)


def sections(doc: str) -> dict:
    """A numpydoc docstring's sections by title (``"Parameters"``: its text)."""
    doc = inspect.cleandoc(doc)
    found = list(SECTION.finditer(doc))
    return {
        m.group(1): doc[m.end() : found[i + 1].start() if i + 1 < len(found) else len(doc)]
        for i, m in enumerate(found)
    }


def entries(section: str) -> list[tuple[str, str, str]]:
    """``(name, type, description)`` of each entry: a line ``name : type`` at the
    section's indentation, then its indented description."""
    out = []
    for line in section.splitlines():
        if line and not line[0].isspace():
            name, _, kind = line.partition(" : ")
            out.append([name, kind, ""])
        elif out and line.strip():
            out[-1][2] += line.strip() + " "
    return [tuple(entry) for entry in out]


def spelled(value) -> str:
    """A default as the docstrings write it: strings in double quotes, the rest as repr."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_constructor_parameter_has_its_own_entry_with_its_default(name):
    import skrank

    cls = getattr(skrank, name)
    signature = inspect.signature(cls.__init__).parameters
    documented = entries(sections(cls.__doc__)["Parameters"])
    names = [entry[0] for entry in documented]
    merged = [n for n in names if "," in n]
    assert not merged, f"{name}: entries that document several parameters: {merged}"
    assert len(names) == len(set(names)), f"{name}: a parameter documented twice"
    assert names == [p for p in signature if p != "self"], f"{name}: not the signature's"
    for parameter, kind, description in documented:
        default = spelled(signature[parameter].default)
        assert kind.endswith(f"default={default}"), f"{name}.{parameter}: {kind!r}, not {default}"
        assert description.strip(), f"{name}.{parameter} has no description"


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_attribute_has_its_own_entry(name):
    import skrank

    documented = entries(sections(getattr(skrank, name).__doc__)["Attributes"])
    for attribute, kind, description in documented:
        assert "," not in attribute and attribute.endswith("_"), attribute
        assert kind and description.strip(), f"{name}.{attribute} is not described"


def test_the_rankers_docstring_has_sklearns_sections():
    from skrank import CLIPRanker

    found = list(sections(CLIPRanker.__doc__))
    expected = ["Parameters", "Attributes", "See Also", "Notes", "References", "Examples"]
    assert found == expected
    assert "2412.06760" in sections(CLIPRanker.__doc__)["References"]


@pytest.mark.parametrize("method", ["fit", "predict", "transform", "score", "compare"])
def test_the_rankers_methods_document_their_parameters_and_returns(method):
    from skrank import CLIPRanker

    function = getattr(CLIPRanker, method)
    found = sections(function.__doc__)
    assert "Parameters" in found and "Returns" in found, method
    documented = [entry[0] for entry in entries(found["Parameters"])]
    expected = [p for p in inspect.signature(function).parameters if p != "self"]
    assert documented == expected, method


@pytest.mark.parametrize(
    "name", ["loss_curve_", "validation_scores_", "best_validation_score_", "probe_weight_"]
)
def test_the_rankers_fitted_properties_document_what_they_return(name):
    from skrank import CLIPRanker

    assert "Returns" in sections(getattr(CLIPRanker, name).__doc__), name


# --------------------------------------------------------------- what the API pages show

DOCS = API.parent
RANKER_METHODS = ["fit", "predict", "transform", "score", "compare"]


def test_the_api_reference_lists_every_public_metric_and_scorer():
    import skrank.metrics

    text = API.read_text()
    listed = {name for mod, name in public_names() if mod == "skrank.metrics"}
    listed |= set(re.findall(r"^\.\. py:data:: (\w+)$", text, re.MULTILINE))
    missing = set(skrank.metrics.__all__) - listed
    assert not missing, f"skrank.metrics names missing from docs/api.rst: {sorted(missing)}"


def _class_page(cls) -> str:
    """The page source autosummary writes for ``cls`` from docs/_templates (no Sphinx run).

    ``methods`` and ``inherited_members`` as autosummary passes them to the template:
    the public methods (and ``__init__``), and those the class does not define itself.
    """
    jinja2 = pytest.importorskip("jinja2")
    public = [n for n in dir(cls) if not n.startswith("_") and inspect.isroutine(getattr(cls, n))]
    names = ["__init__", *public]
    namespace = {
        "objname": cls.__name__,
        "name": cls.__name__,
        "module": "skrank",
        "methods": names,
        "inherited_members": [n for n in names if n not in vars(cls)],
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(DOCS / "_templates"))
    env.filters["escape"] = lambda text: text
    env.filters["underline"] = lambda text, line="=": f"{text}\n{line * len(text)}"
    return env.get_template("autosummary/class.rst").render(**namespace)


def test_sphinx_uses_the_class_template():
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r'^templates_path = \["_templates"\]$', conf, re.MULTILINE)
    assert re.search(r'^    "_templates",$', conf, re.MULTILINE), "not excluded as a source"


@pytest.mark.parametrize(
    ("name", "methods"), [("CLIPRanker", RANKER_METHODS), ("CLIPEmbedder", ["fit", "transform"])]
)
def test_a_class_page_documents_each_method_it_defines(name, methods):
    import skrank

    page = _class_page(getattr(skrank, name))
    documented = re.findall(r"^   \.\. automethod:: (\w+)$", page, re.MULTILINE)
    assert set(methods) <= set(documented), page
    tabled = re.findall(rf"^      ~{name}\.(\w+)$", page, re.MULTILINE)
    assert tabled == documented, "the table of methods and the methods documented differ"
    # scikit-learn's own (get_params, set_params, set_*_request) are named, not documented:
    # their docstrings link to scikit-learn's pages.
    assert "get_params" not in documented and "``get_params``" in page
    assert not [n for n in documented if n.endswith("_request")], documented
    assert "__init__" not in documented


# --------------------------------------------------------------- scorer names in searches

ROOT = Path(__file__).parents[2]
# A string given to scoring= (alone, or in a list or tuple of them): what scikit-learn's
# searches look up among scikit-learn's own scorer names only.
SCORING_STRINGS = re.compile(r"""scoring\s*=\s*[\[(]?\s*((?:["'][^"'\n]*["']\s*,?\s*)+)""")
# What takes scikit-learn's scoring= (a scorer name it knows, or a scorer), shortly before.
SEARCH = re.compile(
    r"SearchCV|cross_val|cross_validate|learning_curve|validation_curve|permutation_importance"
    r"|check_scoring"
)


def skrank_only_names(text: str) -> list:
    """The scorer names in ``scoring=`` strings of ``text`` that only skrank's
    ``get_scorer`` knows."""
    from sklearn.metrics import get_scorer_names

    from skrank.metrics._scorers import _NDCG_AT, _SCORERS

    sklearn_names = set(get_scorer_names())
    found = []
    for match in SCORING_STRINGS.finditer(text):
        if not SEARCH.search(text[max(0, match.start() - 300) : match.start()]):
            continue  # not a search's: CLIPRanker's own scoring (early stopping) takes these
        for name in re.findall(r"""["']([^"'\n]*)["']""", match.group(1)):
            skrank_name = name in _SCORERS or _NDCG_AT.fullmatch(name)
            if skrank_name and name not in sklearn_names:
                found.append(name)
    return found


def test_the_scan_finds_skrank_names_given_to_scoring_as_strings():
    assert skrank_only_names('GridSearchCV(m, g, scoring="spearman")') == ["spearman"]
    assert skrank_only_names("cross_val_score(m, X, y, scoring='ndcg@10')") == ["ndcg@10"]
    assert skrank_only_names('cross_validate(m, X, y, scoring=["kendall", "r2"])') == ["kendall"]
    assert skrank_only_names('scoring="neg_mean_absolute_error"') == []  # scikit-learn's
    assert skrank_only_names('scoring=get_scorer("spearman")') == []
    assert skrank_only_names("scoring=spearman_scorer") == []
    # CLIPRanker's own scoring (early stopping's score) takes skrank's names.
    assert skrank_only_names('CLIPRanker(early_stopping=True, scoring="ndcg@10")') == []


def test_skrank_names_given_to_scoring_as_strings_fail_in_sklearn_searches():
    # Why the docs must not show them: scikit-learn's searches do not know skrank's names.
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    from skrank.metrics import get_scorer

    X, y = [[0], [1], [2], [3], [4], [5]], [0, 2, 1, 3, 5, 4]
    with pytest.raises(ValueError, match="spearman"):
        cross_val_score(LinearRegression(), X, y, cv=2, scoring="spearman")
    scores = cross_val_score(LinearRegression(), X, y, cv=2, scoring=get_scorer("spearman"))
    assert len(scores) == 2


# A scorer name shown alone as Markdown code (`"ndcg@10"`), which reads as a value to
# pass as scoring=; the docs show it as get_scorer("ndcg@10") instead.
NAME_AS_CODE = re.compile(r"""`["']([^"'`\n]+)["']`""")


def test_the_markdown_docs_show_skrank_scorer_names_only_through_get_scorer():
    from sklearn.metrics import get_scorer_names

    from skrank.metrics._scorers import _NDCG_AT, _SCORERS

    # The changelog records what each release said, in its words.
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pages = [page for page in pages if page.name != "changelog.md"]
    found = {}
    for page in pages:
        names = [
            name
            for name in NAME_AS_CODE.findall(page.read_text(encoding="utf-8"))
            if (name in _SCORERS or _NDCG_AT.fullmatch(name))
            and name not in set(get_scorer_names())
        ]
        if names:
            found[page.name] = names
    assert not found, f"show these as get_scorer(name), which a search accepts: {found}"


def test_docs_and_docstrings_never_give_scoring_a_name_only_skrank_knows():
    files = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "docs").glob("*.rst")),
        *sorted((ROOT / "docs" / "examples").glob("*.py")),
        *sorted((ROOT / "skrank").rglob("*.py")),  # docstrings and messages
    ]
    assert len(files) > 50
    found = {
        str(path.relative_to(ROOT)): names
        for path in files
        if (names := skrank_only_names(path.read_text(encoding="utf-8")))
    }
    assert not found, (
        "scikit-learn's searches refuse these names: pass get_scorer(name) or the "
        f"scorer object (spearman_scorer, ...) instead: {found}"
    )
