"""The media process's heap policy (``teleop.realtime.give_back_large_blocks``): a large block that is
freed goes back to the OS every time, so a process whose peers (and their encoders) come and go does
not keep what the last one used. Each case runs in a fresh interpreter: the policy is per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import ctypes, ctypes.util, sys
from teleop.realtime import give_back_large_blocks
if sys.argv[1] == "policy":
    assert give_back_large_blocks()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_bytes():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
block_bytes = 16 << 20  # about one video encoder's buffers
before = rss_bytes()
for _ in range(3):  # an encoder made, used and dropped, three times
    block = libc.malloc(block_bytes)
    ctypes.memset(block, 1, block_bytes)
    libc.free(block)
print(rss_bytes() - before)
"""


def _kept_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.strip())


@pytest.mark.parametrize("mode", ["policy", "glibc default"])
def test_a_freed_large_block_goes_back_to_the_os_only_under_the_policy(mode: str) -> None:
    kept = _kept_bytes(mode)
    if mode == "policy":
        assert kept < 2 << 20, f"{kept / 2**20:.1f} MiB kept after freeing"
    else:  # the control: glibc's own threshold rises after the first free and keeps the next block
        assert kept >= 12 << 20, f"only {kept / 2**20:.1f} MiB kept: the control no longer shows the problem"
