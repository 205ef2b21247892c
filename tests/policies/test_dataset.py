"""Demonstration datasets: expert rollouts written in the LeRobot v3.0 layout, read back with pyarrow
and with the ``datasets`` library (offline), checked against the format and against themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from telesurg.policies.dataset import lerobot
from telesurg.policies.dataset.experts import expert_episodes
from telesurg.policies.dataset.lerobot import DatasetError, read_dataset, write_dataset
from telesurg.policies.dataset.validate import validate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def episodes():
    return expert_episodes("Reach", 6, seed=0) + expert_episodes("Retract", 5, seed=10)


@pytest.fixture
def dataset(tmp_path, episodes) -> Path:
    return write_dataset(tmp_path / "demos", episodes)


def _same(a, b) -> bool:
    return (
        a.task == b.task
        and a.seed == b.seed
        and a.source == b.source
        and a.success == b.success
        and all(
            np.array_equal(getattr(a, k), getattr(b, k))
            for k in ("observation", "achieved_goal", "desired_goal", "action", "next_success", "force_max_N")
        )
    )


def test_expert_episodes_cover_the_whole_time_limit_and_succeed(episodes):
    reach = [e for e in episodes if e.task == "Reach"]
    assert [e.length for e in reach] == [50] * 6  # the time limit: evaluation judges the last step
    assert all(e.success and e.next_success[-1] for e in episodes)
    assert not any(e.hard_limit_exceeded for e in episodes)
    assert all(e.source == "expert" and e.replay_tip_error_m == 0.0 for e in episodes)


def test_layout_follows_lerobot_v3(dataset, episodes):
    info = json.loads((dataset / "meta/info.json").read_text())
    # The published v3.0 info.json: these keys, these path templates, the default columns.
    for key in (
        "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
        "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features",
    ):  # fmt: skip
        assert key in info, key
    assert info["codebase_version"] == "v3.0"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["fps"] == 25 and info["total_episodes"] == 11 and info["total_tasks"] == 2
    assert info["total_frames"] == sum(e.length for e in episodes)
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert info["features"][name]["shape"] == [1]
    assert (dataset / "data/chunk-000/file-000.parquet").is_file()
    assert (dataset / "meta/episodes/chunk-000/file-000.parquet").is_file()
    tasks = pq.read_table(dataset / "meta/tasks.parquet").to_pandas()
    assert tasks.index.name == "task" and tasks["task_index"].to_dict() == {"Reach": 0, "Retract": 1}
    stats = json.loads((dataset / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [info["total_frames"]] and len(stats["action"]["mean"]) == 4
    assert validate(dataset) == []


def test_columns_read_back_with_pyarrow_match_the_episodes(dataset, episodes):
    table = pq.read_table(dataset / "data/chunk-000/file-000.parquet")
    meta = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    by_key = {(e.task, e.seed): e for e in episodes}
    state = table.column("observation.state").combine_chunks()
    assert pa.types.is_fixed_size_list(state.type) and state.type.list_size == 18  # Retract's 18, Reach padded
    for row in meta:
        e = by_key[(row["tasks"][0], row["seed"])]
        lo, hi = row["dataset_from_index"], row["dataset_to_index"]
        part = table.slice(lo, hi - lo)
        obs = np.array(part.column("observation.state").to_pylist(), dtype=np.float32)
        assert np.array_equal(obs[:, : e.observation.shape[1]], e.observation)
        assert not obs[:, e.observation.shape[1] :].any()  # the padding is zeros
        assert np.array_equal(np.array(part.column("action").to_pylist(), dtype=np.float32), e.action)
        assert part.column("frame_index").to_pylist() == list(range(e.length))
        assert np.allclose(part.column("timestamp").to_numpy(), np.arange(e.length) * 0.04)
        assert part.column("next.done").to_pylist() == [False] * (e.length - 1) + [True]
        assert np.array_equal(part.column("next.success").to_numpy(zero_copy_only=False), e.next_success)
        assert row["success"] == e.success and row["max_contact_force_N"] == pytest.approx(e.max_force_N)
    back = read_dataset(dataset).episodes()
    assert len(back) == len(episodes) and all(any(_same(b, e) for e in episodes) for b in back)


def test_datasets_library_reads_it_offline(dataset, episodes, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    ds = load_dataset(
        "parquet", data_files={"train": str(dataset / "data/chunk-*/file-*.parquet")}, cache_dir=str(tmp_path / "c")
    )["train"]
    assert ds.features["action"].length == 4 and ds.features["observation.state"].length == 18
    assert len(ds) == sum(e.length for e in episodes)
    ordered = read_dataset(dataset).episodes()
    actions = np.array(ds["action"], dtype=np.float32)
    assert np.array_equal(actions, np.concatenate([e.action for e in ordered]))
    assert ds["index"] == list(range(len(ds)))


def test_splits_are_by_episode_validation_last(dataset):
    ds = read_dataset(dataset)
    assert ds.info["splits"] == {"train": "0:9", "val": "9:11"}
    val = ds.episodes(split="val")
    assert sorted(e.task for e in val) == ["Reach", "Retract"]  # one per task
    train = ds.episodes(split="train")
    assert not {(e.task, e.seed) for e in val} & {(e.task, e.seed) for e in train}


def test_an_interrupted_write_leaves_nothing(tmp_path, episodes, monkeypatch):
    def boom(*args, **kwargs):
        (args[0] / "data").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(lerobot, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "demos", episodes)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_only_a_dataset(tmp_path, episodes):
    precious = tmp_path / "runs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a dataset"):
        write_dataset(precious, episodes[:2], overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_a_failed_replace_puts_the_old_dataset_back(dataset, episodes, monkeypatch):
    from pathlib import Path as P

    real = P.rename

    def rename(self, target):
        if self.name.startswith(".demos.") and not self.name.endswith(".old"):
            raise KeyboardInterrupt  # the new folder's move into place is interrupted
        return real(self, target)

    monkeypatch.setattr(P, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(dataset, episodes[:2], overwrite=True)
    monkeypatch.undo()
    assert read_dataset(dataset).info["total_episodes"] == 11
    assert sorted(p.name for p in dataset.parent.iterdir()) == ["demos"]


def test_an_existing_dataset_is_kept_unless_overwritten(dataset, episodes):
    with pytest.raises(DatasetError, match="exists"):
        write_dataset(dataset, episodes[:2])
    assert read_dataset(dataset).info["total_episodes"] == 11
    write_dataset(dataset, episodes[:2], overwrite=True)
    assert read_dataset(dataset).info["total_episodes"] == 2
    assert sorted(p.name for p in dataset.parent.iterdir()) == ["demos"]


def test_validate_finds_each_kind_of_damage(dataset, tmp_path):
    def damaged(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(dataset, copy)
        return copy

    d = damaged("frames")
    info = json.loads((d / "meta/info.json").read_text())
    info["total_frames"] += 1
    (d / "meta/info.json").write_text(json.dumps(info))
    assert any("total_frames" in p for p in validate(d))

    d = damaged("version")
    info["codebase_version"] = "v2.1"
    (d / "meta/info.json").write_text(json.dumps(info))
    assert any("codebase_version" in p for p in validate(d))

    d = damaged("stats")
    (d / "meta/stats.json").unlink()
    assert validate(d) == ["meta/stats.json missing"]

    d = damaged("column")
    path = d / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index("index"), "index", pa.array(np.arange(table.num_rows) * 2))
    pq.write_table(table, path)
    assert any("index is not" in p for p in validate(d))

    d = damaged("nocolumn")
    path = d / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["frame_index"]), path)
    assert any("no column 'frame_index'" in p for p in validate(d))  # reported, no traceback

    d = damaged("badstats")
    (d / "meta/stats.json").write_text("{not json")
    assert any("stats.json is not valid JSON" in p for p in validate(d))

    d = damaged("name")
    (d / "data/chunk-000/file-000.parquet").rename(d / "data/chunk-000/episode_000000.parquet")
    assert any("no data" in p for p in validate(d))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_cli_build_info_validate(tmp_path):
    out = tmp_path / "demos"
    r = _cli("dataset", "build", str(out), "--experts", "3", "--tasks", "Trace")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote" in r.stdout and "3 episodes" in r.stdout
    info = json.loads((out / "meta/info.json").read_text())
    assert info["telesurg"]["command"].startswith("telesurg dataset build") and info["telesurg"]["sources"] == [
        "expert"
    ]
    back = read_dataset(out).episodes()  # Trace's goal is one value: a scalar column, read back as (T, 1)
    assert len(back) == 3 and back[0].achieved_goal.shape == (200, 1) and back[0].success
    r = _cli("dataset", "info", str(out))
    assert r.returncode == 0 and "Trace" in r.stdout and "expert" in r.stdout and "100%" in r.stdout
    r = _cli("dataset", "validate", str(out))
    assert r.returncode == 0 and "valid LeRobot v3.0 dataset" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experts", "2", "--tasks", "Suture"], "unknown task"),
        ([], "nothing to build from"),
        (["--experts", "-1"], "--experts must be"),
        (["--experts", "2", "--tasks", "Retract", "--discrete-experts"], "--discrete-experts works for"),
        (["--discrete-experts", "--tasks", "Reach"], "--discrete-experts needs --experts"),
    ],
)
def test_cli_build_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "demos"
    r = _cli("dataset", "build", str(out), *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_info_and_validate_on_what_is_not_a_dataset(tmp_path):
    r = _cli("dataset", "info", str(tmp_path))
    assert r.returncode == 2 and "not a dataset" in r.stderr
    r = _cli("dataset", "validate", str(tmp_path))
    assert r.returncode == 1 and "meta/info.json missing" in r.stdout


def test_cli_discrete_experts_record_table_entries(tmp_path):
    """``--discrete-experts``: each recorded action is exactly one entry of the Discrete id's table
    (as the continuous action it stands for), so a DQN clone maps it back without error."""
    import gymnasium as gym

    out = tmp_path / "demos"
    r = _cli("dataset", "build", str(out), "--experts", "3", "--tasks", "Palpate", "--discrete-experts",
             "--expert-noise", "0.1")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    back = read_dataset(out).episodes()
    env = gym.make("telesurg/PalpateDiscrete-v0")
    table = np.array([[*step, -1.0 if jaw is None else jaw] for step, jaw in env.get_wrapper_attr("table")])
    env.close()
    actions = np.concatenate([e.action for e in back])
    assert np.min(np.abs(actions[:, None, :] - table[None]).max(axis=2), axis=1).max() == 0.0
    assert all(":discrete:noise=0.1" in e.origin for e in back)
    # Not every step is the no-op: the expert moved.
    assert (np.abs(actions[:, :3]).sum(axis=1) > 0).mean() > 0.3
