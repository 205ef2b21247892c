"""Ray Tune sweep: two trials of tiny budgets on a local Ray, each a real training run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from telesurg.policies.config import ConfigError
from telesurg.policies.sweep import load_sweep, run_sweep  # needs the 'distributed' extra, which make test installs

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "total_timesteps=128",
    "hyperparams.batch_size=32",
    "eval.every_steps=64",
    "eval.episodes=1",
    "eval.final_episodes=1",
    "net_arch=[8]",
    "progress_every_s=1000.0",
]


@pytest.mark.slow
def test_two_trial_sweep_reports_success_rate(tmp_path: Path) -> None:
    spec = load_sweep(ROOT / "launch/sweep/reach_ppo.toml", trials=2, out=str(tmp_path / "sweep"), overrides=TINY)
    spec.space = {"hyperparams.learning_rate": {"loguniform": [1e-4, 1e-3]}, "hyperparams.n_steps": {"choice": [64]}}
    lines: list[str] = []
    handler = signal.getsignal(signal.SIGINT)
    rows = run_sweep(spec, log=lines.append)
    assert signal.getsignal(signal.SIGINT) is handler  # Ray Tune's own Ctrl-C handler does not linger
    assert len(rows) == 2
    for row in rows:
        assert row["error"] is None
        assert 0.0 <= row["success_rate"] <= 1.0
        assert row["timesteps"] >= 128
        assert 1e-4 <= row["params"]["hyperparams.learning_rate"] <= 1e-3
    # Distinct sampled learning rates, each trial a full run folder with its own best model.
    assert rows[0]["params"] != rows[1]["params"]
    for row in rows:
        run = tmp_path / "sweep" / row["trial"]
        assert (run / "best" / "card.json").is_file() and (run / "eval.jsonl").is_file()
    saved = json.loads((tmp_path / "sweep" / "sweep_results.json").read_text())
    assert [r["trial"] for r in saved] == [r["trial"] for r in rows]
    assert any("success_rate" in line for line in lines)


def test_sweep_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text(
        f'train = "{ROOT / "launch/train/reach_ppo.toml"}"\n[space]\n"hyperparams.gama" = {{ choice = [0.9] }}\n'
    )
    with pytest.raises(ConfigError, match="unknown hyperparameter 'gama'"):
        load_sweep(bad)
    bad.write_text(
        f'train = "{ROOT / "launch/train/reach_ppo.toml"}"\n[space]\n"hyperparams.gamma" = {{ normal = [0.9] }}\n'
    )
    with pytest.raises(ConfigError, match="must be one of"):
        load_sweep(bad)
    bad.write_text(f'train = "{ROOT / "launch/train/reach_ppo.toml"}"\ntrails = 3\n')
    with pytest.raises(ConfigError, match="unknown sweep key"):
        load_sweep(bad)
