"""The console's endoscope video and its advisory hold: stop commanding motion when the newest frame
the surgeon sees is too old, resume only on the surgeon's re-engage once video is fresh again (the
scripted surgeon and trace replay re-engage after ``reengage_after_s`` of fresh video). Advisory:
the robot's supervisor stays authoritative."""

from __future__ import annotations

import dataclasses
import math

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.inputs import HandInput
from telesurg.teleop.console.mapping import HandToTool
from telesurg.teleop.console.robot_link import ConsoleError, RobotLink
from telesurg.teleop.video.client import VideoClient
from telesurg.teleop.wire import protocol as p


class VideoHold:
    """See the module docstring. ``video`` is None when the console runs without video."""

    def __init__(self, config: ConsoleConfig, link: RobotLink, video: VideoClient | None) -> None:
        self.config = config
        self.link = link
        self.video = video
        #: Why the console holds on its own ("" when it does not).
        self.reason = ""
        self.holds = 0
        #: Holds as (start, end) on the console's true clock (end None while holding).
        self.log: list[list[float | None]] = []
        self._fresh_since: float | None = None
        self._retry_at = -math.inf

    def start(self) -> None:
        """Offer a WebRTC connection on the control channel and complete it with the robot's answer."""
        assert self.video is not None
        resp = self.link.request(p.Offer(sdp=self.video.offer()))
        if not isinstance(resp, p.Answer):
            raise ConsoleError(f"video refused: {getattr(resp, 'reason', resp)}")
        self.video.accept(resp.sdp)

    def wait_fresh(self) -> None:
        """Wait (serving the link) until a fresh frame is displayed, up to ``request_timeout_s`` × 5."""
        assert self.video is not None
        link = self.link
        deadline = link.true_clock() + 5 * self.config.request_timeout_s
        while link.true_clock() < deadline:
            link.poll_control()
            link.ping()
            link.poll_telemetry()
            self.sync_offset()
            if self.video.age_s(link.true_clock()) <= self.config.video.max_age_s:
                return
            link.wait_until(link.true_clock() + 0.02)
        raise ConsoleError(f"no fresh video within {5 * self.config.request_timeout_s:.0f} s ({self.video.stats()})")

    def sync_offset(self) -> None:
        if self.video is not None and self.link.estimator.ready:
            # robot clock − console's true clock (the message clock may carry an injected jump).
            self.video.offset_s = self.link.estimator.best().offset_s + (self.link.clock() - self.link.true_clock())

    def serve(
        self,
        now: float,
        hand: HandInput,
        tel: p.Telemetry | None,
        *,
        engaged: bool,
        cmd_latency_s: float | None,
        auto_reengage: bool,
        mapping: HandToTool,
    ) -> HandInput:
        """One console period: update the video's HUD, enter or leave the hold; the hand input with
        the re-engage that ended a hold consumed. ``auto_reengage``: re-engage by itself after
        ``reengage_after_s`` of fresh video (scripted surgeon, trace replay)."""
        video = self.video
        if video is None:
            return hand
        cfg = self.config.video
        self.sync_offset()
        age = video.age_s(now)
        fresh = age <= cfg.max_age_s
        if tel is not None:
            video.hud = {"state": tel.state, "force_N": tel.force_mag_N, "cmd_latency_s": cmd_latency_s}
        video.hud["hold_reason"] = self.reason
        if not fresh and not self.reason and engaged:
            self.reason = f"video too old ({age * 1e3:.0f} ms > {cfg.max_age_s * 1e3:.0f} ms): holding"
            self.holds += 1
            self.log.append([now, None])
            print(f"console: {self.reason}; re-engage once video is fresh", flush=True)
        if video.failed and now >= self._retry_at:
            self._retry_at = now + 2.0
            try:
                self.start()
            except (ConsoleError, TimeoutError) as exc:
                print(f"console: video reconnect failed: {exc}", flush=True)
        if self.reason:
            self._fresh_since = (self._fresh_since or now) if fresh else None
            fresh_for = now - self._fresh_since if self._fresh_since is not None else -1.0
            reengage = hand.engage or (auto_reengage and fresh_for >= cfg.reengage_after_s)
            if fresh and reengage:
                print("console: video fresh again: re-engaged", flush=True)
                self.reason = ""
                self.log[-1][1] = now
                mapping.release()  # re-anchor: no jump toward where the hand went meanwhile
                hand = dataclasses.replace(hand, engage=False)
        return hand
