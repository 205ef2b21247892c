"""The ``telesurg`` command line.

    telesurg envs                      # list the registered environment ids
    telesurg envs --layout telesurg/Palpate-v0   # an id's observation layout
    telesurg demo --out demo_out       # headless demo: experts solve every task, PNGs written
    telesurg train launch/train/reach_ppo.toml --timesteps 200000 --set hyperparams.gamma=0.98
    telesurg train --resume runs/reach_ppo   # continue from the newest checkpoint
    telesurg eval assets/policies/reach_ppo --episodes 100 --video reach.mp4 --plot curve.png
    telesurg sweep launch/sweep/reach_ppo.toml --trials 8   # Ray Tune (pip install telesurg[distributed])
    telesurg launch launch/local.toml  # robot server + video + scripted console on this host
    telesurg launch launch/local.toml tasks="Reach Trace" http_port=8081 --dry-run   # its arguments
    telesurg robot --config launch/robot.toml --record session.mcap   # the robot server
    telesurg console --config launch/console.toml --input keyboard    # a surgeon console
    telesurg keys keys/ --name robot   # CURVE key pair (keys/robot.key, keys/robot.key_secret)
    telesurg protocol --schema docs/protocol.schema.json   # the wire protocol's JSON Schema
    telesurg safety --quick            # latency-injection safety harness (report in runs/safety/)
    telesurg soak --minutes 60         # the whole stack for an hour: drift, leaks, invariants (runs/soak/)
    telesurg netem --to 10.0.0.5 --link "delay=100ms loss=1%"   # emulated network as a proxy

Errors are reported as one line on stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import NoReturn

from telesurg.teleop.cli_errors import CliError
from telesurg.teleop.commands import datasets, learning, network, security, stack, verification

__all__ = ["CliError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``telesurg train: error: …``), exit status 2; --help is unchanged."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="telesurg", description="telesurg: simulated surgical arm, tasks and teleoperation (research use only)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for area in (learning, datasets, stack, security, network, verification):
        area.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    # argparse takes positionals only before the first option: `launch FILE --dry-run tasks=Reach`
    # (what `make demo ARGS=…` can give) leaves the NAME=VALUE words over.
    if extra and getattr(args, "trailing_positionals", False) and not any(a.startswith("-") for a in extra):
        args.arguments += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.command_line = "telesurg " + shlex.join(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"telesurg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"telesurg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
