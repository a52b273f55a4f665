"""The house rules that hold by construction, read from the source: small rooms and imports that point one way.

Every module of the four packages is parsed (nothing is imported), so a new module is checked with no test
edit. An import inside a function or under ``if TYPE_CHECKING:`` counts like any other: a circle a lazy import
hides is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "results", "h2ot_core")
#: the most lines a module may have (split a room before it grows past this)
MAX_LINES = 400
#: which package may import which (``orchestrator -> (h2ot_core, results)``, ``results -> h2ot_core``)
ALLOWED = {"orchestrator": {"orchestrator", "results", "h2ot_core"}, "results": {"results", "h2ot_core"},
           "h2ot_core": {"h2ot_core"}}
#: third-party packages h2ot_core never imports (it stands alone as a library)
NOT_IN_CORE = ("ray", "mlflow", "sqlalchemy", "typer", "optuna", "alembic", "rich")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(path: Path) -> set[str]:
    """Every dotted name ``path`` imports, anywhere in the file (absolute imports; the project uses no others)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _project_module(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_project_module(n) for n in _imported(path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_lazy_or_not():
    assert _cycles(_graph()) == []


def test_modules_are_small_rooms():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}, "split these modules by responsibility"


def test_imports_point_one_way():
    wrong = {}
    for module, path in MODULES.items():
        package = module.partition(".")[0]
        for name in _imported(path):
            top = name.partition(".")[0]
            if (top in PACKAGES and top not in ALLOWED[package]) or (package == "h2ot_core" and top in NOT_IN_CORE):
                wrong.setdefault(module, []).append(name)
    assert wrong == {}
