"""The soak's figures as text (progress lines, the markdown table of windows) and its targets,
computed from the windows ``telesurg.teleop.harness.soak`` wrote (see its docstring for what they hold)."""

from __future__ import annotations

import math
from typing import Any

#: What every window of ``windows.jsonl`` holds.
WINDOW_KEYS = (
    "index",
    "start_min",
    "end_min",
    "duration_s",
    "partial",
    "latency",
    "periods",
    "stalls",
    "invariants",
    "video",
    "browser",
    "processes",
    "recording_bytes",
    "tasks",
    "consoles",
)
#: The processes whose memory and descriptors a window row shows (resource trackers are in the JSON).
ROLES = ("robot", "robot/recorder", "video", "video/renderer", "console")

TABLE_HEADER = (
    "| window | minutes | cmd latency p50 / p99 ms | periods ±20% | worst period ms | > 5× | stalls work / wait "
    "(host) | video fps / p50 ms | browser fps | RSS MiB robot / recorder / video / renderer / console peak / "
    "browser | fds robot / recorder / video / renderer / console | recording MiB | invariants | "
    "tasks ok / done (video holds) |\n"
    "| ---: | --- | --- | ---: | ---: | ---: | --- | --- | ---: | --- | --- | ---: | --- | --- |\n"
)


def _f(value: float | None, fmt: str = ".1f") -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _mib(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**20:.0f}"


def _rss(window: dict[str, Any], role: str, key: str = "rss_bytes") -> int | None:
    entry = window["processes"].get(role)
    return None if entry is None else entry[key]


def _invariants(window: dict[str, Any]) -> str:
    inv = window["invariants"]
    if inv["ok"]:
        return "ok"
    return "BROKEN: " + ", ".join(c["name"] for c in inv["checks"] if not c["ok"])


def window_row(w: dict[str, Any]) -> str:
    """A row of ``windows.md``."""
    lat, per, st, video, browser = w["latency"], w["periods"], w["stalls"], w["video"], w["browser"]
    rss = [_mib(_rss(w, r)) for r in ROLES[:-1]] + [_mib(_rss(w, "console", "rss_peak_bytes"))]
    rss.append(_mib(_rss(w, "browser")))
    fds = [str(w["processes"].get(r, {}).get("fds", "—")) for r in ROLES]
    video_text = f"{_f(video['fps'])} / {_f(video['latency_p50_ms'], '.0f')}" if video else "—"
    on_time = _f(_pct(per["within_20pct"]))
    return (
        f"| {w['index']}{' (partial)' if w['partial'] else ''} | {w['start_min']:.1f}–{w['end_min']:.1f} | "
        f"{_f(lat['p50_ms'])} / {_f(lat['p99_ms'])} | {on_time}% | {_f(per['worst_ms'], '.2f')} | "
        f"{per['over_5x']} | {st['work']} / {st['wait']} ({st['host']}) | {video_text} | {_f(browser['fps'])} | "
        f"{' / '.join(rss)} | {' / '.join(fds)} | {_mib(w['recording_bytes'])} | {_invariants(w)} | "
        f"{w['tasks']['succeeded']} / {w['tasks']['episodes']} ({w['consoles']['video_holds']}) |"
    )


def _pct(share: float | None) -> float | None:
    return None if share is None else 100.0 * share


def window_line(w: dict[str, Any], windows: int) -> str:
    """The progress line printed when a window completes."""
    lat, per, st, video, browser = w["latency"], w["periods"], w["stalls"], w["video"], w["browser"]
    rss = ", ".join(f"{r} {_mib(_rss(w, r))}" for r in ROLES[:-1] if r in w["processes"])
    cpu = ", ".join(f"{r} {_f(e['cpu_pct'], '.0f')}" for r, e in w["processes"].items() if e.get("cpu_pct") is not None)
    video_text = f"video {_f(video['fps'])} fps {_f(video['latency_p50_ms'], '.0f')} ms" if video else "video —"
    return (
        f"[window {w['index']}/{windows}{' partial' if w['partial'] else ''}] "
        f"{w['start_min']:.1f}–{w['end_min']:.1f} min | cmd p50 {_f(lat['p50_ms'])} p99 {_f(lat['p99_ms'])} ms | "
        f"periods {_f(_pct(per['within_20pct']))}% ±20%, worst {_f(per['worst_ms'], '.2f')} ms, {per['over_5x']} > 5×, "
        f"stalls {st['work']} work / {st['wait']} wait ({st['host']} host) | {video_text} | "
        f"browser {_f(browser['fps'])} fps | RSS MiB {rss}, "
        f"console peak {_mib(_rss(w, 'console', 'rss_peak_bytes'))} | "
        f"CPU % {cpu or '—'} | recording {_mib(w['recording_bytes'])} MiB | invariants {_invariants(w)} | "
        f"tasks {w['tasks']['succeeded']}/{w['tasks']['episodes']}, {w['consoles']['video_holds']} video holds"
    )


def cycle_line(c: dict[str, Any]) -> str:
    """The progress line printed when a console cycle ends."""
    eps = c["episodes"]
    ok = sum(e["success"] for e in eps)
    v = c.get("video") or {}
    lat = (v.get("sampled_to_displayed_ms") or {}).get("p50")
    video = f"video {_f(v.get('fps'))} fps, p50 {_f(lat, '.0f')} ms, {v.get('holds', 0)} hold(s)" if v else "no video"
    how = "cut short by the end of the soak" if c["cut_short"] else "ended"
    return (
        f"soak: console cycle {c['cycle']} {how} at {c['ended_min']:.1f} min (exit {c['exit']}): "
        f"{ok}/{len(eps)} tasks succeeded; {video}"
    )


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _drift(first: float | None, last: float | None, limit: float) -> tuple[bool | None, str]:
    if first is None or last is None or not first > 0:
        return None, "not measured (fewer than two windows with figures)"
    change = last / first - 1.0
    return abs(change) <= limit, f"{first:.1f} → {last:.1f} ms ({change * 100:+.1f}%)"


def targets(windows: list[dict[str, Any]], recording: dict[str, Any], config: Any) -> list[dict[str, Any]]:
    """The soak's targets, each PASS, FAIL or n/a (not measurable in this run), with its figure.

    Memory is compared at the ends of two full windows: the first ending at or after
    ``config.rss_from_minute`` (the first window when the run is shorter) and the last; the console,
    a new process every cycle, by its peak in each window. Latency drift compares the first and
    the last full window (video: the first and last with a console cycle that ended in it), either
    way: ``|last / first − 1| ≤ config.max_drift``."""
    full = [w for w in windows if not w["partial"]]
    out = []
    broken = [w["index"] for w in windows if not w["invariants"]["ok"]]
    out.append(
        {
            "name": "invariants",
            "target": "0 invariant breaks",
            "value": "every invariant held in every window" if not broken else f"broken in window(s) {broken}",
            "status": _status(not broken and bool(windows)),
        }
    )
    out.append(_rss_target(full, config))
    first = full[0]["latency"]["p99_ms"] if full else None
    last = full[-1]["latency"]["p99_ms"] if len(full) >= 2 else None
    ok, text = _drift(first, last, config.max_drift)
    out.append(
        {
            "name": "command latency drift",
            "target": f"p99 of the last window within {config.max_drift:.0%} of the first",
            "value": text,
            "status": _status(ok),
        }
    )
    with_video = [w for w in full if w["video"] and w["video"]["latency_p50_ms"] is not None]
    first = with_video[0]["video"]["latency_p50_ms"] if with_video else None
    last = with_video[-1]["video"]["latency_p50_ms"] if len(with_video) >= 2 else None
    ok, text = _drift(first, last, config.max_drift)
    out.append(
        {
            "name": "video latency drift",
            "target": f"p50 of the last window within {config.max_drift:.0%} of the first",
            "value": text,
            "status": _status(ok),
        }
    )
    rec = recording
    reader = rec["mcap_reader"]
    out.append(
        {
            "name": "recording",
            "target": "complete and readable by mcap",
            "value": (
                f"{rec['complete']['states']} periods, {rec['complete']['missing']} missing, "
                f"{rec['complete']['unexplained_gaps']} long gaps without a stall record; mcap read "
                f"{reader['messages']} of {rec['messages_read']} messages"
                f"{', with summary' if reader['summary'] else ', NO summary'}"
                f"{'; ' + reader['error'] if reader['error'] else ''}; robot exit {rec['robot_exit']}"
            ),
            "status": _status(rec["ok"]),
        }
    )
    return out


def _rss_target(full: list[dict[str, Any]], config: Any) -> dict[str, Any]:
    target = {
        "name": "memory growth",
        "target": f"RSS growth under {config.max_rss_growth:.0%} per process from minute "
        f"{config.rss_from_minute:g} (or the first window) to the end",
    }
    if len(full) < 2:
        return {**target, "value": "not measured (fewer than two full windows)", "status": "n/a"}
    later = [w for w in full[:-1] if w["end_min"] >= config.rss_from_minute - 1e-6]
    base, last = (later[0] if later else full[0]), full[-1]
    growth: dict[str, float] = {}
    for role, entry in last["processes"].items():
        before = base["processes"].get(role)
        if not entry["judged"] or before is None:
            continue
        key = "rss_peak_bytes" if role.startswith("console") else "rss_bytes"
        growth[role] = entry[key] / before[key] - 1.0
    if not growth:
        return {**target, "value": "no process sampled in both windows", "status": "n/a"}
    worst = max(growth, key=lambda r: growth[r])
    text = (
        f"windows {base['index']} → {last['index']} ({base['end_min']:.1f} → {last['end_min']:.1f} min): "
        + ", ".join(f"{r} {g * 100:+.1f}%" for r, g in sorted(growth.items()))
        + f"; worst {worst}"
    )
    return {
        **target,
        "value": text,
        "status": _status(all(g < config.max_rss_growth for g in growth.values())),
        "growth": growth,
    }


def final_table(windows: list[dict[str, Any]], marks: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Every window, then the targets, as markdown."""
    lines = ["windows", "", TABLE_HEADER.rstrip("\n")]
    lines += [window_row(w) for w in windows]
    tasks = summary["tasks"]
    done = ", ".join(f"{t} {summary['tasks_succeeded'].get(t, 0)}/{n}" for t, n in sorted(tasks.items()))
    lines += [
        "",
        f"tasks succeeded / done: {done or 'none'}; console cycles {len(summary['cycles'])}; "
        f"real-time priority {'granted' if summary['realtime_granted'] else 'NOT granted'}"
        f"{'; INTERRUPTED' if summary['interrupted'] else ''}{'; ' + summary['failure'] if summary['failure'] else ''}",
        *(f"note: {n}" for n in summary["notes"]),
        "",
        "| target | goal | figure | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {t['name']} | {t['target']} | {t['value']} | {t['status']} |" for t in marks]
    return "\n".join(lines)
