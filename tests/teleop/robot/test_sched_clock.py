"""``telesurg.teleop.robot.realtime.SchedClock``: the loop's own CPU time, exact to the moment it is read (a stall
record compares it with wall time over a few milliseconds), and its run-queue wait."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from telesurg.teleop.robot.realtime import SchedClock


def test_the_cpu_time_is_the_threads_own_to_the_moment_it_is_read() -> None:
    clock = SchedClock()
    for _ in range(200):
        sum(range(5000))  # some work between readings, never a whole scheduler tick
        before = time.thread_time()
        cpu, _ = clock.read()
        after = time.thread_time()
        assert before <= cpu <= after, (before, cpu, after)
    clock.close()


def test_the_wait_counts_time_runnable_behind_another_process_on_the_same_cpu() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    hog = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        time.sleep(0.2)  # the hog is spinning on that CPU
        result: dict[str, float] = {}

        def measured() -> None:
            os.sched_setaffinity(0, {cpu})
            clock = SchedClock()
            _, waited0 = clock.read()
            end = time.monotonic() + 0.3
            while time.monotonic() < end:  # runnable all along, sharing the CPU with the hog
                pass
            result["waited_s"] = clock.read()[1] - waited0
            clock.close()

        thread = threading.Thread(target=measured)
        thread.start()
        thread.join()
    finally:
        hog.kill()
        hog.wait()
    # Two busy processes on one CPU take turns: the measured thread waits about half the 0.3 s.
    assert result["waited_s"] > 0.05, result
