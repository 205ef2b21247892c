"""The cells of a safety run: a task, a link condition (``telesurg.teleop.netem.spec`` text and fidelity) and an
optional process fault. ``full_matrix`` is the default run, ``quick_matrix`` the reduced one CI runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FAULTS = ("", "console_kill", "console_restart", "robot_restart", "clock_jump_ahead", "clock_jump_back", "estop_outage")

#: One-way delay (s) at or beyond which commands arrive older than the supervisor's maximum command age:
#: such cells are expected to hold safely, not to succeed.
MAX_COMMAND_AGE_S = 0.75
#: Outages start this long after the console engages (the arm is moving by then).
OUTAGE_AT_S = 0.3


@dataclass(frozen=True)
class Cell:
    """One run: ``link`` is applied to every channel in both directions with ``mode`` fidelity.
    ``video``: the console also receives the endoscope video (renderer + media process beside the
    robot) and holds when it is older than its limit; ``video_link`` is the emulated network on
    the video path (UDP: message level), ``video_outage_s`` the length of an outage in it (the
    console must hold through it)."""

    name: str
    task: str
    link: str
    mode: str = "tcp"
    fault: str = ""
    delay_s: float = 0.0
    jitter: float = 0.0  # fraction of the delay
    loss: float = 0.0
    outage_s: float = 0.0
    seed: int = 0
    video: bool = False
    video_link: str = ""
    video_outage_s: float = 0.0
    #: The console's ``[console.correction]`` table (motion correction and compensation stages).
    correction: tuple[tuple[str, Any], ...] = ()
    #: The scripted surgeon's ``[console.surgeon]`` table (e.g. closing its loop on the local twin).
    surgeon: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {[f for f in FAULTS if f]}")
        if self.mode not in ("tcp", "message"):
            raise ValueError(f"mode must be tcp or message, got {self.mode!r}")

    @property
    def expect_hold(self) -> bool:
        """Commands arrive older than the maximum age: the arm must hold (safely), not move."""
        return self.delay_s >= MAX_COMMAND_AGE_S

    @property
    def spec(self) -> str:
        return f"{self.link} mode={self.mode}".strip()

    @property
    def outage_at_s(self) -> float | None:
        """When the first outage of the link starts, after the console's first engage (s)."""
        from telesurg.teleop.netem.spec import LinkSpec

        outages = LinkSpec.parse(self.spec).outages
        return outages[0][0] if outages else None

    @property
    def timeout_s(self) -> float:
        """Episode budget: generous with delay (the loop closes through it twice), short when the
        arm is expected to hold."""
        if self.expect_hold:
            return 6.0
        base = {"Reach": 8.0, "Palpate": 12.0, "Trace": 25.0}.get(self.task, 15.0)
        return base + 20.0 * self.delay_s + self.outage_s + self.video_outage_s


def _link(delay_s: float, jitter: float, loss: float, seed: int) -> str:
    parts = [f"delay={round(delay_s * 1000)}ms"]
    if jitter:
        parts.append(f"jitter={round(jitter * 100)}%")
    if loss:
        # TCP recovers most losses by fast retransmit after about a round trip, not a full RTO.
        parts.append(f"loss={round(loss * 100)}% rto={round(max(2 * delay_s + 0.01, 0.02) * 1000)}ms")
    parts.append(f"seed={seed}")
    return " ".join(parts)


def spec_cells(spec_text: str, tasks: tuple[str, ...] = ("Reach",)) -> list[Cell]:
    """Cells for a link spec of the user's (``telesurg safety --link SPEC``), one per task: delay,
    jitter, loss, outages, seed and fidelity (its ``mode=``) are read from the spec itself
    (``LinkSpecError`` names a bad item)."""
    from telesurg.teleop.netem.spec import LinkSpec

    spec = LinkSpec.parse(spec_text)
    link = " ".join(item for item in spec_text.split() if not item.startswith("mode="))
    slug = re.sub(r"[^A-Za-z0-9.=%@-]+", "_", link) or "perfect"
    return [
        Cell(
            f"{task.lower()}/link/{slug}/{spec.mode}",
            task,
            link,
            spec.mode,
            "",
            spec.delay_s,
            spec.jitter_s / spec.delay_s if spec.delay_s else 0.0,
            spec.loss,
            sum(duration for _, duration in spec.outages),
            spec.seed,
        )
        for task in tasks
    ]


def delay_cells(
    delays_s: tuple[float, ...],
    jitters: tuple[float, ...],
    losses: tuple[float, ...],
    task: str = "Reach",
    seed: int = 0,
) -> list[Cell]:
    """delay × jitter × loss on ``task``, in both fidelities where they differ (jitter reorders and
    loss drops only at message level; with neither, both fidelities are the same link)."""
    cells = []
    for d in delays_s:
        for j in jitters:
            for loss in losses:
                differ = loss > 0 or (j > 0 and d > 0)
                modes = ("tcp", "message") if differ else ("tcp",)
                for mode in modes:
                    name = f"{task.lower()}/d{round(d * 1000)}/j{round(j * 100)}/l{round(loss * 100)}/{mode}"
                    cells.append(Cell(name, task, _link(d, j, loss, seed), mode, "", d, j, loss, 0.0, seed))
    return cells


def outage_cells(tasks: tuple[str, ...], durations_s: tuple[float, ...], modes=("tcp", "message")) -> list[Cell]:
    cells = []
    for task in tasks:
        for dur in durations_s:
            for mode in modes:
                link = f"delay=20ms outage={dur:g}s@{OUTAGE_AT_S:g}s"
                name = f"{task.lower()}/outage{dur:g}s/{mode}"
                cells.append(Cell(name, task, link, mode, "", 0.02, 0.0, 0.0, dur))
    return cells


def fault_cells(faults: tuple[str, ...] = FAULTS[1:]) -> list[Cell]:
    cells = []
    for fault in faults:
        if fault == "estop_outage":
            for mode in ("tcp", "message"):
                link = f"delay=20ms outage=2s@{OUTAGE_AT_S:g}s"
                cells.append(Cell(f"palpate/{fault}/{mode}", "Palpate", link, mode, fault, 0.02, outage_s=2.0))
        else:
            cells.append(Cell(f"palpate/{fault}", "Palpate", "delay=20ms", "tcp", fault, 0.02))
    return cells


#: When the video outage of a video cell starts, after the console's video offer (s): the console
#: has engaged by then and the surgeon is moving.
VIDEO_OUTAGE_AT_S = 3.0


def video_cells() -> list[Cell]:
    """The console watching the video: over a delayed, jittery, lossy network on every channel
    (video included), and through a 3 s video outage mid-motion (the console must hold)."""
    return [
        Cell(
            "palpate/video/d100/j20/l1",
            "Palpate",
            "delay=100ms jitter=20% loss=1% rto=210ms seed=0",
            "tcp",
            "",
            0.1,
            0.2,
            0.01,
            video=True,
            video_link="delay=100ms jitter=20ms loss=1% seed=0",
        ),
        Cell(
            "trace/video/outage3s",
            "Trace",
            "delay=20ms",
            "tcp",
            "",
            0.02,
            video=True,
            video_link=f"delay=20ms outage=3s@{VIDEO_OUTAGE_AT_S:g}s",
            video_outage_s=3.0,
        ),
    ]


#: Every correction and compensation stage on (the learned predictor; α-β, CV and hold are simpler
#: extrapolations of the same stage), and the local twin.
ALL_STAGES: tuple[tuple[str, Any], ...] = (
    ("scaling_enabled", True),
    ("scaling", {"adaptive": True}),
    ("tremor_enabled", True),
    ("prediction", "learned"),
    ("blending_enabled", True),
    ("fixtures_enabled", True),
    ("twin_enabled", True),
)


def correction_cells() -> list[Cell]:
    """Every correction and compensation stage on, over a 200 ms link, with the scripted surgeon
    closing its loop on the local twin (so moving faster than the delayed telemetry would let it):
    the safety envelope must hold whatever the console does, since the supervisor is authoritative."""
    return [
        Cell(
            "reach/d200/all-stages",
            "Reach",
            "delay=200ms jitter=10% seed=0",
            "tcp",
            "",
            0.2,
            0.1,
            correction=ALL_STAGES,
            surgeon=(("feedback", "twin"),),
        )
    ]


def full_matrix() -> list[Cell]:
    return (
        delay_cells((0.0, 0.1, 0.2, 0.5, 1.0), (0.0, 0.2), (0.0, 0.05, 0.2))
        + outage_cells(("Reach", "Palpate", "Trace"), (0.2, 1.0, 5.0))
        + fault_cells()
        + video_cells()
        + correction_cells()
    )


def quick_matrix() -> list[Cell]:
    """A handful of cells covering delay, loss, an outage and a console kill (CI runs this)."""
    return (
        delay_cells((0.0, 0.2), (0.0,), (0.0,))
        + [c for c in delay_cells((0.1,), (0.2,), (0.2,)) if c.mode == "message"]
        + outage_cells(("Reach",), (1.0,), modes=("tcp",))
        + fault_cells(("console_kill",))
        + correction_cells()
    )
