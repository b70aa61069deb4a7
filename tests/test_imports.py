"""The package's import graph, computed from the source with `ast` (module-level and function-level imports).

The layering of CONTRIBUTING.md, "Package layout": `core/` at the bottom imports nothing else from mintkit,
`models/` sits on it, `methods/` (the membership methods) on both, and `attacks/`, `audit/`, `papers/`,
`batch/` above. No import cycle anywhere, and the audit of a user's model never imports a paper.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mintkit"

# package -> the mintkit packages it may import (besides itself and the root `mintkit`, which holds __version__)
ALLOWED = {
    "core": set(),
    "reference": set(),
    "models": {"core"},
    "methods": {"core", "models"},
    "attacks": {"core", "models", "methods"},
    "audit": {"core", "models", "methods", "attacks"},
    "papers": {"core", "models", "methods", "attacks", "reference"},
}


def module_name(path: Path, root: Path = ROOT) -> str:
    """mintkit/a/b.py -> mintkit.a.b; mintkit/a/__init__.py -> mintkit.a."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The longest prefix of dotted `name` that is a module of the package."""
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Package modules that `mod` imports anywhere in its source (top level, functions, classes)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` names a submodule when one exists, else a name of pkg
            targets = [f"{prefix}.{a.name}" for a in node.names] or [prefix]
        else:
            continue
        for t in targets:
            if t == "mintkit" or t.startswith("mintkit."):
                r = _resolve(t, known)
                if r and r != mod:
                    out.add(r)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def package_of(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        u = stack.pop()
                        on.discard(u)
                        comp.append(u)
                        if u == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
                continue
            if w not in graph:
                continue
            if w not in index:
                index[w] = low[w] = counter
                counter += 1
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(graph[w]))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_reads_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "mintkit"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from . import x\n")
    (pkg / "a" / "x.py").write_text("def f():\n    from mintkit.a.y import g\n")
    (pkg / "a" / "y.py").write_text("from mintkit.a import x\n")
    known = {module_name(p, tmp_path): p for p in pkg.rglob("*.py")}
    g = {m: imports_of(m, p, known) for m, p in known.items()}
    assert g["mintkit.a"] == {"mintkit.a.x"}
    assert g["mintkit.a.x"] == {"mintkit.a.y"}
    assert cycles(g) == [["mintkit.a.x", "mintkit.a.y"]]


def test_no_import_cycle(graph):
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_core_imports_no_other_mintkit_package(graph):
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if package_of(m) == "core"
                 for t in ts if package_of(t) not in ("core", ""))
    assert not bad, "core/ imports another mintkit package: " + ", ".join(bad)


def test_audit_imports_no_paper(graph):
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if package_of(m) == "audit"
                 for t in ts if package_of(t) == "papers")
    assert not bad, "audit/ imports papers/: " + ", ".join(bad)


def test_packages_import_only_the_layers_below(graph):
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if package_of(m) in ALLOWED
                 for t in ts if package_of(t) not in ALLOWED[package_of(m)] | {package_of(m), ""})
    assert not bad, "imports against the layering (CONTRIBUTING.md, Package layout): " + ", ".join(bad)
