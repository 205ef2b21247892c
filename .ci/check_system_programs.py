"""Fail when a system program the tests start is not installed by `make test` itself.

tests/system_programs.py lists every program outside the virtual environment that a test starts
(path and Debian package). This check, run by .ci/run before the tests, fails when
- one of those paths is not a prerequisite of `make test` (as `make -pn test` prints the rule), or
- a test names a system path or looks a program up (``shutil.which``) instead of going through
  ``system_programs.require``,
so a machine where a program was installed by hand can no longer hide a missing install step.
Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "tests" / "system_programs.py"
SYSTEM_PATH = re.compile(r"^/(usr/)?s?bin/")


def registered_paths() -> dict[str, str]:
    """name → path, read from the registry's ``PROGRAMS`` literal (pytest is not installed yet)."""
    for node in ast.walk(ast.parse(REGISTRY.read_text())):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "PROGRAMS":
            programs = ast.literal_eval(node.value)
            return {name: path for name, (path, _package) in programs.items()}
    raise SystemExit(f"{REGISTRY}: no PROGRAMS table")


def test_prerequisites() -> list[str]:
    """The prerequisites of the `test` rule, as make itself expands them."""
    out = subprocess.run(["make", "-pn", "test"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("test:"):
            return line.removeprefix("test:").split()
    raise SystemExit("make -pn test printed no `test:` rule")


def bypasses() -> list[str]:
    """Places in tests/ that name a system program without the registry."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path == REGISTRY:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SYSTEM_PATH.match(node.value):
                found.append(f"{where}: names {node.value!r} (use system_programs.require)")
            if isinstance(node, ast.Attribute) and node.attr == "which" and getattr(node.value, "id", "") == "shutil":
                found.append(f"{where}: shutil.which (use system_programs.require)")
    return found


def main() -> int:
    prerequisites = set(test_prerequisites())
    problems = [
        f"the tests start {path} ({name}, {REGISTRY.relative_to(ROOT)}) but `make test` does not install it "
        f"(not a prerequisite of `test` in `make -pn test`)"
        for name, path in registered_paths().items()
        if path not in prerequisites
    ]
    problems += bypasses()
    for problem in problems:
        print(f"check_system_programs: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_system_programs: {len(registered_paths())} system programs, each installed by `make test`")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
