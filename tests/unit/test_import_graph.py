"""No import cycle among our modules, and no CLI command module importing the registry back.

The graph is read from the source (ast), with every import: module level and inside functions
(a lazy import hides a cycle from the interpreter, not from a reader).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("logllm_plugin", "collectors", "trainers")


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    out = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue  # generated stubs
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (a name imported from a package resolves to the
    submodule when it is one, else to the package)."""
    def ours(name: str):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(ours(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else ours(base))
        graph[module] = {t for t in targets if t and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle_hidden_in_a_lazy_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from pkg import c\n")
    (pkg / "c.py").write_text("from . import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(module_files(tmp_path, ("pkg",)))
    assert graph["pkg.c"] == {"pkg.a"}  # a relative import resolves to the submodule
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_no_import_cycle_among_our_modules():
    graph = import_graph(module_files(ROOT))
    assert "logllm_plugin.cli.train" in graph["logllm_plugin.cli"]  # the walk sees the real tree
    assert "logllm_plugin.detector" in graph["logllm_plugin.cli.common"]  # and imports inside functions
    assert cycles(graph) == []


def test_cli_command_modules_never_import_the_registry():
    graph = import_graph(module_files(ROOT))
    commands = [m for m in graph if m.startswith("logllm_plugin.cli.")]
    assert len(commands) >= 10
    assert [m for m in commands if "logllm_plugin.cli" in graph[m]] == []
    # only the registry (and `python -m`) import the CLI at all: the library never depends on it
    users = sorted(m for m, targets in graph.items() if any(t == "logllm_plugin.cli" or t.startswith(
        "logllm_plugin.cli.") for t in targets) and not m.startswith("logllm_plugin.cli"))
    assert users == ["logllm_plugin.__main__"]
