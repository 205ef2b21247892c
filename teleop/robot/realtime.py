"""Putting a control loop's thread on a real-time footing, and measuring what it then suffers.

``enter_realtime`` does what a real-time engineer does for a loop thread, each step where the OS
permits it and reported either way: SCHED_RR priority, a CPU of its own (affinity), all memory
locked (``mlockall``: no page is swapped or reclaimed, and new mappings are populated at once), the
C heap kept (``mallopt``: freed memory is never returned to the OS and large blocks come from the
heap, not from fresh ``mmap`` calls — with memory locked, each fresh 32 MiB block cost the loop 8192
page faults, 15 ms, every time a library allocated and freed one), a few MiB of heap touched in
advance, and the kernel's timer slack at its minimum (for a normal-priority fallback; real-time
threads have none).
``ThreadUsage`` reads the thread's own page faults and context switches, so a run can say whether
the loop faulted or was preempted.
``give_back_freed_memory`` is the opposite heap policy, for a long-running process that is not a
control loop (the media process): the free memory in the C heaps goes back to the OS on request.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("telesurg.realtime")

_MCL_CURRENT, _MCL_FUTURE = 1, 2
_PR_SET_TIMERSLACK = 29
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: Heap touched in advance once memory is locked (B).
PREFAULT_HEAP_BYTES = 64 << 20


@dataclass
class RealtimeReport:
    """What ``enter_realtime`` was granted (and why not, where it was not)."""

    priority: int = 0
    cpu: int | None = None
    memory_locked: bool = False
    timer_slack_ns: int | None = None
    refused: list[str] = field(default_factory=list)

    @property
    def realtime(self) -> bool:
        return self.priority > 0


def realtime_permitted(priority: int) -> bool:
    """Whether a thread of this process may take SCHED_RR ``priority`` (tried on a throwaway thread,
    so the caller's own scheduling is untouched)."""
    granted: list[bool] = []

    def _try() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
            granted.append(True)
        except (AttributeError, OSError):
            granted.append(False)

    thread = threading.Thread(target=_try, name="realtime-permission")
    thread.start()
    thread.join()
    return bool(granted and granted[0])


def realtime_io_threads(context: Any, priority: int) -> bool:
    """Give a ZeroMQ context's I/O threads SCHED_RR ``priority`` (set before its first socket): the
    loop's sockets hand work to those threads under a lock, and a normal-priority I/O thread preempted
    on a busy CPU while holding it kept the loop waiting tens of milliseconds (priority inversion).
    Only where permitted: libzmq aborts the process if the OS refuses it."""
    import zmq

    if not realtime_permitted(priority):
        return False
    context.set(zmq.THREAD_SCHED_POLICY, os.SCHED_RR)
    context.set(zmq.THREAD_PRIORITY, priority)
    return True


def other_cpus(cpu: int) -> set[int]:
    """The CPUs this process may use, less ``cpu`` (all of them if that leaves none)."""
    cpus = os.sched_getaffinity(0)
    return (cpus - {cpu}) or cpus


def enter_realtime(priority: int = 10, cpu: int | None = None, lock_memory: bool = True) -> RealtimeReport:
    """Make the calling thread a real-time loop thread (see the module docstring); never raises."""
    report = RealtimeReport()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})  # pid 0: this thread only
            report.cpu = cpu
        except OSError as exc:
            report.refused.append(f"CPU {cpu} ({exc})")
    if libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0:
        report.timer_slack_ns = 1
    if lock_memory:
        # glibc: never give freed heap back, never serve a block by mmap (each would be faulted in).
        libc.mallopt(_M_TRIM_THRESHOLD, -1)
        libc.mallopt(_M_MMAP_MAX, 0)
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) == 0:
            report.memory_locked = True
            _prefault_heap(libc)
        else:
            report.refused.append(f"mlockall ({os.strerror(ctypes.get_errno())})")
    if priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
            report.priority = priority
        except (AttributeError, OSError) as exc:
            report.refused.append(f"SCHED_RR ({exc})")
    return report


def give_back_freed_memory() -> bool:
    """Return the free memory of every C heap (arena) of this process to the OS (``malloc_trim``);
    whether any was. glibc keeps what is freed inside its heaps: after raising its ``mmap``
    threshold once a large block is freed, it serves even ~1 MiB blocks (video frames, a video
    encoder's ~20 MiB of buffers) from its per-thread arenas, where freed memory stays. A media
    process whose peers come and go calls this when one goes (it costs a walk of the heaps, a few
    milliseconds, never anything per frame; serving large blocks by ``mmap`` instead cost the media
    process 13% of a CPU in page faults)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return bool(libc.malloc_trim(0))


def _prefault_heap(libc: ctypes.CDLL) -> None:
    """Grow the heap once by ``PREFAULT_HEAP_BYTES`` (populated now, as memory is locked) and free
    it: with trimming off it stays, so the loop's later allocations find it ready."""
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(PREFAULT_HEAP_BYTES)
    if block:
        ctypes.memset(block, 0, PREFAULT_HEAP_BYTES)
        libc.free(block)


class SchedClock:
    """The calling thread's CPU time and run-queue wait so far (s). The CPU time is its thread clock
    (``CLOCK_THREAD_CPUTIME_ID``: exact to the moment it is read; schedstat's own figure moves only at
    scheduler ticks and switches, 4 ms apart here); on a paravirtualised guest with steal-time
    accounting it leaves out the time the hypervisor held the CPU. The wait is time spent runnable
    but not running, from ``/proc/thread-self/schedstat`` (opened once by that thread; one ``pread``
    a reading, a few µs; 0 where the file does not exist). Only the thread that made the clock may
    read it."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> tuple[float, float]:
        """(CPU time, run-queue wait) of the thread that made this clock, so far (s)."""
        if self._fd is None:
            return time.thread_time(), 0.0
        return time.thread_time(), int(os.pread(self._fd, 128, 0).split()[1]) / 1e9

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class ThreadUsage:
    """The calling thread's page faults and context switches so far (``getrusage(RUSAGE_THREAD)``)."""

    minor_faults: int
    major_faults: int
    voluntary_switches: int
    involuntary_switches: int

    @classmethod
    def now(cls) -> ThreadUsage:
        who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
        with contextlib.suppress(OSError):
            r = resource.getrusage(who)
            return cls(r.ru_minflt, r.ru_majflt, r.ru_nvcsw, r.ru_nivcsw)
        return cls(0, 0, 0, 0)

    def since(self, earlier: ThreadUsage) -> dict[str, int]:
        return {
            "minor_faults": self.minor_faults - earlier.minor_faults,
            "major_faults": self.major_faults - earlier.major_faults,
            "voluntary_switches": self.voluntary_switches - earlier.voluntary_switches,
            "involuntary_switches": self.involuntary_switches - earlier.involuntary_switches,
        }
