"""Bad input to train/eval/sweep: one clear error line naming the problem, exit status 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from telesurg.policies.config import ConfigError, load_config
from telesurg.teleop.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("toml", "flags", "expected"),
    [
        ('env_id = "telesurg/Nope-v0"\n', [], "unknown env id 'telesurg/Nope-v0'"),
        ('env_id = "telesurg/Reach-v0"\nalgo = "dqn"\n', [], "DQN needs a Discrete id"),
        ('env_id = "telesurg/ReachDiscrete-v0"\nalgo = "ppo"\n', [], "PPO needs a Box id"),
        ('env_id = "telesurg/Reach-v0"\nalgo = "sac"\n', [], "unknown algorithm 'sac'"),
        ('env_id = "telesurg/Reach-v0"\ngama = 0.9\n', [], "unknown key(s) ['gama']"),
        ('env_id = "telesurg/Reach-v0"\n[eval]\nevery = 5\n', [], "eval: unknown key(s) ['every']"),
        ('env_id = "telesurg/Reach-v0"\n[hyperparams]\ngama = 0.9\n', [], "unknown hyperparameter 'gama' for PPO"),
        ('env_id = "telesurg/Reach-v0"\n[hyperparams]\nseed = 1\n', [], "hyperparams.seed is set by telesurg"),
        ('env_id = "telesurg/Reach-v0"\n[env]\nhard_newtons = 5\n', [], "bad [env] option"),
        ('env_id = "telesurg/Reach-v0"\ntotal_timesteps = "many"\n', [], "total_timesteps must be an integer"),
        ('env_id = "telesurg/Reach-v0"\nn_envs = 0\n', [], "n_envs must be at least 1"),
        ('env_id = "telesurg/Reach-v0"\ntotal_timesteps = [1\n', [], "malformed TOML"),
        ('env_id = "telesurg/Reach-v0"\n', ["--set", "gamma"], "must look like key=value"),
        ('env_id = "telesurg/Reach-v0"\n', ["--set", 'hyperparams.gamma="0.9"'], "hyperparams.gamma must be float"),
        ('env_id = "telesurg/Reach-v0"\n', ["--set", "hyperparams.n_steps=1.5"], "hyperparams.n_steps must be int"),
        ('env_id = "telesurg/Reach-v0"\n', ["--set", "hyperparams.n_steps=-5"], "cannot build PPO"),
        ('env_id = "telesurg/Reach-v0"\n', ["--set", "net_arch=[true]"], "net_arch[0] must be an integer"),
        ('env_id = "telesurg/Reach-v0"\n', ["--algo", "dqn"], "DQN needs a Discrete id"),
        ('env_id = "telesurg/Reach-v0"\n', ["--env", "telesurg/Bad-v0"], "unknown env id 'telesurg/Bad-v0'"),
    ],
)
def test_train_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, flags: list[str], expected: str
) -> None:
    line = _error_line(capsys, ["train", _write(tmp_path, toml), "--out", str(tmp_path / "run"), *flags])
    assert line.startswith("telesurg train: error: ")
    assert expected in line
    assert not (tmp_path / "run").exists()  # nothing started


def test_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "config file" in _error_line(capsys, ["train", str(tmp_path / "none.toml")])
    line = _error_line(capsys, ["eval", str(tmp_path / "none")])
    assert "model" in line and "not found" in line
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.zip").write_bytes(b"not a zip")
    (tmp_path / "broken" / "card.json").write_text("{")
    assert "not valid JSON" in _error_line(capsys, ["eval", str(tmp_path / "broken")])
    card = {"env_id": "telesurg/Reach-v0", "algo": "ppo", "action_space": "box(4)", "obs_layout_version": 1}
    (tmp_path / "broken" / "card.json").write_text(json.dumps({**card, "obs_layout": "", "goal_layout": ""}))
    line = _error_line(capsys, ["eval", str(tmp_path / "broken")])
    assert line.endswith("model.zip: the file " + str(tmp_path / "broken" / "model.zip") + " wasn't a zip-file")
    (tmp_path / "empty").mkdir()
    assert "holds no model.zip" in _error_line(capsys, ["eval", str(tmp_path / "empty")])
    assert "nothing to resume" in _error_line(capsys, ["train", "--resume", str(tmp_path / "none")])
    (tmp_path / "a_file").write_text("")
    line = _error_line(
        capsys, ["train", "--env", "telesurg/Reach-v0", "--timesteps", "64", "--out", str(tmp_path / "a_file")]
    )
    assert "cannot write the run folder" in line
    line = _error_line(capsys, ["eval", str(ROOT / "assets/policies/reach_ppo"), "--json", str(tmp_path / "no/x.json")])
    assert "--json" in line and "does not exist" in line
    # A policy trained on normalised observations is refused without its statistics.
    import shutil

    shutil.copytree(ROOT / "assets/policies/reach_ppo", tmp_path / "nonorm")
    (tmp_path / "nonorm" / "normalization.json").unlink()
    assert "lacks normalization.json" in _error_line(capsys, ["eval", str(tmp_path / "nonorm")])
    assert "sweep file" in _error_line(capsys, ["sweep", str(tmp_path / "none.toml")])


def test_error_from_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "train", "--env", "telesurg/Reach-v0", "--algo", "dqn"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "telesurg train: error: DQN needs a Discrete id (…Discrete-v0), but telesurg/Reach-v0 has box actions"
    )


@pytest.mark.parametrize(
    "argv",
    [["train", "--timesteps", "many"], ["train", "--algo", "sac"], ["eval"], ["sweep", "x.toml", "--trials", "2.5"]],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"telesurg {argv[0]}: error: ")


def test_overrides_are_typed_and_applied(tmp_path: Path) -> None:
    path = _write(tmp_path, 'env_id = "telesurg/Reach-v0"\n[hyperparams]\ngamma = 0.9\n')
    cfg = load_config(path, ["hyperparams.gamma=0.98", "eval.episodes=7", "shield=true", 'out="x y"', "env.hard_N=5"])
    assert cfg.hyperparams["gamma"] == 0.98
    assert cfg.eval.episodes == 7 and cfg.shield is True and cfg.out == "x y" and cfg.env == {"hard_N": 5}
    assert cfg.algo == "ppo"  # "auto" resolved from the action space
    # The resolved config round-trips through the TOML written into the run folder.
    (tmp_path / "resolved.toml").write_text(cfg.to_toml())
    assert load_config(tmp_path / "resolved.toml").to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match=r"eval\.episodes must be an integer"):
        load_config(path, ["eval.episodes=1.5"])
