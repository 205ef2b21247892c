"""The robot's recording in its own process (``ProcessRecorder``) and the real-time helpers around the
loop: the host probe and ``enter_realtime``. Real processes, real pipes, real files."""

from __future__ import annotations

import gc
import mmap
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader

from telesurg.teleop.harness.hostprobe import ProbeConfig, read_gaps
from telesurg.teleop.harness.hostprobe import run as run_probe
from telesurg.teleop.harness.runner import PROBE_COMMAND
from telesurg.teleop.robot.reader import read
from telesurg.teleop.robot.realtime import ThreadUsage
from telesurg.teleop.robot.recorder_process import ProcessRecorder
from telesurg.teleop.robot.records import EventRecord

REPO = Path(__file__).resolve().parents[3]


def Tick(n: int, text: str = "") -> EventRecord:
    """A record the recorder process can import (a type defined in a test module could not be)."""
    return EventRecord(robot_s=float(n), previous="", state="", reason=text)


def test_every_write_arrives_in_order_on_its_channel(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    rec = ProcessRecorder(path, {"/a": EventRecord, "/b": EventRecord}, flush_interval_s=0.1)
    assert rec.pid is not None and rec.pid != os.getpid()
    for n in range(3000):
        rec.write(rec.channel_ids["/a" if n % 3 else "/b"], Tick(n, "x" * (n % 50)), n)
    rec.close()
    got = list(read(path))
    assert [int(m.data["robot_s"]) for m in got] == list(range(3000))
    assert {m.topic for m in got if int(m.data["robot_s"]) % 3 == 0} == {"/b"}
    # A complete file: the upstream reader finds its summary.
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics is not None and summary.statistics.message_count == 3000


def test_an_existing_file_is_refused_in_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="exists"):
        ProcessRecorder(path, {"/a": EventRecord})
    assert path.read_bytes() == b"keep me"


def test_writes_never_block_while_the_recorder_is_stopped_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    rec = ProcessRecorder(path, {"/a": EventRecord}, flush_interval_s=0.1)
    assert rec.pid is not None
    os.kill(rec.pid, signal.SIGSTOP)  # the recorder falls behind: the pipe fills
    gc.disable()  # what is measured is the write path, not this test process's garbage collection
    try:
        worst_s = 0.0
        for n in range(20000):  # ~2 MB, more than the pipe holds
            t0 = time.perf_counter()
            rec.write(rec.channel_ids["/a"], Tick(n, "y" * 80), n)
            worst_s = max(worst_s, time.perf_counter() - t0)
        assert rec.backlog_peak_bytes > 0  # it did fall behind …
        assert worst_s < 0.05  # … and no write waited for it
    finally:
        gc.enable()
        os.kill(rec.pid, signal.SIGCONT)
    rec.close()
    assert [int(m.data["robot_s"]) for m in read(path)] == list(range(20000))


def test_a_killed_server_leaves_a_complete_file(tmp_path: Path) -> None:
    # The server process is SIGKILLed mid-recording: the recorder reads the rest of the pipe and
    # closes the file with its summary, so nothing that was written is lost.
    path = tmp_path / "r.mcap"
    script = textwrap.dedent(
        f"""
        import time
        from telesurg.teleop.robot.recorder_process import ProcessRecorder
        from telesurg.teleop.robot.records import EventRecord
        if __name__ == "__main__":
            rec = ProcessRecorder({str(path)!r}, {{"/a": EventRecord}}, flush_interval_s=10.0)
            for n in range(5000):
                rec.write(rec.channel_ids["/a"], EventRecord(float(n), "", "", ""), n)
            print("written", flush=True)
            time.sleep(60)
        """
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert server.stdout is not None and server.stdout.readline().strip() == "written"
    server.kill()
    server.wait(10)
    deadline = time.monotonic() + 20
    summary = None
    while time.monotonic() < deadline and summary is None:
        time.sleep(0.2)
        with path.open("rb") as f:
            try:
                summary = make_reader(f).get_summary()
            except Exception:
                summary = None
    assert summary is not None and summary.statistics is not None
    assert summary.statistics.message_count == 5000


def test_the_recorder_ignores_ctrl_c_and_ends_with_the_pipe(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    rec = ProcessRecorder(path, {"/a": EventRecord}, flush_interval_s=0.1)
    assert rec.pid is not None
    rec.write(rec.channel_ids["/a"], Tick(1), 1)
    os.kill(rec.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    time.sleep(0.3)
    rec.write(rec.channel_ids["/a"], Tick(2), 2)
    rec.close()
    assert [int(m.data["robot_s"]) for m in read(path)] == [1, 2]


def test_the_host_probe_records_a_gap_it_was_kept_from_running(tmp_path: Path) -> None:
    # SIGSTOP the probe for 200 ms: from its point of view the host did not schedule it.
    out = tmp_path / "probe.jsonl"
    proc = subprocess.Popen([*PROBE_COMMAND, "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and b"running" in proc.stdout.readline()
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    gaps, totals = read_gaps(out)
    assert totals["wakes"] > 300
    longest = max(gaps, key=lambda g: g.gap_s)
    assert 0.15 <= longest.gap_s <= 0.5 and abs(longest.start_s - stopped) < 0.05
    assert longest.queued_s < 0.01 and longest.host_s > 0.14  # stopped, not queued: host-like


def test_the_probe_stops_and_writes_its_totals(tmp_path: Path) -> None:
    out = tmp_path / "probe.jsonl"
    end = time.monotonic() + 0.2
    totals = run_probe(ProbeConfig(out, period_s=0.001), stop=lambda: time.monotonic() > end)
    assert totals["wakes"] >= 100
    assert read_gaps(out)[1]["wakes"] == totals["wakes"]


def test_enter_realtime_reports_what_it_was_granted() -> None:
    # In a child, so this test process keeps its scheduling and memory as they were.
    script = textwrap.dedent(
        """
        import os
        from telesurg.teleop.robot.realtime import enter_realtime
        r = enter_realtime(priority=5, cpu=max(os.sched_getaffinity(0)), lock_memory=True)
        print(r.priority, r.cpu, r.memory_locked, sorted(os.sched_getaffinity(0)), *r.refused, sep="|")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    priority, cpu, locked, affinity, *refused = out.stdout.strip().split("|")
    assert affinity == f"[{cpu}]"  # pinned
    if os.geteuid() == 0:  # root may do all of it
        assert priority == "5" and locked == "True" and refused == []
    else:
        assert priority in ("5", "0") and (priority == "5" or any("SCHED_RR" in r for r in refused))


def test_thread_usage_counts_page_faults() -> None:
    before = ThreadUsage.now()
    with mmap.mmap(-1, 8 << 20) as block:  # a fresh mapping: each page faults in when first touched
        for i in range(0, len(block), mmap.PAGESIZE):
            block[i] = 1
    assert ThreadUsage.now().since(before)["minor_faults"] >= (8 << 20) // mmap.PAGESIZE


def test_the_probe_tells_time_queued_in_the_guest_from_time_the_cpu_was_gone(tmp_path: Path) -> None:
    # Another busy process on the probe's CPU keeps it queued in the guest (its run delay grows): not
    # the host's. A SIGSTOP (the previous test) leaves it off the run queue: its gap is all host-like.
    cpu = min(os.sched_getaffinity(0))
    out = tmp_path / "probe.jsonl"
    # The probe at the lowest priority: the hog keeps it queued for most of the second, so the
    # guest's share dwarfs whatever the host takes meanwhile.
    probe = subprocess.Popen(
        [*PROBE_COMMAND, "--out", str(out), "--cpu", str(cpu), "--min-gap", "0.0003"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.nice(19),
    )
    hog = None
    try:
        assert probe.stdout is not None and b"running" in probe.stdout.readline()
        burn = (
            f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\n"
            "end = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass"
        )
        hog = subprocess.Popen([sys.executable, "-c", burn])
        hog.wait(20)
        time.sleep(0.2)
    finally:
        probe.send_signal(signal.SIGINT)
        probe.wait(10)
        if hog is not None and hog.poll() is None:
            hog.kill()
    gaps, _ = read_gaps(out)
    queued = [g for g in gaps if g.gap_s > 0.0005]
    assert queued, "the busy process never delayed the probe"
    # Most of the time it lost was queued time (a host stall during the second may add some of its own).
    total_gap, total_queued = sum(g.gap_s for g in queued), sum(g.queued_s for g in queued)
    assert total_queued >= 0.8 * total_gap, (total_queued, total_gap)
