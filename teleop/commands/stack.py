"""`telesurg` commands for the teleoperation stack: the robot server, the surgeon console, the media process,
launch files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from telesurg.teleop.cli_errors import CliError


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    p_console.add_argument("--input", choices=["scripted", "keyboard", "gamepad", "spacemouse", "trace", "web"])
    p_console.add_argument(
        "--web", action="store_true", help="serve the surgeon page (input from the browser; video on the page)"
    )
    p_console.add_argument("--web-host", help="where the surgeon page is served (default 127.0.0.1)")
    p_console.add_argument("--web-port", type=int, help="the surgeon page's port (default 8090; 0: any free one)")
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
    p_console.add_argument(
        "--faults", metavar="FILE.toml", help="TEST ONLY: inject the safety harness's console faults ([faults])"
    )
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

    p_launch = sub.add_parser("launch", help="start the processes of a launch file (e.g. launch/local.toml)")
    p_launch.add_argument("file", help="launch TOML")
    p_launch.add_argument(
        "arguments", nargs="*", metavar="NAME=VALUE", help='the file\'s launch arguments, e.g. tasks="Reach Trace"'
    )
    p_launch.add_argument(
        "--dry-run", action="store_true", help="check the file, list its arguments and print the commands only"
    )
    p_launch.add_argument(
        "--keep-open",
        action="store_true",
        help="in a terminal: when the main process is done, keep the others (video, viewer) up until Enter",
    )
    p_launch.set_defaults(func=_cmd_launch, trailing_positionals=True)


def _endpoint_ports(args: argparse.Namespace) -> dict[str, int | None]:
    """The robot's channel ports from ``--cmd-port`` etc. (both ends take the same flags)."""
    return {f"endpoints.{key}": getattr(args, key) for key in ("cmd_port", "telemetry_port", "control_port")}


def _add_endpoint_ports(parser: argparse.ArgumentParser, where: str) -> None:
    for channel in ("cmd", "telemetry", "control"):
        text = f"port of the {channel} channel{where} ([endpoints] {channel}_port)"
        parser.add_argument(f"--{channel}-port", type=int, help=text)


def _cmd_robot(args: argparse.Namespace) -> int:
    import logging

    from telesurg.teleop.robot.server import ServerConfig, serve
    from telesurg.teleop.settings import ConfigError, load_section

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
    from telesurg.teleop.console.config import ConsoleConfig
    from telesurg.teleop.console.core import Console
    from telesurg.teleop.console.robot_link import ConsoleError
    from telesurg.teleop.settings import ConfigError, load_section

    overrides = {
        "input": "web" if args.web else args.input,
        "video.enabled": True if (args.video or args.save_video or args.video_link or args.web) else None,
        "web.host": args.web_host,
        "web.port": args.web_port,
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
        if args.faults:  # the safety harness's fault injection (TEST ONLY)
            from telesurg.teleop.harness.faults import ConsoleFaults, FaultyConsole

            faults = load_section(args.faults, "faults", ConsoleFaults, "fault file")
            console: Console = FaultyConsole(config, faults)
        else:
            console = Console(config)
    except (ConfigError, ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    try:
        return console.run()
    except ConsoleError as exc:
        raise CliError(str(exc)) from None


def _cmd_video(args: argparse.Namespace) -> int:
    from telesurg.teleop.settings import ConfigError, load_section
    from telesurg.teleop.video.media import VideoConfig, serve

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


def _cmd_launch(args: argparse.Namespace) -> int:
    from telesurg.teleop.launch import run_launch
    from telesurg.teleop.launch_file import LaunchError, parse_arguments

    try:
        return run_launch(args.file, parse_arguments(args.arguments), dry_run=args.dry_run, keep_open=args.keep_open)
    except LaunchError as exc:
        raise CliError(str(exc)) from None
