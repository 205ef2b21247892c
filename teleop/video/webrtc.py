"""WebRTC settings shared by the media process and the console (aiortc): which servers ICE may
contact and which candidates it may use.

- **No servers unless configured.** aiortc's default configuration contacts a public STUN server;
  ``rtc_configuration`` gives ``iceServers=[]`` unless the user lists servers.
- **Only the configured addresses.** ``keep_candidates`` drops remote candidates outside the
  configured list from an SDP (a browser also offers its LAN and mDNS names), and
  ``telesurg.teleop.video.aiortc_patches.use_ice_addresses`` makes aioice gather on the list only, so nothing
  but the configured network is ever contacted. The link emulator on a peer connection is
  ``telesurg.teleop.video.aiortc_patches.emulate_link``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

LOOPBACK_ADDRESSES = ("127.0.0.1",)


def rtc_configuration(ice_servers: Sequence[str] = ()) -> Any:
    """An ``RTCConfiguration`` with exactly ``ice_servers`` (URLs such as ``stun:host:3478``)."""
    from aiortc import RTCConfiguration, RTCIceServer

    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


def keep_candidates(sdp: str, addresses: Sequence[str]) -> str:
    """``sdp`` without ``a=candidate`` lines whose address is not in ``addresses`` (mDNS names
    included). Candidates that arrive as peer-reflexive from an allowed address still work."""
    allowed = {str(ipaddress.ip_address(a)) for a in addresses}
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5:
                continue
            try:
                address = str(ipaddress.ip_address(parts[4]))
            except ValueError:
                continue  # an mDNS name (xxx.local) or garbage
            if address not in allowed:
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
