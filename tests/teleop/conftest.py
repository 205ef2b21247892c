"""Helpers for the teleoperation system tests: a real `telesurg robot` subprocess on loopback ports,
and a raw client speaking the protocol through the console's ``RobotLink``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.robot_link import RobotLink
from telesurg.teleop.harness.runner import CliProcess
from telesurg.teleop.settings import write_toml
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import ClientKeys, Endpoints, free_loopback_ports

REPO = Path(__file__).resolve().parents[2]


class RobotProcess:
    """`telesurg robot` in a subprocess; its output lines are collected in ``lines``."""

    def __init__(self, tmp: Path, record: bool = True, extra_args: tuple[str, ...] = (), **options: Any) -> None:
        cmd_port, tel_port, ctl_port = free_loopback_ports(3)
        self.endpoints = Endpoints("127.0.0.1", cmd_port, tel_port, ctl_port)
        self.record = tmp / f"robot-{cmd_port}.mcap" if record else None
        self.stats_json = tmp / f"stats-{cmd_port}.json"
        tables: dict[str, dict[str, Any]] = {
            "": {"status_every_s": 1.0, **({"record": str(self.record)} if self.record else {})},
            "endpoints": {"cmd_port": cmd_port, "telemetry_port": tel_port, "control_port": ctl_port},
            "arm": {"preload": ["Reach", "Palpate"]},
        }
        for key, value in options.items():
            table, _, name = key.rpartition("__")
            tables.setdefault(table, {})[name] = value
        config = write_toml(tmp / f"robot-{cmd_port}.toml", "robot", tables)
        argv = ["robot", "--config", str(config), "--stats-json", str(self.stats_json), *extra_args]
        self._process = CliProcess(argv, tmp / f"robot-{cmd_port}.log", ready="listening on")
        self.proc = self._process.proc
        if not self._process.wait_ready(60):
            self.kill()
            raise RuntimeError("robot did not start:\n" + "\n".join(self.lines[-30:]))

    @property
    def lines(self) -> list[str]:
        return self._process.lines

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        return self._process.stop(timeout_s)

    def kill(self) -> None:
        self._process.kill()

    def output(self) -> str:
        return "\n".join(self.lines)


class Client:
    """A console's protocol side without a device: requests, pings, commands, telemetry."""

    def __init__(self, endpoints: Endpoints, name: str = "test", keys: ClientKeys | None = None) -> None:
        self.config = ConsoleConfig(endpoints=endpoints, keys=keys, client=name, request_timeout_s=3.0)
        self.link = RobotLink(self.config)
        self.session = ""
        self.seq = 0

    def close(self) -> None:
        self.link.close()

    def hello(self) -> Any:
        return self.link.request(p.Hello(client=self.config.client))

    def connect(self) -> None:
        welcome = self.hello()
        assert isinstance(welcome, p.Welcome), welcome
        self.link.sync(3)

    def engage(self) -> p.Ack:
        ack = self.link.request(p.Engage(arm="psm1", client=self.config.client))
        if ack.ok:
            self.session, self.seq = ack.session, 0
        return ack

    def command(
        self,
        target: tuple[float, float, float],
        *,
        seq: int | None = None,
        session: str | None = None,
        sent_console_s: float | None = None,
        jaw: float = 0.0,
        clutch: bool = True,
        estop: bool = False,
    ) -> int:
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.link.send(
            p.Command(
                arm="psm1",
                session=self.session if session is None else session,
                seq=seq,
                sent_console_s=self.link.clock() if sent_console_s is None else sent_console_s,
                target=p.Pose(tuple(float(v) for v in target)),  # type: ignore[arg-type]
                jaw=jaw,
                clutch=clutch,
                estop=estop,
            )
        )
        return seq

    def telemetry(self, timeout_s: float = 3.0) -> p.Telemetry:
        """The newest telemetry (waits for one that arrived after this call)."""
        start = self.link.telemetry_count
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.link.poll_telemetry()
            self.link.poll_control()
            if self.link.telemetry_count > start:
                assert self.link.telemetry is not None
                return self.link.telemetry
            time.sleep(0.002)
        raise TimeoutError("no telemetry")

    def wait_for(self, predicate: Callable[[p.Telemetry], bool], timeout_s: float = 5.0) -> p.Telemetry:
        deadline = time.monotonic() + timeout_s
        tel = self.telemetry(timeout_s)
        while not predicate(tel):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; last telemetry state {tel.state} ({tel.reason})")
            tel = self.telemetry(timeout_s)
        return tel

    def drive(
        self,
        target: tuple[float, float, float],
        duration_s: float,
        rate_hz: float = 200.0,
        expect_telemetry: bool = True,
        **kw: Any,
    ) -> p.Telemetry | None:
        """Send ``target`` at ``rate_hz`` for ``duration_s`` (pinging as a console does); then the
        newest telemetry."""
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            self.link.ping()
            self.link.poll_control()
            self.link.poll_telemetry()
            self.command(target, **kw)
            time.sleep(1.0 / rate_hz)
        return self.telemetry() if expect_telemetry else None


@pytest.fixture
def robot(tmp_path: Path) -> Iterator[Callable[..., RobotProcess]]:
    started: list[RobotProcess] = []

    def _start(**options: Any) -> RobotProcess:
        r = RobotProcess(tmp_path, **options)
        started.append(r)
        return r

    yield _start
    for r in started:
        r.kill()


@pytest.fixture
def client() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def _make(endpoints: Endpoints, name: str = "test", keys: ClientKeys | None = None) -> Client:
        c = Client(endpoints, name, keys)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.close()
