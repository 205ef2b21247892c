"""Checks a dataset folder against the LeRobot v3.0 layout and against itself (``telesurg dataset
validate``): every problem found, one line each.

The layout rules are those of LeRobot's published v3.0 format (``meta/info.json`` keys and path
templates, the default columns and their types, the episodes and tasks tables, stats for every
numeric feature); the ``lerobot`` package itself cannot be installed beside telesurg's torch, so it
is not the checker. Then consistency: row counts against ``total_frames`` and episode lengths,
``index``/``frame_index``/``episode_index`` sequences, task indices, splits covering every episode once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from telesurg.policies.dataset.lerobot import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    _matrix,
)

#: ``info.json`` keys of the v3.0 format and their JSON types.
INFO_KEYS: dict[str, tuple[type, ...]] = {
    "codebase_version": (str,),
    "robot_type": (str, type(None)),
    "total_episodes": (int,),
    "total_frames": (int,),
    "total_tasks": (int,),
    "chunks_size": (int,),
    "data_files_size_in_mb": (int,),
    "video_files_size_in_mb": (int,),
    "fps": (int,),
    "splits": (dict,),
    "data_path": (str,),
    "video_path": (str, type(None)),
    "features": (dict,),
}
EPISODE_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
    "meta/episodes/chunk_index",
    "meta/episodes/file_index",
)
DTYPES = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}
STAT_KEYS = ("min", "max", "mean", "std", "count")


def validate(path: str | Path) -> list[str]:
    """Every problem found in the dataset at ``path`` (empty: it is a valid v3.0 dataset)."""
    root = Path(path)
    problems: list[str] = []
    info_path = root / INFO_PATH
    if not info_path.is_file():
        return [f"{INFO_PATH} missing: {root} is not a LeRobot dataset"]
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{INFO_PATH} is not valid JSON: {exc}"]
    for key, types in INFO_KEYS.items():
        if key not in info:
            problems.append(f"{INFO_PATH}: missing key {key!r}")
        elif not isinstance(info[key], types) or (int in types and isinstance(info[key], bool)):
            problems.append(f"{INFO_PATH}: {key} has type {type(info[key]).__name__}")
    if problems:
        return problems
    if info["codebase_version"] != CODEBASE_VERSION:
        problems.append(f"codebase_version is {info['codebase_version']!r}, not {CODEBASE_VERSION!r}")
    if info["data_path"] != DATA_PATH:
        problems.append(f"data_path {info['data_path']!r} is not the v3.0 template {DATA_PATH!r}")
    if info["video_path"] not in (None, VIDEO_PATH):
        problems.append(f"video_path {info['video_path']!r} is not the v3.0 template {VIDEO_PATH!r}")
    features: dict[str, Any] = info["features"]
    for name, spec in DEFAULT_FEATURES.items():
        got = features.get(name)
        if got is None or got.get("dtype") != spec["dtype"] or list(got.get("shape", [])) != spec["shape"]:
            problems.append(f"feature {name!r} must be {spec['dtype']} of shape {spec['shape']}, got {got}")
    for name, spec in features.items():
        if not isinstance(spec, dict) or not {"dtype", "shape", "names"} <= set(spec):
            problems.append(f"feature {name!r} needs dtype, shape and names")
        elif spec["dtype"] not in DTYPES and spec["dtype"] not in ("image", "video"):
            problems.append(f"feature {name!r} has unknown dtype {spec['dtype']!r}")
    if problems:
        return problems
    data, dp = _read_files(root, "data", DATA_PATH)
    episodes, ep = _read_files(root, "meta/episodes", EPISODES_PATH)
    problems += dp + ep
    if data is None or episodes is None:
        return problems or ["no data or episodes files"]
    problems += _check_columns(data, features)
    tasks = None
    if not (root / TASKS_PATH).is_file():
        problems.append(f"{TASKS_PATH} missing")
    else:
        try:
            tasks = pq.read_table(root / TASKS_PATH)
        except (OSError, pa.ArrowException) as exc:
            problems.append(f"{TASKS_PATH}: unreadable ({exc})")
        if tasks is not None and not {"task_index", "task"} <= set(tasks.column_names):
            problems.append(f"{TASKS_PATH} needs columns task and task_index, has {tasks.column_names}")
            tasks = None
    needed = [c for c in ("index", "episode_index", "frame_index", "task_index") if c not in data.column_names]
    if not needed:  # (a missing one is reported above)
        problems += _check_consistency(info, data, episodes, tasks)
    problems += _check_stats(root, features)
    return problems


def _read_files(root: Path, folder: str, template: str) -> tuple[pa.Table | None, list[str]]:
    files = sorted((root / folder).glob("chunk-*/file-*.parquet"))
    if not files:
        return None, [f"no {folder}/chunk-*/file-*.parquet files"]
    problems = []
    tables = []
    for k, f in enumerate(files):
        rel = f.relative_to(root).as_posix()
        expected = template.format(chunk_index=k // 1000, file_index=k % 1000)
        if rel != expected:
            problems.append(f"{rel}: expected {expected} (files are numbered without gaps)")
        try:
            tables.append(pq.read_table(f))
        except (OSError, pa.ArrowException) as exc:
            problems.append(f"{rel}: unreadable ({exc})")
    if not tables:
        return None, problems
    try:
        return pa.concat_tables(tables), problems
    except pa.ArrowInvalid as exc:
        return None, [*problems, f"{folder}: files with different schemas ({exc})"]


def _check_columns(data: pa.Table, features: dict[str, Any]) -> list[str]:
    problems = []
    for name, spec in features.items():
        if spec["dtype"] == "video":
            continue
        if name not in data.column_names:
            problems.append(f"data: no column {name!r}")
            continue
        typ = data.schema.field(name).type
        want = DTYPES.get(spec["dtype"])
        shape = list(spec["shape"])
        if shape == [1]:
            ok = typ == want
        else:
            ok = pa.types.is_fixed_size_list(typ) and typ.value_type == want and [typ.list_size] == shape
        if not ok:
            problems.append(f"data: column {name!r} is {typ}, the feature says {spec['dtype']} {shape}")
    extra = sorted(set(data.column_names) - set(features))
    if extra:
        problems.append(f"data: columns not declared as features: {extra}")
    return problems


def _check_consistency(info: dict[str, Any], data: pa.Table, episodes: pa.Table, tasks: pa.Table | None) -> list[str]:
    problems = []
    missing = [c for c in EPISODE_COLUMNS if c not in episodes.column_names]
    if missing:
        return [f"meta/episodes: missing columns {missing}"]
    n = data.num_rows
    if n != info["total_frames"]:
        problems.append(f"total_frames is {info['total_frames']}, the data files hold {n} rows")
    if episodes.num_rows != info["total_episodes"]:
        problems.append(f"total_episodes is {info['total_episodes']}, meta/episodes lists {episodes.num_rows}")
    index = _matrix(data.column("index"))
    if not np.array_equal(index, np.arange(n)):
        problems.append("index is not 0 … total_frames-1 in order")
    ep_col = _matrix(data.column("episode_index"))
    frame = _matrix(data.column("frame_index"))
    rows = episodes.to_pylist()
    expect_from = 0
    for k, row in enumerate(rows):
        e, lo, hi = row["episode_index"], row["dataset_from_index"], row["dataset_to_index"]
        if e != k:
            problems.append(f"meta/episodes row {k} has episode_index {e}")
            break
        if lo != expect_from or hi - lo != row["length"] or hi > n:
            problems.append(
                f"episode {e}: rows {lo}:{hi} do not follow on (expected from {expect_from}, length {row['length']})"
            )
            break
        if not (np.all(ep_col[lo:hi] == e) and np.array_equal(frame[lo:hi], np.arange(hi - lo))):
            problems.append(f"episode {e}: episode_index/frame_index in its rows are not {e} / 0…{hi - lo - 1}")
        expect_from = hi
    if not problems and expect_from != n:
        problems.append(f"episodes cover {expect_from} rows of {n}")
    if tasks is not None:
        known = set(tasks.column("task_index").to_pylist())
        names = dict(zip(tasks.column("task").to_pylist(), tasks.column("task_index").to_pylist(), strict=True))
        if len(known) != info["total_tasks"]:
            problems.append(f"total_tasks is {info['total_tasks']}, {TASKS_PATH} lists {len(known)}")
        used = set(np.unique(_matrix(data.column("task_index"))).tolist())
        if not used <= known:
            problems.append(f"data uses task indices {sorted(used - known)} missing from {TASKS_PATH}")
        for row in rows:
            if any(t not in names for t in row["tasks"]):
                problems.append(f"episode {row['episode_index']}: tasks {row['tasks']} not all in {TASKS_PATH}")
                break
    covered: list[int] = []
    for split, spec in info["splits"].items():
        parts = str(spec).split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            problems.append(f"split {split!r} is {spec!r}, not 'start:stop'")
            continue
        covered += list(range(int(parts[0]), int(parts[1])))
    if sorted(covered) != list(range(episodes.num_rows)):
        problems.append("splits do not cover every episode exactly once")
    return problems


def _check_stats(root: Path, features: dict[str, Any]) -> list[str]:
    if not (root / STATS_PATH).is_file():
        return [f"{STATS_PATH} missing"]
    try:
        stats = json.loads((root / STATS_PATH).read_text())
    except json.JSONDecodeError as exc:
        return [f"{STATS_PATH} is not valid JSON: {exc}"]
    if not isinstance(stats, dict):
        return [f"{STATS_PATH} is not an object"]
    problems = []
    for name, spec in features.items():
        if spec["dtype"] in ("bool", "string", "video", "image"):
            continue
        got = stats.get(name)
        if not isinstance(got, dict) or not set(STAT_KEYS) <= set(got):
            problems.append(f"{STATS_PATH}: {name!r} lacks {list(STAT_KEYS)}")
            continue
        for key in ("min", "max", "mean", "std"):
            if not isinstance(got[key], list) or len(got[key]) != spec["shape"][0]:
                problems.append(
                    f"{STATS_PATH}: {name}.{key} has {len(got[key])} values, the feature {spec['shape'][0]}"
                )
    return problems
