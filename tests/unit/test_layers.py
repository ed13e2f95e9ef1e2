"""The house rules of DESIGN.md, checked on the source: who may import whom, SQL only in the
store, no import cycle. Read from the files with `ast`, so a violation fails here before it
spreads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "connector"
# DESIGN.md: adapters depend on the domain, never on each other; the workflow wires them and
# the entry points (channels) call the workflow.
ADAPTERS = ("hl7", "dicom", "archive", "store")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules (or packages) `path` imports."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_domain_imports_nothing_from_the_rest_of_the_connector():
    bad = {m: sorted(i for i in imports if _within(i, "connector")
                     and not _within(i, "connector.domain"))
           for m, imports in MODULES.items() if _within(m, "connector.domain")}
    assert {m: i for m, i in bad.items() if i} == {}


def test_sqlalchemy_is_imported_in_the_store_only():
    bad = sorted(m for m, imports in MODULES.items()
                 if any(_within(i, "sqlalchemy") for i in imports)
                 and not _within(m, "connector.store"))
    assert bad == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter_imports_no_other_adapter(adapter):
    own = f"connector.{adapter}"
    others = [f"connector.{a}" for a in ADAPTERS if a != adapter
              and not _within(f"connector.{a}", own) and not _within(own, f"connector.{a}")]
    bad = {m: sorted(i for i in imports if any(_within(i, o) for o in others))
           for m, imports in MODULES.items() if _within(m, own)}
    assert {m: i for m, i in bad.items() if i} == {}


def test_no_import_cycle_between_modules():
    graph = {m: {i for i in imports if i in MODULES and i != m} for m, imports in MODULES.items()}
    # an import of a package's name inside that package (its __init__) is not a cycle
    graph = {m: {i for i in deps if not _within(m, i)} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
