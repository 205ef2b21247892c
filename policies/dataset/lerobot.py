"""Demonstrations written and read in the LeRobot dataset format, version 3.0.

Layout (LeRobot's v3.0 path templates; one data file unless it would pass ``data_files_size_in_mb``)::

    meta/info.json                              codebase_version "v3.0", fps 25, features, splits
    meta/stats.json                             min, max, mean, std, count per numeric feature
    meta/tasks.parquet                          task string (the telesurg task name) → task_index
    meta/episodes/chunk-000/file-000.parquet    per episode: length, tasks, data file and row range,
                                                per-episode stats, and telesurg's own columns
                                                (seed, source, origin, success, max_contact_force_N,
                                                hard_limit_exceeded, replay_tip_error_m, split)
    data/chunk-000/file-000.parquet             one row per control period (40 ms)

Columns of the data files: ``observation.state`` (the env's flat ``observation`` vector),
``observation.achieved_goal`` and ``observation.desired_goal`` (its goal vectors), ``action`` (tool-tip
step as a fraction of ``max_step_m``, base frame, then the jaw in [-1, 1]), ``next.success``,
``next.done``, ``next.contact_force_max_N`` (N), and LeRobot's ``timestamp`` (s from the episode's
start), ``frame_index``, ``episode_index``, ``index`` and ``task_index``. Tasks differ in their
observation sizes; a dataset with several tasks zero-pads each vector to the largest, and
``info.json``'s ``telesurg`` section gives every task's layout (signature, size, env id) so a
reader takes the task's own leading part. Splits are by episode: ``splits`` in ``info.json`` gives
``train`` and ``val`` as episode ranges (``"0:90"``), validation episodes last.

A dataset is written into a temporary sibling folder and renamed into place: an interrupted build
leaves no half-written dataset. No videos are written (the endoscope camera is not a feature);
``video_path`` is null.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from telesurg.envs.layout import OBS_LAYOUT_VERSION
from telesurg.policies.atomic import replace_atomically
from telesurg.policies.dataset.episode import ACTION_NAMES, Episode

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
ROBOT_TYPE = "telesurg_psm"
#: The version of telesurg's own section of ``info.json`` (the ``telesurg`` key).
TELESURG_FORMAT = 1
#: One row per environment control period (40 ms).
FPS = 25

#: LeRobot's columns present in every dataset (shape (1,) features are scalar columns).
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
VECTOR_FEATURES = ("observation.state", "observation.achieved_goal", "observation.desired_goal", "action")
_ARROW = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}
_RANGE = re.compile(r"^(\d+):(\d+)$")


class DatasetError(ValueError):
    """A dataset that cannot be written or used as asked (one line)."""


@dataclass(frozen=True)
class TaskLayout:
    """What a task's rows mean: its env id and the observation and goal layouts (signatures, sizes)."""

    env_id: str
    obs_layout: str
    goal_layout: str
    observation_size: int
    goal_size: int
    obs_names: tuple[str, ...]
    goal_names: tuple[str, ...]

    @classmethod
    def of(cls, task: str) -> TaskLayout:
        import gymnasium as gym

        from telesurg import envs

        if task not in envs.TASKS_BY_NAME:
            raise DatasetError(f"unknown task {task!r}; known: {', '.join(sorted(envs.TASKS_BY_NAME))}")
        env_id = envs.env_id(task)
        env = gym.make(env_id)
        try:
            base = env.unwrapped
            return cls(
                env_id,
                base.obs_layout.signature(),
                base.goal_layout.signature(),
                base.obs_layout.size,
                base.goal_layout.size,
                _element_names(base.obs_layout),
                _element_names(base.goal_layout),
            )
        finally:
            env.close()


def _element_names(layout: Any) -> tuple[str, ...]:
    names = []
    for f in layout.fields:
        names += [f.name] if f.size == 1 else [f"{f.name}[{i}]" for i in range(f.size)]
    return tuple(names)


# ---------------------------------------------------------------------- writing
def write_dataset(
    out: str | Path,
    episodes: Sequence[Episode],
    val_fraction: float = 0.1,
    overwrite: bool = False,
    description: str = "",
    command: str = "",
) -> Path:
    """Write ``episodes`` as a LeRobot v3.0 dataset at ``out`` (atomically; see the module
    docstring). About ``val_fraction`` of each task's episodes (every k-th, at least one when a task
    has two or more) form the validation split."""
    out = Path(out)
    if not episodes:
        raise DatasetError("no episodes to write")
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} exists; choose another path or pass --overwrite")
    if out.exists() and not (_is_dataset(out) or (out.is_dir() and not any(out.iterdir()))):
        raise DatasetError(
            f"{out} exists and is not a dataset: --overwrite replaces only a dataset (or an empty folder)"
        )
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    task_names = sorted({e.task for e in episodes})
    layouts = {t: TaskLayout.of(t) for t in task_names}
    for e in episodes:
        lay = layouts[e.task]
        if e.observation.shape[1] != lay.observation_size or e.achieved_goal.shape[1] != lay.goal_size:
            raise DatasetError(
                f"{e.origin}: observation/goal sizes {e.observation.shape[1]}/{e.achieved_goal.shape[1]} do not "
                f"match {e.task}'s layout ({lay.observation_size}/{lay.goal_size})"
            )
    ordered, n_train = _split(episodes, val_fraction)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write(tmp, ordered, n_train, layouts, task_names, description, command)
        replace_atomically(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _is_dataset(path: Path) -> bool:
    try:
        return "telesurg" in json.loads((path / INFO_PATH).read_text())
    except (OSError, ValueError):
        return False


def _split(episodes: Sequence[Episode], val_fraction: float) -> tuple[list[Episode], int]:
    """Episodes ordered train first, then validation (every k-th episode of each task)."""
    train: list[Episode] = []
    val: list[Episode] = []
    by_task: dict[str, list[Episode]] = {}
    for e in episodes:
        by_task.setdefault(e.task, []).append(e)
    for task in sorted(by_task):
        group = by_task[task]
        n_val = 0 if val_fraction == 0 or len(group) < 2 else max(1, round(len(group) * val_fraction))
        n_val = min(n_val, len(group) - 1)  # every task keeps a training episode
        every = len(group) / n_val if n_val else math.inf
        picks = {min(len(group) - 1, int((i + 1) * every) - 1) for i in range(n_val)}
        for i, e in enumerate(group):
            (val if i in picks else train).append(e)
    return train + val, len(train)


def _features(layouts: dict[str, TaskLayout]) -> dict[str, dict[str, Any]]:
    s = max(lay.observation_size for lay in layouts.values())
    g = max(lay.goal_size for lay in layouts.values())
    only = next(iter(layouts.values())) if len(layouts) == 1 else None
    obs_names = list(only.obs_names) if only else [f"state_{i}" for i in range(s)]
    goal_names = list(only.goal_names) if only else [f"goal_{i}" for i in range(g)]
    return {
        "observation.state": {"dtype": "float32", "shape": [s], "names": obs_names},
        "observation.achieved_goal": {"dtype": "float32", "shape": [g], "names": goal_names},
        "observation.desired_goal": {"dtype": "float32", "shape": [g], "names": goal_names},
        "action": {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": list(ACTION_NAMES)},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "next.contact_force_max_N": {"dtype": "float32", "shape": [1], "names": None},
        **DEFAULT_FEATURES,
    }


def _pad(rows: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.float32)
    out[:, : rows.shape[1]] = rows
    return out


def _column(values: np.ndarray, feature: dict[str, Any]) -> pa.Array:
    typ = _ARROW[feature["dtype"]]
    if feature["shape"] == [1]:
        return pa.array(np.asarray(values).reshape(-1), type=typ)
    flat = pa.array(np.asarray(values, dtype=np.float32).reshape(-1), type=typ)
    return pa.FixedSizeListArray.from_arrays(flat, feature["shape"][0])


def _write(
    root: Path,
    episodes: list[Episode],
    n_train: int,
    layouts: dict[str, TaskLayout],
    task_names: list[str],
    description: str,
    command: str,
) -> None:
    features = _features(layouts)
    s = features["observation.state"]["shape"][0]
    g = features["observation.achieved_goal"]["shape"][0]
    task_index = {t: i for i, t in enumerate(task_names)}
    columns: dict[str, list[np.ndarray]] = {k: [] for k in features}
    episode_rows: list[dict[str, Any]] = []
    start = 0
    for i, e in enumerate(episodes):
        n = e.length
        per = {
            "observation.state": _pad(e.observation, s),
            "observation.achieved_goal": _pad(e.achieved_goal, g),
            "observation.desired_goal": _pad(e.desired_goal, g),
            "action": e.action.astype(np.float32),
            "next.success": e.next_success.astype(bool),
            "next.done": np.arange(n) == n - 1,
            "next.contact_force_max_N": e.force_max_N.astype(np.float32),
            "timestamp": (np.arange(n) / FPS).astype(np.float32),
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, i, dtype=np.int64),
            "index": np.arange(start, start + n, dtype=np.int64),
            "task_index": np.full(n, task_index[e.task], dtype=np.int64),
        }
        for k, v in per.items():
            columns[k].append(v)
        row: dict[str, Any] = {
            "episode_index": i,
            "tasks": [e.task],
            "length": n,
            "dataset_from_index": start,
            "dataset_to_index": start + n,
            "seed": e.seed,
            "source": e.source,
            "origin": e.origin,
            "success": bool(e.success),
            "max_contact_force_N": e.max_force_N,
            "hard_limit_exceeded": bool(e.hard_limit_exceeded),
            "replay_tip_error_m": float(e.replay_tip_error_m),
            "split": "train" if i < n_train else "val",
        }
        for k in VECTOR_FEATURES:
            for stat, value in _stats(per[k]).items():
                row[f"stats/{k}/{stat}"] = value
        episode_rows.append(row)
        start += n
    total = start
    data = {k: np.concatenate(v) for k, v in columns.items()}
    bytes_per_row = sum(np.asarray(v[:1]).nbytes for v in data.values())
    rows_per_file = max(1, (DATA_FILES_SIZE_IN_MB << 20) // max(1, bytes_per_row))
    # Files hold whole episodes: a new file starts when the next episode would pass the size.
    file_of_episode: list[int] = []
    file_index, rows_in_file = 0, 0
    for row in episode_rows:
        if rows_in_file and rows_in_file + row["length"] > rows_per_file:
            file_index, rows_in_file = file_index + 1, 0
        file_of_episode.append(file_index)
        rows_in_file += row["length"]
    for f in range(file_index + 1):
        eps = [r for r, fi in zip(episode_rows, file_of_episode, strict=True) if fi == f]
        lo, hi = eps[0]["dataset_from_index"], eps[-1]["dataset_to_index"]
        table = pa.table({k: _column(v[lo:hi], features[k]) for k, v in data.items()})
        path = root / DATA_PATH.format(chunk_index=f // CHUNKS_SIZE, file_index=f % CHUNKS_SIZE)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    for row, f in zip(episode_rows, file_of_episode, strict=True):
        row["data/chunk_index"] = f // CHUNKS_SIZE
        row["data/file_index"] = f % CHUNKS_SIZE
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
    ep_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
    import pandas as pd

    tasks = pd.DataFrame({"task_index": list(range(len(task_names)))}, index=pd.Index(task_names, name="task"))
    tasks.to_parquet(root / TASKS_PATH)
    stats = {k: _stats(data[k]) for k in features if features[k]["dtype"] != "bool"}
    (root / STATS_PATH).write_text(json.dumps(stats, indent=1) + "\n")
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": ROBOT_TYPE,
        "total_episodes": len(episodes),
        "total_frames": total,
        "total_tasks": len(task_names),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": FPS,
        "splits": {
            "train": f"0:{n_train}",
            **({"val": f"{n_train}:{len(episodes)}"} if n_train < len(episodes) else {}),
        },
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
        "telesurg": {
            "format": TELESURG_FORMAT,
            "description": description,
            "command": command,
            "sources": sorted({e.source for e in episodes}),
            "obs_layout_version": OBS_LAYOUT_VERSION,
            "control_period_s": 1.0 / FPS,
            "action": "tip step (x, y, z, base frame) as a fraction of max_step_m per control period; jaw in [-1, 1]",
            "tasks": {
                t: {"task_index": task_index[t], **{k: v for k, v in vars(layouts[t]).items() if "names" not in k}}
                for t in task_names
            },
        },
    }
    (root / INFO_PATH).write_text(json.dumps(info, indent=4) + "\n")


def _stats(values: np.ndarray) -> dict[str, list[float]]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    return {
        "min": v.min(axis=0).tolist(),
        "max": v.max(axis=0).tolist(),
        "mean": v.mean(axis=0).tolist(),
        "std": v.std(axis=0).tolist(),
        "count": [len(v)],
    }


# ---------------------------------------------------------------------- reading
@dataclass
class Dataset:
    """A dataset read back: ``info`` (info.json), the episodes table and the data table."""

    path: Path
    info: dict[str, Any]
    episodes_table: pa.Table
    data: pa.Table

    @property
    def layouts(self) -> dict[str, dict[str, Any]]:
        return self.info["telesurg"]["tasks"]

    def episodes(self, tasks: Sequence[str] | None = None, split: str | None = None) -> list[Episode]:
        """The episodes (all, or those of ``tasks`` and/or ``split``), each cut back to its task's sizes."""
        meta = self.episodes_table.to_pylist()
        cols = {k: _matrix(self.data.column(k)) for k in ("next.success", "next.contact_force_max_N")}
        # A vector of one value (Trace's goal) is a scalar column, as LeRobot stores shape (1,) features.
        cols |= {k: _matrix(self.data.column(k)).reshape(self.data.num_rows, -1) for k in VECTOR_FEATURES}
        out = []
        for row in meta:
            task = row["tasks"][0]
            if (tasks is not None and task not in tasks) or (split is not None and row["split"] != split):
                continue
            lay = self.layouts[task]
            lo, hi = row["dataset_from_index"], row["dataset_to_index"]
            s, g = lay["observation_size"], lay["goal_size"]
            out.append(
                Episode(
                    task=task,
                    seed=int(row["seed"]),
                    source=row["source"],
                    origin=row["origin"],
                    observation=cols["observation.state"][lo:hi, :s],
                    achieved_goal=cols["observation.achieved_goal"][lo:hi, :g],
                    desired_goal=cols["observation.desired_goal"][lo:hi, :g],
                    action=cols["action"][lo:hi],
                    next_success=cols["next.success"][lo:hi].astype(bool),
                    force_max_N=cols["next.contact_force_max_N"][lo:hi],
                    success=bool(row["success"]),
                    hard_limit_exceeded=bool(row["hard_limit_exceeded"]),
                    replay_tip_error_m=float(row["replay_tip_error_m"]),
                )
            )
        return out

    def check_env(self, task: str, env: Any) -> None:
        """``DatasetError`` unless ``env`` (any wrappers) has the layouts ``task`` was recorded with."""
        if task not in self.layouts:
            raise DatasetError(f"{self.path} holds no {task} episodes (it has {', '.join(sorted(self.layouts))})")
        lay, base = self.layouts[task], env.unwrapped
        version = self.info["telesurg"]["obs_layout_version"]
        if version != base.obs_layout.version:
            raise DatasetError(
                f"{self.path} was built with observation layout version {version}, the env has "
                f"{base.obs_layout.version}; rebuild the dataset"
            )
        for key, got in (("obs_layout", base.obs_layout.signature()), ("goal_layout", base.goal_layout.signature())):
            if lay[key] != got:
                raise DatasetError(f"{self.path}: {task}'s {key} is {lay[key]}, the env has {got}; rebuild the dataset")


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type):
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), arr.type.list_size)
    return arr.to_numpy(zero_copy_only=False)


def read_dataset(path: str | Path) -> Dataset:
    """Read a dataset written by ``write_dataset``; ``DatasetError`` with one line if it is not one
    (run ``validate`` for every problem)."""
    root = Path(path)
    if not (root / INFO_PATH).is_file():
        raise DatasetError(f"{root} is not a dataset (no {INFO_PATH})")
    try:
        info = json.loads((root / INFO_PATH).read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{root / INFO_PATH} is not valid JSON ({exc})") from None
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(
            f"{root} is LeRobot format {info.get('codebase_version')!r}; telesurg reads {CODEBASE_VERSION}"
        )
    if info.get("telesurg", {}).get("format") != TELESURG_FORMAT:
        raise DatasetError(f"{root} lacks telesurg's section (format {TELESURG_FORMAT}) in {INFO_PATH}")
    try:
        episodes = pa.concat_tables(
            pq.read_table(p) for p in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
        )
        data = pa.concat_tables(pq.read_table(p) for p in sorted((root / "data").glob("chunk-*/file-*.parquet")))
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DatasetError(f"{root}: cannot read its parquet files ({exc})") from None
    if "action" not in data.column_names:
        raise DatasetError(f"{root} has no action column: it cannot train a policy")
    return Dataset(root, info, episodes, data)
