"""The system programs the tests start, and nothing else: each is a Debian package that `make test`
installs itself (a prerequisite of its `test` rule), so a fresh machine runs the whole suite.

Every test that starts a program outside the virtual environment gets its path from ``require``;
``.ci/run`` checks (``.ci/check_system_programs.py``) that each path below is a prerequisite of
`make test` and that no test names a system path directly, so a machine where someone installed
a program by hand can no longer hide a missing install step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: name → (absolute path, Debian package that provides it).
PROGRAMS: dict[str, tuple[str, str]] = {
    "chromium": ("/usr/bin/chromium", "chromium"),
    "Xvfb": ("/usr/bin/Xvfb", "xvfb"),
    "ip": ("/usr/sbin/ip", "iproute2"),
}


def require(name: str) -> str:
    """The path of system program ``name``; the test fails (never skips) when it is missing."""
    path, package = PROGRAMS[name]
    if not Path(path).exists():
        pytest.fail(f"{path} is missing: `make test` installs Debian's {package} (apt-get install {package})")
    return path
