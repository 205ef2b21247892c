"""`telesurg safety` from the command line: custom cells from a link spec (`--link`, `--task`), the
cells a run would have (`--list`), the outage start a report draws."""

from __future__ import annotations

import subprocess
import sys

import pytest

from telesurg.teleop.harness.cells import OUTAGE_AT_S, quick_matrix, spec_cells
from telesurg.teleop.harness.safety import select_cells
from telesurg.teleop.netem.spec import LinkSpecError

SPEC = "delay=200ms jitter=20ms loss=3% burst=4 outage=1s@5s mode=message"


def _safety(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "safety", *args], capture_output=True, text=True, timeout=60
    )


def test_a_link_spec_becomes_one_cell_per_task_with_its_own_figures() -> None:
    cells = spec_cells(SPEC, ("Trace", "Reach"))
    assert [c.task for c in cells] == ["Trace", "Reach"]
    for c in cells:
        assert c.mode == "message" and "mode=" not in c.link  # fidelity from the spec's own key
        assert c.delay_s == pytest.approx(0.2) and c.jitter == pytest.approx(0.1) and c.loss == pytest.approx(0.03)
        assert c.outage_s == pytest.approx(1.0) and c.outage_at_s == pytest.approx(5.0)
        assert c.spec == "delay=200ms jitter=20ms loss=3% burst=4 outage=1s@5s mode=message"
    with pytest.raises(LinkSpecError, match="parsecs"):
        spec_cells("delay=2parsecs")


def test_the_matrix_cells_know_their_outage_start() -> None:
    outage = [c for c in quick_matrix() if c.outage_s]
    assert outage and all(c.outage_at_s == OUTAGE_AT_S for c in outage)
    assert all(c.outage_at_s is None for c in quick_matrix() if not c.outage_s)


def test_select_cells_filters_the_matrix_by_task_and_name() -> None:
    assert {c.task for c in select_cells(quick=True, tasks=["Palpate"])} == {"Palpate"}
    assert [c.name for c in select_cells(quick=True, only=["outage"])] == ["reach/outage1s/tcp"]
    with pytest.raises(ValueError, match="no cell matches"):
        select_cells(quick=True, only=["nothing-like-this"])


def test_list_prints_the_cells_and_runs_nothing() -> None:
    quick = _safety("--list", "--quick")
    assert quick.returncode == 0, quick.stderr
    assert [line.split()[0] for line in quick.stdout.splitlines()] == [c.name for c in quick_matrix()]
    custom = _safety("--list", "--link", SPEC, "--task", "Trace", "Reach")
    assert custom.returncode == 0, custom.stderr
    lines = custom.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("trace/link/") and lines[1].startswith("reach/link/")
    assert all(line.endswith(SPEC) for line in lines)
    bad = _safety("--list", "--link", "delay=2parsecs")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "parsecs" in bad.stderr
