"""Who is let in: the robot's CURVE authenticator, the authorised-keys folder and the roles in it.

``AuditedAuthenticator`` is ZeroMQ's ZAP handler (``ThreadAuthenticator``) with three additions:

- every denied handshake is counted by reason, logged (at most once a minute per peer address and
  key, with the count since) and queued as a ``Denial`` (peer address, key fingerprint) for the
  robot server to put in its telemetry counters and its recording;
- the authorised keys are the folder's ``*.key`` files *now*: a thread looks at the folder every
  ``watch_every_s`` and reloads it when it changed, so adding a key admits it and removing one
  revokes it without a restart. ZAP is asked only when a connection is made: a revoked key's open
  connection stays up, so the server refuses its requests and commands by their ``User-Id`` and
  ends its session (``keys`` and ``version`` tell it what changed);
- the roles of the keys (``key_roles``), reloaded with them.

A client without CURVE at all fails the handshake before ZAP is asked; ZeroMQ reports nothing
about it to the application, so it is not counted here.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger("telesurg.auth")

#: Roles a console key may carry (``role`` in its certificate's metadata): ``reset`` may clear an
#: e-stop that another console's session was stopped by.
ROLES = ("reset",)
#: At most one log line per peer address and key this often (s); every denial is counted.
LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class Denial:
    """A refused handshake: when (monotonic s), the peer's address, the first 16 hex digits of the
    SHA-256 of its public key ("" when it offered none) and ZeroMQ's reason."""

    at_s: float
    address: str
    fingerprint: str
    reason: str


def fingerprint(key_z85: str) -> str:
    """A short, loggable name for a public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(key_z85.encode()).hexdigest()[:16]


class AuditedAuthenticator(ThreadAuthenticator):
    """See the module docstring. ``start()`` loads the folder and starts both threads."""

    def __init__(self, context: zmq.Context, folder: Path, watch_every_s: float = 1.0) -> None:
        super().__init__(context)
        self.folder = Path(folder)
        self.watch_every_s = watch_every_s
        #: Authorised public keys (Z85) and their roles (Z85 → (name, role)): replaced, never mutated.
        self.keys: frozenset[str] = frozenset()
        self.roles: dict[str, tuple[str, str]] = {}
        #: Bumped at every reload.
        self.version = 0
        self.denials: Counter[str] = Counter()
        self.denied_total = 0
        #: Denials not yet taken by the server (bounded: a flood of handshakes costs no memory).
        self.pending: deque[Denial] = deque(maxlen=1000)
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._peer_address = ""
        self._peer_key = ""
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.reload()
        super().start()
        self.configure_curve_callback(domain="*", credentials_provider=self)
        self._watcher = threading.Thread(target=self._watch, name="telesurg-keys", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2.0)
        super().stop()

    # ------------------------------------------------------------------ the folder
    def reload(self) -> bool:
        """Read the folder again if it changed since the last read; whether it had."""
        signature = _signature(self.folder)
        if signature == self._signature:
            return False
        keys = frozenset(_public_keys(self.folder))
        removed = self.keys - keys
        self.keys, self.roles = keys, key_roles(self.folder)
        self._signature = signature
        self.version += 1
        if self.version > 1:
            log.warning(
                "authorised keys reloaded from %s: %d key(s)%s",
                self.folder,
                len(keys),
                f"; revoked {', '.join(fingerprint(k) for k in sorted(removed))}" if removed else "",
            )
        return True

    def _watch(self) -> None:
        failing = False
        while not self._stop_watch.wait(self.watch_every_s):
            try:
                self.reload()
                failing = False
            except OSError as exc:  # the folder went away: keep the keys we have, say so once
                if not failing:
                    log.error("cannot read the authorised-keys folder %s: %s", self.folder, exc)
                failing = True

    # ------------------------------------------------------------------ ZAP (the authenticator's thread)
    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials provider: whether the key (Z85) is authorised now."""
        self._peer_key = key.decode("ascii", "replace")
        return self._peer_key in self.keys

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._peer_address = msg[3].decode("ascii", "replace") if len(msg) > 3 else ""
        self._peer_key = ""
        await super().handle_zap_message(msg)

    def _send_zap_reply(self, request_id: bytes, status_code: bytes, status_text: bytes, user_id: Any = "") -> None:
        if status_code != b"200":
            self._deny(status_text.decode("ascii", "replace"))
        super()._send_zap_reply(request_id, status_code, status_text, user_id or "anonymous")

    def _deny(self, reason: str) -> None:
        now = time.monotonic()
        denial = Denial(now, self._peer_address, fingerprint(self._peer_key) if self._peer_key else "", reason)
        self.denials[reason] += 1
        self.denied_total += 1
        self.pending.append(denial)
        who = (denial.address, denial.fingerprint)
        last, since = self._logged.get(who, (-LOG_EVERY_S, 0))
        if now - last >= LOG_EVERY_S:
            log.warning(
                "refused a connection from %s with key %s: %s%s",
                denial.address or "?",
                denial.fingerprint or "(none)",
                reason,
                f" ({since} more since the last report)" if since else "",
            )
            self._logged[who] = (now, 0)
            if len(self._logged) > 10_000:  # bounded under a flood of distinct peers
                self._logged.clear()
        else:
            self._logged[who] = (last, since + 1)


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when a key file is added, removed or rewritten."""
    out = []
    for path in sorted(folder.glob("*.key")):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _public_keys(folder: Path) -> list[str]:
    """The Z85 public keys of the folder's readable ``*.key`` files (a malformed one is skipped and
    named in the log, as ZeroMQ's own loader would fail on it)."""
    keys = []
    for path in sorted(folder.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as exc:
            log.error("skipped key file %s: %s", path, exc)
            continue
        if public:
            keys.append(public.decode("ascii"))
    return keys


def key_roles(folder: Path) -> dict[str, tuple[str, str]]:
    """The authorised keys in ``folder`` that carry a role: Z85 public key (as ZeroMQ reports a
    CURVE peer's ``User-Id``) → (key name, role). Unreadable files are skipped (ZeroMQ's own
    authenticator ignores them too)."""
    roles: dict[str, tuple[str, str]] = {}
    for path in sorted(Path(folder).glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
            role = _certificate_metadata(path).get("role", "")
        except (OSError, ValueError):
            continue
        if role in ROLES:
            roles[public.decode("ascii")] = (path.stem, role)
    return roles


def _certificate_metadata(path: Path) -> dict[str, str]:
    """The ``metadata`` section of a ZeroMQ certificate file (ZPL: indented ``name = "value"``)."""
    out: dict[str, str] = {}
    section = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            section = line.strip()
            continue
        if section == "metadata" and "=" in line:
            name, _, value = line.strip().partition("=")
            out[name.strip()] = value.strip().strip('"')
    return out
