"""The shape of the package (issue 17), checked: imports only go down the floors, no import
circle, no module much over 700 lines, no function of the engine's stages over 60.

The floors, lowest first (a module may import its own floor and those below):

0. ``_exceptions``
1. pure policy and values: ``_urlparse``, ``_urls``, ``_session``, ``_extract``, ``_records``,
   ``_frontier``, ``_robots``, ``_sitemaps``, ``_warc``, ``_stats``, ``_options`` (what
   each setting means), ``_graph`` (the link graph's values)
2. ``_spider`` (the spider contract)
3. ``_settings``
4. ``_retry``, ``_export``
5. the built-in ``spiders``, and the floors the crawl stands on: ``_http``, ``_store``,
   ``_browser``
6. ``_crawl`` (the engine and its stages)
7. faces: ``_registry``, ``_progress``, ``_report``, ``_worker``, ``testing``, ``_demo``
8. ``_cli`` (and its modules), the package itself, ``__main__``

Inside :mod:`trio_crawler._http` the layers go downward too: fetcher -> transport ->
connections -> http11 / backend -> guard / dns / framing -> hosts (the hosts file, read once).

An import under ``if TYPE_CHECKING:`` is for annotations only (a pure module may name
``Settings`` in a signature): it is not an arrow of the graph.
"""

from __future__ import annotations

import ast
import collections
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "trio_crawler"

FLOORS: dict[str, int] = {
    "_exceptions": 0,
    **dict.fromkeys(
        (
            "_urlparse",
            "_urls",
            "_session",
            "_extract",
            "_records",
            "_frontier",
            "_robots",
            "_sitemaps",
        ),
        1,
    ),
    **dict.fromkeys(("_warc", "_stats", "_options", "_graph"), 1),
    "_spider": 2,
    "_settings": 3,
    **dict.fromkeys(("_retry", "_export"), 4),
    **dict.fromkeys(("spiders", "_http", "_store", "_browser"), 5),
    "_crawl": 6,
    **dict.fromkeys(("_registry", "_progress", "_report", "_worker", "testing", "_demo"), 7),
    **dict.fromkeys(("_cli", "__init__", "__main__"), 8),
}

#: Inside _http: what each module may import (lower layers only).
HTTP_LAYERS: dict[str, int] = {
    "hosts": 0,
    "guard": 1,
    "dns": 1,
    "decode": 1,
    "tls": 1,
    "backend": 2,
    "framing": 1,
    "http11": 2,
    "proxy": 3,
    "connections": 3,
    "errors": 3,
    "transport": 4,
    "fetcher": 5,
    "__init__": 6,
}

MAX_MODULE_LINES = 730  # "about 700"
MAX_STAGE_FUNCTION_LINES = 60


def _modules() -> dict[str, pathlib.Path]:
    """Dotted names (``_crawl.engine``, ``_cli``) of every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _top(name: str) -> str:
    top = name.split(".")[0]
    return "_cli" if top.startswith("_cli") else top


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    return [node for node in ast.walk(tree) if id(node) not in typing_only]


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The package modules ``name`` imports at run time (relative or absolute)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if path.name == "__init__.py" and name == "__init__":
        package = []
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            stem = [*base, *(node.module.split(".") if node.module else [])]
        elif node.module and node.module.startswith("trio_crawler"):
            stem = node.module.split(".")[1:]
        else:
            continue
        for alias in node.names:
            for candidate in (".".join([*stem, alias.name]), ".".join(stem)):
                while candidate and candidate not in MODULES:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    found.add(candidate)
                    break
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_floor() -> None:
    unknown = sorted({_top(name) for name in MODULES} - set(FLOORS))
    assert not unknown, f"add these to FLOORS (and to the docstring): {unknown}"


def test_imports_only_go_down() -> None:
    upward = [
        f"{a} -> {b}"
        for a, targets in GRAPH.items()
        for b in targets
        if FLOORS[_top(a)] < FLOORS[_top(b)]
    ]
    assert not upward, upward


def test_http_layers_go_down() -> None:
    upward = []
    for a, targets in GRAPH.items():
        if not a.startswith("_http"):
            continue
        mine = HTTP_LAYERS[a.partition(".")[2] or "__init__"]
        for b in targets:
            if b.startswith("_http.") and HTTP_LAYERS[b.partition(".")[2]] >= mine:
                upward.append(f"{a} -> {b}")
    assert not upward, upward


def test_no_import_circle() -> None:
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [])
    assert not circles, circles


def test_no_private_name_crosses_modules() -> None:
    """``from ._x import _private`` across modules: a name another module needs is public."""
    crossing = collections.defaultdict(list)
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level or "trio_crawler" in str(node.module)
            ):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and not _is_module(name, node, alias.name):
                        crossing[name].append(alias.name)
    assert not crossing, dict(crossing)


def _is_module(importer: str, node: ast.ImportFrom, alias: str) -> bool:
    """``from . import _extract``: a private module, not a private name."""
    if node.module is None:
        return True
    return any(m.endswith(f"{node.module.rpartition('.')[2]}.{alias}") for m in MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines"


def test_stage_functions_stay_short() -> None:
    long = []
    for name, path in MODULES.items():
        if not name.startswith("_crawl"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_STAGE_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, long
