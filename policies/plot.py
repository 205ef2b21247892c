"""Training-curve plot (success rate over environment steps) from a run's logs or a model card."""

from __future__ import annotations

from pathlib import Path

from telesurg.policies.bundle import CARD_FILE, resolve_bundle
from telesurg.policies.card import ModelCard
from telesurg.policies.evallog import EVAL_LOG, read_eval_log


def training_curve(model_path: str | Path) -> tuple[list[dict], str]:
    """Evaluation records for the run that produced ``model_path``: its run folder's ``eval.jsonl``
    when the model sits in one, else the curve stored in the model card. Returns (records, source)."""
    bundle = resolve_bundle(model_path)
    for run_dir in (bundle.parent, bundle.parent.parent):
        if (run_dir / EVAL_LOG).is_file():
            return read_eval_log(run_dir), str(run_dir / EVAL_LOG)
    card = ModelCard.load(bundle / CARD_FILE)
    # Curve points are [timesteps, success rate, wall time (s)].
    records = [{"timesteps": int(point[0]), "success_rate": float(point[1])} for point in card.curve]
    return records, str(bundle / CARD_FILE)


def plot_training_curve(model_path: str | Path, out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records, source = training_curve(model_path)
    if not records:
        raise ValueError(f"no training curve recorded for {model_path} (looked in {source})")
    card = ModelCard.load(resolve_bundle(model_path) / CARD_FILE)
    steps = [r["timesteps"] for r in records]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.plot(steps, [r["success_rate"] for r in records], marker="o", ms=3, label="success rate")
    if all("violation_rate" in r for r in records):
        ax.plot(steps, [r["violation_rate"] for r in records], ls="--", label="hard-limit violation rate")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("rate (deterministic evaluation)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{card.algo.upper()} on {card.env_id}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
