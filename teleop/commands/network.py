"""`telesurg` commands for network emulation: the `telesurg netem` proxy."""

from __future__ import annotations

import argparse

from telesurg.teleop.cli_errors import CliError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p_netem = sub.add_parser(
        "netem", help="a proxy with an emulated network between a console and a robot (delay, jitter, loss, outages)"
    )
    p_netem.add_argument(
        "--link", help='spec for both directions, e.g. "delay=200ms jitter=20ms loss=1%% outage=5s@10s"'
    )
    p_netem.add_argument("--up", help="spec console → robot (overrides --link)")
    p_netem.add_argument("--down", help="spec robot → console (overrides --link)")
    p_netem.add_argument("--to", default="127.0.0.1", help="the robot's host (default 127.0.0.1)")
    p_netem.add_argument("--robot-ports", nargs=3, type=int, default=[5570, 5571, 5572], metavar="PORT")
    p_netem.add_argument("--listen-host", default="127.0.0.1", help="where consoles connect (default loopback)")
    p_netem.add_argument("--listen-ports", nargs=3, type=int, default=[6570, 6571, 6572], metavar="PORT")
    p_netem.add_argument("--route", action="append", metavar="[LHOST:]LPORT:THOST:TPORT", help="explicit routes")
    p_netem.add_argument("--allow-remote", action="store_true", help="allow listening on a non-loopback address")
    p_netem.set_defaults(func=_cmd_netem)


def _cmd_netem(args: argparse.Namespace) -> int:
    from telesurg.teleop.netem.proxy import Route, channel_routes, serve_proxy
    from telesurg.teleop.netem.spec import LinkSpec, LinkSpecError
    from telesurg.teleop.wire.channels import Endpoints

    try:
        both = LinkSpec.parse(args.link or "")
        up = LinkSpec.parse(args.up) if args.up is not None else both
        down = LinkSpec.parse(args.down) if args.down is not None else both
        if args.route:
            routes = [Route.parse(r) for r in args.route]
        else:
            target = Endpoints(args.to, *args.robot_ports)
            listen = Endpoints(args.listen_host, *args.listen_ports)
            routes = channel_routes(target, listen)
        return serve_proxy(routes, up, down, allow_remote=args.allow_remote, log=lambda m: print(m, flush=True))
    except (LinkSpecError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
