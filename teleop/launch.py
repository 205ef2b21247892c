"""The process launcher behind ``telesurg launch FILE [NAME=VALUE ...]``: start the processes a
TOML file names, show their output line by line with name prefixes, and stop them all together.

A launch file::

    description = "robot server and a scripted console on this host"   # optional, shown by --dry-run
    stop_timeout_s = 5.0            # optional (default 5.0): grace after each stop signal, in seconds

    [arguments]                     # optional: launch arguments, each used as {name} below
    tasks = { default = "Reach Palpate", description = "the scripted surgeon's tasks" }
    seed = { description = "first episode seed (default: the console config's)" }   # no default: unset
    rate_hz = 200                   # shorthand: just the default

    [[process]]                     # one table per process, started in file order; at least one
    name = "robot"                  # required, unique; letters, digits, "_", "." and "-"
    command = ["telesurg", "robot", "--config", "{launch_dir}/robot.toml"]   # required: non-empty list of strings
    ready = "listening"             # optional: start the next process only once an output line contains this
    ready_timeout_s = 60            # optional (default 60; only with ready): seconds to wait for it
    env = { LP_NUM_THREADS = "2" }  # optional: extra environment variables (string values)
    cwd = "."                       # optional: working directory, relative to the file's folder

    [[process]]
    name = "console"
    command = ["telesurg", "console", "--config", "{launch_dir}/console.toml", "--rate", "{rate_hz}",
               "--seed={seed}", "--tasks", "{tasks}"]
    main = true                     # optional (default false): see "ending" below

Paths. ``{launch_dir}`` is the absolute folder of the launch file (as a ROS launch file finds its
package), so a file names its neighbours as ``{launch_dir}/robot.toml`` and works from any
directory; a relative ``cwd`` is relative to that folder too. A process without ``cwd`` runs in the
directory ``telesurg launch`` runs in, the user's, and so do relative paths *inside* the config
files it reads: outputs such as ``record = "runs/teleop/robot-{time}.mcap"`` or ``save_video``
land under the user's current directory, and inputs such as key files or traces are looked up
there. Any other path in a ``command`` is relative to that directory as well.

Launch arguments (ROS 2 style). ``[arguments]`` declares names, each with an optional ``default``
(a string, a number or a list of strings) and ``description``; ``telesurg launch FILE name=value``
sets them (``make demo ARGS="tasks=Trace http_port=8081"``). ``{name}`` is replaced in ``command``
elements, ``cwd`` and ``env`` values: an element that is exactly ``{name}`` becomes the value's
words (split as a shell would: ``tasks="Reach Trace"`` gives two elements, an empty value none);
elsewhere the value is put in as text. An element that uses an argument with no value (no default,
not set) is left out, so ``"--seed={seed}"`` passes ``--seed`` only when given; in ``cwd`` and
``env`` that is an error. Braces that do not name ``launch_dir`` or a declared argument are left
as they are (``{time}`` is the programs' own placeholder). ``--dry-run`` lists the arguments with
their values and descriptions and prints the resolved commands.

``load_launch`` checks everything before anything starts: unknown keys, a missing or empty
``name``/``command``, duplicate names, wrong types, non-positive timeouts, a ``cwd`` that is not a
directory, an argument no process uses, and an unknown argument name on the command line raise
``LaunchError`` with one line naming the file and the key (or listing the known arguments).

Running:

- A command whose first element is ``telesurg`` runs as ``[sys.executable, "-m", "teleop.cli", ...]``,
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

import math
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.config import ConfigError, read_toml
from teleop.harness.process import Child, telesurg_argv

DEFAULT_STOP_TIMEOUT_S = 5.0
DEFAULT_READY_TIMEOUT_S = 60.0
#: How often the launcher looks for exited processes (s).
POLL_S = 0.05
LAUNCH_NAME = "launch"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
#: ANSI colours for process prefixes (cycled); the launcher's own lines are bold.
COLOURS = ("36", "33", "35", "32", "34", "31")
TOP_KEYS = ("description", "stop_timeout_s", "arguments", "process")
PROCESS_KEYS = ("name", "command", "ready", "ready_timeout_s", "env", "cwd", "main")
ARGUMENT_KEYS = ("default", "description")
#: The placeholder for the launch file's folder (not an argument: it cannot be set).
LAUNCH_DIR = "launch_dir"
ARGUMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LaunchError(Exception):
    """A bad launch file (reported to the user as one line naming the file and the key)."""


@dataclass
class ProcessSpec:
    """One ``[[process]]`` table with its placeholders filled in: ``command`` as resolved, ``argv``
    as run."""

    name: str
    command: list[str]
    ready: str | None = None
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    main: bool = False

    @property
    def argv(self) -> list[str]:
        """The command to run: a leading ``telesurg`` becomes this interpreter's ``-m teleop.cli``."""
        if self.command[0] == "telesurg":
            return telesurg_argv(*self.command[1:])
        return list(self.command)


@dataclass(frozen=True)
class LaunchArgument:
    """One ``[arguments]`` entry. ``value``: what ``{name}`` stands for (the default unless ``given``
    on the command line; None: no value, so command elements using it are left out)."""

    name: str
    default: str | None = None
    description: str = ""
    value: str | None = None
    given: bool = False


@dataclass
class LaunchSpec:
    """A whole launch file: its arguments and its processes in start order."""

    path: Path
    processes: list[ProcessSpec]
    description: str = ""
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    arguments: list[LaunchArgument] = field(default_factory=list)


# ---------------------------------------------------------------------- loading
_REQUIRED = object()
#: (accepts, description) pairs for the value checks in ``_Table.get``.
_NAME = (lambda v: isinstance(v, str) and bool(NAME_RE.match(v)), "a name of letters, digits, '_', '.' and '-'")
_STRING = (lambda v: isinstance(v, str), "a string")
_TEXT = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
_ARGV = (
    lambda v: isinstance(v, list) and v != [] and all(isinstance(a, str) for a in v) and v[0] != "",
    "a non-empty list of strings",
)
_SECONDS = (
    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
    "a positive number of seconds",
)
_ENV = (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()), "a table of strings")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_DEFAULT = (
    lambda v: (
        isinstance(v, str)
        or (isinstance(v, int | float) and not isinstance(v, bool))
        or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    ),
    "a string, a number or a list of strings",
)


class _Table:
    """One TOML table being checked; every error names the file, the table (``where``) and the key."""

    def __init__(self, path: Path, where: str, data: dict[str, Any]) -> None:
        self.path, self.where, self.data = path, where, data

    def error(self, message: str) -> LaunchError:
        return LaunchError(f"{self.path}: {self.where}{message}")

    def check_keys(self, known: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in known:
                raise self.error(f"unknown key {key!r} (known: {', '.join(known)})")

    def get(self, key: str, check: tuple[Callable[[Any], bool], str], default: Any = _REQUIRED) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise self.error(f"missing key {key!r}")
            return default
        accepts, expected = check
        if not accepts(self.data[key]):
            raise self.error(f"{key} must be {expected}, got {self.data[key]!r}")
        return self.data[key]


def parse_arguments(tokens: list[str]) -> dict[str, str]:
    """Command-line launch arguments, ``["tasks=Reach Trace", "http_port=8081"]`` → a dict."""
    out: dict[str, str] = {}
    for token in tokens:
        name, equals, value = token.partition("=")
        if not equals or not ARGUMENT_RE.match(name):
            raise LaunchError(f"launch arguments are NAME=VALUE after the file (e.g. tasks=Reach), got {token!r}")
        if name in out:
            raise LaunchError(f"launch argument {name!r} is given twice")
        out[name] = value
    return out


def _as_text(value: str | int | float | list[str]) -> str:
    if isinstance(value, list):
        return shlex.join(value)
    return str(value)


def _load_arguments(path: Path, data: Any, given: dict[str, str]) -> list[LaunchArgument]:
    table = _Table(path, "[arguments]: ", data)
    if not isinstance(data, dict):
        raise table.error(f"arguments must be a table, got {data!r}")
    arguments = []
    for name, entry in data.items():
        if not ARGUMENT_RE.match(name) or name == LAUNCH_DIR:
            raise table.error(f"argument name {name!r} must be letters, digits and '_' (and not {LAUNCH_DIR!r})")
        if isinstance(entry, dict):
            item = _Table(path, f"[arguments] {name}: ", entry)
            item.check_keys(ARGUMENT_KEYS)
            default = item.get("default", _DEFAULT, None)
            description = item.get("description", _STRING, "")
        else:  # shorthand: just the default
            default, description = table.get(name, _DEFAULT), ""
        default = None if default is None else _as_text(default)
        value = given.get(name, default)
        arguments.append(LaunchArgument(name, default, description, value, name in given))
    unknown = sorted(set(given) - set(data))
    if unknown:
        known = f"known: {', '.join(a.name for a in arguments)}" if arguments else "the file declares none"
        raise LaunchError(f"{path}: unknown launch argument {unknown[0]!r} ({known})")
    return arguments


class _Placeholders:
    """``{launch_dir}`` and the launch arguments, filled into a process's strings (see the module
    docstring); ``used`` collects the argument names met."""

    def __init__(self, launch_dir: Path, arguments: list[LaunchArgument]) -> None:
        self.values: dict[str, str | None] = {LAUNCH_DIR: str(launch_dir)}
        self.values.update((a.name, a.value) for a in arguments)
        self.used: set[str] = set()

    def _names(self, text: str) -> list[str]:
        names = [n for n in PLACEHOLDER_RE.findall(text) if n in self.values]
        self.used.update(names)
        return names

    def text(self, text: str) -> str | None:
        """``text`` filled in; None when it uses an argument that has no value."""
        if any(self.values[n] is None for n in self._names(text)):
            return None

        def fill(match: re.Match[str]) -> str:
            value = self.values.get(match.group(1))
            return match.group(0) if value is None else value  # None here: not ours, e.g. {time}

        return PLACEHOLDER_RE.sub(fill, text)

    def command(self, table: _Table, command: list[str]) -> list[str]:
        out: list[str] = []
        for element in command:
            whole = PLACEHOLDER_RE.fullmatch(element)
            if whole and whole.group(1) != LAUNCH_DIR and whole.group(1) in self.values:
                value = self.values[whole.group(1)]
                self.used.add(whole.group(1))
                try:
                    out += shlex.split(value) if value is not None else []
                except ValueError as exc:
                    raise table.error(f"argument {whole.group(1)}: cannot split {value!r} into words: {exc}") from None
                continue
            text = self.text(element)
            if text is not None:
                out.append(text)
        if not out or out[0] == "":
            raise table.error(f"command {command!r} is empty once its arguments are filled in")
        return out

    def required(self, table: _Table, key: str, text: str) -> str:
        filled = self.text(text)
        if filled is None:
            unset = [n for n in self._names(text) if self.values[n] is None]
            raise table.error(f"{key} uses argument {unset[0]!r}, which has no value (set it: {unset[0]}=…)")
        return filled


def _load_process(path: Path, number: int, data: Any, fill: _Placeholders) -> ProcessSpec:
    table = _Table(path, f"process #{number}: ", data)
    if not isinstance(data, dict):
        raise table.error(f"process must be a [[process]] table, got {data!r}")
    name = table.get("name", _NAME)
    table.where = f"process {name!r}: "
    table.check_keys(PROCESS_KEYS)
    ready = table.get("ready", _TEXT, None)
    if ready is None and "ready_timeout_s" in data:
        raise table.error("ready_timeout_s is set but ready is not")
    command = fill.command(table, list(table.get("command", _ARGV)))
    env = {k: fill.required(table, f"env {k}", v) for k, v in table.get("env", _ENV, {}).items()}
    cwd = table.get("cwd", _TEXT, None)
    if cwd is not None:
        written, cwd = cwd, path.resolve().parent / fill.required(table, "cwd", cwd)
        if not cwd.is_dir():
            raise table.error(f"cwd {written!r} is not a directory ({cwd})")
    return ProcessSpec(
        name=name,
        command=command,
        ready=ready,
        ready_timeout_s=float(table.get("ready_timeout_s", _SECONDS, DEFAULT_READY_TIMEOUT_S)),
        env=env,
        cwd=cwd,
        main=table.get("main", _BOOL, False),
    )


def load_launch(path: str | Path, arguments: dict[str, str] | None = None) -> LaunchSpec:
    """Read and fully check a launch file (format in the module docstring), with ``arguments`` (as
    given on the command line) set."""
    p = Path(path)
    try:
        data = read_toml(p, "launch file")
    except ConfigError as exc:
        raise LaunchError(str(exc)) from None
    top = _Table(p, "", data)
    top.check_keys(TOP_KEYS)
    description = top.get("description", _STRING, "")
    stop_timeout_s = float(top.get("stop_timeout_s", _SECONDS, DEFAULT_STOP_TIMEOUT_S))
    declared = _load_arguments(p, data.get("arguments", {}), dict(arguments or {}))
    tables = data.get("process")
    if not isinstance(tables, list) or not tables:
        raise top.error(f"process must be one or more [[process]] tables, got {tables!r}")
    fill = _Placeholders(p.resolve().parent, declared)
    processes = [_load_process(p, i + 1, t, fill) for i, t in enumerate(tables)]
    seen: set[str] = set()
    for proc in processes:
        if proc.name in seen:
            raise top.error(f"process {proc.name!r}: name {proc.name!r} is used twice")
        seen.add(proc.name)
    unused = [a.name for a in declared if a.name not in fill.used]
    if unused:
        raise top.error(f"[arguments]: {unused[0]!r} is declared but no command, cwd or env uses {{{unused[0]}}}")
    return LaunchSpec(p, processes, description, stop_timeout_s, declared)


# ---------------------------------------------------------------------- running
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
    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
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


def run_launch(path: str | Path, arguments: dict[str, str] | None = None, *, dry_run: bool = False) -> int:
    """Run a launch file with ``arguments`` (``NAME=VALUE`` from the command line, parsed by
    ``parse_arguments``) until it ends (see the module docstring) and return the exit status; with
    ``dry_run``, only check it and print the arguments and commands. A bad file raises ``LaunchError``."""
    spec = load_launch(path, arguments)
    if dry_run:
        _print_plan(spec)
        return 0
    return _Launcher(spec).run()
