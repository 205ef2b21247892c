"""README's demo: `telesurg launch launch/local.toml` (what `make demo` runs) starts the robot, the
media process and a scripted console over loopback, from any directory; the surgeon completes its
tasks and the summary names the recording. It succeeds with and without a display, and says nothing
about windows on a desktop (the OpenCV window is retired: the surgeon watches the browser console)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.wire.channels import free_loopback_ports

from ..system_programs import require

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "launch" / "local.toml"
PORTS = ("cmd_port", "telemetry_port", "control_port", "state_port", "video_signal_port", "http_port")
NO_WINDOW = "no video window"  # what the retired OpenCV window said on a desktop
pytestmark = pytest.mark.slow


def launch_local(cwd: Path, *arguments: str, display: str | None = None) -> subprocess.CompletedProcess:
    """`telesurg launch /abs/launch/local.toml` run in ``cwd`` on free ports (a demo running on this
    host keeps its own), with ``DISPLAY`` set to ``display`` or unset."""
    ports = [f"{name}={port}" for name, port in zip(PORTS, free_loopback_ports(len(PORTS)), strict=True)]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    if display is not None:
        env["DISPLAY"] = display
    return subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "launch", str(LOCAL), *ports, *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "PYTHONPATH": str(REPO)},
    )


def test_local_launch_completes_reach_and_palpate_from_another_directory(tmp_path: Path) -> None:
    proc = launch_local(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The run's outputs land in the directory the launch ran in, not beside the launch file.
    summary = json.loads((tmp_path / "runs/teleop/console_summary.json").read_text())
    assert [(e["task"], e["success"]) for e in summary["episodes"]] == [("Reach", True), ("Palpate", True)]
    assert summary["max_force_N"] < 6.0  # never near the hard limit
    assert "command latency p50" in out and "recording: " + summary["recording"] in out
    recording = Path(summary["recording"])
    assert recording.is_relative_to(tmp_path) and recording.is_file()
    applied = read_topic(recording, "/robot/applied")
    assert len(applied) >= summary["latency_samples"] > 100
    assert NO_WINDOW not in out  # no display: nothing to say


@pytest.fixture
def display() -> Iterator[str]:
    """A real X display (Xvfb on a display number it picks itself)."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        [require("Xvfb"), "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as numbers:
            if not select.select([numbers], [], [], 30)[0]:
                pytest.fail("Xvfb did not start within 30 s")
            number = numbers.readline().strip()
        if not number.isdigit():
            pytest.fail(f"Xvfb did not start (exit code {xvfb.poll()})")
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def test_local_launch_succeeds_on_a_desktop_and_takes_launch_arguments(tmp_path: Path, display: str) -> None:
    proc = launch_local(tmp_path, "tasks=Reach", "seed=7", display=display)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = json.loads((tmp_path / "runs/teleop/console_summary.json").read_text())
    assert [(e["task"], e["seed"], e["success"]) for e in summary["episodes"]] == [("Reach", 7, True)]
    assert summary["video"]["frames"] > 0  # it watched the video, headless
    assert NO_WINDOW not in out and "OpenCV" not in out, out


def test_show_true_fails_in_one_line_naming_the_key_and_the_browser_console(tmp_path: Path, display: str) -> None:
    config = tmp_path / "console.toml"
    text = (REPO / "launch/console.toml").read_text()
    config.write_text(text.replace("[console.video]\n", "[console.video]\nshow = true\n"))
    ports = [f"--{c}-port={n}" for c, n in zip(("cmd", "telemetry", "control"), free_loopback_ports(3), strict=True)]
    proc = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "console", "--config", str(config), *ports],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DISPLAY": display, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("telesurg console: error: "), proc.stderr
    assert "[console.video] show: the OpenCV video window is retired" in proc.stderr
    assert "telesurg launch launch/surgeon.toml" in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
