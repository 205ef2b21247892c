"""What a dataset holds, as ``telesurg dataset info`` prints it: counts by task and source, success
per task, contact-force statistics, flagged episodes and the splits."""

from __future__ import annotations

import numpy as np

from telesurg.policies.dataset.lerobot import Dataset


def summarize(ds: Dataset) -> str:
    info = ds.info
    rows = ds.episodes_table.to_pylist()
    lines = [
        f"{ds.path}: LeRobot {info['codebase_version']}, {info['total_episodes']} episodes, "
        f"{info['total_frames']} frames at {info['fps']} Hz ({info['total_frames'] / info['fps'] / 60:.1f} min), "
        f"{info['total_tasks']} task(s), observation layout v{info['telesurg']['obs_layout_version']}",
        "splits: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()),
        "",
        f"{'task':<10}{'source':<10}{'episodes':>9}{'frames':>8}{'success':>9}{'flagged':>9}"
        f"{'max F mean N':>14}{'max F max N':>13}{'replay tip mm':>15}",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["tasks"][0], r["source"]), []).append(r)
    for (task, source), group in sorted(groups.items()):
        forces = np.array([r["max_contact_force_N"] for r in group])
        lines.append(
            f"{task:<10}{source:<10}{len(group):>9}{sum(r['length'] for r in group):>8}"
            f"{np.mean([r['success'] for r in group]):>9.0%}{sum(r['hard_limit_exceeded'] for r in group):>9}"
            f"{forces.mean():>14.2f}{forces.max():>13.2f}{max(r['replay_tip_error_m'] for r in group) * 1e3:>15.2f}"
        )
    flagged = [r for r in rows if r["hard_limit_exceeded"]]
    if flagged:
        lines.append(
            f"\n{len(flagged)} episode(s) crossed the hard force limit (kept, flagged; pretraining leaves them out "
            "unless asked): " + ", ".join(str(r["episode_index"]) for r in flagged[:20])
        )
    return "\n".join(lines)
