"""A minimal telesurg client written from README's "Wire protocol" section alone: plain pyzmq and
msgpack, nothing of telesurg. It says hello, completes a clock exchange, engages, moves the tool
2 cm along +x and back, and disengages; it prints one JSON line with what it saw and exits 0, or
prints the step that failed and exits 1.

    python tests/conformance_client.py HOST CMD_PORT TELEMETRY_PORT CONTROL_PORT
"""

from __future__ import annotations

import json
import sys
import time

import msgpack
import zmq

V = 1  # the protocol version
STREAM_HZ = 100  # ≥ 10 Hz even when still: the robot holds after 100 ms without a valid command
PING_EVERY_S = 0.1
SPEED_M_S = 0.02  # under the robot's 0.1 m/s limit


def main(host: str, cmd_port: int, telemetry_port: int, control_port: int) -> dict:
    ctx = zmq.Context()
    control = ctx.socket(zmq.DEALER)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(f"tcp://{host}:{control_port}")
    telemetry = ctx.socket(zmq.SUB)
    telemetry.setsockopt(zmq.SUBSCRIBE, b"")
    telemetry.connect(f"tcp://{host}:{telemetry_port}")
    cmd = ctx.socket(zmq.PUB)
    cmd.setsockopt(zmq.CONFLATE, 1)
    cmd.setsockopt(zmq.LINGER, 0)
    cmd.connect(f"tcp://{host}:{cmd_port}")
    pending: list[dict] = []  # responses come in order, one per request

    def send(message: dict) -> None:
        control.send(msgpack.packb(message))  # msgpack str for strings (use_bin_type default)

    def receive(timeout_s: float = 3.0) -> dict:
        if not control.poll(int(timeout_s * 1000)):
            raise RuntimeError("no response")
        return msgpack.unpackb(control.recv())

    def request(message: dict) -> dict:
        send(message)
        while True:
            reply = receive()
            if reply["type"] != "pong" or message["type"] == "ping":
                return reply
            pending.append(reply)  # a pong of a ping sent while streaming

    def newest_telemetry(timeout_s: float = 3.0) -> dict:
        deadline = time.monotonic() + timeout_s
        newest = None
        while newest is None or telemetry.poll(0):
            if not telemetry.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                if newest is not None:
                    break
                raise RuntimeError("no telemetry")
            newest = msgpack.unpackb(telemetry.recv())
        return newest

    welcome = request({"type": "hello", "v": V, "client": "conformance", "protocol": V})
    if welcome["type"] != "welcome":
        raise RuntimeError(f"hello: {welcome}")
    arm = welcome["arms"][0]

    # Clock sync: a ping, then a second one carrying the first's t1 and the time its pong arrived (t4).
    previous: tuple[float, float] | None = None
    for _ in range(3):
        t1 = time.monotonic()
        ping = {"type": "ping", "v": V, "t1_console_s": t1}
        if previous is not None:
            ping["prev_t1_console_s"], ping["prev_t4_console_s"] = previous
        pong = request(ping)
        if pong["type"] != "pong" or pong["t1_console_s"] != t1:
            raise RuntimeError(f"ping: {pong}")
        previous = (t1, time.monotonic())

    ack = request({"type": "engage", "v": V, "arm": arm, "client": "conformance"})
    if not ack["ok"]:
        raise RuntimeError(f"engage: {ack['reason']}")
    session = ack["session"]
    start = newest_telemetry()["tool"]["pos_m"]
    time.sleep(0.3)  # a PUB socket drops what it sends before its connection is up

    seq = 0
    last_ping = 0.0
    farthest = 0.0

    def stream(target_x: float, seconds: float) -> None:
        nonlocal seq, last_ping, farthest, previous
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            if now - last_ping >= PING_EVERY_S:  # keeps the clock sync (and the session) fresh
                ping = {"type": "ping", "v": V, "t1_console_s": now}
                if previous is not None:
                    ping["prev_t1_console_s"], ping["prev_t4_console_s"] = previous
                send(ping)
                last_ping = now
            while control.poll(0):
                reply = msgpack.unpackb(control.recv())
                if reply["type"] == "pong":
                    previous = (reply["t1_console_s"], time.monotonic())
            seq += 1
            command = {
                "type": "cmd",
                "v": V,
                "arm": arm,
                "session": session,
                "seq": seq,
                "sent_console_s": time.monotonic(),
                "target": {"pos_m": [target_x, start[1], start[2]]},  # quat_xyzw is optional
                "jaw": 0.0,
                "clutch": True,
            }
            cmd.send(msgpack.packb(command))
            while telemetry.poll(0):
                tel = msgpack.unpackb(telemetry.recv())
                farthest = max(farthest, tel["tool"]["pos_m"][0] - start[0])
            time.sleep(1.0 / STREAM_HZ)

    steps = 20
    for i in range(1, steps + 1):  # out along +x at SPEED_M_S
        stream(start[0] + 0.02 * i / steps, 0.02 / SPEED_M_S / steps)
    stream(start[0] + 0.02, 0.5)
    out_tip = newest_telemetry()["tool"]["pos_m"]
    for i in range(steps - 1, -1, -1):
        stream(start[0] + 0.02 * i / steps, 0.02 / SPEED_M_S / steps)
    stream(start[0], 0.5)
    back_tip = newest_telemetry()["tool"]["pos_m"]
    state = newest_telemetry()["state"]
    bye = request({"type": "disengage", "v": V, "session": session})
    if not bye["ok"]:
        raise RuntimeError(f"disengage: {bye['reason']}")
    ctx.destroy(linger=0)
    return {
        "start": start,
        "out": out_tip,
        "back": back_tip,
        "farthest_x_m": farthest,
        "state_while_engaged": state,
        "commands": seq,
        "workspace_m": welcome.get("workspace_m"),
    }


if __name__ == "__main__":
    try:
        result = main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    except (RuntimeError, KeyError, IndexError) as exc:
        print(f"conformance client failed: {exc}")
        sys.exit(1)
    print(json.dumps(result))
