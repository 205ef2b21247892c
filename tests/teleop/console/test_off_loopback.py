"""The surgeon page from another machine: the browser runs in a network namespace of its own,
joined to this one by a veth pair the test creates, and reaches the console over HTTPS with its
token; the video and the page's data channels cross the veth (ICE on the non-loopback address).
The browser is started as a real remote browser is: local addresses hidden behind mDNS names, so
the servers learn its address from its connectivity checks."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from telesurg.teleop.harness.browser import CHROMIUM_ARGS

from ...system_programs import require
from ..conftest import RobotProcess
from .test_browser_console import Keys, SurgeonStack, _ready, _state, _tool_goal, _wait

pytestmark = pytest.mark.slow

#: The browser's flags less the loopback-only WebRTC ones: a remote browser hides its local
#: addresses behind mDNS names.
REMOTE_ARGS = tuple(
    a
    for a in CHROMIUM_ARGS
    if a not in ("--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns")
)


class Veth:
    """A network namespace ``name`` joined to this one by a veth pair: ``host`` here, ``peer`` there."""

    def __init__(self, ip: str, index: int) -> None:
        self.ip = ip
        self.name = f"tsurg{os.getpid() % 100000}"
        self.host, self.peer = f"10.{77 + index // 250}.{index % 250}.1", f"10.{77 + index // 250}.{index % 250}.2"
        self.dev = f"tsv{os.getpid() % 100000}"
        steps = [
            ["netns", "add", self.name],
            ["link", "add", self.dev, "type", "veth", "peer", "name", self.dev + "p"],
            ["link", "set", self.dev + "p", "netns", self.name],
            ["addr", "add", f"{self.host}/24", "dev", self.dev],
            ["link", "set", self.dev, "up"],
            ["netns", "exec", self.name, ip, "addr", "add", f"{self.peer}/24", "dev", self.dev + "p"],
            ["netns", "exec", self.name, ip, "link", "set", self.dev + "p", "up"],
            ["netns", "exec", self.name, ip, "link", "set", "lo", "up"],
        ]
        for step in steps:
            done = subprocess.run([ip, *step], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self.close()
                if step[:2] == ["netns", "add"] or step[:2] == ["link", "add"]:
                    pytest.skip(
                        f"network namespaces cannot be created here: ip {' '.join(step)}: {done.stderr.strip()}"
                    )
                raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")

    def close(self) -> None:
        subprocess.run([self.ip, "link", "del", self.dev], capture_output=True, check=False)
        subprocess.run([self.ip, "netns", "del", self.name], capture_output=True, check=False)


@pytest.fixture
def veth() -> Iterator[Veth]:
    v = Veth(require("ip"), os.getpid() % 1000)
    yield v
    v.close()


@pytest.fixture
def remote_browser(veth: Veth, tmp_path: Path) -> Iterator[Any]:
    """Chromium inside the namespace (playwright talks to it over pipes, which cross namespaces)."""
    from playwright.sync_api import sync_playwright

    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec {veth.ip} netns exec {veth.name} {require("chromium")} "$@"\n')
    wrapper.chmod(0o755)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(wrapper), headless=True, args=list(REMOTE_ARGS))
        try:
            yield b
        finally:
            b.close()


def test_from_another_network_the_page_drives_over_https_with_its_token(
    veth: Veth, remote_browser: Any, tmp_path: Path, robot: Callable[..., RobotProcess]
) -> None:
    from telesurg.teleop.console.certificate import make_web_certificate

    require("chromium")
    cert, key = make_web_certificate(tmp_path / "cert", [veth.host])
    token = "remote-token-0123456789abcdef"
    stack = SurgeonStack(
        tmp_path,
        robot,
        video={"ice_addresses": [veth.host]},
        host=veth.host,
        token=token,
        tls_cert=str(cert),
        tls_key=str(key),
        ice_addresses=[veth.host],
    )
    try:
        assert stack.url.startswith(f"https://{veth.host}:") and stack.url.endswith(f"?token={token}")
        base = stack.url.split("?", 1)[0]
        context = remote_browser.new_context(ignore_https_errors=True)  # it trusts the test's certificate
        page = context.new_page()
        # Without the token: refused, page and signalling alike (the browser is the only client
        # that can reach the address: it is checked from there).
        refused = page.goto(base)
        assert refused is not None and refused.status == 403
        assert page.evaluate("typeof window.telesurg") == "undefined"
        status = page.evaluate(
            "async (u) => (await fetch(u, {method: 'POST', body: JSON.stringify({sdp: 'v=0', type: 'offer'})})).status",
            base + "connect",
        )
        assert status == 403
        page.goto(stack.url)
        s = _wait(page, "the remote page drives, with telemetry and displayed video", _ready, 60.0)
        assert page.evaluate("() => window.isSecureContext") and s["error"] is None
        # Input crosses the veth on the page's data channel: the clutch and a key move the tool.
        keys = Keys(page)
        keys.engage()
        s = _wait(page, "engaged", lambda s: s["hud"]["engaged"])
        before = _tool_goal(s)[0]
        keys.set(np.array([1.0, 0.0, 0.0]), clutch=True)
        page.wait_for_timeout(500)
        keys.set(np.zeros(3), clutch=False)
        page.wait_for_timeout(300)
        moved = _tool_goal(_state(page))[0] - before
        assert np.linalg.norm(moved) > 0.002, moved
        context.close()
        # Nothing listens for pages on loopback: the page is served on the veth address only.
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", stack.web_port), 2):
            pass
    finally:
        stack.close()


def test_a_page_the_media_process_cannot_reach_says_why(
    veth: Veth, remote_browser: Any, tmp_path: Path, robot: Callable[..., RobotProcess]
) -> None:
    """The console serves this network but the media process's ICE addresses leave it out (the
    commonest set-up mistake): the page says so instead of waiting for video for ever."""
    from telesurg.teleop.console.certificate import make_web_certificate

    cert, key = make_web_certificate(tmp_path / "cert", [veth.host])
    stack = SurgeonStack(
        tmp_path, robot, host=veth.host, tls_cert=str(cert), tls_key=str(key), ice_addresses=[veth.host]
    )
    try:
        context = remote_browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(stack.url)
        _wait(page, "the page drives (telemetry, no video)", lambda s: s["role"] == "driver" and s["hud"] is not None)
        page.wait_for_function(
            "() => document.getElementById('banner').textContent.includes('[video] ice_addresses')", timeout=30_000
        )
        assert _state(page)["frames"] == 0
        context.close()
    finally:
        stack.close()
