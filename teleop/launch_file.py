"""The launch file of ``telesurg launch FILE [NAME=VALUE ...]``: which processes to start, with
which arguments, checked whole before anything starts (the launcher is ``telesurg.teleop.launch``).

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
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurg.policies.config import ConfigError, read_toml
from telesurg.teleop.harness.process import telesurg_argv

DEFAULT_STOP_TIMEOUT_S = 5.0
DEFAULT_READY_TIMEOUT_S = 60.0
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
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
        """The command to run: a leading ``telesurg`` becomes this interpreter's ``-m telesurg.teleop.cli``."""
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
