"""The package's layering: no import circles among the modules of ``simulate/`` or ``restore/``
(lazy imports inside functions count too), and the file module is a leaf."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(pkg: str) -> dict[str, set[str]]:
    """Module → the sibling modules it imports (anywhere in its source)."""
    mods = {p.stem: p for p in (ROOT / pkg).glob("*.py")}
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.level == 0 and (node.module or "").startswith(pkg + "."):
                deps.add(node.module.split(".")[1])
        graph[name] = {d for d in deps if d in mods and d not in (name, "__init__")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("pkg", ["simulate", "restore"])
def test_no_import_circles(pkg):
    assert _cycles(_imports(pkg)) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_file_module_is_a_leaf():
    assert _imports("simulate")["tiff"] <= {"errors"}
    assert _imports("simulate")["errors"] == set()
