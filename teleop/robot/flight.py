"""The robot's flight recording, as part of ``RobotServer``: the MCAP recorder opened with the
config record, every record written, stalls logged with their causes, rejected messages counted
and recorded, the supervisor's transitions logged and recorded."""

from __future__ import annotations

import logging
import time
from typing import Any

from telesurg.teleop.robot.realtime import (
    other_cpus,
)
from telesurg.teleop.robot.records import (
    RECORD_TYPES,
    TOPIC_CONFIG,
    TOPIC_EVENTS,
    TOPIC_REJECTED,
    TOPIC_STALLS,
    TOPIC_TASK,
    ConfigRecord,
    EventRecord,
    RejectedRecord,
    StallRecord,
    TaskRecord,
    vec3,
)
from telesurg.teleop.settings import output_path

log = logging.getLogger("telesurg.robot")


class FlightRecording:
    """Owns ``recorder``, ``record_path``, ``_last_event``; reads the supervisor, the config and the counters."""

    def _open_recorder(self, path: str) -> None:
        from telesurg.teleop.robot.recorder_process import ProcessRecorder

        self.record_path = output_path(path).resolve()
        # Its own process: encoding, lz4 chunks and the disk never share the loop's interpreter lock.
        self.recorder = ProcessRecorder(
            self.record_path,
            RECORD_TYPES,
            cpus=None if self.cpu is None else other_cpus(self.cpu),
            flush_interval_s=self.config.record_flush_s,
            compression="lz4",
        )
        self._ch = self.recorder.channel_ids
        self._task_recorded: int | None = None
        self._record_config(self.clock())
        self._record_task(self.clock())

    def _record_config(self, now: float) -> None:
        sup = self.supervisor
        if self.recorder is None or sup is None:
            return
        cfg = sup.config
        negative = [n for n in ("test_disable_watchdog", "test_disable_speed_limit") if getattr(cfg, n)]
        self._record(
            TOPIC_CONFIG,
            ConfigRecord(
                robot_s=now,
                arm=self.arm_id,
                task=self.robot.task_name,
                seed=self.robot.seed,
                control_period_s=self.config.period_s,
                watchdog_s=cfg.watchdog_s,
                age_slowdown_s=cfg.age_slowdown_s,
                max_age_s=cfg.max_age_s,
                max_tip_speed_m_s=cfg.max_tip_speed_m_s,
                max_jaw_rate_per_s=cfg.max_jaw_rate_per_s,
                hard_force_N=cfg.limits.hard_N,
                workspace_low_m=vec3(cfg.workspace_low_m),
                workspace_high_m=vec3(cfg.workspace_high_m),
                forbidden_m=[(vec3(b.low_m), vec3(b.high_m)) for b in cfg.forbidden],
                negative_controls=negative,
            ),
        )
        if negative:
            log.warning("NEGATIVE CONTROL ACTIVE (harness test only): %s", ", ".join(negative))

    def _record_task(self, now: float) -> None:
        """Record the simulated task's state (``/robot/task``) when it changed since the last call:
        after a load and after every task period. Real arms (no task) record nothing."""
        updates = getattr(self.robot, "task_updates", None)
        if self.recorder is None or updates is None or updates == self._task_recorded:
            return
        self._task_recorded = updates
        snap = self.robot.task_snapshot()
        if snap is None:
            return
        self._record(
            TOPIC_TASK,
            TaskRecord(
                robot_s=now,
                task=snap.name,
                seed=snap.seed,
                episode_s=snap.episode_s,
                observation=snap.observation,
                achieved_goal=snap.achieved_goal,
                desired_goal=snap.desired_goal,
                success=snap.success,
                force_max_N=float(getattr(self.robot, "task_force_max_N", 0.0)),
            ),
        )

    def _record(self, topic: str, message: Any) -> None:
        if self.recorder is not None:
            self.recorder.write(self._ch[topic], message, time.time_ns())

    def _log_stall(
        self, length_s: float, marks: tuple[float, ...], faults: int, gc_s: float, work: tuple[float, float, bool]
    ) -> None:
        """Say where the time of a long period went (control requests, command, arm + supervisor +
        telemetry + recording, waiting), in the log and the recording."""
        start, control, command, period, waited = marks
        work_s = period - start
        stall = StallRecord(
            start_robot_s=start,
            period_s=length_s,
            control_s=control - start,
            command_s=command - control,
            work_s=period - command,
            wait_s=waited - period,
            unaccounted_s=length_s - (waited - start),
            kind="work" if work_s > self.config.period_s else "wait",
            page_faults=faults,
            gc_s=gc_s,
            longest_poll_s=self._wait_poll_s,
            longest_nap_s=self._wait_nap_s,
            final_sleep_s=self._wait_sleep_s,
            work_cpu_s=work[0],
            work_queued_s=work[1],
            work_blocked=work[2],
        )
        self.counters[f"loop.stall.{stall.kind}"] += 1
        self._record(TOPIC_STALLS, stall)
        log.warning(
            "long control period (%s): %.1f ms (control %.2f, command %.2f, arm/supervisor/telemetry/record %.2f, "
            "wait %.2f (longest poll %.2f, nap %.2f, final sleep %.2f), unaccounted %.2f ms; %d page faults, "
            "%.2f ms in garbage collection; before the wait %.2f ms on CPU, %.2f ms queued%s)",
            stall.kind,
            length_s * 1e3,
            stall.control_s * 1e3,
            stall.command_s * 1e3,
            stall.work_s * 1e3,
            stall.wait_s * 1e3,
            stall.longest_poll_s * 1e3,
            stall.longest_nap_s * 1e3,
            stall.final_sleep_s * 1e3,
            stall.unaccounted_s * 1e3,
            stall.page_faults,
            stall.gc_s * 1e3,
            stall.work_cpu_s * 1e3,
            stall.work_queued_s * 1e3,
            ", slept" if stall.work_blocked else "",
        )

    def _reject(self, channel: str, reason: str, detail: str, size: int, now: float) -> None:
        self.counters[f"{channel}.{reason}"] += 1
        if self.counters[f"{channel}.{reason}"] <= 5 or self.counters[f"{channel}.{reason}"] % 1000 == 0:
            log.warning(
                "rejected %s message (%s, %d bytes): %s [%d so far]",
                channel,
                reason,
                size,
                detail[:200],
                self.counters[f"{channel}.{reason}"],
            )
        self._record(TOPIC_REJECTED, RejectedRecord(now, channel, reason, detail[:500], size))

    def _flush_events(self) -> None:
        sup = self.supervisor
        assert sup is not None
        events = list(sup.events)
        # events is a bounded deque; find the ones not written yet by their count.
        new = events[len(events) - min(len(events), sup.events_total - self._last_event) :]
        for ev in new:
            log.info("supervisor %s → %s: %s", ev.previous, ev.state, ev.reason)
            self._record(TOPIC_EVENTS, EventRecord(ev.time_s, str(ev.previous), str(ev.state), ev.reason))
        self._last_event = sup.events_total
