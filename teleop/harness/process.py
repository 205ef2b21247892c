"""One subprocess helper for the launcher, the harnesses, the benches and the tests: a started process
whose merged stdout and stderr a thread reads line by line (each handed to ``on_line`` and kept in
``lines``), with an optional ready text ``wait_ready`` waits for.

``Child`` is the general one (`telesurg launch` runs every process of a launch file through it, in a
session of its own so a signal reaches everything the process started); ``CliProcess`` runs a
``telesurg`` subcommand from the repository with its output also written to a log file, and stops it
as a terminal's Ctrl-C would (SIGINT to it alone, then a kill).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: How long ``drain`` waits for the reader to take the last lines out of the pipe (s).
DRAIN_S = 2.0


def telesurg_argv(*args: str) -> list[str]:
    """The command line of a ``telesurg`` subcommand run with this interpreter."""
    return [sys.executable, "-m", "telesurg.teleop.cli", *args]


class Child:
    """See the module docstring. ``stdin``: None inherits ours; ``new_session`` puts the process in
    a session (and process group) of its own, which ``signal(group=True)`` then reaches whole."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        ready: str | None = None,
        on_line: Callable[[str], None] | None = None,
        new_session: bool = False,
        stdin: int | None = None,
        name: str = "child",
    ) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._marker = ready
        self._on_line = on_line
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        self._thread = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as stream:
            for raw in stream:
                text = raw.decode(errors="replace").rstrip("\r\n")
                self.lines.append(text)
                if self._on_line is not None:
                    self._on_line(text)
                if self._marker is not None and self._marker in text:
                    self.ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> bool:
        return self.ready.wait(timeout_s)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        """True once a line contains ``text``; False after ``timeout_s`` or when the process ended without one."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                self.drain()
                return any(text in line for line in self.lines)
            time.sleep(0.01)
        return False

    def signal(self, signum: int, group: bool = False) -> None:
        """Send ``signum`` to the process, or with ``group`` to its whole process group (the process
        and anything it started, as a terminal would)."""
        if not self.running():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGINT, then a kill after ``timeout_s``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.drain()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)

    def drain(self) -> None:
        """Wait (up to ``DRAIN_S``) for the reader to take the last lines out of the pipe."""
        self._thread.join(DRAIN_S)


class CliProcess(Child):
    """A ``telesurg`` subcommand run from the repository, its output also appended to ``log``."""

    def __init__(self, argv: list[str], log: Path, ready: str | None = None) -> None:
        self.log = log.open("a")
        super().__init__(telesurg_argv(*argv), cwd=REPO, ready=ready, on_line=self._write, name=argv[0])

    def _write(self, line: str) -> None:
        self.log.write(line + "\n")

    def stop(self, timeout_s: float = 10.0) -> int | None:
        code = super().stop(timeout_s)
        self.log.close()
        return code
