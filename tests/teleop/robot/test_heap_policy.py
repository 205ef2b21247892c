"""The media process's heap policy (``telesurg.teleop.robot.realtime.give_back_freed_memory``): memory a dropped
peer's encoder freed goes back to the OS, so a process whose peers come and go for hours does not
keep what each one used. Each case runs in a fresh interpreter: the heap is per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import ctypes, ctypes.util, sys
from telesurg.teleop.robot.realtime import give_back_freed_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_bytes():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
kept_alive = []
def encoder_lifetime():  # about one video encoder's buffers: made, used, dropped
    blocks = []
    for _ in range(16):
        blocks.append(libc.malloc(1 << 20))
        ctypes.memset(blocks[-1], 1, 1 << 20)
        kept_alive.append(libc.malloc(200 << 10))  # allocated meanwhile and kept (by the next peer, say)
    for block in blocks:
        libc.free(block)
encoder_lifetime()  # the first frees raise glibc's mmap threshold: from now on the heap serves them
before = rss_bytes()
encoder_lifetime()
if sys.argv[1] == "policy":
    give_back_freed_memory()
print(rss_bytes() - before)
"""


def _kept_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.strip())


@pytest.mark.parametrize("mode", ["policy", "glibc alone"])
def test_a_dropped_encoders_memory_goes_back_to_the_os_only_under_the_policy(mode: str) -> None:
    kept = _kept_bytes(mode)
    if mode == "policy":
        assert kept < 2 << 20, f"{kept / 2**20:.1f} MiB kept after the peer went"
    else:  # the control: glibc alone keeps it (so the case above shows the policy, not luck)
        assert kept >= 12 << 20, f"only {kept / 2**20:.1f} MiB kept: the control no longer shows the problem"
