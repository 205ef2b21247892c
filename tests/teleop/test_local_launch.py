"""README's demo: `telesurg launch launch/local.toml` runs the robot and a scripted console over
loopback; the surgeon completes Reach and Palpate and the summary names the recording."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from teleop.recorder import read_topic

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_local_launch_completes_reach_and_palpate(tmp_path: Path) -> None:
    # Run from a copy so the run's files (recording, summary) land in tmp_path, not the checkout.
    shutil.copytree(REPO / "launch", tmp_path / "launch")
    proc = subprocess.run(
        [sys.executable, "-m", "teleop.cli", "launch", "launch/local.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = json.loads((tmp_path / "runs/teleop/console_summary.json").read_text())
    assert [(e["task"], e["success"]) for e in summary["episodes"]] == [("Reach", True), ("Palpate", True)]
    assert summary["max_force_N"] < 6.0  # never near the hard limit
    assert "command latency p50" in out and "recording: " + summary["recording"] in out
    recording = Path(summary["recording"])
    assert recording.is_relative_to(tmp_path) and recording.is_file()
    applied = read_topic(recording, "/robot/applied")
    assert len(applied) >= summary["latency_samples"] > 100
