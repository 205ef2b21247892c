"""A client written from README's wire-protocol section alone (``tests/conformance_client.py``:
plain pyzmq + msgpack, nothing of telesurg) drives a real robot server: hello, clock sync, engage,
a 2 cm move and back, disengage. And the published JSON Schema is the protocol's own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from telesurg.teleop.wire import protocol as p

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / "tests" / "conformance_client.py"


def test_the_client_imports_nothing_of_telesurg() -> None:
    imported = set()
    for node in ast.walk(ast.parse(CLIENT.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "json", "sys", "time", "msgpack", "zmq"}, imported


@pytest.mark.slow
def test_a_client_from_the_readme_alone_drives_the_arm_2_cm_and_back(robot) -> None:
    r = robot()
    e = r.endpoints
    out = subprocess.run(
        [sys.executable, str(CLIENT), e.host, str(e.cmd_port), str(e.telemetry_port), str(e.control_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    start, there, back = (np.asarray(seen[k]) for k in ("start", "out", "back"))
    assert np.linalg.norm(there - (start + np.array([0.02, 0.0, 0.0]))) < 0.002, seen
    assert np.linalg.norm(back - start) < 0.002, seen
    assert seen["state_while_engaged"] == "ENGAGED"
    low, high = (np.asarray(c) for c in seen["workspace_m"])  # the box the supervisor clamps to
    assert np.all(low <= start) and np.all(start <= high)


def test_the_published_schema_is_the_protocols_own() -> None:
    published = json.loads((REPO / "docs" / "protocol.schema.json").read_text())
    fix = "run: telesurg protocol --schema docs/protocol.schema.json"
    assert published == json.loads(json.dumps(p.json_schema())), fix


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"t1_console_s": 1}, True),  # a float field takes an integer
        ({"t1_console_s": "1.0"}, False),
        ({"t1_console_s": 1.0, "v": 1.0}, False),  # an integer field does not take a float
        ({"t1_console_s": 1.0, "prev_t1_console_s": None, "prev_t4_console_s": None}, True),
    ],
)
def test_the_documented_type_rules_hold_for_ping(fields: dict, ok: bool) -> None:
    import msgspec

    data = msgspec.msgpack.encode({"type": "ping", **fields})
    if ok:
        p.decode(data, p.Request)
    else:
        with pytest.raises(p.ProtocolError):
            p.decode(data, p.Request)


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"v": 1}, True),
        ({"clutch": 1}, False),  # booleans are msgpack booleans, not 0/1
        ({"seq": 2**63 - 1}, True),
        ({"seq": 2**63}, False),
        ({"session": b"1-abcdef01"}, False),  # strings are msgpack str, not bin
        ({"target": {"pos_m": [0.0, -0.3, -0.06], "quat_xyzw": [0.0, 0.0, 0.0, 1.0]}}, True),
    ],
)
def test_the_documented_type_rules_hold_for_commands(change: dict, ok: bool) -> None:
    import msgspec

    base = {
        "type": "cmd",
        "arm": "psm1",
        "session": "1-abcdef01",
        "seq": 1,
        "sent_console_s": 1.0,
        "target": {"pos_m": [0.0, -0.3, -0.06]},
    }
    data = msgspec.msgpack.encode({**base, **change})
    if ok:
        p.decode(data, p.Command)
    else:
        with pytest.raises(p.ProtocolError):
            p.decode(data, p.Command)
