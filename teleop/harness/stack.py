"""Starting the stack's processes for the harnesses, benches and tests: a `telesurg robot` or
`telesurg video` from configuration tables (written as a TOML file beside its log), waited for
until it prints its ready line (``ROBOT_READY``, ``VIDEO_READY``), killed with its last lines in a
one-line error if it does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from telesurg.teleop.harness.process import CliProcess
from telesurg.teleop.settings import write_toml

#: What `telesurg robot` and `telesurg video` print once they serve.
ROBOT_READY = "listening"
VIDEO_READY = "video: rendering"


def endpoint_table(ports: list[int] | tuple[int, ...]) -> dict[str, int]:
    """``[robot.endpoints]`` (and a console's) for the cmd, telemetry and control ports, in that order."""
    return {"cmd_port": ports[0], "telemetry_port": ports[1], "control_port": ports[2]}


def start(
    command: str, folder: Path, tables: dict[str, dict[str, Any]], *, name: str, timeout_s: float, what: str
) -> CliProcess:
    """`telesurg COMMAND --config FOLDER/NAME.toml` (its ``[command]`` tables), logging to
    FOLDER/NAME.log (appended), once it printed its ready line; ``what`` names it in the error."""
    cfg = write_toml(folder / f"{name}.toml", command, tables)
    ready = ROBOT_READY if command == "robot" else VIDEO_READY
    proc = CliProcess([command, "--config", str(cfg)], folder / f"{command}.log", ready=ready)
    if not proc.wait_ready(timeout_s):
        proc.kill()
        raise RuntimeError(f"{what} did not start:\n" + "\n".join(proc.lines[-20:]))
    return proc
