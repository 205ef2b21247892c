"""A port another program holds: each process says so in one line naming the port and the setting
(config key and flag) that chose it, exits 2, and leaves nothing behind: no renderer child, no
shared memory, no recording. Also through `telesurg launch`, whose last line is then that error."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telesurg.teleop.settings import write_toml
from telesurg.teleop.wire.channels import free_loopback_ports

REPO = Path(__file__).resolve().parents[3]
SHM = Path("/dev/shm")


@pytest.fixture
def hold() -> Iterator:
    """``hold(port)``: another program's listening socket on 127.0.0.1:port, for the test."""
    held: list[socket.socket] = []

    def _hold(port: int) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
        held.append(sock)

    yield _hold
    for sock in held:
        sock.close()


def gone(pid: int) -> bool:
    """True when no process is left in the process group (session) ``pid`` led."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def frame_buffers() -> set[str]:
    """Python shared-memory blocks (``psm_*``) in /dev/shm."""
    return {name for name in os.listdir(SHM) if name.startswith("psm_")}


def left_behind(before: set[str]) -> set[str]:
    """Shared-memory blocks made since ``before`` that no running process maps: another program's
    live frame buffer (a benchmark's media process, say) is mapped by its owner; a leaked one is not."""
    for attempt in range(2):  # a block made or freed just now by another program gets a second look
        mapped: set[str] = set()
        for maps in Path("/proc").glob("[0-9]*/maps"):
            try:
                mapped.update(re.findall(r"/dev/shm/(psm_\w+)", maps.read_text()))
            except OSError:  # the process ended meanwhile
                continue
        left = frame_buffers() - before - mapped
        if not left or attempt:
            return left
        time.sleep(1.0)
    return set()


def telesurg(*args: str, cwd: Path, timeout_s: float = 120) -> tuple[int, str, str]:
    """Run ``telesurg ARGS`` in its own session; checks that nothing it started outlives it and that
    it left no shared memory behind."""
    shm_before = frame_buffers()
    proc = subprocess.Popen(
        [sys.executable, "-m", "telesurg.teleop.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        proc.kill()
    assert gone(proc.pid), "a child process outlived the command"
    leaked = left_behind(shm_before)
    assert not leaked, f"shared memory left behind: {leaked}"
    assert "leaked shared_memory" not in err and "Traceback" not in out + err, out + err
    return proc.returncode, out, err


def in_use(port: int, key: str) -> str:
    return f"port {port} ({key}, --{key.replace('_', '-')}) is already in use by another program"


@pytest.mark.parametrize("key", ["http_port", "signal_port"])
def test_video_fails_in_one_line_before_starting_its_renderer(tmp_path: Path, hold, key: str) -> None:
    ports = dict(zip(("http_port", "signal_port", "state_port"), free_loopback_ports(3), strict=True))
    hold(ports[key])
    flags = [f"--{name.replace('_', '-')}={port}" for name, port in ports.items()]
    rc, out, err = telesurg("video", "--config", str(REPO / "launch/video.toml"), *flags, cwd=tmp_path)
    assert rc == 2
    assert err == f"telesurg video: error: {in_use(ports[key], key)}\n"  # nothing else: no renderer output
    assert out == ""


@pytest.fixture
def robot_config(tmp_path: Path) -> tuple[Path, dict[str, int], Path]:
    """A robot config on free ports with a recording path (and only one scene, to start quickly)."""
    names = ("cmd_port", "telemetry_port", "control_port", "state_port")
    ports = dict(zip(names, free_loopback_ports(4), strict=True))
    record = tmp_path / "robot.mcap"
    endpoints = {k: ports[k] for k in names[:3]}
    tables = {"": {"record": str(record), "state_port": ports["state_port"]}, "endpoints": endpoints}
    config = write_toml(tmp_path / "robot.toml", "robot", {**tables, "arm": {"preload": ["Reach"]}})
    return config, ports, record


@pytest.mark.parametrize("key", ["cmd_port", "control_port", "state_port"])
def test_robot_fails_in_one_line_before_recording(tmp_path: Path, hold, robot_config, key: str) -> None:
    config, ports, record = robot_config
    hold(ports[key])
    rc, _, err = telesurg("robot", "--config", str(config), cwd=tmp_path)
    assert rc == 2
    assert err == f"telesurg robot: error: {in_use(ports[key], key)}\n"
    assert not record.exists()  # every port is bound before the recording is created


def test_launch_ends_with_the_one_line_and_its_exit_status(tmp_path: Path, hold) -> None:
    names = ("cmd_port", "telemetry_port", "control_port", "state_port", "video_signal_port", "http_port")
    ports = dict(zip(names, free_loopback_ports(len(names)), strict=True))
    hold(ports["http_port"])  # the robot starts; the media process cannot
    arguments = [f"{name}={port}" for name, port in ports.items()]
    rc, out, err = telesurg("launch", str(REPO / "launch/local.toml"), "tasks=Reach", *arguments, cwd=tmp_path)
    assert rc == 2, out + err
    lines = out.splitlines()
    error = f"telesurg video: error: {in_use(ports['http_port'], 'http_port')}"
    assert f"video   | {error}" in lines
    assert "launch  | video exited with code 2 before printing 'video: rendering'; stopping robot" in lines
    assert lines[-1] == f"launch  | video's last line: {error}"
    assert "console" not in re.findall(r"started (\S+) \(pid", out)
