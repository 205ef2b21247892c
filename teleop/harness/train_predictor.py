"""`telesurg train-predictor`: record surgeon motion through the stack, train the learned motion
predictor on it, and evaluate every predictor on held-out motion from a *different* generator.

1. Recording. One `telesurg robot` (recording MCAP) and in-process consoles driven by the scripted
   surgeon (every task, several seeds, over emulated one-way delays): the surgeon closes its loop
   on the (delayed) telemetry, so its motion is what a console really sends; its tremor and noise
   are off, so what is recorded is the voluntary intent. The training traces are the tool targets
   of the commands the robot received (``/robot/commands``), split into strokes (clutch closed, no
   gap), timed by the console's send time (the console's real, irregular ticks). ``--from-mcap``
   reuses earlier recordings instead.
2. Training (torch, CPU): windows at every sample of the training strokes, horizons drawn
   uniformly up to ``max_horizon_s``, every stroke rotated at random in 3-D (so no direction is
   special) and scaled by 0.5–2×. The network's *inputs* get 8–12 Hz tremor
   (``telesurg.teleop.correction.signals.Tremor``,
   0–``max_tremor_rms_m`` RMS on the tool per stroke, i.e. up to 10× the scripted surgeon's 0.1 mm
   at motion scale 1.0) and sensor noise; its *target* is the tremor-free intent's displacement from
   the newest (tremor-laden) input, so it learns to ignore tremor instead of extrapolating it. Mean
   squared error; Adam. 20% of the recorded strokes are held out (same generator, reported as such).
3. Evaluation: every predictor (zero-order hold, constant velocity, α-β, learned) predicting the
   intent from tremor-laden inputs, on the held-out scripted strokes and on two generators none of
   it saw in training — minimum-jerk strokes and the figure-eight with pauses (``bench/compensation.py``'s
   ``min-jerk`` and ``figure-eight``), at motion scales 0.2 and 1.0 — at several horizons; RMS error
   in mm against the intended position.

Writes ``OUT/learned.npz`` (the weights) and ``OUT/evaluation.json`` (figures, settings, what
it was trained on). The shipped ones are in ``assets/predictor``.
"""

from __future__ import annotations

import dataclasses
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

from telesurg.teleop.correction import minimum_jerk_hand
from telesurg.teleop.correction.learned import LearnedPredictor, LearnedPredictorConfig, features, save
from telesurg.teleop.correction.prediction import PREDICTORS, MotionPrediction
from telesurg.teleop.correction.stage import Context, Motion
from telesurg.teleop.correction.tremor import tremor_power_um2

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
    #: Largest tremor (m RMS on the tool, 8–12 Hz) added to a training stroke's inputs: 10× the
    #: scripted surgeon's at motion scale 1.0, so that tremor weighs in the mean squared error
    #: (with at most 0.3 mm the network still amplified it 1.7×; with 1 mm it halves it, with 3 mm it
    #: gives up a quarter of its RMS gain: measured on the held-out generators).
    max_tremor_rms_m: float = 1e-3
    #: Sensor noise (m RMS on the tool) added to the inputs.
    noise_rms_m: float = 2e-5
    model: LearnedPredictorConfig = field(default_factory=LearnedPredictorConfig)


Stroke = tuple[np.ndarray, np.ndarray]  # times (s), tool targets (m, n × 3)
#: times (s), the predictor's inputs (tool targets with tremor, m), the intent they carry (m)
Labelled = tuple[np.ndarray, np.ndarray, np.ndarray]


# ---------------------------------------------------------------------- recording
def record(cfg: TrainConfig, folder: Path) -> list[Path]:
    """Run the scripted surgeon through the stack; the robot's recording (one MCAP)."""
    from telesurg.teleop.console.config import ConsoleConfig
    from telesurg.teleop.console.core import Console
    from telesurg.teleop.console.scripted import SurgeonConfig
    from telesurg.teleop.harness.evaluation import recording_robot

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
                    surgeon=SurgeonConfig(seed=1000 + seed, tremor_rms_m=0.0, noise_rms_m=0.0),
                )
            )
            console.run()
            eta = (time.monotonic() - started) / (i + 1) * (len(runs) - i - 1)
            print(f"recorded [{i + 1}/{len(runs)}] delay {delay * 1e3:.0f} ms seed {seed}  ETA {eta:.0f} s", flush=True)
    return [mcap]


def strokes_from_mcap(paths: list[Path], min_s: float = 0.3, max_gap_s: float = 0.05) -> list[Stroke]:
    """The commanded tool-target strokes in robot recordings: per session in sequence order, runs of
    clutched commands without a gap over ``max_gap_s``, at least ``min_s`` long."""
    from telesurg.teleop.robot.reader import read_topic
    from telesurg.teleop.robot.records import TOPIC_COMMANDS

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


def held_out_run(generator: str, scale: float, seed: int, duration_s: float = 12.0):
    """One run of a generator never trained on (``min-jerk``: ``minimum_jerk_hand`` strokes;
    ``figure-eight``: ``figure_eight_hand``, with pauses) plus the scripted surgeon's tremor (0.1 mm
    RMS in hand space, seeded) and noise, at the console's irregular tick times (5 ms ± 40%), at
    motion scale ``scale``: (times s, tool targets with tremor m, tool intent m, the pauses as
    (start s, end s, tool point m, approach)). The voluntary hand path is divided by the scale
    (× 0.2), so the tool's path is the same at every scale and the tremor 5× larger at 1.0."""
    from telesurg.teleop.correction import figure_eight_hand
    from telesurg.teleop.correction.signals import Tremor

    rng = np.random.default_rng(seed)
    steps = 0.005 * np.clip(1.0 + 0.4 * rng.standard_normal(int(duration_s / 0.005) + 200), 0.2, 3.0)
    t = np.cumsum(steps) - steps[0]
    t = t[t < duration_s]
    hand, pauses = (minimum_jerk_hand(t), []) if generator == "min-jerk" else figure_eight_hand(t, seed)
    hand = hand * (HELD_OUT_SCALE / scale)
    tremor = Tremor(1e-4, (8.0, 12.0), rng)
    shaky = hand + np.array([tremor.at(x) for x in t]) + rng.normal(0.0, 2e-5, hand.shape)
    tool_pauses = [(q.start_s, q.end_s, q.point_m * HELD_OUT_SCALE, q.approach) for q in pauses]
    return t, shaky * scale, hand * scale, tool_pauses


def held_out_generators(seeds: int = 5, duration_s: float = 12.0) -> dict[str, list[Labelled]]:
    """Every ``held_out_run`` at motion scales 0.2 and 1.0, ``seeds`` each, as (times, tool targets
    with tremor, tool intent), by "generator @ scale"."""
    return {
        f"{name} @ {scale:g}": [held_out_run(name, scale, seed, duration_s)[:3] for seed in range(seeds)]
        for scale in (HELD_OUT_SCALE, 1.0)
        for name in ("min-jerk", "figure-eight")
    }


# ---------------------------------------------------------------------- training
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def dataset(
    strokes: list[Stroke],
    model: LearnedPredictorConfig,
    rng: np.random.Generator,
    copies: int = 4,
    max_tremor_rms_m: float = 0.0,
    noise_rms_m: float = 0.0,
):
    """(inputs, targets) over every sample of every stroke, ``copies`` times with fresh rotations,
    scales, horizons and tremor (up to ``max_tremor_rms_m``, plus ``noise_rms_m``) in the inputs;
    targets: the clean stroke's displacement from the newest input. One row per axis."""
    from telesurg.teleop.correction.signals import Tremor

    xs, ys = [], []
    for _ in range(copies):
        for t, x in strokes:
            x = (x - x[0]) @ _random_rotation(rng).T * rng.uniform(0.5, 2.0)
            tremor = Tremor(rng.uniform(0.0, max_tremor_rms_m), (8.0, 12.0), rng)
            shaky = x + np.array([tremor.at(v) for v in t]) + rng.normal(0.0, noise_rms_m, x.shape)
            index = np.arange(len(t))
            horizon = rng.uniform(0.0, model.max_horizon_s, len(t))
            future = np.stack([np.interp(t + horizon, t, x[:, k]) for k in range(3)], axis=1)
            valid = t + horizon <= t[-1]
            f = features(t, shaky, index[valid], horizon[valid], model)
            xs.append(f.reshape(-1, model.inputs))
            ys.append(((future[valid] - shaky[valid]) / model.scale_m).reshape(-1, 1))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def train(strokes: list[Stroke], cfg: TrainConfig, log=print) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit the network on ``strokes``; its layers as (weight, bias) numpy pairs."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    rng = np.random.default_rng(cfg.seed)
    x, y = dataset(strokes, cfg.model, rng, max_tremor_rms_m=cfg.max_tremor_rms_m, noise_rms_m=cfg.noise_rms_m)
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
def stage_errors(stage: MotionPrediction, run: Labelled, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(times s, errors m: n × 3) of the prediction ``stage`` fed ``run``'s inputs with the delay
    ``horizon_s``, against the intent ``horizon_s`` later (the last horizon is skipped)."""
    t, inputs, truth = run
    stage.reset()
    ctx = Context(period_s=0.005, delay_s=horizon_s)
    out = np.array(
        [stage.apply(Motion(float(ti), np.zeros(3), x), ctx).target_m for ti, x in zip(t, inputs, strict=True)]
    )
    keep = t + horizon_s <= t[-1]
    future = np.stack([np.interp(t[keep] + horizon_s, t, truth[:, k]) for k in range(3)], axis=1)
    return t[keep], out[keep] - future


def evaluate(
    runs: list[Labelled], weights: Path, horizons_s: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
) -> dict[str, dict[str, dict[str, float]]]:
    """Per predictor (as the console's prediction stage runs it: α-β and CV band-limited, a
    tremor-trained learned predictor on the raw target) and horizon: RMS error (mm, pooled) against
    the intent, and the 8–12 Hz power of that error (Welch) as a ratio to the zero-order hold's."""
    from telesurg.teleop.correction.config import CorrectionConfig

    makers: dict[str, Any] = {
        name: (lambda n=name: CorrectionConfig(prediction=n).prediction_stage())
        for name in PREDICTORS
        if name != "learned"
    }
    makers["learned"] = lambda: CorrectionConfig(prediction="learned").prediction_stage(LearnedPredictor(weights))
    out: dict[str, dict[str, dict[str, float]]] = {"rms_mm": {}, "tremor_ratio": {}}
    zoh_power: dict[str, float] = {}
    for name, make in makers.items():
        out["rms_mm"][name], out["tremor_ratio"][name] = {}, {}
        for h in horizons_s:
            sq, n, power = 0.0, 0, []
            for run in runs:
                if run[0][-1] <= h + 1.0:
                    continue
                t, err = stage_errors(make(), run, h)
                sq, n = sq + float(np.sum(err**2)), n + len(err)
                power.append(tremor_power_um2(t, err))
            key = f"{h:g}"
            out["rms_mm"][name][key] = math.sqrt(sq / n) * 1e3 if n else math.nan
            mean_power = float(np.nanmean(power)) if power else math.nan
            if name == "zoh":
                zoh_power[key] = mean_power
            out["tremor_ratio"][name][key] = mean_power / zoh_power[key] if zoh_power.get(key) else math.nan
    return out


def table(results: dict[str, dict[str, dict[str, float]]], title: str) -> str:
    rms, ratio = results["rms_mm"], results["tremor_ratio"]
    horizons = list(next(iter(rms.values())))
    lines = [title, f"{'predictor':>10s} " + "".join(f"{h + ' s':>18s}" for h in horizons)]
    for name, row in rms.items():
        cells = "".join(f"{row[h]:9.3f} ×{ratio[name][h]:6.2f} " for h in horizons)
        lines.append(f"{name:>10s}  {cells}")
    return "\n".join(lines)


def with_tremor(strokes: list[Stroke], rms_m: float, seed: int) -> list[Labelled]:
    """``strokes`` as (times, targets + tremor of ``rms_m`` and 2 µm noise, targets)."""
    from telesurg.teleop.correction.signals import Tremor

    rng = np.random.default_rng(seed)
    out = []
    for t, x in strokes:
        tremor = Tremor(rms_m, (8.0, 12.0), rng)
        out.append((t, x + np.array([tremor.at(v) for v in t]) + rng.normal(0.0, 2e-6, x.shape), x))
    return out


def main(out_dir: str, cfg: TrainConfig, from_mcap: list[str] | None = None, keep: str | None = None) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, rejects_tremor=cfg.max_tremor_rms_m > 0))
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
    # The held-out strokes with the scripted surgeon's tremor as it reaches the tool at scale 0.2.
    sets = {"held-out scripted strokes @ 0.2": with_tremor(held, 1e-4 * HELD_OUT_SCALE, cfg.seed)}
    sets |= held_out_generators()
    results = {}
    for name, runs in sets.items():
        results[name] = evaluate(runs, weights)
        print(
            table(results[name], f"\n{name}: RMS mm against the intent, × 8–12 Hz power of the error vs hold"),
            flush=True,
        )
    report = {
        "results": results,
        "what": "RMS error (mm) against the tremor-free intent and 8–12 Hz band power of that error as a ratio to "
        "the zero-order hold's, per predictor as the console's prediction stage runs it, per horizon (s)",
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
