"""`telesurg` commands for verification: the safety harness, the soak, the learned predictor's training through
the stack."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from telesurg.teleop.cli_errors import CliError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p_safety = sub.add_parser("safety", help="latency-injection safety harness: link conditions × faults, invariants")
    p_safety.add_argument("--quick", action="store_true", help="the reduced matrix (a handful of cells; CI runs it)")
    p_safety.add_argument("--out", help="report folder (default runs/safety/<time>)")
    p_safety.add_argument("--jobs", type=int, help="cells in parallel (default: one per two cores, one core spare)")
    p_safety.add_argument("--cells", nargs="+", metavar="REGEX", help="only cells whose name matches")
    p_safety.add_argument(
        "--link",
        action="append",
        metavar="SPEC",
        help='custom cells instead of the matrix: a link spec, e.g. "delay=200ms jitter=20ms loss=3%% burst=4 '
        'outage=1s@5s" (fidelity by its mode= key; repeatable)',
    )
    p_safety.add_argument(
        "--task",
        nargs="+",
        choices=["Reach", "Palpate", "Retract", "Transfer", "Trace"],
        help="the tasks of --link cells (default Reach), or only the matrix's cells of these tasks",
    )
    p_safety.add_argument("--list", action="store_true", help="print the cells that would run, and exit")
    p_safety.add_argument(
        "--negative-control",
        nargs="+",
        choices=["watchdog", "speed"],
        help="TEST ONLY: disable the supervisor's watchdog or speed limit to prove the checks fail",
    )
    p_safety.set_defaults(func=_cmd_safety)

    p_soak = sub.add_parser("soak", help="the whole stack for an hour under a bad link: drift, leaks, invariants")
    p_soak.add_argument("--minutes", type=float, default=60.0, help="how long (default 60)")
    p_soak.add_argument("--window-minutes", type=float, default=5.0, help="report window (default 5)")
    p_soak.add_argument("--out", help="report folder (default runs/soak/<time>)")
    p_soak.add_argument("--strict", action="store_true", help="the timing targets decide the exit status too")
    p_soak.add_argument(
        "--pinning",
        choices=["auto", "isolate", "robot", "none"],
        default="auto",
        help="robot loop on a CPU of its own (isolate), first on its CPU (robot), or none (default auto: by CPUs)",
    )
    p_soak.set_defaults(func=_cmd_soak)

    p_pred = sub.add_parser(
        "train-predictor",
        help="record surgeon motion through the stack, train the learned motion predictor, evaluate every predictor",
    )
    p_pred.add_argument("--out", default="assets/predictor", help="folder for learned.npz + evaluation.json")
    p_pred.add_argument("--seeds", type=int, default=4, help="scripted-surgeon sessions per delay (default 4)")
    p_pred.add_argument("--delays", nargs="+", type=float, default=[0.0, 0.1, 0.2], help="one-way delays (s)")
    p_pred.add_argument("--steps", type=int, default=4000, help="optimiser steps (default 4000)")
    p_pred.add_argument("--from-mcap", nargs="+", metavar="MCAP", help="train on these robot recordings instead")
    p_pred.add_argument("--keep-recording", metavar="DIR", help="keep the robot's recording (MCAP) in DIR")
    p_pred.set_defaults(func=_cmd_train_predictor)


def _cmd_safety(args: argparse.Namespace) -> int:
    from telesurg.teleop.harness.safety import run_safety, select_cells

    try:
        if args.list:
            for cell in select_cells(args.quick, args.cells, args.link, args.task):
                print(f"{cell.name:<44} {cell.task:<9} {cell.spec}{' ' + cell.fault if cell.fault else ''}")
            return 0
        out = Path(args.out or time.strftime("runs/safety/%Y%m%d-%H%M%S"))
        if out.exists() and any(out.iterdir()):
            raise CliError(f"{out} exists and is not empty; choose another --out")
        return run_safety(
            out,
            quick=args.quick,
            jobs=args.jobs,
            only=args.cells,
            negative=args.negative_control,
            links=args.link,
            tasks=args.task,
        )
    except ValueError as exc:  # LinkSpecError included: one line naming the item
        raise CliError(str(exc)) from None


def _cmd_soak(args: argparse.Namespace) -> int:
    from telesurg.teleop.harness.soak import SoakConfig, run_soak

    out = Path(args.out or time.strftime("runs/soak/%Y%m%d-%H%M%S"))
    if out.exists() and any(out.iterdir()):
        raise CliError(f"{out} exists and is not empty; choose another --out")
    try:
        config = SoakConfig(
            out=out, minutes=args.minutes, window_minutes=args.window_minutes, strict=args.strict, pinning=args.pinning
        )
        return run_soak(config)
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from None


def _cmd_train_predictor(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.steps < 1 or any(d < 0 or d > 1.0 for d in args.delays):
        raise CliError("need --seeds ≥ 1, --steps ≥ 1 and delays in [0, 1] s")
    from telesurg.teleop.harness.train_predictor import TrainConfig, main

    cfg = TrainConfig(seeds=args.seeds, delays_s=tuple(args.delays), steps=args.steps)
    return main(args.out, cfg, args.from_mcap, args.keep_recording)
