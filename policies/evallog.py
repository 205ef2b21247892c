"""A training run's evaluation log, ``eval.jsonl`` in its run folder: one JSON object a line per
periodic evaluation (timesteps, wall time, success, violations, force). One writer, one reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVAL_LOG = "eval.jsonl"


def append_eval(run_dir: Path, record: dict[str, Any]) -> None:
    """Add one evaluation's record to the run's log."""
    with (run_dir / EVAL_LOG).open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_eval_log(run_dir: Path) -> list[dict[str, Any]]:
    """The run's evaluation records, oldest first; none when it has no log."""
    path = run_dir / EVAL_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
