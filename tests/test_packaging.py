"""What the project installs: one import package, ``telesurg``, over the folders envs/, policies/ and
teleop/; every package in them listed in pyproject.toml; pybullet imported only in envs/."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("envs", "policies", "teleop")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_installed_under_telesurg() -> None:
    found = {
        ".".join(["telesurg", *init.parent.relative_to(ROOT).parts])
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert sorted(_setuptools()["packages"]) == sorted(found)
    assert _setuptools()["package-dir"] == {f"telesurg.{f}": f for f in FOLDERS}


def test_every_module_imports_as_telesurg_from_outside_the_checkout(tmp_path: Path) -> None:
    # Run where the checkout is not on sys.path, as an installed user would: every module imports
    # under ``telesurg.``, from this checkout, and no bare ``envs``/``policies``/``teleop`` is
    # imported (another project of that name may be installed beside telesurg).
    script = f"""
import pkgutil, sys
import telesurg.envs, telesurg.policies, telesurg.teleop
names = []
for package in (telesurg.envs, telesurg.policies, telesurg.teleop):
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    __import__(name)
assert telesurg.teleop.__file__ == {str(ROOT / "teleop" / "__init__.py")!r}, telesurg.teleop.__file__
bare = sorted(m for m in sys.modules if m.split(".")[0] in {FOLDERS!r})
assert not bare, bare
print(len(names))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 100  # the walk found the modules, not an empty namespace


def test_only_envs_imports_pybullet() -> None:
    bad = []
    for folder in ("policies", "teleop"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "pybullet"]
    assert not bad, "pybullet outside envs/: " + ", ".join(bad)
