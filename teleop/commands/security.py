"""`telesurg` commands for keys and the wire protocol."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from telesurg.teleop.cli_errors import CliError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p_keys = sub.add_parser("keys", help="generate a CURVE key pair for the robot or a console")
    p_keys.add_argument("folder", help="folder for NAME.key (public) and NAME.key_secret (secret)")
    p_keys.add_argument("--name", required=True, help="key name, e.g. robot or console1")
    p_keys.add_argument(
        "--role", choices=("reset",), help="reset: this console may clear an e-stop that stopped another's session"
    )
    p_keys.set_defaults(func=_cmd_keys)

    p_cert = sub.add_parser("web-cert", help="a self-signed HTTPS certificate for the surgeon page off loopback")
    p_cert.add_argument("folder", help="folder for web.crt and web.key")
    p_cert.add_argument("--host", action="append", required=True, help="address the browser opens (repeatable)")
    p_cert.add_argument("--days", type=int, default=365, help="validity (days, default 365)")
    p_cert.set_defaults(func=_cmd_web_cert)

    p_protocol = sub.add_parser("protocol", help="the wire protocol's machine-readable JSON Schema")
    p_protocol.add_argument("--schema", default="-", metavar="PATH", help="write it here (default - : stdout)")
    p_protocol.set_defaults(func=_cmd_protocol)


def _cmd_keys(args: argparse.Namespace) -> int:
    from telesurg.teleop.wire.channels import generate_keys

    try:
        public, secret = generate_keys(Path(args.folder), args.name, args.role)
    except (FileExistsError, OSError) as exc:
        raise CliError(str(exc)) from None
    role = f", role {args.role}" if args.role else ""
    print(f"public key: {public} (give it to the other side{role})\nsecret key: {secret} (keep it here, mode 0600)")
    return 0


def _cmd_web_cert(args: argparse.Namespace) -> int:
    from telesurg.teleop.console.certificate import make_web_certificate

    try:
        cert, key = make_web_certificate(Path(args.folder), args.host, args.days)
    except (FileExistsError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    print(
        f"certificate: {cert}\nkey: {key} (mode 0600)\n[console.web] tls_cert = {str(cert)!r}, tls_key = {str(key)!r}"
    )
    return 0


def _cmd_protocol(args: argparse.Namespace) -> int:
    from telesurg.teleop.wire.protocol import json_schema

    text = json.dumps(json_schema(), indent=1, ensure_ascii=False) + "\n"
    if args.schema == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.schema).write_text(text)
    except OSError as exc:
        raise CliError(f"cannot write {args.schema}: {exc.strerror}") from None
    print(f"wrote the wire protocol's JSON Schema to {args.schema}")
    return 0
