"""The console's configuration (`[console]` in a launch file): robot endpoints and keys, rate,
input device, scripted surgeon, mapping, correction stages, video, emulated links. Rates in Hz,
times in s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from telesurg.teleop.console.mapping import MappingConfig
from telesurg.teleop.console.scripted import SurgeonConfig
from telesurg.teleop.console.web import WebConsoleConfig
from telesurg.teleop.correction.config import CorrectionConfig
from telesurg.teleop.netem.spec import LinkSpec
from telesurg.teleop.video.client import VideoClientConfig
from telesurg.teleop.wire.channels import ClientKeys, Endpoints

#: The console's channels, each direction its own emulated link.
LINK_CHANNELS = ("cmd", "control_up", "telemetry", "control_down")

InputKind = Literal["scripted", "keyboard", "gamepad", "spacemouse", "trace", "web"]


@dataclass(frozen=True)
class ConsoleConfig:
    """The console. Rates in Hz, times in s. ``tasks``/``seed``/``episode_timeout_s`` are for the
    scripted surgeon (a trace replay loads ``tasks[0]`` with ``seed`` first); ``trace`` is the CSV for
    ``input = "trace"``; ``record_trace`` saves the
    hand motion (hand space, before mapping) as such a CSV; ``summary_json`` writes the summary."""

    endpoints: Endpoints = field(default_factory=Endpoints)
    keys: ClientKeys | None = None
    client: str = "console"
    arm: str = "psm1"
    rate_hz: float = 200.0
    ping_every_s: float = 0.1
    request_timeout_s: float = 2.0
    link_timeout_s: float = 1.0
    mapping: MappingConfig = field(default_factory=MappingConfig)
    input: InputKind = "scripted"
    trace: str | None = None
    tasks: tuple[str, ...] = ("Reach", "Palpate")
    seed: int = 0
    episode_timeout_s: float = 30.0
    settle_s: float = 0.2
    surgeon: SurgeonConfig = field(default_factory=SurgeonConfig)
    headless: bool = True
    hud_every_s: float = 0.1
    summary_json: str | None = None
    record_trace: str | None = None
    #: Re-send an unanswered request this often (s); requests are idempotent.
    request_retry_s: float = 0.5
    #: When another console holds the arm (perhaps a dead one, until its session times out), keep
    #: asking to engage for this long (s).
    engage_wait_s: float = 5.0
    #: Emulated network (``telesurg.teleop.netem.spec`` format) on every channel and direction, and per-channel
    #: overrides: keys ``cmd``, ``telemetry``, ``control`` (both ways), ``control_up``, ``control_down``.
    link: str = ""
    links: dict[str, str] = field(default_factory=dict)
    #: Scripted runs: load each task first (false: continue with whatever the robot has).
    load_task: bool = True
    #: The endoscope video (WebRTC, ``telesurg.teleop.video.client``): off unless ``video.enabled``.
    video: VideoClientConfig = field(default_factory=VideoClientConfig)
    #: Motion correction and latency compensation stages (``telesurg.teleop.correction``): all off by default.
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    #: The surgeon page (``input = "web"``, ``telesurg.teleop.console.web``).
    web: WebConsoleConfig = field(default_factory=WebConsoleConfig)

    def __post_init__(self) -> None:
        if not 1.0 <= self.rate_hz <= 2000.0:
            raise ValueError(f"rate_hz must be in [1, 2000], got {self.rate_hz}")
        if self.input == "trace" and not self.trace:
            raise ValueError("input 'trace' needs a trace file (trace = 'file.csv' or --trace)")
        if self.input not in ("scripted", "keyboard", "gamepad", "spacemouse", "trace", "web"):
            raise ValueError(f"unknown input {self.input!r}")
        unknown = sorted(set(self.links) - {"cmd", "telemetry", "control", "control_up", "control_down"})
        if unknown:
            raise ValueError(
                f"links: unknown channel(s) {unknown}; use cmd, telemetry, control, control_up, control_down"
            )
        self.link_specs()  # validates every spec

    def link_specs(self) -> dict[str, LinkSpec]:
        """The emulated link of each channel and direction ({} for a real network)."""
        out: dict[str, LinkSpec] = {}
        if self.link.strip():
            base = LinkSpec.parse(self.link)
            out = dict.fromkeys(LINK_CHANNELS, base)
        for key, text in self.links.items():
            spec = LinkSpec.parse(text)
            for channel in ("control_up", "control_down") if key == "control" else (key,):
                out[channel] = spec
        return out
