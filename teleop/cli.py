"""The ``telesurg`` command line.

    telesurg envs                      # list the registered environment ids
    telesurg envs --layout telesurg/Palpate-v0   # an id's observation layout
    telesurg demo --out demo_out       # headless demo: experts solve every task, PNGs written

Errors are reported as one line on stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class CliError(Exception):
    """A user error: reported as one line, exit status 2."""


def _cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import envs

    if args.layout:
        if args.layout not in envs.ENV_IDS:
            raise CliError(f"unknown env id {args.layout!r}; run 'telesurg envs' for the list")
        env = gym.make(args.layout)
        try:
            base = env.unwrapped
            print(f"{args.layout}: observation layout {base.obs_layout.signature()}")
            for name, layout in (("observation", base.obs_layout), ("achieved_goal / desired_goal", base.goal_layout)):
                print(f"\n{name} ({layout.size} values)")
                for row in layout.describe():
                    span = f"[{row['start']:>2}:{row['start'] + row['size']:<2}]"
                    print(f"  {span} {row['name']:<18} {row['unit']:<5} {row['doc']}")
            labels = getattr(env, "labels", None)
            if labels is None and hasattr(env, "get_wrapper_attr"):
                try:
                    labels = env.get_wrapper_attr("labels")
                except AttributeError:
                    labels = None
            if labels:
                print("\ndiscrete actions: " + ", ".join(f"{i}={label}" for i, label in enumerate(labels)))
        finally:
            env.close()
        return 0
    print(f"{'id':<36}{'actions':>10}{'reward':>8}{'max steps':>11}")
    for env_id in envs.ENV_IDS:
        spec = gym.spec(env_id)
        kind = "discrete" if spec.kwargs.get("discrete") else "box(4)"
        print(f"{env_id:<36}{kind:>10}{spec.kwargs['reward_type']:>8}{spec.max_episode_steps:>11}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from envs.demo import format_table, run_demo
    from envs.tasks import TASKS_BY_NAME

    unknown = [t for t in args.tasks or [] if t not in TASKS_BY_NAME]
    if unknown:
        raise CliError(f"unknown task(s) {unknown}; choose from {sorted(TASKS_BY_NAME)}")
    if args.width < 8 or args.height < 8:
        raise CliError("--width and --height must be at least 8 pixels")
    out = Path(args.out)
    print(f"telesurg demo: scripted experts, one episode per task, images in {out.resolve()}", flush=True)
    rows = run_demo(
        out, seed=args.seed, width=args.width, height=args.height, tasks=args.tasks, log=lambda m: print(m, flush=True)
    )
    print()
    print(format_table(rows))
    print(f"\nimages written to {out.resolve()}")
    return 0 if all(r.success for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telesurg", description="telesurg: simulated surgical arm, tasks and teleoperation (research use only)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_envs = sub.add_parser("envs", help="list registered environment ids")
    p_envs.add_argument("--layout", metavar="ID", help="print the observation layout of one id")
    p_envs.set_defaults(func=_cmd_envs)
    p_demo = sub.add_parser("demo", help="headless demo: scripted experts solve every task")
    p_demo.add_argument("--out", default="demo_out", help="folder for the PNGs (default: demo_out)")
    p_demo.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    p_demo.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (default: all)")
    p_demo.add_argument("--width", type=int, default=640, help="image width in pixels (default: 640)")
    p_demo.add_argument("--height", type=int, default=480, help="image height in pixels (default: 480)")
    p_demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
