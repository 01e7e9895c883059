"""The imports between imagegen's modules, read from the source: no module imports itself back through
others (a cycle), and every arrow between layers points down. The order is written once, here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Top to bottom; a module may import its own layer and those below. At the bottom, data anything may
# use: the configuration (a leaf; only entry points read the environment), the family table, the limits.
LAYERS = (
    ("imagegen",),  # the wiring: the CLI, the services it starts, the dev-stack launcher
    ("api", "projections", "webhooks"),
    ("streams",),
    ("inference", "storage"),
    ("imagegen.config", "streams.families", "streams.limits"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in {p.split(".")[0] for layer in LAYERS for p in layer}:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project's modules it imports (at the top, in a function or for type checking)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                named = (f"{node.module}.{a.name}" for a in node.names)
                out |= {full if full in modules else node.module for full in named}
        graph[name] = {m for m in out if m in modules and m != name}
    return graph


def _layer(module: str) -> int:
    """The layer of the longest prefix naming it."""
    ranked = [(len(p), i) for i, layer in enumerate(LAYERS) for p in layer if module == p or module.startswith(p + ".")]
    return max(ranked)[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                found.append(sorted([v, *group]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


GRAPH = _imports(_modules())


def test_the_reader_sees_the_imports_it_should() -> None:
    # the reader itself: these arrows exist, so an empty graph cannot pass the tests below
    assert "streams.domain" in GRAPH["streams.app"]
    assert "api.problems" in GRAPH["webhooks.routes"]
    assert "inference.tiny" in GRAPH["inference.models"]  # imported inside a function counts too
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    assert _cycles(GRAPH) == []


def test_every_arrow_between_layers_points_down() -> None:
    upward = {(a, b) for a, bs in GRAPH.items() for b in bs if _layer(b) < _layer(a)}
    assert upward == set(), "imports of a layer above"
