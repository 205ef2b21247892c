"""Behaviour cloning and fine-tuning: a policy pretrained on expert demonstrations acts like the
expert on its own, carries the dataset's observation statistics, and ``train --init`` starts from
it (evaluated before the first step; with a critic warm-up the actor is left as cloned)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def palpate_dqn_clone(tmp_path_factory) -> tuple[Path, Path]:
    """A DQN clone of demonstrations the expert made with the discrete table itself."""
    base = tmp_path_factory.mktemp("dqn")
    dataset = write_dataset(base / "palpate", expert_episodes("Palpate", 150, seed=0, noise=0.1, discrete=True))
    cfg = load_config(REPO / "launch/train/palpate_dqn.toml")
    pretrain(cfg, dataset, base / "palpate_dqn_bc", PretrainSettings(), log=lambda m: None)
    return dataset, base / "palpate_dqn_bc"


def _demo_q(policy: Policy, dataset: Path, cfg_path: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """Q-values of the validation frames, and the frames' demonstrations in the policy's terms."""
    import gymnasium as gym

    from telesurg.policies.demonstrations import Demonstrations

    cfg = load_config(REPO / cfg_path)
    env = gym.make(cfg.env_id)
    demos = Demonstrations.of(env, "dqn", read_dataset(dataset).episodes(split="val"), cfg.cost_weight)
    env.close()
    obs = policy.normalize(demos.frames)
    with torch.no_grad():
        q = policy.model.policy.q_net({k: torch.as_tensor(v) for k, v in obs.items()}).numpy()
    return q, demos.targets, demos


def test_a_dqn_clone_of_discrete_demonstrations_acts_alone_and_its_q_values_are_returns(palpate_dqn_clone):
    dataset, clone = palpate_dqn_clone
    policy = Policy.load(clone)
    pre = policy.card.training["pretrain"]
    # The expert chose table entries: each maps back exactly.
    assert pre["mapping_step_error_max_m"] == 0.0
    assert evaluate(policy, "telesurg/PalpateDenseDiscrete-v0", 20, seed=1_000_000).success_rate >= 0.8
    # DQfD pretraining: the Q-values are returns. On held-out demonstrations Q(s, a_E) follows the
    # discounted return that followed (rewards scaled by the return statistics the bundle carries
    # into fine-tuning). Measured: correlation 0.96, means -1.4 vs -1.8; a clone trained by
    # cross-entropy instead (logits): correlation -0.70, mean +8.0 vs -33.
    q, actions, demos = _demo_q(policy, dataset, "launch/train/palpate_dqn.toml")
    norm = policy.normalizer
    assert norm.return_count > 1
    rewards = np.clip(demos.rewards / np.sqrt(norm.return_var + norm.epsilon), -10, 10)
    returns = np.zeros(len(rewards))
    following = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        following = rewards[i] + (policy.model.gamma * following if demos.has_next[i] else 0.0)
        returns[i] = following
    q_demo = q[np.arange(len(q)), actions]
    correlation = np.corrcoef(q_demo, returns)[0, 1]
    assert correlation > 0.8 and abs(q_demo.mean() - returns.mean()) < 0.5 * returns.std(), (
        correlation,
        q_demo.mean(),
        returns.mean(),
        returns.std(),
    )


def test_the_demonstration_loss_keeps_a_fine_tuned_dqn_on_its_demonstrations(palpate_dqn_clone, tmp_path):
    """Fine-tuning a DQN clone with the RL loss alone took PalpateDiscrete from 100% to 0%; with
    DQfD's loss kept on the demonstrations it stayed at 98–100% (README). Here, a fast-drifting
    short run (learning rate 1e-3): the greedy action stays the demonstrated one on held-out frames
    with the demonstration loss, and not without (measured 0.80 vs 0.25; the clone's own 0.90)."""
    dataset, clone = palpate_dqn_clone
    agreement = {}
    for weight in (0.0, 1.0):
        cfg = tiny_config(
            "telesurg/PalpateDenseDiscrete-v0",
            tmp_path / f"run_{weight}",
            net_arch=[64, 64],
            init=str(clone),
            demo_loss_weight=weight,
            total_timesteps=3000,
            hyperparams={
                "learning_starts": 200,
                "learning_rate": 1e-3,
                "train_freq": 4,
                "target_update_interval": 250,
                "buffer_size": 10_000,
                "gamma": 0.95,  # the clone's reward: its Q-values are returns of it
            },
            cost_weight=1.0,
            eval={"every_steps": 100_000, "episodes": 2, "final_episodes": 2},
        )
        lines: list[str] = []
        result = train(cfg, log=lines.append)
        assert any(line.startswith("demonstration loss:") for line in lines) == (weight > 0)
        q, actions, _ = _demo_q(result.policy, dataset, "launch/train/palpate_dqn.toml")
        agreement[weight] = float((q.argmax(axis=1) == actions).mean())
    assert agreement[1.0] > 0.7 and agreement[0.0] < 0.5, agreement


def test_the_demonstration_loss_pulls_a_fine_tuned_ppo_actor_to_its_demonstrations(
    reach_clone, reach_dataset, tmp_path
):
    import gymnasium as gym

    from telesurg.policies.demonstrations import Demonstrations

    env = gym.make("telesurg/ReachDense-v0")
    demos = Demonstrations.of(env, "ppo", read_dataset(reach_dataset).episodes(split="val"), 0.0)
    env.close()
    error = {}
    for weight, warmup in ((0.0, 0), (1.0, 0), (1.0, 100_000)):
        cfg = tiny_config(
            "telesurg/ReachDense-v0",
            tmp_path / f"run_{weight}_{warmup}",
            net_arch=[64, 64],
            init=str(reach_clone),
            demo_loss_weight=weight,
            critic_warmup_steps=warmup,
            total_timesteps=2048,
            hyperparams={"n_steps": 256, "batch_size": 64, "n_epochs": 4, "learning_rate": 3e-3},
            eval={"every_steps": 100_000, "episodes": 2, "final_episodes": 2},
        )
        result = train(cfg, log=lambda m: None)
        error[(weight, warmup)] = float(np.mean((result.policy.predict(demos.frames) - demos.targets) ** 2))
    clone_error = float(np.mean((Policy.load(reach_clone).predict(demos.frames) - demos.targets) ** 2))
    # With the actor frozen (critic warm-up) the demonstration loss leaves it as cloned.
    assert error[(1.0, 100_000)] == clone_error
    # Measured: 0.009 with the demonstration loss, 0.29 without (the clone's own: 0.001).
    assert error[(1.0, 0)] < 0.25 * error[(0.0, 0)], error


def test_the_demonstration_loss_needs_readable_demonstrations(reach_clone, reach_dataset, tmp_path):
    with pytest.raises(ConfigError, match="demo_loss_weight must be"):
        tiny_config("telesurg/ReachDense-v0", tmp_path / "r", demo_loss_weight=-1.0)
    moved = tmp_path / "clone"
    shutil.copytree(reach_clone, moved)
    card = json.loads((moved / "card.json").read_text())
    card["training"]["pretrain"]["dataset"] = str(tmp_path / "gone")
    (moved / "card.json").write_text(json.dumps(card))
    cfg = tiny_config(
        "telesurg/ReachDense-v0", tmp_path / "run", net_arch=[64, 64], init=str(moved), demo_loss_weight=1.0
    )
    with pytest.raises(ConfigError, match=r"cannot read the demonstrations .*gone"):
        train(cfg, log=lambda m: None)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made: rerunnable
    # A dataset rebuilt since the clone was made (another size) is refused too.
    card["training"]["pretrain"]["dataset"] = str(reach_dataset)
    card["training"]["pretrain"]["dataset_frames"] += 1
    (moved / "card.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="rebuilt since"):
        train(cfg, log=lambda m: None)
    assert not (tmp_path / "run").exists()


def test_a_dqn_clone_is_refused_for_another_reward_or_discount(palpate_dqn_clone, tmp_path):
    """Its Q-values are returns of the pretraining reward: other discount or cost weight, refused."""
    _, clone = palpate_dqn_clone
    for override, key in (({"hyperparams": {"gamma": 0.99}}, "gamma"), ({"cost_weight": 0.0}, "cost_weight")):
        cfg = load_config(REPO / "launch/train/palpate_dqn.toml")
        data = cfg.to_dict()
        data.update({"out": str(tmp_path / "run"), "init": str(clone), "total_timesteps": 100})
        for k, v in override.items():
            data[k] = {**data[k], **v} if isinstance(v, dict) else v
        from telesurg.policies.config import from_dict

        with pytest.raises(ConfigError, match=f"returns for {key}"):
            train(from_dict(data), log=lambda m: None)
        assert not (tmp_path / "run").exists()


def test_a_resumed_run_keeps_one_demonstration_step_per_update(palpate_dqn_clone, tmp_path):
    _, clone = palpate_dqn_clone
    hyper = {"learning_starts": 100, "train_freq": 4, "target_update_interval": 250, "buffer_size": 5000, "gamma": 0.95}
    base = {"net_arch": [64, 64], "init": str(clone), "demo_loss_weight": 1.0, "hyperparams": hyper, "cost_weight": 1.0,
            "eval": {"every_steps": 100_000, "episodes": 2, "final_episodes": 2},
            "checkpoint": {"every_steps": 100_000}}  # fmt: skip
    cfg = tiny_config("telesurg/PalpateDenseDiscrete-v0", tmp_path / "run", total_timesteps=600, **base)
    lines: list[str] = []
    first = train(cfg, log=lines.append).policy.model._n_updates

    def reported(lines: list[str]) -> int:
        said = [x for x in lines if x.endswith("demonstration steps in this run")]
        assert len(said) == 1, lines
        return int(said[0].split()[2].replace(",", ""))

    assert first > 100 and reported(lines) == first  # one demonstration step per gradient step
    cfg = tiny_config("telesurg/PalpateDenseDiscrete-v0", tmp_path / "run", total_timesteps=1000, **base)
    lines = []
    second = train(cfg, resume_from=tmp_path / "run" / "final", log=lines.append).policy.model._n_updates
    # Resumed: as many as the new gradient steps, not a burst of every step the model has made.
    assert second > first and reported(lines) == second - first


def test_shuffled_fields_must_be_the_tasks_own(reach_dataset, tmp_path):
    cfg = load_config(REPO / "launch/train/reach_ppo.toml")
    with pytest.raises(DatasetError, match=r"no field \['tab_pos_m'\] in telesurg/ReachDense-v0"):
        pretrain(cfg, reach_dataset, tmp_path / "x", PretrainSettings(shuffle_fields=("tab_pos_m",)), log=print)
    assert not (tmp_path / "x").exists()
    out = tmp_path / "bc"
    settings = PretrainSettings(epochs=2, shuffle_fields=("tip_vel_m_s", "jaw_opening"))
    pretrain(cfg, reach_dataset, out, settings, log=lambda m: None)
    assert Policy.load(out).card.training["pretrain"]["shuffle_fields"] == ["tip_vel_m_s", "jaw_opening"]
