"""Imports run one way: the layers drawn in the README, read from it, checked against the code.

A module may import modules of its own layer or of a lower one, never of a higher one; the pure
core imports neither Flask nor SQLAlchemy. Every module of survey_app sits in exactly one layer,
so a new module has to be placed in the drawing before this test passes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from .helpers import ROOT

PACKAGE = ROOT / "survey_app"
README = (ROOT / "README.md").read_text()
# Third-party packages the pure core never imports: it must run without a web app or a database.
WEB_OR_DATABASE = ("flask", "flask_wtf", "flask_limiter", "werkzeug", "sqlalchemy", "alembic", "psycopg")


def readme_layers() -> list[tuple[str, list[str]]]:
    """(layer, module patterns) from the README's layer drawing, top (highest) to bottom."""
    block = re.search(r"<!-- layers -->\s*```\n(.*?)```", README, re.S)
    assert block, "README.md has no layer drawing (a ``` block after <!-- layers -->)"
    layers = []
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith(("│", "▼", "↓")):
            name, modules = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            layers.append((name, modules.split()))
    return layers


def module_name(path: Path) -> str:
    """survey_app/views/api.py → views/api; survey_app/pipeline/__init__.py → pipeline/__init__."""
    return path.relative_to(PACKAGE).with_suffix("").as_posix()


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(name: str, layers) -> int:
    """The index of the layer a module sits in (0 = the highest)."""
    found = [
        i
        for i, (_, patterns) in enumerate(layers)
        for pattern in patterns
        if name == pattern or (pattern.endswith("/") and name.startswith(pattern))
    ]
    assert len(found) == 1, f"survey_app/{name}.py is in {len(found)} layers of the README drawing; place it in one"
    return found[0]


def imports_of(path: Path, source: str | None = None) -> tuple[set[str], set[str]]:
    """(survey_app modules, top-level third-party packages) a module imports at run time.

    `source` stands in for the file's text. Imports under `if TYPE_CHECKING:` are for
    annotations only and do not count.
    """
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    package = path.relative_to(PACKAGE).parts[:-1]  # ("views",) for survey_app/views/api.py
    own, outside = set(), set()

    def resolve(parts: list[str]) -> str:
        """The module a dotted path inside survey_app names: a .py file or a package's __init__."""
        if PACKAGE.joinpath(*parts).with_suffix(".py").exists():
            return "/".join(parts)
        return "/".join([*parts, "__init__"])

    def visit(node, typing_only=False):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only = True
        if isinstance(node, ast.Import) and not typing_only:
            for alias in node.names:
                parts = alias.name.split(".")
                (own.add(resolve(parts[1:])) if parts[0] == "survey_app" else outside.add(parts[0]))
        elif isinstance(node, ast.ImportFrom) and not typing_only:
            if node.level:
                base = list(package[: len(package) - node.level + 1])
            elif node.module.split(".")[0] == "survey_app":
                base = []
            else:
                outside.add(node.module.split(".")[0])
                return
            module = node.module.split(".") if node.module else []
            if module[:1] == ["survey_app"]:
                module = module[1:]
            for alias in node.names:
                # `from . import storage` and `from .pipeline import charts` name modules themselves.
                sub = [*base, *module, alias.name]
                named = PACKAGE.joinpath(*sub)
                is_module = named.with_suffix(".py").exists() or named.is_dir()
                own.add(resolve(sub) if is_module else resolve([*base, *module]))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree)
    return own, outside


def test_every_module_is_in_one_layer():
    layers = readme_layers()
    for path in modules():
        layer_of(module_name(path), layers)


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_no_module_imports_a_higher_layer(path):
    layers = readme_layers()
    me = layer_of(module_name(path), layers)
    own, _ = imports_of(path)
    for name in own - {module_name(path)}:
        if name.endswith("__init__") and name != "__init__":
            continue  # a package's docstring-only __init__ carries no code to depend on
        theirs = layer_of(name, layers)
        assert theirs >= me, (
            f"survey_app/{module_name(path)}.py ({layers[me][0]}) imports {name} ({layers[theirs][0]}), a higher layer"
        )


def test_the_pure_core_imports_neither_flask_nor_a_database():
    layers = readme_layers()
    core = [p for p in modules() if layer_of(module_name(p), layers) == len(layers) - 1]
    assert any(module_name(p).startswith("pipeline/") for p in core)
    for path in core:
        _, outside = imports_of(path)
        assert not outside & set(WEB_OR_DATABASE), f"survey_app/{module_name(path)}.py imports {outside}"


def test_the_checker_sees_a_violation():
    """The checker is not blind: a pipeline module importing a view, or flask, would be caught."""
    layers = readme_layers()
    charts = PACKAGE / "pipeline" / "charts.py"
    own, outside = imports_of(charts, charts.read_text() + "\nfrom ..views import results\nimport flask\n")
    assert "views/results" in own and "flask" in outside
    assert layer_of("views/results", layers) < layer_of("pipeline/charts", layers)
    assert imports_of(PACKAGE / "cli.py")[0] >= {"__init__", "storage", "community/voting", "server"}


# What only a request has: flask's request and session, and werkzeug's request objects.
REQUEST_NAMES = {"request", "session"}


def _request_imports(source: str) -> set[str]:
    """flask.request / flask.session (or werkzeug's request module) as a module imports them."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "flask":
            found |= {alias.name for alias in node.names} & REQUEST_NAMES
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("werkzeug.wrappers"):
            found.add(node.module)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "flask":
            found |= {node.attr} & REQUEST_NAMES
    return found


def _below_the_request_layer(layers) -> list[Path]:
    request = next(i for i, (name, _) in enumerate(layers) if name == "request")
    return [p for p in modules() if layer_of(module_name(p), layers) > request]


def test_nothing_below_the_request_layer_reads_the_request():
    """The domain (orchestration and below) answers the views and the CLI alike: it reads no
    request, no session and no module of the request layer (participants, limits, errors ...).
    The layer order enforces the last; this test says so, and checks the first two."""
    layers = readme_layers()
    names = [name for name, _ in layers]
    assert names.index("web") < names.index("request") < names.index("orchestration")
    request_layer = {module_name(p) for p in modules() if layers[layer_of(module_name(p), layers)][0] == "request"}
    assert {"participants", "errors", "limits"} <= request_layer
    below = _below_the_request_layer(layers)
    domain = {"program", "community/voting", "admin_actions", "submissions", "snapshots"}
    assert domain <= {module_name(p) for p in below}
    for path in below:
        own, _ = imports_of(path)
        assert not own & request_layer, f"survey_app/{module_name(path)}.py imports {own & request_layer}"
        assert not _request_imports(path.read_text()), f"survey_app/{module_name(path)}.py reads the request"


def test_the_request_check_sees_a_violation():
    voting = PACKAGE / "community" / "voting.py"
    assert "participants" in imports_of(voting, voting.read_text() + "\nfrom .. import participants\n")[0]
    assert _request_imports("from flask import current_app, request\n") == {"request"}
    assert _request_imports("import flask\nflask.session.get('x')\n") == {"session"}
    assert not _request_imports("from flask import current_app, g\n")
