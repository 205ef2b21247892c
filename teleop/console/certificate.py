"""A self-signed TLS certificate for the surgeon page off loopback (`telesurg web-cert`): browsers
give the Gamepad API only to secure contexts, and the page's token must not travel in clear. The
browser will ask once to trust it (or install ``web.crt`` as trusted on the surgeon's machine)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path


def make_web_certificate(folder: Path, hosts: list[str], days: int = 365) -> tuple[Path, Path]:
    """Write ``web.crt`` and ``web.key`` (PEM, EC P-256, the key mode 0600) into ``folder``, valid for
    ``hosts`` (IP addresses or DNS names) for ``days``; refuses to overwrite an existing pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if not hosts:
        raise ValueError("name at least one host (the address the surgeon's browser opens)")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "web.crt", folder / "web.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it first (never overwritten)")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"telesurg surgeon page ({hosts[0]})")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
