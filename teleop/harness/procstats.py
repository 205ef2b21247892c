"""What a process costs the host, read from Linux's ``/proc``: resident memory, open file
descriptors, CPU time, its child processes and what they run. A process that is gone reads as None (a soak
samples processes that may exit between listing and reading)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

#: Clock ticks per second of /proc/<pid>/stat's CPU times.
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """One process at one moment: resident set (bytes, ``VmRSS``), open file descriptors and CPU
    time used so far (s, user + system, all its threads)."""

    pid: int
    rss_bytes: int
    fds: int
    cpu_s: float


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (bytes; ``VmRSS`` in /proc/<pid>/status), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
    except (OSError, ValueError):
        return None
    return None  # a zombie has no VmRSS


def open_fds(pid: int) -> int | None:
    """Open file descriptors of ``pid`` (entries of /proc/<pid>/fd), None when unreadable or gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` (all its threads, s), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces: fields from 3 (state) on
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def sample(pid: int) -> ProcessSample | None:
    rss, fds, cpu = rss_bytes(pid), open_fds(pid), cpu_s(pid)
    if rss is None or fds is None or cpu is None:
        return None
    return ProcessSample(pid, rss, fds, cpu)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from /proc/<pid>/task/*/children, else by scanning ppids)."""
    kids: list[int] = []
    tasks = list(Path(f"/proc/{pid}/task").glob("*/children"))
    if tasks:
        for path in tasks:
            with contextlib.suppress(OSError):
                kids += [int(v) for v in path.read_text().split()]
        return sorted(set(kids))
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return sorted(kids)


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, … of ``pid``, parents before their children."""
    out: list[int] = []
    todo = children(pid)
    while todo:
        kid = todo.pop(0)
        out.append(kid)
        todo += children(kid)
    return out


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with spaces between the arguments ("" when gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def executable(pid: int) -> str:
    """The program ``pid`` runs (/proc/<pid>/exe), "" when gone or not ours to read."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2 :].split()[0] != "Z"
