"""The import rules of docs/ARCHITECTURE.md, checked on the source as it is.

The graph is read with `ast` from the files themselves (nothing is imported, so a broken module
cannot hide an edge, and imports inside functions and `if TYPE_CHECKING:` blocks are seen too):

* a tier package (`town_center`, `hub`, `village_agent`) never imports another tier, and `shared`
  imports no tier — what two tiers share lives in `shared`;
* the domain core (`shared/domain`) imports no database, network, web or logging library, and reads
  no clock (time comes in as an argument);
* no circle of imports between top-level modules (`shared.calendar`, `town_center.handling`, a
  subpackage such as `shared.relay` as one) among the imports that run at import time.

`ast` rather than an import-graph library: the clock rule needs the syntax tree anyway, and the
graph is a few lines over it.
"""
from __future__ import annotations

import ast
import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("town_center", "hub", "village_agent")
PACKAGES = ("shared", *TIERS)

# Libraries that are I/O or process plumbing: the domain core receives their results through ports.
DOMAIN_FORBIDDEN = ("sqlalchemy", "sqlmodel", "alembic", "psycopg", "sqlite3", "grpc", "google.protobuf", "httpx",
                    "requests", "urllib.request", "socket", "fastapi", "starlette", "uvicorn", "logging",
                    "shared.clock")
# Reading the time: `datetime.now()`, `date.today()`, `time.time()` and their kin.
_DATE_READS = {"now", "utcnow", "today"}
_TIME_READS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "localtime",
               "gmtime", "ctime", "asctime"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    at_import_time: bool  # False: inside a function or an `if TYPE_CHECKING:` block

    def __str__(self) -> str:
        when = "" if self.at_import_time else " (inside a function or TYPE_CHECKING)"
        return f"{self.source} → {self.target} (line {self.line}){when}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, eager: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        child_eager = eager
        in_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if in_function or (isinstance(child, ast.If) and _is_type_checking(child.test)):
            child_eager = False
        yield child, child_eager
        yield from _walk(child, child_eager)


def imports_of(module: str, path: Path, known: set[str]) -> list[Edge]:
    """Every import in one file, named as the module it loads (`from a import b` is `a.b` when that
    is a module of the tree, else `a`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    edges: list[Edge] = []
    for node, eager in _walk(tree, True):
        if isinstance(node, ast.Import):
            edges += [Edge(module, alias.name, node.lineno, eager) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                edges.append(Edge(module, sub if sub in known else target, node.lineno, eager))
    return edges


def clock_reads(path: Path) -> list[str]:
    """Calls that read the current time, as `line: call`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [f"{node.lineno}: from time import {a.name}" for a in node.names if a.name in _TIME_READS]
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = ast.unparse(node.func.value)
        last = owner.rsplit(".", 1)[-1]
        if (node.func.attr in _DATE_READS and last in ("datetime", "date")) or (
                node.func.attr in _TIME_READS and owner == "time"):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}()")
    return found


def top_level(module: str) -> str:
    """The node a module counts as in the circle check: `shared.relay.server` is `shared.relay`."""
    return ".".join(module.split(".")[:2])


def circles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if a != b:
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return sorted(found)


def tier_violations(edges: Iterable[Edge]) -> list[str]:
    bad = []
    for e in edges:
        source, target = e.source.split(".")[0], e.target.split(".")[0]
        if target in TIERS and target != source:
            bad.append(str(e))
    return bad


def import_time_circles(edges: Iterable[Edge]) -> list[list[str]]:
    return circles((top_level(e.source), top_level(e.target)) for e in edges
                   if e.at_import_time and e.target.split(".")[0] in PACKAGES)


@functools.cache
def project_edges() -> tuple[Edge, ...]:
    files = source_files(ROOT, PACKAGES)
    known = set(files)
    return tuple(edge for module, path in files.items() for edge in imports_of(module, path, known))


# --- the rules on this repository -----------------------------------------------------------


def test_no_tier_package_imports_another_tier_and_shared_imports_no_tier() -> None:
    edges = project_edges()
    assert len(edges) > 500, "the graph should cover the whole tree"
    assert tier_violations(edges) == []


def test_the_domain_core_imports_no_database_network_web_or_logging_library() -> None:
    domain = [e for e in project_edges() if e.source.startswith("shared.domain")]
    assert domain, "shared/domain should have imports to check"
    bad = [str(e) for e in domain if any(e.target == f or e.target.startswith(f + ".") for f in DOMAIN_FORBIDDEN)]
    assert bad == []


def test_the_domain_core_reads_no_clock() -> None:
    files = sorted((ROOT / "shared" / "domain").rglob("*.py"))
    assert files
    reads = {str(p.relative_to(ROOT)): clock_reads(p) for p in files}
    assert {path: found for path, found in reads.items() if found} == {}


def test_no_circle_of_imports_between_top_level_modules_at_import_time() -> None:
    found = import_time_circles(project_edges())
    assert found == []


# --- the checks find what they are meant to find ---------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> tuple[Edge, ...]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    found = source_files(tmp_path, PACKAGES)
    return tuple(edge for module, path in found.items() for edge in imports_of(module, path, set(found)))


def test_a_tier_importing_another_tier_inside_a_function_is_found(tmp_path: Path) -> None:
    edges = _tree(tmp_path, {
        "shared/__init__.py": "",
        "town_center/__init__.py": "",
        "town_center/api.py": "def f():\n    from village_agent.services import lookup\n",
        "village_agent/__init__.py": "",
        "village_agent/services.py": "from shared import x\n",
    })
    assert tier_violations(edges) == ["town_center.api → village_agent.services (line 2) (inside a function or TYPE_CHECKING)"]


def test_shared_importing_a_tier_through_a_relative_import_is_found(tmp_path: Path) -> None:
    edges = _tree(tmp_path, {
        "shared/__init__.py": "",
        "shared/a/__init__.py": "from .b import y\n",
        "shared/a/b.py": "from hub import z\n",
        "hub/__init__.py": "",
    })
    assert [e.target for e in edges if e.source == "shared.a"] == ["shared.a.b"]
    assert tier_violations(edges) == ["shared.a.b → hub (line 1)"]


def test_a_circle_through_a_subpackage_is_found_and_a_lazy_import_does_not_make_one(tmp_path: Path) -> None:
    edges = _tree(tmp_path, {
        "shared/__init__.py": "",
        "shared/calendar.py": "from shared.relay.server import serve\n",
        "shared/relay/__init__.py": "",
        "shared/relay/server.py": "from shared import calendar\n",
        "shared/keys.py": "def f():\n    import shared.signing\n",
        "shared/signing.py": "import shared.keys\n",
    })
    assert import_time_circles(edges) == [["shared.calendar", "shared.relay"]]


def test_clock_reads_are_found_however_datetime_and_time_are_imported(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import datetime as dt\nimport time\nfrom datetime import date\nfrom time import monotonic\n"
        "a = dt.datetime.now(dt.timezone.utc)\nb = date.today()\nc = time.time()\n"
        "d = dt.datetime.fromisoformat('2026-01-01')\n",
        encoding="utf-8",
    )
    assert clock_reads(path) == ["4: from time import monotonic", "5: dt.datetime.now()", "6: date.today()",
                                 "7: time.time()"]
