"""The house's structure: no import cycle among the modules of ``api/``, ``worker/``,
``shared/`` and ``cutout/``, Redis and S3 only through ``shared/``, and the retry
backoff's range.

A cycle held together by imports inside functions (``tasks → webhooks → scheduler →
tasks`` was one) works until someone moves an import to the top, and makes the order in
which modules load matter. The graph here counts every import: at the top, inside
functions, and under ``if TYPE_CHECKING:`` too. Those never run, but a circle of type
names is still two modules that cannot be understood, moved or split one without the
other; a type both sides need lives in a module of its own (worker/tune/run.py is one).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "shared", "cutout")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports (a ``from pkg import mod`` counts as mod),
    wherever the import stands: top level, inside a function, under TYPE_CHECKING."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, path.name == "__init__.py")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                # the nearest project module that the dotted name names
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def is_package_init(name: str, graph: dict[str, set[str]]) -> bool:
    return any(other.startswith(name + ".") for other in graph)


def test_the_house_has_no_import_cycle() -> None:
    graph = import_graph()
    # a package's __init__ that re-exports its submodules is not a cycle with them: the
    # edges from a submodule to its own package's __init__ are left out
    for name in graph:
        graph[name] = {
            target
            for target in graph[name]
            if not (is_package_init(target, graph) and name.startswith(target + "."))
        }
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_checker_finds_a_cycle_made_by_an_import_inside_a_function() -> None:
    graph = {"worker.a": {"worker.b"}, "worker.b": {"worker.c"}, "worker.c": {"worker.a"}}
    assert find_cycle(graph) == ["worker.a", "worker.b", "worker.c", "worker.a"]
    assert find_cycle({"worker.a": {"worker.b"}, "worker.b": set()}) is None


def test_the_graph_counts_imports_inside_functions() -> None:
    graph = import_graph()
    # worker.context imports the engine inside a property (created lazily per child)
    assert "worker.engine" in graph["worker.context"]


def test_the_graph_counts_imports_under_type_checking() -> None:
    graph = import_graph()
    # worker.tune.record names the tune's Run only for the type checker
    assert "worker.tune.run" in graph["worker.tune.record"]
    assert set(PACKAGES) <= {name.partition(".")[0] for name in graph}


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    from worker.retry import BACKOFF_CAP, backoff

    for retries in range(12):
        base = min(BACKOFF_CAP, 2.0**retries)
        drawn = [backoff(retries) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in drawn)
        assert max(drawn) - min(drawn) > base / 10  # jittered, not fixed


def test_the_worker_reaches_redis_and_s3_only_through_shared() -> None:
    """No module in worker/ imports redis or boto3, or takes the store's raw client."""
    offences = []
    for path in sorted((ROOT / "worker").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("redis", "boto3", "botocore"):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
            if isinstance(node, ast.Attribute) and node.attr in ("r", "client"):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert offences == []


#: the sentence a Redis store's docstring (shared/stores/) ends with, by who reaches it
SIDES = {
    "Used by the API and the worker.": {"api", "worker"},
    "Used by the API only.": {"api"},
    "Used by the worker only.": {"worker"},
}


def _reached_from(graph: dict[str, set[str]], package: str) -> set[str]:
    seen: set[str] = set()
    stack = [name for name in graph if name.partition(".")[0] == package]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def test_every_store_says_truly_which_side_uses_it() -> None:
    """A store used by one side only says so (so a reader knows what a change touches),
    and every module that names its side names it truly (imports of any kind count)."""
    graph = import_graph()
    reached = {side: _reached_from(graph, side) for side in ("api", "worker")}
    wrong = []
    for name, path in _modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        said = [sentence for sentence in SIDES if sentence in " ".join(doc.split())]
        in_stores = name.startswith("shared.stores.") and path.name != "__init__.py"
        if not said and not in_stores:
            continue
        truth = {side for side, names in reached.items() if name in names}
        if len(said) != 1 or SIDES[said[0]] != truth:
            wrong.append(f"{name}: says {said or 'nothing'}, used by {sorted(truth)}")
    assert wrong == []


#: shared/'s packages in layers: each may import its own package and the layers below.
#: The top modules (errors, ids, atomicfile, logs) are the base; the stores sit on top.
SHARED_LAYERS: dict[str, set[str]] = {
    "shared": set(),
    "shared.redis": {"shared"},
    "shared.net": {"shared"},
    "shared.s3": {"shared"},
    "shared.onnx": {"shared"},
    "shared.contract": {"shared", "shared.redis", "shared.net", "shared.s3", "shared.onnx"},
    "shared.stores": {
        "shared",
        *("shared.redis", "shared.net", "shared.s3", "shared.onnx", "shared.contract"),
    },
}


def _shared_package(name: str) -> str:
    """The layer of a module of shared/: its package under shared, or the base."""
    parts = name.split(".")
    package = ".".join(parts[:2])
    return package if len(parts) >= 2 and package in SHARED_LAYERS else "shared"


def test_shared_packages_import_only_their_own_and_the_layers_below() -> None:
    graph = import_graph()
    wrong = []
    for name, targets in graph.items():
        if name.partition(".")[0] != "shared":
            continue
        mine = _shared_package(name)
        for target in targets:
            theirs = _shared_package(target)
            if target.startswith("shared") and theirs != mine and theirs not in SHARED_LAYERS[mine]:
                wrong.append(f"{name} ({mine}) imports {target} ({theirs})")
    assert wrong == []
