"""Launcher: real child processes (small ``python -c`` scripts) started, prefixed, waited for and stopped."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from telesurg.teleop.launch import run_launch
from telesurg.teleop.launch_file import LaunchError, load_launch, parse_arguments

#: A child that records the first stop signal it gets in the file named by argv[1], then exits 0.
SLEEPER = """
import pathlib, signal, sys, time
def on_signal(signum, frame):
    pathlib.Path(sys.argv[1]).write_text(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
print("sleeping", flush=True)
time.sleep(60)
"""


def py(code: str, *args: str | Path) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"


def write_launch(path: Path, processes: list[dict[str, Any]], **top: Any) -> Path:
    lines = [f"{k} = {_toml(v)}" for k, v in {"stop_timeout_s": 2.0, **top}.items()]
    for proc in processes:
        lines += ["", "[[process]]", *(f"{k} = {_toml(v)}" for k, v in proc.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def started_pids(out: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", out)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_output_lines_are_whole_and_prefixed_with_padded_names(tmp_path: Path, capsys) -> None:
    done = tmp_path / "alpha_done"
    alpha = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(0))  # no traceback when stopped\n"
        "for i in range(300): print(f'alpha-{i:03d}-' + 'a' * 80)\n"
        "print('alpha on stderr', file=sys.stderr, flush=True)\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "time.sleep(60)\n"
    )
    b = (
        "import pathlib, sys, time\n"
        "for i in range(300): print(f'b-{i:03d}-' + 'b' * 80)\n"
        "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.01)\n"
    )
    path = write_launch(
        tmp_path / "two.toml",
        [{"name": "alpha", "command": py(alpha, done)}, {"name": "b", "command": py(b, done), "main": True}],
    )
    assert run_launch(path) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = {f"alpha  | alpha-{i:03d}-{'a' * 80}" for i in range(300)}
    expected |= {f"b      | b-{i:03d}-{'b' * 80}" for i in range(300)}
    expected.add("alpha  | alpha on stderr")
    assert expected <= set(lines)
    # Nothing else but the launcher's own lines: no line was cut or joined with another.
    assert all(line in expected or line.startswith("launch | ") for line in lines)
    assert any(line.startswith("launch | started alpha (pid ") for line in lines)


def test_cwd_and_launch_dir_are_the_files_folder_from_anywhere(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "launch" / "work").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not the file's folder, nor its parent
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # so the launcher must set it
    show = "import os, sys; print(os.getcwd(), os.environ['TELESURG_X'], os.environ['PYTHONUNBUFFERED'], sys.argv[1])"
    path = write_launch(
        tmp_path / "launch" / "env.toml",
        [
            {
                "name": "show",
                "command": [*py(show), "{launch_dir}/robot.toml"],
                "cwd": "work",
                "env": {"TELESURG_X": "{launch_dir}"},
                "main": True,
            },
            {"name": "here", "command": py("import os; print(os.getcwd())")},
        ],
    )
    assert run_launch(path) == 0
    folder = tmp_path / "launch"
    lines = capsys.readouterr().out.splitlines()
    assert f"show   | {folder / 'work'} {folder} 1 {folder}/robot.toml" in lines
    assert f"here   | {tmp_path / 'elsewhere'}" in lines  # no cwd: the launcher's (outputs land there)


def test_a_cwd_missing_beside_the_file_is_named_with_its_resolved_path(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()  # beside the launcher's cwd would not count
    path = write_launch(tmp_path / "launch" / "c.toml", [{"name": "a", "command": ["x"], "cwd": "work"}])
    with pytest.raises(LaunchError, match=re.escape(f"cwd 'work' is not a directory ({tmp_path}/launch/work)")):
        load_launch(path)


#: Prints its argv as JSON (one element per argument).
ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def argv_lines(out: str, name: str) -> list[list[str]]:
    return [json.loads(line.split("| ", 1)[1]) for line in out.splitlines() if line.startswith(f"{name} ")]


def test_arguments_fill_commands_with_defaults_and_given_values(tmp_path: Path, capsys) -> None:
    arguments = (
        "[arguments]\n"
        'tasks = { default = "Reach Palpate", description = "tasks, in order" }\n'
        'seed = { description = "optional" }\n'
        "port = 5570\n"
        'words = ["two words", "x"]\n'
        'empty = ""\n'
    )
    command = [*py(ARGV), "--tasks", "{tasks}", "--seed={seed}", "--port", "{port}", "{words}", "{empty}", "p{port}"]
    path = tmp_path / "args.toml"
    path.write_text(arguments + f'\n[[process]]\nname = "show"\nmain = true\ncommand = {json.dumps(command)}\n')
    assert run_launch(path) == 0
    expected = ["--tasks", "Reach", "Palpate", "--port", "5570", "two words", "x", "p5570"]
    assert argv_lines(capsys.readouterr().out, "show") == [expected]  # no --seed: it has no value

    assert run_launch(path, {"tasks": "Trace", "seed": "3", "port": "6000", "empty": "'a b' c"}) == 0
    expected = ["--tasks", "Trace", "--seed=3", "--port", "6000", "two words", "x", "a b", "c", "p6000"]
    assert argv_lines(capsys.readouterr().out, "show") == [expected]

    # A dry run lists the arguments (value, given or default, description) and the resolved command.
    assert run_launch(path, {"tasks": "Reach Trace"}, dry_run=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "launch |   tasks = 'Reach Trace' (given): tasks, in order" in lines
    assert "launch |   seed (not set): optional" in lines
    assert "launch |   port = 5570 (default)" in lines
    resolved = [*py(ARGV), "--tasks", "Reach", "Trace", "--port", "5570", "two words", "x", "p5570"]
    assert f"show   | {shlex.join(resolved)}  [main]" in lines


def test_other_braces_are_left_alone(tmp_path: Path, capsys) -> None:
    path = write_launch(
        tmp_path / "b.toml",
        [{"name": "show", "command": [*py(ARGV), "runs/robot-{time}.mcap", "{", "{x y}"], "main": True}],
    )
    assert run_launch(path) == 0
    assert argv_lines(capsys.readouterr().out, "show") == [["runs/robot-{time}.mcap", "{", "{x y}"]]


@pytest.mark.parametrize(
    ("tokens", "needle"),
    [
        (["tasks=Reach", "task=Reach"], "unknown launch argument 'task' (known: tasks, seed)"),
        (["tasks"], "launch arguments are NAME=VALUE after the file (e.g. tasks=Reach), got 'tasks'"),
        (["--x=1"], "launch arguments are NAME=VALUE"),
        (["seed=1", "seed=2"], "launch argument 'seed' is given twice"),
    ],
)
def test_bad_command_line_arguments_are_one_line(tmp_path: Path, tokens: list[str], needle: str) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[arguments]\ntasks = "Reach"\nseed = 0\n' + PROC.replace('["x"]', '["x", "{tasks}", "{seed}"]'))
    with pytest.raises(LaunchError) as info:
        run_launch(path, parse_arguments(tokens))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_unknown_argument_for_a_file_without_any(tmp_path: Path) -> None:
    path = write_launch(tmp_path / "none.toml", [{"name": "a", "command": ["x"]}])
    with pytest.raises(LaunchError, match=r"unknown launch argument 'tasks' \(the file declares none\)"):
        load_launch(path, {"tasks": "Reach"})


def test_the_cli_takes_arguments_after_options_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    path = write_launch(tmp_path / "cli.toml", [{"name": "show", "command": [*py(ARGV), "{n}"], "main": True}])
    path.write_text(path.read_text() + '\n[arguments]\nn = "1"\n')
    cli = [sys.executable, "-m", "telesurg.teleop.cli", "launch", str(path)]
    # `make demo ARGS="--dry-run n=2"` puts the option first.
    done = subprocess.run([*cli, "--dry-run", "n=2 3"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"show   | {shlex.join([*py(ARGV), '2', '3'])}  [main]" in done.stdout.splitlines()
    done = subprocess.run([*cli, "m=2"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == f"telesurg launch: error: {path}: unknown launch argument 'm' (known: n)\n"
    done = subprocess.run([*cli, "n=2", "--nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unrecognized arguments: --nope" in done.stderr


def test_an_error_exit_before_ready_is_the_launchs_status_and_its_line_comes_last(tmp_path: Path, capsys) -> None:
    mark = tmp_path / "sleeper_signal"
    fail = "import sys; print('telesurg video: error: port 8080 (http_port, --http-port) is in use'); sys.exit(2)"
    stopping = SLEEPER.replace("sys.exit(0)", "print('bye from sleeper'); sys.exit(0)")
    path = write_launch(
        tmp_path / "before_ready.toml",
        [
            {"name": "sleeper", "command": py(stopping, mark), "ready": "sleeping"},
            {"name": "video", "command": py(fail), "ready": "rendering"},
        ],
    )
    assert run_launch(path) == 2
    lines = capsys.readouterr().out.splitlines()
    assert "launch  | video exited with code 2 before printing 'rendering'; stopping sleeper" in lines
    assert "sleeper | bye from sleeper" in lines
    assert lines[-1] == (
        "launch  | video's last line: telesurg video: error: port 8080 (http_port, --http-port) is in use"
    )


def test_main_exiting_0_stops_the_others_with_sigint(tmp_path: Path, capsys) -> None:
    mark = tmp_path / "sleeper_signal"
    path = write_launch(
        tmp_path / "main.toml",
        [
            {"name": "sleeper", "command": py(SLEEPER, mark), "ready": "sleeping"},
            {"name": "main", "command": py("print('done')"), "main": True},
        ],
    )
    assert run_launch(path) == 0
    out = capsys.readouterr().out
    assert mark.read_text() == "SIGINT"
    assert "launch  | main exited with code 0; stopping sleeper" in out
    assert "launch  | stopped sleeper (exited with code 0)" in out
    assert not alive(started_pids(out)["sleeper"])


@pytest.mark.parametrize(
    ("exit_code", "main", "status", "message"),
    [
        (3, False, 3, "failer exited with code 3; stopping sleeper"),
        (3, True, 3, "failer exited with code 3; stopping sleeper"),
        (0, False, 1, "failer exited with code 0 (not a main process); stopping sleeper"),
    ],
)
def test_a_process_exiting_ends_the_launch(
    tmp_path: Path, capsys, exit_code: int, main: bool, status: int, message: str
) -> None:
    mark = tmp_path / "sleeper_signal"
    path = write_launch(
        tmp_path / "fail.toml",
        [
            {"name": "sleeper", "command": py(SLEEPER, mark), "ready": "sleeping"},
            {"name": "failer", "command": py(f"raise SystemExit({exit_code})"), "main": main},
        ],
    )
    assert run_launch(path) == status
    out = capsys.readouterr().out
    assert f"launch  | {message}" in out
    assert mark.read_text() == "SIGINT"
    assert not alive(started_pids(out)["sleeper"])


def test_killed_by_a_signal_gives_128_plus_n(tmp_path: Path, capsys) -> None:
    path = write_launch(tmp_path / "k.toml", [{"name": "k", "command": py("import os; os.kill(os.getpid(), 9)")}])
    assert run_launch(path) == 128 + 9
    assert "launch | k was killed by SIGKILL" in capsys.readouterr().out


def test_next_process_starts_only_after_the_ready_line(tmp_path: Path, capsys) -> None:
    flag = tmp_path / "first_ready"
    first = (
        "import pathlib, sys, time\n"
        "print('warming up', flush=True)\n"
        "time.sleep(0.3)\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "print('listening on 5555', flush=True)\n"
        "time.sleep(60)\n"
    )
    second = "import pathlib, sys; raise SystemExit(0 if pathlib.Path(sys.argv[1]).exists() else 5)"
    path = write_launch(
        tmp_path / "ready.toml",
        [
            {"name": "first", "command": py(first, flag), "ready": "listening", "ready_timeout_s": 10},
            {"name": "second", "command": py(second, flag), "main": True},
        ],
    )
    assert run_launch(path) == 0  # 5 if second started before first was ready
    out = capsys.readouterr().out
    assert out.index("first  | listening on 5555") < out.index("launch | first is ready") < out.index("started second")


@pytest.mark.parametrize(
    ("first", "message"),
    [
        ("import time; print('warming up', flush=True); time.sleep(60)", "first did not print 'never' within 0.3 s"),
        ("print('bye')", "first exited with code 0 before printing 'never'"),
    ],
)
def test_ready_never_seen_stops_everything_with_1(tmp_path: Path, capsys, first: str, message: str) -> None:
    mark = tmp_path / "second_started"
    path = write_launch(
        tmp_path / "never.toml",
        [
            {"name": "first", "command": py(first), "ready": "never", "ready_timeout_s": 0.3},
            {"name": "second", "command": py("import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", mark)},
        ],
    )
    assert run_launch(path) == 1
    out = capsys.readouterr().out
    assert f"launch | {message}" in out
    assert not mark.exists()
    assert list(started_pids(out)) == ["first"]
    assert not alive(started_pids(out)["first"])


def test_a_child_ignoring_sigint_and_sigterm_is_killed(tmp_path: Path, capsys) -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    path = write_launch(
        tmp_path / "stubborn.toml",
        [
            {"name": "stubborn", "command": py(stubborn), "ready": "up"},
            {"name": "main", "command": py("pass"), "main": True},
        ],
        stop_timeout_s=0.2,
    )
    t0 = time.monotonic()
    assert run_launch(path) == 0
    assert time.monotonic() - t0 < 5
    out = capsys.readouterr().out
    assert "stubborn did not stop in 0.2 s; sending SIGTERM" in out
    assert "stubborn did not stop in 0.2 s; sending SIGKILL" in out
    assert "stopped stubborn (killed by SIGKILL)" in out
    assert not alive(started_pids(out)["stubborn"])


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_the_launcher_stops_all_children(tmp_path: Path, signum: int, status: int) -> None:
    sleep = "import time; print('up', flush=True); time.sleep(60)"
    path = write_launch(
        tmp_path / "ctrl_c.toml",
        [{"name": "a", "command": py(sleep), "ready": "up"}, {"name": "b", "command": py(sleep), "ready": "up"}],
        stop_timeout_s=1.0,
    )
    # SIGINT as in a terminal, even if this test runs with SIGINT ignored (a background job).
    launcher = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from telesurg.teleop.launch import run_launch\n"
        "sys.exit(run_launch(sys.argv[1]))\n"
    )
    # Its own session, so that signalling its process group is what a terminal's Ctrl-C does.
    proc = subprocess.Popen(py(launcher, path), stdout=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out = ""
    try:
        while "launch | b is ready" not in out:
            out += lines.get(timeout=10)
        pids = started_pids(out)
        assert all(os.getpgid(pid) == pid for pid in pids.values())  # not in the launcher's group
        os.killpg(proc.pid, signum)
        assert proc.wait(timeout=10) == status
    finally:
        proc.kill()
    reader.join(timeout=5)
    out += "".join(lines.queue)
    assert f"launch | {signal.Signals(signum).name} received; stopping b, a" in out
    assert out.index("stopped b (killed by SIGINT)") < out.index("stopped a (killed by SIGINT)")
    assert set(pids) == {"a", "b"}
    assert not any(alive(pid) for pid in pids.values())


def test_telesurg_runs_as_this_interpreter(tmp_path: Path, capsys) -> None:
    mark = tmp_path / "started"
    path = write_launch(
        tmp_path / "t.toml",
        [
            {"name": "robot", "command": ["telesurg", "robot", "--config", "launch/robot.toml"]},
            {"name": "other", "command": py("import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", mark)},
        ],
    )
    argv = [sys.executable, "-m", "telesurg.teleop.cli", "robot", "--config", "launch/robot.toml"]
    assert load_launch(path).processes[0].argv == argv
    assert load_launch(path).processes[0].command[0] == "telesurg"
    assert run_launch(path, dry_run=True) == 0
    out = capsys.readouterr().out
    assert f"robot  | {' '.join(argv)}" in out.splitlines()
    assert not mark.exists()  # a dry run starts nothing
    # and it really runs without telesurg on PATH
    path = write_launch(tmp_path / "help.toml", [{"name": "cli", "command": ["telesurg", "--help"], "main": True}])
    assert run_launch(path) == 0
    assert "cli    | usage: telesurg" in capsys.readouterr().out


PROC = '[[process]]\nname = "a"\ncommand = ["x"]\n'


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("proces = 1\n" + PROC, "unknown key 'proces'"),
        ("description = 3\n" + PROC, "description must be a string"),
        ("stop_timeout_s = -1\n" + PROC, "stop_timeout_s must be a positive number"),
        ("stop_timeout_s = true\n" + PROC, "stop_timeout_s must be a positive number"),
        ('description = "nothing"\n', "process must be one or more [[process]] tables"),
        ('process = "a"\n', "process must be one or more [[process]] tables"),
        ("process = [1]\n", "process #1: process must be a [[process]] table"),
        ('[[process]]\ncommand = ["x"]\n', "process #1: missing key 'name'"),
        ('[[process]]\nname = "a b"\ncommand = ["x"]\n', "process #1: name must be a name of"),
        ('[[process]]\nname = "a"\n', "process 'a': missing key 'command'"),
        ('[[process]]\nname = "a"\ncommand = []\n', "process 'a': command must be a non-empty list"),
        ('[[process]]\nname = "a"\ncommand = "x"\n', "process 'a': command must be a non-empty list"),
        ('[[process]]\nname = "a"\ncommand = ["x", 1]\n', "process 'a': command must be a non-empty list"),
        (PROC + PROC, "process 'a': name 'a' is used twice"),
        (PROC + 'readyy = "x"\n', "process 'a': unknown key 'readyy'"),
        (PROC + 'ready = "x"\nready_timeout_s = "60"\n', "process 'a': ready_timeout_s must be a positive number"),
        (PROC + "ready_timeout_s = 5\n", "process 'a': ready_timeout_s is set but ready is not"),
        (PROC + "env = { A = 1 }\n", "process 'a': env must be a table of strings"),
        (PROC + 'main = "yes"\n', "process 'a': main must be true or false"),
        (PROC + 'cwd = "does/not/exist"\n', "process 'a': cwd 'does/not/exist' is not a directory"),
        ("arguments = 3\n" + PROC, "[arguments]: arguments must be a table"),
        ('[arguments]\nlaunch_dir = "x"\n' + PROC, "[arguments]: argument name 'launch_dir' must be letters"),
        ('[arguments]\n"a-b" = "x"\n' + PROC, "[arguments]: argument name 'a-b' must be letters"),
        ("[arguments]\nx = true\n" + PROC, "[arguments]: x must be a string, a number or a list of strings"),
        ("[arguments]\nx = { default = [1] }\n" + PROC, "[arguments] x: default must be a string, a number"),
        ('[arguments]\nx = { defualt = "1" }\n' + PROC, "[arguments] x: unknown key 'defualt'"),
        ("[arguments]\nx = { description = 1 }\n" + PROC, "[arguments] x: description must be a string"),
        ('[arguments]\nx = "1"\n' + PROC, "[arguments]: 'x' is declared but no command, cwd or env uses {x}"),
        (
            '[arguments]\nx = { description = "unset" }\n' + PROC + 'cwd = "{x}"\n',
            "process 'a': cwd uses argument 'x', which has no value (set it: x=…)",
        ),
        (
            '[arguments]\nx = { description = "unset" }\n' + PROC + 'env = { A = "{x}" }\n',
            "process 'a': env A uses argument 'x'",
        ),
        ('[arguments]\nx = "\'a"\n' + PROC.replace('["x"]', '["x", "{x}"]'), "process 'a': argument x: cannot split"),
        ('[arguments]\nx = ""\n' + PROC.replace('["x"]', '["{x}"]'), "process 'a': command ['{x}'] is empty once"),
        ("[[process]\n", "malformed TOML"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LaunchError) as info:
        load_launch(path)
    message = str(info.value)
    assert message.startswith(str(path)) and needle in message
    assert "\n" not in message


def test_missing_file_is_a_launch_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="not found"):
        run_launch(tmp_path / "nope.toml")


def test_a_bad_file_starts_nothing(tmp_path: Path) -> None:
    mark = tmp_path / "started"
    path = write_launch(
        tmp_path / "late_error.toml",
        [
            {"name": "good", "command": py("import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", mark)},
            {"name": "bad", "command": ["x"], "mian": True},
        ],
    )
    with pytest.raises(LaunchError, match="process 'bad': unknown key 'mian'"):
        run_launch(path)
    assert not mark.exists()


def test_keep_open_holds_the_services_in_a_terminal_until_enter_and_never_without_one(tmp_path: Path) -> None:
    import pty

    path = write_launch(
        tmp_path / "keep.toml",
        [
            {"name": "svc", "command": py(SLEEPER, tmp_path / "svc_signal"), "ready": "sleeping"},
            {"name": "main", "command": py("print('done')"), "main": True},
        ],
    )
    argv = [sys.executable, "-m", "telesurg.teleop.cli", "launch", str(path), "--keep-open"]
    # Without a terminal (CI): the launch ends by itself when the main process is done.
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "until you press Enter" not in done.stdout
    # In a terminal: the service stays up until Enter.
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.close(follower)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    out = ""
    deadline = time.monotonic() + 60
    while "until you press Enter" not in out and time.monotonic() < deadline:
        out += lines.get(timeout=60)
    pid = started_pids(out)["svc"]
    time.sleep(1.0)
    assert proc.poll() is None and alive(pid)  # held open
    os.write(leader, b"\n")
    assert proc.wait(timeout=30) == 0
    assert not alive(pid)
    os.close(leader)
