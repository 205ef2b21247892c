"""The ``telesurg`` command line, run as a user would (a separate process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

from telesurg.envs import ENV_IDS
from telesurg.envs.tasks import TASKS


def telesurg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_envs_lists_every_registered_id() -> None:
    out = telesurg("envs")
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip()]
    assert listed == ENV_IDS


def test_envs_layout_documents_fields_and_units() -> None:
    out = telesurg("envs", "--layout", "telesurg/PalpateDiscrete-v0")
    assert out.returncode == 0, out.stderr
    for field in ("tip_pos_m", "contact_force_N", "hold_s", "force_N"):
        assert field in out.stdout
    assert "=jaw open" not in out.stdout  # Palpate has no jaw actions
    assert "+z fine" in out.stdout


def test_demo_solves_every_task_and_writes_one_png_each(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    out = telesurg("demo", "--out", str(out_dir), "--width", "80", "--height", "60")
    assert out.returncode == 0, out.stdout + out.stderr
    assert str(out_dir.resolve()) in out.stdout
    for task in TASKS:
        line = next(row for row in out.stdout.splitlines() if row.startswith(task.name + " "))
        assert line.split()[1] == "yes", line
        image = Image.open(out_dir / f"{task.name.lower()}.png")
        assert image.size == (80, 60)
    assert "max force N" in out.stdout
    # Then every shipped trained policy runs one episode and succeeds.
    for name in ("reach_ppo", "reach_dqn", "palpate_ppo", "trace_ppo", "retract_ppo", "transfer_ppo", "palpate_dqn"):
        line = next(row for row in out.stdout.splitlines() if row.startswith(name + " "))
        assert line.split()[2] == "yes", line


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    for args in (("demo", "--tasks", "Suture"), ("envs", "--layout", "telesurg/Nope-v0"), ("demo", "--width", "2")):
        out = telesurg(*args, "--out", str(tmp_path)) if args[0] == "demo" else telesurg(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "error" in lines[0], out.stderr
        assert "Traceback" not in out.stderr
