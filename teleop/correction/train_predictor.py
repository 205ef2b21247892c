"""`telesurg train-predictor`: record surgeon motion through the stack, train the learned motion
predictor on it, and evaluate every predictor on held-out motion from a *different* generator.

1. Recording. One `telesurg robot` (recording MCAP) and in-process consoles driven by the scripted
   surgeon (every task, several seeds, over emulated one-way delays): the surgeon closes its loop
   on the (delayed) telemetry, so its motion is what a console really sends. The training traces
   are the tool targets of the commands the robot received (``/robot/commands``), split into
   strokes (clutch closed, no gap), timed by the console's send time. ``--from-mcap`` reuses earlier
   recordings instead.
2. Training (torch, CPU): windows at every sample of the training strokes, horizons drawn
   uniformly up to ``max_horizon_s``, every stroke rotated at random in 3-D (so no direction is
   special) and scaled by 0.5–2×; mean squared displacement error; Adam. The last 20% of the
   recorded strokes are held out (same generator, reported as such).
3. Evaluation: every predictor (zero-order hold, constant velocity, α-β, learned) on the held-out
   scripted strokes and on minimum-jerk hand paths with tremor mapped to the tool (the generator of
   ``bench/compensation.py``; none of it seen in training), at several horizons; RMS error in mm.

Writes ``OUT/learned.npz`` (the weights) and ``OUT/evaluation.json`` (figures, settings, what
it was trained on). The shipped ones are in ``assets/predictor``.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from teleop.correction import minimum_jerk_hand
from teleop.correction.learned import LearnedPredictor, LearnedPredictorConfig, features, save
from teleop.correction.prediction import PREDICTORS, prediction_rms_m

#: Tool metres per hand metre of the held-out minimum-jerk generator (the console's default scale).
HELD_OUT_SCALE = 0.2
TASKS = ("Reach", "Palpate", "Retract", "Transfer", "Trace")


@dataclass(frozen=True)
class TrainConfig:
    """``seeds`` scripted-surgeon sessions (every task in ``tasks``) at each one-way delay in
    ``delays_s``; ``steps`` optimiser steps of ``batch`` windows at learning rate ``lr``."""

    seeds: int = 4
    delays_s: tuple[float, ...] = (0.0, 0.1, 0.2)
    tasks: tuple[str, ...] = TASKS
    steps: int = 4000
    batch: int = 2048
    lr: float = 2e-3
    holdout_fraction: float = 0.2
    seed: int = 0
    model: LearnedPredictorConfig = field(default_factory=LearnedPredictorConfig)


Stroke = tuple[np.ndarray, np.ndarray]  # times (s), tool targets (m, n × 3)


# ---------------------------------------------------------------------- recording
def record(cfg: TrainConfig, folder: Path) -> list[Path]:
    """Run the scripted surgeon through the stack; the robot's recording (one MCAP)."""
    from teleop.console import Console, ConsoleConfig
    from teleop.correction.evaluation import recording_robot
    from teleop.inputs import SurgeonConfig

    runs = [(d, s) for d in cfg.delays_s for s in range(cfg.seeds)]
    started = time.monotonic()
    with recording_robot(folder, preload=cfg.tasks) as (endpoints, mcap):
        for i, (delay, seed) in enumerate(runs):
            link = f"delay={round(delay * 1000)}ms jitter=10% seed={seed}" if delay > 0 else ""
            console = Console(
                ConsoleConfig(
                    endpoints=endpoints,
                    client="train-predictor",
                    tasks=cfg.tasks,
                    seed=1000 + seed,
                    episode_timeout_s=15.0,
                    request_timeout_s=3.0 + 4.0 * delay,
                    link_timeout_s=1.0 + 2.0 * delay,
                    link=link,
                    surgeon=SurgeonConfig(seed=1000 + seed),
                )
            )
            console.run()
            eta = (time.monotonic() - started) / (i + 1) * (len(runs) - i - 1)
            print(f"recorded [{i + 1}/{len(runs)}] delay {delay * 1e3:.0f} ms seed {seed}  ETA {eta:.0f} s", flush=True)
    return [mcap]


def strokes_from_mcap(paths: list[Path], min_s: float = 0.3, max_gap_s: float = 0.05) -> list[Stroke]:
    """The commanded tool-target strokes in robot recordings: per session in sequence order, runs of
    clutched commands without a gap over ``max_gap_s``, at least ``min_s`` long."""
    from teleop.recorder import read_topic
    from teleop.records import TOPIC_COMMANDS

    out: list[Stroke] = []
    for path in paths:
        by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in read_topic(path, TOPIC_COMMANDS):
            by_session[c["session"]].append(c)
        for cmds in by_session.values():
            cmds.sort(key=lambda c: c["seq"])
            run: list[dict[str, Any]] = []
            for c in [*cmds, None]:
                broken = c is None or not c["clutch"] or c["estop"]
                if not broken and run and not 0 < c["sent_console_s"] - run[-1]["sent_console_s"] <= max_gap_s:
                    broken = True
                if broken and len(run) >= 2 and run[-1]["sent_console_s"] - run[0]["sent_console_s"] >= min_s:
                    t = np.array([r["sent_console_s"] for r in run])
                    out.append((t - t[0], np.array([r["target_m"] for r in run], dtype=float)))
                if broken:
                    run = [c] if c is not None and c["clutch"] and not c["estop"] else []
                else:
                    run.append(c)
    return out


def held_out_min_jerk(seeds: int = 5, duration_s: float = 10.0, period_s: float = 0.005) -> list[Stroke]:
    """The other generator: ``minimum_jerk_hand`` strokes plus the scripted surgeon's tremor (seeded),
    mapped to the tool at ``HELD_OUT_SCALE``."""
    from teleop.inputs import Tremor

    t = np.arange(0.0, duration_s, period_s)
    out = []
    for seed in range(seeds):
        tremor = Tremor(1e-4, (8.0, 12.0), np.random.default_rng(seed))
        hand = minimum_jerk_hand(t) + np.array([tremor.at(x) for x in t])
        out.append((t.copy(), hand * HELD_OUT_SCALE))
    return out


# ---------------------------------------------------------------------- training
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def dataset(strokes: list[Stroke], model: LearnedPredictorConfig, rng: np.random.Generator, copies: int = 4):
    """(inputs, targets) over every sample of every stroke, ``copies`` times with fresh rotations,
    scales and horizons; one row per axis."""
    xs, ys = [], []
    for _ in range(copies):
        for t, x in strokes:
            x = (x - x[0]) @ _random_rotation(rng).T * rng.uniform(0.5, 2.0)
            index = np.arange(len(t))
            horizon = rng.uniform(0.0, model.max_horizon_s, len(t))
            future = np.stack([np.interp(t + horizon, t, x[:, k]) for k in range(3)], axis=1)
            valid = t + horizon <= t[-1]
            f = features(t, x, index[valid], horizon[valid], model)
            xs.append(f.reshape(-1, model.inputs))
            ys.append(((future[valid] - x[valid]) / model.scale_m).reshape(-1, 1))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def train(strokes: list[Stroke], cfg: TrainConfig, log=print) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit the network on ``strokes``; its layers as (weight, bias) numpy pairs."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    rng = np.random.default_rng(cfg.seed)
    x, y = dataset(strokes, cfg.model, rng)
    log(f"training on {len(x)} windows ({len(strokes)} strokes × 3 axes × rotations)")
    m = cfg.model
    net = torch.nn.Sequential(
        torch.nn.Linear(m.inputs, m.hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(m.hidden, m.hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(m.hidden, 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(cfg.seed)
    for step in range(cfg.steps):
        idx = torch.randint(0, len(xt), (cfg.batch,), generator=gen)
        batch = xt[idx]
        loss = torch.nn.functional.mse_loss(net(batch) * batch[:, -1:], yt[idx])  # × horizon fraction
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == cfg.steps - 1:
            log(f"step {step:5d}/{cfg.steps}  loss {loss.item():.5f} (scale² units)")
    linears = [mod for mod in net if isinstance(mod, torch.nn.Linear)]
    return [(lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()) for lin in linears]


# ---------------------------------------------------------------------- evaluation
def evaluate(
    strokes: list[Stroke], weights: Path, horizons_s: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
) -> dict[str, dict[str, float]]:
    """RMS error (mm) per predictor and horizon over ``strokes`` (pooled by squared error)."""
    makers = {name: cls for name, cls in PREDICTORS.items() if name != "learned"}
    makers["learned"] = lambda: LearnedPredictor(weights)
    out: dict[str, dict[str, float]] = {}
    for name, make in makers.items():
        out[name] = {}
        for h in horizons_s:
            sq, n = 0.0, 0
            for t, x in strokes:
                if t[-1] <= h:
                    continue
                rms = prediction_rms_m(make(), t, x, h)
                count = int(np.sum(t + h <= t[-1]))
                sq, n = sq + rms**2 * count, n + count
            out[name][f"{h:g}"] = math.sqrt(sq / n) * 1e3 if n else math.nan
    return out


def table(results: dict[str, dict[str, float]], title: str) -> str:
    horizons = list(next(iter(results.values())))
    lines = [title, f"{'predictor':>10s} " + "".join(f"{h + ' s':>10s}" for h in horizons)]
    for name, row in results.items():
        lines.append(f"{name:>10s} " + "".join(f"{row[h]:10.3f}" for h in horizons))
    return "\n".join(lines)


def main(out_dir: str, cfg: TrainConfig, from_mcap: list[str] | None = None, keep: str | None = None) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="train_predictor_") as tmp:
        if from_mcap:
            paths = [Path(p) for p in from_mcap]
            for p in paths:
                if not p.exists():
                    print(f"train-predictor: {p} not found", file=sys.stderr)
                    return 2
        else:
            folder = Path(keep) if keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            paths = record(cfg, folder)
        strokes = strokes_from_mcap(paths)
    if len(strokes) < 5:
        print(f"train-predictor: only {len(strokes)} strokes recorded; need at least 5", file=sys.stderr)
        return 1
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(strokes))
    n_hold = max(1, round(cfg.holdout_fraction * len(strokes)))
    held = [strokes[i] for i in order[:n_hold]]
    training = [strokes[i] for i in order[n_hold:]]
    total_s = sum(float(t[-1]) for t, _ in training)
    print(f"{len(training)} training strokes ({total_s:.0f} s), {len(held)} held out", flush=True)
    layers = train(training, cfg)
    weights = out / "learned.npz"
    save(weights, cfg.model, layers)
    same = evaluate(held, weights)
    other = evaluate(held_out_min_jerk(), weights)
    print(table(same, "\nheld-out scripted-surgeon strokes (same generator), RMS mm"))
    print(table(other, "\nminimum-jerk + tremor paths (a different generator, never trained on), RMS mm"))
    best = {h: min(other, key=lambda n: other[n][h]) for h in other["learned"]}
    print("\nbest on the different generator: " + ", ".join(f"{h} s: {n}" for h, n in best.items()))
    report = {
        "held_out_same_generator_rms_mm": same,
        "held_out_min_jerk_rms_mm": other,
        "best_on_min_jerk": best,
        "training": {
            "strokes": len(training),
            "seconds": total_s,
            "held_out_strokes": len(held),
            "sources": [str(p) for p in from_mcap] if from_mcap else "recorded through the stack (scripted surgeon)",
            "config": asdict(cfg),
        },
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command_line": " ".join(["telesurg", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - started,
    }
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {weights} and {out / 'evaluation.json'}")
    return 0
