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
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path
from typing import NoReturn


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
    ok = all(r.success for r in rows)
    if not args.tasks:
        ok = _demo_policies(args.seed) and ok
    return 0 if ok else 1


def _demo_policies(seed: int) -> bool:
    """One episode of every shipped trained policy (with the shield where it was trained with one)."""
    from policies.bundle import Policy
    from policies.evaluate import evaluate
    from policies.shipped import shipped_policies

    print("\ntrained policies (assets/policies), one episode each:")
    print(f"{'policy':<14}{'env id':<34}{'success':>8}{'max force N':>13}")
    ok = True
    for name, folder in shipped_policies().items():
        policy = Policy.load(folder)
        card = policy.card
        shield = bool(card.training.get("shield", False))
        result = evaluate(policy, card.env_id, 1, seed=seed, shield=shield, env_options=card.env_options)
        ok &= result.success_rate == 1.0
        print(
            f"{name:<14}{card.env_id:<34}{'yes' if result.success_rate == 1.0 else 'no':>8}"
            f"{result.max_contact_force_N:>13.2f}"
        )
    return ok


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def _train_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    for flag, key, is_str in (
        ("env", "env_id", True),
        ("algo", "algo", True),
        ("timesteps", "total_timesteps", False),
        ("n_envs", "n_envs", False),
        ("seed", "seed", False),
        ("out", "out", True),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={_toml_string(value) if is_str else value}")
    if args.shield is not None:
        overrides.append(f"shield={'true' if args.shield else 'false'}")
    return overrides + list(args.set or [])


def _cmd_train(args: argparse.Namespace) -> int:
    from policies.config import ConfigError, load_config
    from policies.train import resume, train

    try:
        if args.resume:
            if args.config:
                raise CliError("give either a config file or --resume RUN, not both")
            if args.env or args.algo:
                raise CliError("--env and --algo cannot change when resuming a run")
            cfg, bundle = resume(args.resume, _train_overrides(args))
        else:
            cfg, bundle = load_config(args.config, _train_overrides(args)), None
        train(cfg, command=args.command_line, log=lambda m: print(m, flush=True), resume_from=bundle)
    except (ConfigError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # e.g. --out names a file or an unwritable place
        raise CliError(f"cannot write the run folder: {exc}") from None
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import envs
    from policies.bundle import Policy, PolicyMismatch
    from policies.evaluate import EvalResult, evaluate, format_results

    if args.episodes < 1:
        raise CliError("--episodes must be at least 1")
    for flag, target in (("--video", args.video), ("--plot", args.plot), ("--json", args.json)):
        if target and not Path(target).resolve().parent.is_dir():
            raise CliError(f"{flag} {target}: folder {Path(target).resolve().parent} does not exist")
    try:
        policy = Policy.load(args.model)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    card = policy.card
    env_id = args.env or card.env_id
    if env_id not in envs.ENV_IDS:
        raise CliError(f"unknown env id {env_id!r}; run 'telesurg envs' for the list")
    options = card.env_options  # the force limits etc. the policy was trained and is judged under
    try:
        probe = gym.make(env_id, **options)
    except (TypeError, ValueError) as exc:
        raise CliError(f"model card env_options {options} are not valid: {exc}") from None
    fps = float(probe.metadata.get("render_fps", 25))
    try:
        policy.check_env(probe)
    except PolicyMismatch as exc:
        raise CliError(str(exc)) from None
    finally:
        probe.close()
    if args.plot:
        from policies.plot import plot_training_curve

        try:
            print(f"training curve written to {plot_training_curve(args.model, args.plot)}")
        except ValueError as exc:
            raise CliError(str(exc)) from None
    shields = {"off": [False], "on": [True], "both": [False, True]}[args.shield]
    results: list[EvalResult] = []
    print(
        f"evaluating {card.algo.upper()} policy ({card.env_id}) on {env_id}: {args.episodes} episodes, seed {args.seed}"
    )
    for i, shield in enumerate(shields):
        writer = None
        if args.video and i == 0:
            from policies.video import Mp4Writer

            try:
                writer = Mp4Writer(args.video, fps)
            except ValueError as exc:
                raise CliError(str(exc)) from None
        try:
            results.append(
                evaluate(
                    policy,
                    env_id,
                    args.episodes,
                    args.seed,
                    shield,
                    options,
                    on_frame=writer.write if writer else None,
                )
            )
        finally:
            if writer is not None:
                writer.close()
                print(f"video of episode 0 ({writer.frames} frames) written to {args.video}")
    print(format_results(results))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
        except OSError as exc:
            raise CliError(f"cannot write {args.json}: {exc}") from None
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from policies.config import ConfigError
    from policies.sweep import load_sweep, run_sweep

    if importlib.util.find_spec("ray") is None:
        raise CliError("the sweep needs Ray Tune; install the extra with: pip install 'telesurg[distributed]'")
    try:
        spec = load_sweep(args.config, trials=args.trials, out=args.out, overrides=args.set)
        run_sweep(spec, address=args.address, log=lambda m: print(m, flush=True))
    except (ConfigError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _endpoint_ports(args: argparse.Namespace) -> dict[str, int | None]:
    """The robot's channel ports from ``--cmd-port`` etc. (both ends take the same flags)."""
    return {f"endpoints.{key}": getattr(args, key) for key in ("cmd_port", "telemetry_port", "control_port")}


def _add_endpoint_ports(parser: argparse.ArgumentParser, where: str) -> None:
    for channel in ("cmd", "telemetry", "control"):
        text = f"port of the {channel} channel{where} ([endpoints] {channel}_port)"
        parser.add_argument(f"--{channel}-port", type=int, help=text)


def _cmd_robot(args: argparse.Namespace) -> int:
    import logging

    from teleop.robot.server import ServerConfig, serve
    from teleop.settings import ConfigError, load_section

    overrides = {
        "arm.task": args.task,
        "arm.seed": args.seed,
        "record": args.record,
        "endpoints.host": args.host,
        **_endpoint_ports(args),
        "realtime": True if args.realtime else None,
        "state_port": args.state_port,
        "video_signal_port": args.video_signal_port,
    }
    try:
        config = load_section(args.config, "robot", ServerConfig, "robot config", overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        stats = serve(config)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    s = stats.summary()
    print(
        f"robot stopped after {s['periods']} periods: mean {s['mean_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms, "
        f"max {s['max_ms']:.3f} ms, {s['within_20pct'] * 100:.1f}% within 20% of nominal, {s['overruns']} overruns",
        flush=True,
    )
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(s, indent=2) + "\n")
    return 0


def _cmd_console(args: argparse.Namespace) -> int:
    from teleop.console.config import ConsoleConfig
    from teleop.console.core import Console
    from teleop.console.robot_link import ConsoleError
    from teleop.settings import ConfigError, load_section
    from teleop.video.client import NoWindowError

    overrides = {
        "input": args.input,
        "trace": args.trace,
        "tasks": args.tasks,
        "seed": args.seed,
        "headless": False if args.interactive else None,
        "summary_json": args.summary_json,
        "record_trace": args.record_trace,
        "endpoints.host": args.host,
        **_endpoint_ports(args),
        "rate_hz": args.rate,
        "link": args.link,
        "video.enabled": True if (args.video or args.save_video or args.video_link) else None,
        "video.save_video": args.save_video,
        "video.link": args.video_link,
        "video.max_age_s": args.max_video_age,
        "surgeon.feedback": args.feedback,
        "correction.twin_enabled": True if args.twin else None,
        "correction.prediction": args.prediction,
        "correction.tremor_enabled": None if args.tremor is None else args.tremor == "on",
    }
    try:
        config = load_section(args.config, "console", ConsoleConfig, "console config", overrides)
        console = Console(config)
    except NoWindowError as exc:  # show = true comes from the file
        raise CliError(f"{args.config + ': ' if args.config else ''}{exc}") from None
    except (ConfigError, ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    try:
        return console.run()
    except ConsoleError as exc:
        raise CliError(str(exc)) from None


def _cmd_video(args: argparse.Namespace) -> int:
    from teleop.settings import ConfigError, load_section
    from teleop.video.media import VideoConfig, serve

    overrides = {
        "renderer.width": args.width,
        "renderer.height": args.height,
        "renderer.fps": args.fps,
        "renderer.backend": args.backend,
        "renderer.state_url": f"tcp://127.0.0.1:{args.state_port}" if args.state_port else None,
        "signal_port": args.signal_port,
        "http_host": args.http_host,
        "http_port": args.http_port,
        "token_required": True if args.require_token else None,
    }
    try:
        config = load_section(args.config, "video", VideoConfig, "video config", overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    try:
        return serve(config)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from None


def _cmd_keys(args: argparse.Namespace) -> int:
    from teleop.wire.channels import generate_keys

    try:
        public, secret = generate_keys(Path(args.folder), args.name, args.role)
    except (FileExistsError, OSError) as exc:
        raise CliError(str(exc)) from None
    role = f", role {args.role}" if args.role else ""
    print(f"public key: {public} (give it to the other side{role})\nsecret key: {secret} (keep it here, mode 0600)")
    return 0


def _cmd_protocol(args: argparse.Namespace) -> int:
    from teleop.wire.protocol import json_schema

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


def _cmd_launch(args: argparse.Namespace) -> int:
    from teleop.launch import LaunchError, parse_arguments, run_launch

    try:
        return run_launch(args.file, parse_arguments(args.arguments), dry_run=args.dry_run)
    except LaunchError as exc:
        raise CliError(str(exc)) from None


def _cmd_safety(args: argparse.Namespace) -> int:
    from teleop.harness.safety import run_safety, select_cells

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
    from teleop.harness.soak import SoakConfig, run_soak

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


def _cmd_netem(args: argparse.Namespace) -> int:
    from teleop.netem.proxy import Route, channel_routes, serve_proxy
    from teleop.netem.spec import LinkSpec, LinkSpecError
    from teleop.wire.channels import Endpoints

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


def _cmd_train_predictor(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.steps < 1 or any(d < 0 or d > 1.0 for d in args.delays):
        raise CliError("need --seeds ≥ 1, --steps ≥ 1 and delays in [0, 1] s")
    from teleop.harness.train_predictor import TrainConfig, main

    cfg = TrainConfig(seeds=args.seeds, delays_s=tuple(args.delays), steps=args.steps)
    return main(args.out, cfg, args.from_mcap, args.keep_recording)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``telesurg train: error: …``), exit status 2; --help is unchanged."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    p_train = sub.add_parser("train", help="train PPO (Box ids) or DQN (Discrete ids) headless")
    p_train.add_argument("config", nargs="?", help="TOML file, e.g. launch/train/reach_ppo.toml")
    p_train.add_argument("--env", help="env id (overrides env_id)")
    p_train.add_argument("--algo", choices=["ppo", "dqn", "auto"], help="algorithm (default: by action space)")
    p_train.add_argument("--timesteps", type=int, help="total environment steps")
    p_train.add_argument("--n-envs", type=int, help="parallel envs (subprocesses where it pays)")
    p_train.add_argument("--seed", type=int, help="random seed")
    p_train.add_argument("--out", help="run folder (default: runs/<task>_<algo>_s<seed>)")
    p_train.add_argument(
        "--shield", action=argparse.BooleanOptionalAction, default=None, help="force shield in training"
    )
    p_train.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. hyperparams.gamma=0.98"
    )
    p_train.add_argument("--resume", metavar="RUN", help="continue a run folder (or one of its checkpoints)")
    p_train.set_defaults(func=_cmd_train)

    p_eval = sub.add_parser("eval", help="evaluate a saved policy: success, violations, contact force")
    p_eval.add_argument("model", help="policy folder (or its model.zip), e.g. assets/policies/reach_ppo")
    p_eval.add_argument("--env", help="env id (default: the one in the model card)")
    p_eval.add_argument("--episodes", type=int, default=20, help="episodes per shield setting (default: 20)")
    p_eval.add_argument("--seed", type=int, default=1_000_000, help="seed of the first episode (default: 1000000)")
    p_eval.add_argument("--shield", choices=["both", "off", "on"], default="both", help="force shield (default: both)")
    p_eval.add_argument("--video", metavar="OUT.mp4", help="record the first episode from the endoscope camera")
    p_eval.add_argument("--plot", metavar="OUT.png", help="plot the training curve (success rate over steps)")
    p_eval.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    p_eval.set_defaults(func=_cmd_eval)

    p_sweep = sub.add_parser("sweep", help="hyperparameter sweep on Ray Tune (local or on a Ray cluster)")
    p_sweep.add_argument("config", help="sweep TOML, e.g. launch/sweep/reach_ppo.toml")
    p_sweep.add_argument("--trials", type=int, help="number of trials (overrides the file)")
    p_sweep.add_argument("--out", help="sweep folder (overrides the file)")
    p_sweep.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p_sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override applied to every trial")
    p_sweep.set_defaults(func=_cmd_sweep)

    p_robot = sub.add_parser("robot", help="the robot server: simulated arm, safety supervisor, ZeroMQ channels")
    p_robot.add_argument("--config", help="robot TOML ([robot] table), e.g. launch/robot.toml (default: built-in)")
    p_robot.add_argument("--task", help="task scene to load (Reach, Palpate, Retract, Transfer, Trace)")
    p_robot.add_argument("--seed", type=int, help="goal seed of the task")
    p_robot.add_argument("--record", metavar="FILE.mcap", help="record every period, command and event to MCAP")
    p_robot.add_argument("--host", help="address to listen on (default 127.0.0.1; others need CURVE keys)")
    _add_endpoint_ports(p_robot, "")
    p_robot.add_argument("--realtime", action="store_true", help="ask for real-time scheduling (needs privilege)")
    p_robot.add_argument("--stats-json", metavar="OUT.json", help="write the control-period statistics on exit")
    p_robot.add_argument("--state-port", type=int, help="also publish telemetry on this loopback port (renderer)")
    p_robot.add_argument("--video-signal-port", type=int, help="forward WebRTC offers to the media process here")
    p_robot.set_defaults(func=_cmd_robot)

    p_console = sub.add_parser("console", help="a surgeon console: drive the robot server")
    p_console.add_argument("--config", help="console TOML ([console] table), e.g. launch/console.toml")
    p_console.add_argument("--input", choices=["scripted", "keyboard", "gamepad", "spacemouse", "trace"])
    p_console.add_argument("--trace", metavar="FILE.csv", help="hand trace to replay (t,x,y,z,jaw; s, m)")
    p_console.add_argument("--tasks", nargs="+", help="tasks for the scripted surgeon (default: Reach Palpate)")
    p_console.add_argument("--seed", type=int, help="first episode seed")
    p_console.add_argument("--interactive", action="store_true", help="live status line instead of log lines")
    p_console.add_argument("--summary-json", metavar="OUT.json", help="write the summary as JSON")
    p_console.add_argument("--record-trace", metavar="OUT.csv", help="save the hand motion as a trace CSV")
    p_console.add_argument("--host", help="the robot's address (default 127.0.0.1)")
    _add_endpoint_ports(p_console, " on the robot")
    p_console.add_argument("--rate", type=float, help="command rate in Hz (default 200)")
    p_console.add_argument("--link", help='emulated network on every channel, e.g. "delay=100ms jitter=10ms loss=1%%"')
    p_console.add_argument("--video", action="store_true", help="receive the endoscope video (WebRTC)")
    p_console.add_argument("--save-video", metavar="OUT.mp4", help="record what the surgeon saw (implies --video)")
    p_console.add_argument("--video-link", help="emulated network on the video path (implies --video)")
    p_console.add_argument(
        "--max-video-age", type=float, help="hold when the newest frame is older than this (s, default 0.5)"
    )
    p_console.add_argument(
        "--feedback", choices=["telemetry", "twin"], help="what the scripted surgeon closes its loop on"
    )
    p_console.add_argument("--twin", action="store_true", help="run the local twin (drawn as a ghost on the video)")
    p_console.add_argument(
        "--prediction", choices=["off", "zoh", "cv", "alphabeta", "learned"], help="motion prediction over the delay"
    )
    p_console.add_argument("--tremor", choices=["on", "off"], help="the tremor filter (8–12 Hz) on the hand")
    p_console.set_defaults(func=_cmd_console)

    p_video = sub.add_parser("video", help="the media process: renderer + WebRTC video + browser viewer")
    p_video.add_argument("--config", help="video TOML ([video] table), e.g. launch/video.toml")
    p_video.add_argument("--width", type=int, help="image width in pixels (default 640)")
    p_video.add_argument("--height", type=int, help="image height in pixels (default 480)")
    p_video.add_argument("--fps", type=float, help="frame rate (default 30)")
    p_video.add_argument("--backend", choices=["auto", "gl", "egl", "tiny"], help="renderer (default: auto)")
    p_video.add_argument("--state-port", type=int, help="the robot's state feed port (default 5573)")
    p_video.add_argument("--signal-port", type=int, help="signalling port the robot forwards offers to (default 5574)")
    p_video.add_argument("--http-host", help="web viewer address (default 127.0.0.1)")
    p_video.add_argument("--http-port", type=int, help="web viewer port (default 8080; 0: no viewer)")
    p_video.add_argument("--require-token", action="store_true", help="require the viewer token even on loopback")
    p_video.set_defaults(func=_cmd_video)

    p_keys = sub.add_parser("keys", help="generate a CURVE key pair for the robot or a console")
    p_keys.add_argument("folder", help="folder for NAME.key (public) and NAME.key_secret (secret)")
    p_keys.add_argument("--name", required=True, help="key name, e.g. robot or console1")
    p_keys.add_argument(
        "--role", choices=("reset",), help="reset: this console may clear an e-stop that stopped another's session"
    )
    p_keys.set_defaults(func=_cmd_keys)

    p_protocol = sub.add_parser("protocol", help="the wire protocol's machine-readable JSON Schema")
    p_protocol.add_argument("--schema", default="-", metavar="PATH", help="write it here (default - : stdout)")
    p_protocol.set_defaults(func=_cmd_protocol)

    p_launch = sub.add_parser("launch", help="start the processes of a launch file (e.g. launch/local.toml)")
    p_launch.add_argument("file", help="launch TOML")
    p_launch.add_argument(
        "arguments", nargs="*", metavar="NAME=VALUE", help='the file\'s launch arguments, e.g. tasks="Reach Trace"'
    )
    p_launch.add_argument(
        "--dry-run", action="store_true", help="check the file, list its arguments and print the commands only"
    )
    p_launch.set_defaults(func=_cmd_launch, trailing_positionals=True)

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
