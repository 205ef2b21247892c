"""The process launcher behind ``telesurg launch FILE [NAME=VALUE ...]``: start the processes of a
launch file (its format, arguments and checks: ``telesurg.teleop.launch_file``), show their output line by
line with name prefixes, and stop them all together.

Running:

- A command whose first element is ``telesurg`` runs as ``[sys.executable, "-m", "telesurg.teleop.cli", ...]``,
  so it works without an activated venv or the script on PATH.
- Each process gets its own session (so its own process group): a terminal Ctrl-C reaches only the
  launcher, which then stops the processes itself. stdin is /dev/null; ``PYTHONUNBUFFERED=1`` is set
  (a file ``env`` entry wins). stdout and stderr are merged and printed whole line by whole line as
  ``name    | text``, names padded to the longest, coloured when stdout is a terminal; the
  launcher's own messages are prefixed ``launch``.
- Ending: the launch ends when the first process exits, whichever it is. Its exit status is the
  process's code if non-zero (128 + N if signal N killed it); 0 if it was a ``main`` process that
  exited with 0; and 1 if a non-main process exited with 0, because non-main processes are services
  meant to run for the whole launch. A file with no ``main`` process therefore runs until Ctrl-C or a
  failure. A process that exits before printing its ``ready`` text ends the launch with its status
  as above (1 if it exited with 0); one that has not printed it after ``ready_timeout_s``, or cannot
  be started at all, ends it with 1. Ctrl-C ends it with 130, SIGTERM or SIGHUP sent to the launcher
  with 128 + N. When a process's error exit (code > 0) ended the launch and other lines followed its
  last one (the others stopping), the launcher repeats that line last, so a CLI's one-line error
  (``telesurg video: error: port 8080 (http_port, --http-port) is already in use by another
  program``) stays the last thing on screen.
- Stopping: the processes still running are stopped one at a time in reverse start order: SIGINT
  to the process group, after ``stop_timeout_s`` SIGTERM, after another ``stop_timeout_s`` SIGKILL.
  A second Ctrl-C while stopping sends SIGKILL to all of them at once.
"""

from __future__ import annotations

import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from telesurg.teleop.harness.process import Child
from telesurg.teleop.launch_file import LaunchSpec, ProcessSpec, load_launch

#: How often the launcher looks for exited processes (s).
POLL_S = 0.05
LAUNCH_NAME = "launch"
#: ANSI colours for process prefixes (cycled); the launcher's own lines are bold.
COLOURS = ("36", "33", "35", "32", "34", "31")


class _Output:
    """Whole-line, prefixed writes to stdout from several threads."""

    def __init__(self, names: list[str]) -> None:
        self.width = max(len(n) for n in [LAUNCH_NAME, *names])
        self.colour = sys.stdout.isatty()
        self.lock = threading.Lock()
        #: Lines printed so far.
        self.count = 0

    def line(self, name: str, text: str, colour: str = "1") -> int:
        """Print one line; returns its number (from 1)."""
        prefix = f"{name:<{self.width}} |"
        if self.colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self.lock:
            print(f"{prefix} {text}", flush=True)
            self.count += 1
            return self.count


def _describe(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def _status(returncode: int) -> int:
    """A process's exit code as the launch's: the code, or 128 + N when signal N killed it."""
    return returncode if returncode >= 0 else 128 - returncode


class _Child(Child):
    """A process of the launch: its output printed under its name, and its last line kept."""

    def __init__(self, spec: ProcessSpec, out: _Output, colour: str) -> None:
        self.spec = spec
        self.out = out
        self.colour = colour
        #: The last non-blank line the process printed and its line number in the launch's output.
        self.last_line = ""
        self.last_line_no = 0
        super().__init__(
            spec.argv,
            cwd=spec.cwd,
            env=spec.env,
            ready=spec.ready,
            on_line=self._print,
            new_session=True,
            stdin=subprocess.DEVNULL,
            name=f"launch-{spec.name}",
        )

    def _print(self, text: str) -> None:
        number = self.out.line(self.spec.name, text, self.colour)
        if text.strip():
            self.last_line, self.last_line_no = text, number

    def signal(self, signum: int, group: bool = True) -> None:
        """Signal the whole process group (the child and anything it started), as a terminal would."""
        super().signal(signum, group=group)


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP to the launcher, handled like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


class _Launcher:
    def __init__(self, spec: LaunchSpec, keep_open: bool = False) -> None:
        self.spec = spec
        self.keep_open = keep_open
        self.out = _Output([p.name for p in spec.processes])
        self.children: list[_Child] = []
        #: The process whose error exit ended the launch.
        self.failed: _Child | None = None

    def log(self, text: str) -> None:
        self.out.line(LAUNCH_NAME, text)

    def run(self) -> int:
        # Children do not share our session, so a kill of the launcher must stop them too.
        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            try:
                code = self._start_and_watch()
            except KeyboardInterrupt as exc:
                signum = getattr(exc, "signum", signal.SIGINT)
                self.log(f"{signal.Signals(signum).name} received{self._stopping()}")
                code = 128 + signum
            finally:
                self._stop_all()
                self._repeat_error()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        return code

    def _start_and_watch(self) -> int:
        for index, spec in enumerate(self.spec.processes):
            try:
                child = _Child(spec, self.out, COLOURS[index % len(COLOURS)])
            except OSError as exc:
                self.log(f"cannot start {spec.name}: {exc}{self._stopping()}")
                return 1
            self.children.append(child)
            self.log(f"started {spec.name} (pid {child.proc.pid})")
            if spec.ready is not None:
                code = self._wait_ready(child)
                if code is not None:
                    return code
                self.log(f"{spec.name} is ready")
        while (exited := self._first_exited()) is None:
            time.sleep(POLL_S)
        if self.keep_open and exited.spec.main and exited.proc.returncode == 0 and sys.stdin.isatty():
            exited.drain()
            self.log(f"{exited.spec.name} finished; the others stay up until you press Enter (or Ctrl-C)")
            while self._first_exited() is exited and not select.select([sys.stdin], [], [], POLL_S)[0]:
                pass
        return self._ended_by(exited)

    def _wait_ready(self, child: _Child) -> int | None:
        """None once ``child`` printed its ready text, else the launch's exit code."""
        deadline = time.monotonic() + child.spec.ready_timeout_s
        while not child.ready.wait(POLL_S):
            exited = self._first_exited()
            if exited is child:
                child.drain()  # its ready line may still be in the pipe
                if child.ready.is_set():
                    return None
                rc = child.proc.returncode
                self.log(f"{child.spec.name} {_describe(rc)} before printing {child.spec.ready!r}{self._stopping()}")
                if rc > 0:
                    self.failed = child
                return _status(rc) if rc != 0 else 1
            if exited is not None:
                return self._ended_by(exited)
            if time.monotonic() > deadline:
                self.log(
                    f"{child.spec.name} did not print {child.spec.ready!r} within "
                    f"{child.spec.ready_timeout_s:g} s{self._stopping()}"
                )
                return 1
        return None

    def _repeat_error(self) -> None:
        """Repeat the failed process's last line if other lines followed it (see the module docstring)."""
        child = self.failed
        # Its last line, then our "exited" message: anything more buried it.
        if child is not None and child.last_line and self.out.count > child.last_line_no + 1:
            self.log(f"{child.spec.name}'s last line: {child.last_line}")

    def _first_exited(self) -> _Child | None:
        return next((c for c in self.children if not c.running()), None)

    def _ended_by(self, child: _Child) -> int:
        child.drain()  # its last lines before our message
        rc = child.proc.returncode
        if rc > 0:
            self.failed = child
        expected = rc != 0 or child.spec.main
        note = "" if expected else " (not a main process)"
        self.log(f"{child.spec.name} {_describe(rc)}{note}{self._stopping()}")
        return _status(rc) if expected else 1

    def _stopping(self) -> str:
        names = [c.spec.name for c in reversed(self.children) if c.running()]
        return f"; stopping {', '.join(names)}" if names else ""

    def _stop_all(self) -> None:
        try:
            for child in reversed(self.children):
                self._stop(child)
        except KeyboardInterrupt:
            self.log("interrupted while stopping; sending SIGKILL to all")
            for child in self.children:
                child.signal(signal.SIGKILL)
            for child in self.children:
                child.proc.wait()
        for child in self.children:
            child.drain()

    def _stop(self, child: _Child) -> None:
        timeout_s = self.spec.stop_timeout_s
        steps = ((signal.SIGINT, "sending SIGTERM"), (signal.SIGTERM, "sending SIGKILL"), (signal.SIGKILL, "giving up"))
        for signum, then in steps:
            if not child.running():
                return
            child.signal(signum)
            try:
                rc = child.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.log(f"{child.spec.name} did not stop in {timeout_s:g} s; {then}")
                continue
            child.drain()
            self.log(f"stopped {child.spec.name} ({_describe(rc).removeprefix('was ')})")
            return


def _print_plan(spec: LaunchSpec) -> None:
    out = _Output([p.name for p in spec.processes])
    about = f"{spec.description}; " if spec.description else ""
    out.line(LAUNCH_NAME, f"{spec.path}: {about}stop_timeout_s {spec.stop_timeout_s:g} (dry run: nothing started)")
    if spec.arguments:
        out.line(LAUNCH_NAME, f"arguments (set as NAME=VALUE after the file, e.g. {spec.arguments[0].name}=…):")
    for a in spec.arguments:
        value = "(not set)" if a.value is None else f"= {shlex.quote(a.value)} ({'given' if a.given else 'default'})"
        about = f": {a.description}" if a.description else ""
        out.line(LAUNCH_NAME, f"  {a.name} {value}{about}")
    out.line(LAUNCH_NAME, f"processes run in {Path.cwd()} unless a cwd says otherwise (their outputs land there)")
    for index, p in enumerate(spec.processes):
        notes = ["main"] if p.main else []
        if p.ready is not None:
            notes.append(f"ready {p.ready!r} within {p.ready_timeout_s:g} s")
        if p.cwd is not None:
            notes.append(f"cwd {p.cwd.resolve()}")
        notes += [f"env {k}={shlex.quote(v)}" for k, v in p.env.items()]
        extra = f"  [{'; '.join(notes)}]" if notes else ""
        out.line(p.name, shlex.join(p.argv) + extra, COLOURS[index % len(COLOURS)])


def run_launch(
    path: str | Path, arguments: dict[str, str] | None = None, *, dry_run: bool = False, keep_open: bool = False
) -> int:
    """Run a launch file with ``arguments`` (``NAME=VALUE`` from the command line, parsed by
    ``parse_arguments``) until it ends (see the module docstring) and return the exit status; with
    ``dry_run``, only check it and print the arguments and commands. ``keep_open``: when a main
    process ends well and the launcher runs in a terminal, keep the others (the video, its viewer)
    up until Enter; without a terminal (CI) the launch ends as usual. A bad file raises ``LaunchError``."""
    spec = load_launch(path, arguments)
    if dry_run:
        _print_plan(spec)
        return 0
    return _Launcher(spec, keep_open).run()
