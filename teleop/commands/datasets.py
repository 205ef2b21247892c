"""`telesurg dataset`: build demonstration datasets (LeRobot v3.0) from robot recordings and the
scripted experts, print what one holds, and check one against the format.

    telesurg dataset build runs/demos --scripted runs/teleop/robot-*.mcap --experts 20 --tasks Retract
    telesurg dataset info runs/demos
    telesurg dataset validate runs/demos
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from telesurg.teleop.cli_errors import CliError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="demonstration datasets (LeRobot v3.0): build, info, validate")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    b = dsub.add_parser("build", help="build a dataset from robot recordings (MCAP) and scripted-expert rollouts")
    b.add_argument("out", help="dataset folder to write (written whole or not at all)")
    b.add_argument("--human", nargs="+", default=[], metavar="MCAP", help="recordings of sessions a person drove")
    b.add_argument(
        "--scripted", nargs="+", default=[], metavar="MCAP", help="recordings of the scripted surgeon or a trace replay"
    )
    b.add_argument("--experts", type=int, default=0, metavar="N", help="N scripted-expert episodes per task")
    b.add_argument(
        "--expert-noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="executed expert actions get Gaussian noise of this std (fraction of the max step); the dataset keeps "
        "the expert's own actions, so it shows recoveries (default 0); with --discrete-experts, the probability "
        "of a random table entry instead (outside the 15%% of periods held still)",
    )
    b.add_argument(
        "--discrete-experts",
        action="store_true",
        help="experts choose the Discrete ids' table entries themselves (demonstrations for DQN: each action is "
        "exactly one entry; Reach and Palpate)",
    )
    b.add_argument("--tasks", nargs="+", metavar="TASK", help="tasks to keep (default: all five)")
    b.add_argument("--seed", type=int, default=0, help="seed of the first expert episode (default: 0)")
    b.add_argument("--val-fraction", type=float, default=0.1, help="episodes per task kept for validation (0.1)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing dataset at OUT")
    b.set_defaults(func=_cmd_build)
    i = dsub.add_parser("info", help="counts, success per task, force statistics, splits")
    i.add_argument("path")
    i.set_defaults(func=_cmd_info)
    v = dsub.add_parser("validate", help="check a dataset against the LeRobot v3.0 layout and itself")
    v.add_argument("path")
    v.set_defaults(func=_cmd_validate)


def _cmd_build(args: argparse.Namespace) -> int:
    from telesurg.envs.tasks import TASKS_BY_NAME
    from telesurg.policies.dataset.experts import expert_episodes
    from telesurg.policies.dataset.lerobot import DatasetError, write_dataset
    from telesurg.teleop.robot.demonstrations import RecordingSkipped, UnknownTask, recording_episodes

    tasks = args.tasks or list(TASKS_BY_NAME)
    unknown = [t for t in tasks if t not in TASKS_BY_NAME]
    if unknown:
        raise CliError(f"unknown task(s) {unknown}; choose from {sorted(TASKS_BY_NAME)}")
    if args.experts < 0:
        raise CliError("--experts must be >= 0")
    if args.discrete_experts:
        from telesurg.policies.dataset.experts import DISCRETE_TASKS

        if not args.experts:
            raise CliError("--discrete-experts needs --experts N")
        others = [t for t in tasks if t not in DISCRETE_TASKS]
        if others:
            raise CliError(f"--discrete-experts works for {', '.join(DISCRETE_TASKS)}, not {', '.join(others)}")
    if not 0.0 <= args.expert_noise <= 1.0:
        raise CliError(f"--expert-noise must be in [0, 1], got {args.expert_noise}")
    if Path(args.out).exists() and not args.overwrite:
        raise CliError(f"{args.out} exists; choose another path or pass --overwrite")
    if not 0.0 <= args.val_fraction < 1.0:
        raise CliError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if not (args.human or args.scripted or args.experts):
        raise CliError("nothing to build from: give --human/--scripted recordings and/or --experts N")
    episodes = []
    skipped = []
    t0 = time.monotonic()
    for source, paths in (("human", args.human), ("scripted", args.scripted)):
        for path in paths:
            try:
                found = recording_episodes(path, source)
            except RecordingSkipped as exc:
                skipped.append(str(exc))
                print(f"dataset: skipped {exc}", flush=True)
                continue
            except UnknownTask as exc:
                raise CliError(str(exc)) from None
            kept = [e for e in found if e.task in tasks]
            episodes += kept
            print(f"dataset: {path}: {len(kept)} episode(s) ({source}) of {len(found)}", flush=True)
    for task in tasks if args.experts else []:
        start = time.monotonic()

        def progress(i: int, _e: object, task: str = task, start: float = start) -> None:
            if (i + 1) % 10 == 0 or i + 1 == args.experts:
                print(f"dataset: {task} expert {i + 1}/{args.experts} ({time.monotonic() - start:.0f} s)", flush=True)

        episodes += expert_episodes(
            task, args.experts, args.seed, progress, noise=args.expert_noise, discrete=args.discrete_experts
        )
    if not episodes:
        raise CliError("no episodes found: nothing written")
    try:
        out = write_dataset(
            args.out, episodes, val_fraction=args.val_fraction, overwrite=args.overwrite, command=args.command_line
        )
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    frames = sum(e.length for e in episodes)
    print(
        f"dataset: wrote {out} ({len(episodes)} episodes, {frames} frames, {len(skipped)} recording(s) skipped) "
        f"in {time.monotonic() - t0:.0f} s"
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from telesurg.policies.dataset.lerobot import DatasetError, read_dataset
    from telesurg.policies.dataset.summary import summarize

    try:
        print(summarize(read_dataset(args.path)))
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from telesurg.policies.dataset.validate import validate

    problems = validate(args.path)
    for line in problems:
        print(f"{args.path}: {line}")
    if problems:
        print(f"{args.path}: {len(problems)} problem(s): not a valid LeRobot v3.0 dataset")
        return 1
    print(f"{args.path}: valid LeRobot v3.0 dataset")
    return 0
