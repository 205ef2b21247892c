"""TOML → typed configs: strict keys and types, nested tables, tuples, overrides, and the shipped files."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.robot.server import ServerConfig
from telesurg.teleop.robot.supervisor import Box
from telesurg.teleop.settings import ConfigError, build, load_section
from telesurg.teleop.wire.channels import ServerKeys

REPO = Path(__file__).resolve().parents[2]


def robot(path: Path, overrides: dict[str, Any] | None = None) -> ServerConfig:
    return load_section(path, "robot", ServerConfig, "robot config", overrides)


def console(path: Path, overrides: dict[str, Any] | None = None) -> ConsoleConfig:
    return load_section(path, "console", ConsoleConfig, "console config", overrides)


def toml(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------- unknown keys and tables
def test_unknown_key_is_a_config_error_naming_the_key_and_the_file(tmp_path: Path) -> None:
    path = toml(tmp_path, "[robot]\ncontrol_rate_hz = 400.0\ncontrl_rate_hz = 300.0\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['contrl_rate_hz'\]") as info:
        robot(path)
    assert str(path) in str(info.value) and "[robot]" in str(info.value)
    assert "control_rate_hz" in str(info.value)  # the known keys are listed, so the typo is easy to spot


def test_unknown_key_in_a_nested_table_names_the_table(tmp_path: Path) -> None:
    path = toml(tmp_path, '[robot.arm]\ntask = "Reach"\ntaks = "Palpate"\n')
    with pytest.raises(ConfigError, match=r"\[robot\]\.arm: unknown key\(s\) \['taks'\]"):
        robot(path)


def test_a_file_with_an_unknown_top_level_table_is_refused(tmp_path: Path) -> None:
    path = toml(tmp_path, "[robot]\ncontrol_rate_hz = 400.0\n\n[console]\nrate_hz = 100.0\n")
    with pytest.raises(ConfigError, match=r"unknown table\(s\) \['console'\]; expected \[robot\]"):
        robot(path)
    # A key outside any table is just as unknown (a common slip: forgetting the [robot] header).
    with pytest.raises(ConfigError, match=r"unknown table\(s\) \['control_rate_hz'\]"):
        robot(toml(tmp_path, "control_rate_hz = 400.0\n", "bare.toml"))


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"robot config .*nowhere\.toml' not found"):
        robot(tmp_path / "nowhere.toml")
    with pytest.raises(ConfigError, match="malformed TOML"):
        robot(toml(tmp_path, "[robot\ncontrol_rate_hz = 400\n"))


# ---------------------------------------------------------------------- types
@pytest.mark.parametrize(
    ("section", "text", "message"),
    [
        ("robot", '[robot]\ncontrol_rate_hz = "fast"', r"\[robot\]\.control_rate_hz must be a number, got 'fast'"),
        ("robot", "[robot]\ncontrol_rate_hz = true", r"control_rate_hz must be a number, got True"),
        ("robot", "[robot]\nmax_control_per_period = 2.5", r"max_control_per_period must be an integer, got 2.5"),
        ("robot", "[robot]\nmax_control_per_period = true", r"max_control_per_period must be an integer"),
        ("robot", "[robot]\nrealtime = 1", r"realtime must be true or false, got 1"),
        ("robot", "[robot]\nrecord = 5", r"record must be a string, got 5"),
        ("robot", "[robot]\nendpoints = 3", r"\[robot\]\.endpoints must be a table"),
        ("robot", "[robot.endpoints]\ncmd_port = 5570.0", r"endpoints\.cmd_port must be an integer"),
        ("robot", "[robot.arm]\ntask = 3", r"arm\.task must be a string, got 3"),
        ("robot", "[robot.arm]\npreload = 'Reach'", r"arm\.preload must be an array"),
        ("robot", "[robot.arm]\nforbidden_m = [[[0, 0, 0], [1, 1]]]", r"forbidden_m\[0\]\[1\] must have 3 elements"),
        ("robot", "[robot.arm]\nforbidden_m = [[[0, 0, 'a'], [1, 1, 1]]]", r"forbidden_m\[0\]\[0\]\[2\] must be a"),
        ("robot", "[robot.arm]\nenv_options = 5", r"arm\.env_options must be a table"),
        ("robot", "[robot.keys]\nsecret_file = 5\nauthorized_dir = 'k'", r"keys\.secret_file must be a path string"),
        ("console", "[console]\ntasks = 'Reach'", r"\[console\]\.tasks must be an array"),
        ("console", "[console]\ninput = 'joystick'", r"input must be one of \['scripted', .*got 'joystick'"),
        ("console", "[console.surgeon]\ntremor_band_hz = [8, 12, 14]", r"tremor_band_hz must have 2 elements"),
    ],
)
def test_wrong_types_are_config_errors_naming_the_key(tmp_path: Path, section: str, text: str, message: str) -> None:
    path = toml(tmp_path, text + "\n")
    with pytest.raises(ConfigError, match=message):
        robot(path) if section == "robot" else console(path)


def test_invalid_values_rejected_by_the_dataclass_become_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[robot\]: control_rate_hz must be in \[10, 2000\]"):
        robot(toml(tmp_path, "[robot]\ncontrol_rate_hz = 5.0\n"))
    with pytest.raises(ConfigError, match=r"\[console\]\.mapping: motion_scale must be in \(0, 1\]"):
        console(toml(tmp_path, "[console.mapping]\nmotion_scale = 2.0\n"))
    with pytest.raises(ConfigError, match=r"\[robot\]\.arm: unknown task 'Knit'"):
        robot(toml(tmp_path, "[robot.arm]\ntask = 'Knit'\n"))


def test_build_requires_a_table() -> None:
    with pytest.raises(ConfigError, match="here must be a table"):
        build(ServerConfig, [1, 2], "here")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- conversion
def test_integers_become_floats_and_nested_tables_become_dataclasses(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        """
[robot]
control_rate_hz = 400
realtime = true

[robot.endpoints]
host = "::1"
cmd_port = 6001
telemetry_port = 6002
control_port = 6003

[robot.supervisor]
max_tip_speed_m_s = 0.05

[robot.supervisor.limits]
warn_N = 2
hard_N = 4.5

[robot.keys]
secret_file = "keys/robot.key_secret"
authorized_dir = "keys/authorized"
""",
    )
    cfg = robot(path)
    assert cfg.control_rate_hz == 400.0 and isinstance(cfg.control_rate_hz, float)
    assert cfg.realtime is True
    assert (cfg.endpoints.host, cfg.endpoints.cmd_port, cfg.endpoints.telemetry_port) == ("::1", 6001, 6002)
    assert cfg.endpoints.control_port == 6003
    assert cfg.supervisor.max_tip_speed_m_s == 0.05
    assert (cfg.supervisor.limits.warn_N, cfg.supervisor.limits.hard_N) == (2.0, 4.5)
    assert isinstance(cfg.supervisor.limits.warn_N, float)
    assert cfg.keys == ServerKeys(Path("keys/robot.key_secret"), Path("keys/authorized"))
    # Untouched keys keep their defaults.
    assert cfg.telemetry_rate_hz == ServerConfig().telemetry_rate_hz
    assert cfg.supervisor.watchdog_s == ServerConfig().supervisor.watchdog_s


def test_arrays_become_tuples_all_the_way_down(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        """
[robot.arm]
preload = ["Palpate"]
forbidden_m = [[[-0.065, 0.045, 0], [-0.055, 0.065, 0.03]], [[0, 0, 0], [1, 1, 1]]]

[robot.supervisor]
workspace_low_m = [-0.1, -0.4, -0.1]
forbidden = [{low_m = [0, 0, 0], high_m = [0.01, 0.02, 0.03]}]
""",
    )
    cfg = robot(path)
    assert cfg.arm.preload == ("Palpate",)
    assert cfg.arm.forbidden_m == (((-0.065, 0.045, 0.0), (-0.055, 0.065, 0.03)), ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert isinstance(cfg.arm.forbidden_m[0][0], tuple) and isinstance(cfg.arm.forbidden_m[1][0][0], float)
    assert cfg.supervisor.workspace_low_m == (-0.1, -0.4, -0.1)
    assert cfg.supervisor.forbidden == (Box((0.0, 0.0, 0.0), (0.01, 0.02, 0.03)),)
    cons = console(
        toml(tmp_path, "[console]\ntasks = ['Palpate', 'Reach']\n[console.surgeon]\ntremor_band_hz = [6, 9]\n")
    )
    assert cons.tasks == ("Palpate", "Reach")
    assert cons.surgeon.tremor_band_hz == (6.0, 9.0)


# ---------------------------------------------------------------------- overrides
def test_dotted_overrides_apply_on_top_of_the_file_and_none_is_skipped(tmp_path: Path) -> None:
    path = toml(tmp_path, '[robot]\nrecord = "a.mcap"\n[robot.arm]\ntask = "Reach"\nseed = 4\n')
    cfg = robot(path, {"arm.task": "Palpate", "endpoints.cmd_port": 6100, "record": None, "realtime": True})
    assert cfg.arm.task == "Palpate"
    assert cfg.arm.seed == 4  # the rest of the table is kept
    assert cfg.endpoints.cmd_port == 6100  # a table the file never had
    assert cfg.record == "a.mcap"  # None: "not given on the command line", not "unset"
    assert cfg.realtime is True


def test_overrides_work_without_a_file_and_are_checked_like_file_values(tmp_path: Path) -> None:
    cfg = console(None, {"mapping.motion_scale": 0.5, "input": "keyboard"})  # type: ignore[arg-type]
    assert cfg.mapping.motion_scale == 0.5 and cfg.input == "keyboard"
    assert console(None) == ConsoleConfig()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"<defaults>: \[console\]\.mapping: unknown key\(s\) \['scale'\]"):
        console(None, {"mapping.scale": 0.5})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rate_hz must be a number"):
        console(None, {"rate_hz": "fast"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\[console\]\.client must be a string, got \{'name': 'x'\}"):
        console(None, {"client.name": "x"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"override 'client\.name': 'client' is not a table"):
        console(toml(tmp_path, '[console]\nclient = "c"\n'), {"client.name": "x"})


# ---------------------------------------------------------------------- shipped launch files
def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    return value


def assert_carries(obj: Any, table: dict[str, Any], where: str) -> int:
    """Every key of ``table`` has its value on ``obj`` (recursively); returns how many leaves matched."""
    n = 0
    for key, value in table.items():
        got = getattr(obj, key)
        if isinstance(value, dict) and not isinstance(got, dict):
            n += assert_carries(got, value, f"{where}.{key}")
        else:
            assert _plain(got) == _plain(value), f"{where}.{key}: file has {value!r}, config got {got!r}"
            n += 1
    return n


def test_shipped_robot_config_loads_with_its_values() -> None:
    path = REPO / "launch" / "robot.toml"
    cfg = robot(path)
    leaves = assert_carries(cfg, tomllib.loads(path.read_text())["robot"], "robot")
    assert leaves >= 15
    # Values that differ from the defaults really come from the file.
    assert cfg.record is not None and cfg.record != ServerConfig().record
    assert len(cfg.arm.forbidden_m) == 1
    low, high = cfg.arm.forbidden_m[0]
    assert all(lo < hi for lo, hi in zip(low, high, strict=True))
    assert cfg.arm.forbidden_m != ServerConfig().arm.forbidden_m


def test_shipped_console_config_loads_with_its_values() -> None:
    path = REPO / "launch" / "console.toml"
    cfg = console(path)
    leaves = assert_carries(cfg, tomllib.loads(path.read_text())["console"], "console")
    assert leaves >= 15
    assert cfg.summary_json is not None and cfg.summary_json != ConsoleConfig().summary_json
    assert isinstance(cfg.tasks, tuple)
