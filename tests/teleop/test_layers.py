"""The dependency direction of ``teleop`` (docs/architecture.md), enforced on every import.

cli/launch → harness → console → video → {robot, netem, correction} → wire → envs. A package may
import its own modules, any package to its right, ``settings`` (a leaf every layer may read; it
imports no teleop module itself) and ``policies``/``envs``; siblings in the braces do not import
each other. Imports inside functions
and under ``TYPE_CHECKING`` count too: a late import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

TELEOP = Path(__file__).resolve().parents[2] / "teleop"
PACKAGE = "telesurg.teleop"  # the import name of the teleop/ folder

#: Rank of each layer: a module may import layers of a lower rank, or its own layer.
RANK = {
    "front": 6,
    "harness": 5,
    "console": 4,
    "video": 3,
    "robot": 2,
    "netem": 2,
    "correction": 2,
    "wire": 1,
    "leaf": 0,
}
#: Modules that sit at the top of ``teleop/`` and the layer they belong to.
TOP = {
    "cli": "front",
    "cli_errors": "front",
    "commands": "front",
    "launch": "front",
    "launch_file": "front",
    "__init__": "front",
    "settings": "leaf",
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[:2] == ["telesurg", "teleop"], module
    if len(parts) == 2:
        return "front"
    if parts[2] in RANK:
        return parts[2]
    if parts[2] in TOP:
        return TOP[parts[2]]
    raise AssertionError(f"{module}: not in any layer; put it in a package or in TOP")


def _module_name(path: Path) -> str:
    rel = path.relative_to(TELEOP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["telesurg", *parts])


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``telesurg.teleop.*`` module this file imports, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith(PACKAGE)]
        elif isinstance(node, ast.ImportFrom) and node.module == "telesurg" and node.level == 0:
            found += [(node.lineno, PACKAGE) for a in node.names if a.name == "teleop"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith(PACKAGE):
            # ``from telesurg.teleop.wire import protocol``: the imported name may be a module.
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((node.lineno, sub if _is_module(sub) else node.module))
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[2:])
    return (TELEOP / rel).with_suffix(".py").exists() or (TELEOP / rel / "__init__.py").exists()


def _violations() -> list[str]:
    bad = []
    for path in sorted(TELEOP.rglob("*.py")):
        importer = _module_name(path)
        mine = layer_of(importer)
        for line, imported in _imports(path):
            if imported == PACKAGE:
                continue
            theirs = layer_of(imported)
            if theirs == mine:
                continue
            if RANK[theirs] >= RANK[mine]:
                bad.append(f"{path.relative_to(TELEOP.parent)}:{line}: {mine} imports {imported} ({theirs})")
    return bad


def test_every_import_points_down_the_layers() -> None:
    bad = _violations()
    assert not bad, "imports against the dependency direction:\n" + "\n".join(bad)


def test_every_module_has_a_layer() -> None:
    for path in TELEOP.rglob("*.py"):
        layer_of(_module_name(path))
