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

from teleop import protocol as p

pytestmark = pytest.mark.slow

#: A process holding ``n`` command connections, each sending valid commands of its own session as fast
#: as it can (round robin), until stdin closes; prints "ready" once every connection is made.
FLOODER = textwrap.dedent(
    """
    import sys, time, zmq
    from teleop import protocol as p
    url, n = sys.argv[1], int(sys.argv[2])
    ctx = zmq.Context()
    socks = []
    for i in range(n):
        s = ctx.socket(zmq.PUB)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(url)
        socks.append(s)
    msgs = [
        p.encode(p.Command(arm="psm1", session=f"flood-{i}", seq=1, sent_console_s=0.0, target=p.Pose((0, -0.3, 0))))
        for i in range(n)
    ]
    time.sleep(0.5)
    print("ready", flush=True)
    import select
    sent = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        for s, m in zip(socks, msgs):
            s.send(m, zmq.NOBLOCK)
        sent += n
    print(sent, flush=True)
    """
)


def test_the_owners_commands_reach_the_supervisor_under_a_flood_of_connections(robot, client):
    r = robot(record=False)
    c = client(r.endpoints, "owner")
    c.connect()
    start = np.asarray(c.telemetry().tool.pos_m)
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOODER, r.endpoints.url("cmd"), "100"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
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
        assert flood.stdin is not None and flood.stdout is not None
        flood.stdin.close()
        out = flood.stdout.read()
        flood.wait(timeout=20)
    flooded = int(out.strip().splitlines()[-1])
    accepted = tel.counters.get("cmd.accepted", 0) - before.get("cmd.accepted", 0)
    assert flooded > 10_000, flooded  # the flood was real
    assert tel.counters.get("cmd.unjudged", 0) > 1000, tel.counters
    # Every command the owner sent was judged and accepted (a few may be conflated on the way, when
    # two arrive within one period); today's loop gave it about 1/(N+1) of the reads.
    assert accepted >= 0.95 * sent, (accepted, sent)
    assert all(s.startswith("ENGAGED") for s in states), states  # never a watchdog hold
    assert np.linalg.norm(np.asarray(tel.tool.pos_m) - target) < 0.001


#: A process holding ``n`` control connections, each sending hellos and pings as fast as it can
#: (replies read and thrown away), until stdin closes.
CONTROL_FLOODER = textwrap.dedent(
    """
    import select, sys, time, zmq
    from teleop import protocol as p
    url, n = sys.argv[1], int(sys.argv[2])
    ctx = zmq.Context()
    socks = []
    for i in range(n):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(url)
        socks.append(s)
    msgs = [p.encode(p.Hello(client="flood")), p.encode(p.Ping(t1_console_s=1.0))]
    time.sleep(0.5)
    print("ready", flush=True)
    sent = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        for s in socks:
            try:
                s.send(msgs[sent % 2], zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
            try:
                while True:
                    s.recv(zmq.NOBLOCK)
            except zmq.Again:
                pass
    print(sent, flush=True)
    """
)


def test_the_owners_requests_get_through_a_flood_of_control_connections(robot, client):
    r = robot(record=False)
    flood = subprocess.Popen(
        [sys.executable, "-c", CONTROL_FLOODER, r.endpoints.url("control"), "100"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
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
        assert flood.stdin is not None and flood.stdout is not None
        flood.stdin.close()
        out = flood.stdout.read()
        flood.wait(timeout=20)
    flooded = int(out.strip().splitlines()[-1])
    assert flooded > 5_000, flooded
    assert tel.counters.get("control.busy", 0) > 100, tel.counters  # the flood was shed, answered busy
    assert ack.ok
    # Generous windows (the bench measures these against 50 ms): a flood answered in arrival order
    # kept the owner waiting behind every flooding connection.
    assert t_engage < 0.5 and t_estop < 0.5, (t_connect, t_engage, t_estop)
    assert t_connect < 2.0, t_connect
