"""Import contracts: data and imports flow one way through the house, and nothing loops.

    core -> scenarios -> model (actions, commands, observation, oracle, ...) -> engine
         -> shells (env, vector, counterfactual, policies) -> text -> package facade -> trainer

A module may import from its own layer or any layer below it, never above; the import graph
of ``dime_gym`` and ``dime_trainer`` (imports inside functions included: a lazy import that
dodges a cycle is still a cycle) has no cycle; ``dime_trainer`` uses only public ``dime_gym``
names (no ``dime_gym.core`` module, no underscore name). The graph is read from the source
with ``ast``, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dime_gym", "dime_trainer")

# (layer, module prefixes), lowest first; a module belongs to the layer of its longest prefix.
# "dime_gym" itself (the package __init__) is the public facade: it re-exports from below.
LAYERS = (
    ("core", ("dime_gym.core",)),
    ("scenarios", ("dime_gym.scenarios",)),
    ("model", ("dime_gym.actions", "dime_gym.commands", "dime_gym.observation", "dime_gym.observation", "dime_gym.oracle", "dime_gym.snapshot",
               "dime_gym.render", "dime_gym.logs", "dime_gym.splits")),
    ("engine", ("dime_gym.engine",)),
    ("shells", ("dime_gym.env", "dime_gym.vector", "dime_gym.counterfactual", "dime_gym.policies")),
    ("text", ("dime_gym.text", "dime_gym.registration")),
    ("package", ("dime_gym",)),
    ("trainer", ("dime_trainer",)),
)


def module_files() -> dict[str, Path]:
    """Every module of the two packages, by dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every import statement anywhere in ``source``; ``name`` is the
    imported attribute of a ``from`` import (``None`` for ``import x``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(base, alias.name) for alias in node.names]
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ``modules`` it imports (``from pkg import mod`` counts as ``mod``)."""
    graph = {}
    for name, path in modules.items():
        edges = set()
        for base, attr in imported_names(path.read_text(), name, path.name == "__init__.py"):
            target = f"{base}.{attr}" if attr and f"{base}.{attr}" in modules else base
            while target and target not in modules:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def layer_of(module: str) -> int:
    """Index into ``LAYERS`` of ``module``'s layer; ``KeyError`` for a module no layer claims."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix if prefix == "dime_gym" else (module == prefix or module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise KeyError(f"{module} belongs to no layer of LAYERS: add it where it belongs")
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a higher layer, as ``"a (layer) -> b (layer)"``."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module):
                bad.append(f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def private_uses_by_trainer(modules: dict[str, Path]) -> list[str]:
    """Every ``dime_trainer`` import of a ``dime_gym.core`` module or an underscore name."""
    bad = []
    for name, path in modules.items():
        if not name.startswith("dime_trainer"):
            continue
        for base, attr in imported_names(path.read_text(), name, path.name == "__init__.py"):
            full = f"{base}.{attr}" if attr else base
            if not full.startswith("dime_gym"):
                continue
            if full.startswith("dime_gym.core") or any(part.startswith("_") for part in full.split(".")):
                bad.append(f"{name} imports {full}")
    return bad


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return module_files()


@pytest.fixture(scope="module")
def graph(modules) -> dict[str, set[str]]:
    return import_graph(modules)


def test_import_contracts__every_module_has_a_layer(modules):
    for name in modules:
        layer_of(name)  # raises for a module no layer claims


def test_import_contracts__no_module_imports_from_a_higher_layer(graph):
    assert upward_imports(graph) == []


def test_import_contracts__no_import_cycle(graph):
    assert find_cycle(graph) is None


def test_import_contracts__trainer_uses_only_public_dime_gym_names(modules):
    assert private_uses_by_trainer(modules) == []


def test_import_contracts__the_graph_sees_real_edges(graph):
    # a reader that found no imports would pass every check above
    assert "dime_gym.core.state" in graph["dime_gym.core.dynamics"]
    assert "dime_gym.commands" in graph["dime_gym.oracle"]
    assert "dime_gym.text.env" in graph["dime_gym.registration"]
    assert "dime_gym.env" in graph["dime_gym"]  # the facade's lazy import counts
    assert {"dime_gym.engine"} <= graph["dime_gym.env"] & graph["dime_gym.vector"] & graph["dime_gym.counterfactual"]


# --- the checks themselves can fail ---------------------------------------------------------------
def test_import_contracts__an_upward_import_is_reported():
    graph = {"dime_gym.core.dynamics": {"dime_gym.text.env"}, "dime_gym.text.env": set()}
    assert upward_imports(graph) == ["dime_gym.core.dynamics (core) -> dime_gym.text.env (text)"]


def test_import_contracts__a_cycle_is_reported():
    graph = {"dime_gym.oracle": {"dime_gym.commands"}, "dime_gym.commands": {"dime_gym.text.env"},
             "dime_gym.text.env": {"dime_gym.oracle"}}
    assert find_cycle(graph) == ["dime_gym.commands", "dime_gym.text.env", "dime_gym.oracle", "dime_gym.commands"]


def test_import_contracts__a_core_import_by_the_trainer_is_reported(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from dime_gym.core.state import N_NODES\n    from dime_gym.env import _as_int64\n")
    assert private_uses_by_trainer({"dime_trainer.probe": module}) == [
        "dime_trainer.probe imports dime_gym.core.state.N_NODES", "dime_trainer.probe imports dime_gym.env._as_int64"]


def test_import_contracts__a_module_outside_every_layer_is_reported():
    with pytest.raises(KeyError, match="no layer"):
        layer_of("dime_gym_extra.thing")


def test_import_contracts__relative_imports_resolve():
    found = imported_names("from . import oracle\nfrom ..core.state import DB\n", "dime_gym.text.env", is_package=False)
    assert found == [("dime_gym.text", "oracle"), ("dime_gym.core.state", "DB")]
