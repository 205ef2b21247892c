"""Behaviour cloning and fine-tuning: a policy pretrained on expert demonstrations acts like the
expert on its own, carries the dataset's observation statistics, and ``train --init`` starts from
it (evaluated before the first step; with a critic warm-up the actor is left as cloned)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from telesurg.policies.bundle import Policy
from telesurg.policies.config import ConfigError, load_config
from telesurg.policies.dataset.experts import expert_episodes
from telesurg.policies.dataset.lerobot import DatasetError, read_dataset, write_dataset
from telesurg.policies.evaluate import evaluate
from telesurg.policies.pretrain import PretrainSettings, pretrain
from telesurg.policies.train import train
from tests.policies.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reach_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "reach"
    return write_dataset(out, expert_episodes("Reach", 300, seed=0, noise=0.3))


@pytest.fixture(scope="module")
def reach_clone(reach_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "reach_bc"
    cfg = load_config(REPO / "launch/train/reach_ppo.toml")
    pretrain(cfg, reach_dataset, out, PretrainSettings(), log=lambda m: None)
    return out


def test_the_clone_reaches_like_the_expert_without_any_rl(reach_clone):
    policy = Policy.load(reach_clone)
    result = evaluate(policy, "telesurg/ReachDense-v0", 20, seed=1_000_000)
    assert result.success_rate >= 0.8, result
    card = policy.card
    assert card.status == "pretrained" and card.training["timesteps_done"] == 0
    pre = card.training["pretrain"]
    assert pre["episodes"] == 270 and pre["validation_episodes"] == 30 and pre["sources"] == ["expert"]
    assert pre["val_loss"] < 0.02


def test_the_clone_carries_the_dataset_statistics_and_a_small_std(reach_clone, reach_dataset):
    policy = Policy.load(reach_clone)
    train_eps = read_dataset(reach_dataset).episodes(split="train")
    obs = np.concatenate([e.observation for e in train_eps]).astype(np.float64)
    assert np.allclose(policy.normalizer.mean["observation"], obs.mean(axis=0))
    assert np.allclose(policy.normalizer.var["observation"], obs.var(axis=0))
    assert policy.normalizer.count == len(obs)
    assert torch.allclose(policy.model.policy.log_std, torch.full((4,), float(np.log(0.2))))


def test_fine_tuning_starts_from_the_clone_and_warms_the_critic_up(reach_clone, tmp_path):
    cfg = tiny_config(
        "telesurg/ReachDense-v0",
        tmp_path / "run",
        net_arch=[64, 64],
        init=str(reach_clone),
        critic_warmup_steps=10_000,  # longer than the run: the actor must come out as it went in
        hyperparams={"learning_rate": 0.001},
    )
    result = train(cfg, log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "run/eval.jsonl").read_text().splitlines()]
    clone = Policy.load(reach_clone)
    first = evaluate(clone, cfg.env_id, cfg.eval.episodes, cfg.eval.seed)
    assert records[0]["timesteps"] == 0 and records[0]["success_rate"] == first.success_rate
    before, after = clone.model.policy.state_dict(), result.policy.model.policy.state_dict()
    actor = [k for k in before if k.startswith(("mlp_extractor.policy_net", "action_net", "log_std"))]
    critic = [k for k in before if k.startswith(("mlp_extractor.value_net", "value_net"))]
    assert actor and all(torch.equal(before[k], after[k]) for k in actor)
    assert any(not torch.equal(before[k], after[k]) for k in critic)
    # The fine-tuned model's card says where it started: the clone and its dataset.
    card = Policy.load(tmp_path / "run/final").card
    assert card.training["init"] == str(reach_clone) and card.training["pretrain"]["episodes"] == 270
    # The clone's observation statistics (the dataset's) are carried through fine-tuning unchanged.
    stats = json.loads((tmp_path / "run/final/normalization.json").read_text())
    assert stats["mean"] == json.loads((reach_clone / "normalization.json").read_text())["mean"]


def test_fine_tuning_without_warm_up_moves_the_actor(reach_clone, tmp_path):
    cfg = tiny_config("telesurg/ReachDense-v0", tmp_path / "run", net_arch=[64, 64], init=str(reach_clone))
    result = train(cfg, log=lambda m: None)
    before, after = Policy.load(reach_clone).model.policy.state_dict(), result.policy.model.policy.state_dict()
    assert not torch.equal(before["action_net.weight"], after["action_net.weight"])


def test_init_from_another_task_or_network_is_refused(reach_clone, tmp_path):
    for env_id, arch, message in (
        ("telesurg/PalpateDense-v0", [64, 64], "made for telesurg/ReachDense-v0"),
        ("telesurg/ReachDense-v0", [8], "net_arch"),
    ):
        cfg = tiny_config(env_id, tmp_path / "run", net_arch=arch, init=str(reach_clone))
        with pytest.raises(ConfigError, match=message):
            train(cfg, log=lambda m: None)
        assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="critic_warmup_steps is for PPO"):
        tiny_config("telesurg/ReachDenseDiscrete-v0", tmp_path / "r", critic_warmup_steps=100)


def test_dqn_clone_maps_actions_to_the_discrete_table(reach_dataset, tmp_path):
    cfg = load_config(REPO / "launch/train/reach_dqn.toml")
    result = pretrain(cfg, reach_dataset, tmp_path / "dqn_bc", PretrainSettings(), log=lambda m: None)
    # One axis per step: a diagonal step of the 4 mm maximum loses up to ~3.3 mm of it.
    assert result.mapping_step_error_m is not None and 0.0 < result.mapping_step_error_m < 0.002
    card = Policy.load(tmp_path / "dqn_bc").card
    assert card.training["pretrain"]["mapping_step_error_max_m"] < 0.004
    assert result.val_agreement is not None and result.val_agreement > 0.5
    policy = Policy.load(tmp_path / "dqn_bc")
    q, target = policy.model.policy.q_net.state_dict(), policy.model.policy.q_net_target.state_dict()
    assert all(torch.equal(q[k], target[k]) for k in q)
    assert evaluate(policy, cfg.env_id, 20, seed=1_000_000).success_rate >= 0.8


def test_a_dataset_of_another_layout_or_task_is_refused(reach_dataset, tmp_path):
    cfg = load_config(REPO / "launch/train/palpate_ppo.toml")
    with pytest.raises(DatasetError, match="holds no Palpate episodes"):
        pretrain(cfg, reach_dataset, tmp_path / "x", log=lambda m: None)
    copy = tmp_path / "old"
    import shutil

    shutil.copytree(reach_dataset, copy)
    info = json.loads((copy / "meta/info.json").read_text())
    info["telesurg"]["obs_layout_version"] = 0
    (copy / "meta/info.json").write_text(json.dumps(info))
    r = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "pretrain", "launch/train/reach_ppo.toml", "--dataset", str(copy),
         "--out", str(tmp_path / "y"), "--epochs", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "layout version 0" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_run_stops_at_its_success_threshold(reach_clone, tmp_path):
    cfg = tiny_config(
        "telesurg/ReachDense-v0",
        tmp_path / "run",
        net_arch=[64, 64],
        init=str(reach_clone),
        critic_warmup_steps=10_000,
        total_timesteps=5_000,
        eval={"stop_at_success": 0.8, "every_steps": 128, "episodes": 5},
    )
    result = train(cfg, log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "run/eval.jsonl").read_text().splitlines()]
    # The clone is judged before the first step; already at the threshold, the run ends there.
    assert records[0]["timesteps"] == 0 and records[0]["success_rate"] >= 0.8
    assert result.timesteps < 128 and result.status == "final"


def test_init_refuses_a_run_without_observation_normalisation(reach_clone, tmp_path):
    cfg = tiny_config(
        "telesurg/ReachDense-v0", tmp_path / "run", net_arch=[64, 64], init=str(reach_clone), normalize_obs=False
    )
    with pytest.raises(ConfigError, match="normalize_obs = false"):
        train(cfg, log=lambda m: None)
    assert not (tmp_path / "run").exists()
