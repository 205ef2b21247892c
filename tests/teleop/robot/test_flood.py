"""Many connections cannot starve the surgeon: under a flood of commands from other connections the
owner's commands still reach the supervisor (issue 15). bench/command_latency.py measures the same
with 1–200 flooding processes; this test holds the behaviour with one process of many connections."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from telesurg.teleop.wire import protocol as p

pytestmark = pytest.mark.slow

#: A process holding ``n`` connections to the robot's ``kind`` socket, each flooding as fast as it can
#: (cmd: valid commands, each connection its own session; control: hellos and pings, replies read and
#: dropped) until stdin closes; prints "ready" once every connection is made, then how many it sent.
FLOODER = textwrap.dedent(
    """
    import os, select, sys, time, zmq
    from telesurg.teleop.wire import protocol as p
    os.nice(19)  # lowest priority: it must not starve the test's own console on these shared cores
    kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = zmq.Context()
    socks = []
    for i in range(n):
        s = ctx.socket(zmq.PUB if kind == "cmd" else zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(url)
        socks.append(s)
    if kind == "cmd":
        pose = p.Pose((0.0, -0.3, 0.0))
        cmds = [p.Command(arm="psm1", session=f"flood-{i}", seq=1, sent_console_s=0.0, target=pose) for i in range(n)]
        msgs = [p.encode(c) for c in cmds]
    else:
        msgs = [p.encode(p.Hello(client="flood")), p.encode(p.Ping(t1_console_s=1.0))]
    time.sleep(0.5)
    print("ready", flush=True)
    sent = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        for i, s in enumerate(socks):
            try:
                s.send(msgs[i] if kind == "cmd" else msgs[sent % 2], zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
            while kind == "control" and s.poll(0):
                s.recv()
    print(sent, flush=True)
    """
)


def _flood(kind: str, url: str, n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOODER, kind, url, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen[str]) -> int:
    """Stop a flooder; how many messages it sent."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    out = proc.stdout.read()
    proc.wait(timeout=20)
    return int(out.strip().splitlines()[-1])


def test_the_owners_commands_reach_the_supervisor_under_a_flood_of_connections(robot, client):
    r = robot(record=False)
    c = client(r.endpoints, "owner")
    c.connect()
    start = np.asarray(c.telemetry().tool.pos_m)
    flood = _flood("cmd", r.endpoints.url("cmd"), 100)
    try:
        assert c.engage().ok  # the owner engages while the flood is on (its control requests still pass)
        before = c.telemetry().counters
        states: set[str] = set()
        sent = 0
        target = start + np.array([0.004, 0.0, 0.0])
        t0 = time.monotonic()
        # 2 s at 100 Hz: 4 mm out, well under the speed limit, while 100 connections flood.
        while (t := time.monotonic() - t0) < 2.0:
            c.link.ping()
            c.link.poll_control()
            if c.link.poll_telemetry() is not None:
                states.add(f"{c.link.telemetry.state} {c.link.telemetry.reason}".strip())
            c.command(tuple(start + (target - start) * min(1.0, t / 1.5)))
            sent += 1
            time.sleep(0.01)
        tel = c.telemetry()
    finally:
        flooded = _stop(flood)
    accepted = tel.counters.get("cmd.accepted", 0) - before.get("cmd.accepted", 0)
    assert flooded > 10_000, flooded  # the flood was real
    assert tel.counters.get("cmd.unjudged", 0) > 1000, tel.counters
    # Every command the owner sent was judged and accepted (a few may be conflated on the way, when
    # two arrive within one period); today's loop gave it about 1/(N+1) of the reads.
    assert accepted >= 0.95 * sent, (accepted, sent)
    assert all(s.startswith("ENGAGED") for s in states), states  # never a watchdog hold
    assert np.linalg.norm(np.asarray(tel.tool.pos_m) - target) < 0.001


def test_the_owners_requests_get_through_a_flood_of_control_connections(robot, client):
    r = robot(record=False)
    flood = _flood("control", r.endpoints.url("control"), 100)
    try:
        time.sleep(0.5)  # the flood is on
        c = client(r.endpoints, "owner")
        t0 = time.monotonic()
        c.connect()  # hello and three clock exchanges
        t_connect = time.monotonic() - t0
        t0 = time.monotonic()
        assert c.engage().ok
        t_engage = time.monotonic() - t0
        start = np.asarray(c.telemetry().tool.pos_m)
        c.drive(tuple(start), 0.5)
        t0 = time.monotonic()
        ack = c.link.request(p.EStop(reason="flooded"))
        t_estop = time.monotonic() - t0
        tel = c.wait_for(lambda t: t.state == "ESTOP")
    finally:
        flooded = _stop(flood)
    assert flooded > 5_000, flooded
    assert tel.counters.get("control.busy", 0) > 100, tel.counters  # the flood was shed, answered busy
    assert ack.ok
    # Generous windows (the bench measures these against 50 ms): a flood answered in arrival order
    # kept the owner waiting behind every flooding connection.
    assert t_engage < 0.5 and t_estop < 0.5, (t_connect, t_engage, t_estop)
    assert t_connect < 2.0, t_connect
