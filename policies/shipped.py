"""The policies shipped in ``assets/policies/`` (one folder each: model.zip, normalization.json, card.json)."""

from __future__ import annotations

from pathlib import Path

from telesurg.envs.kinematics import ASSETS_DIR

SHIPPED_DIR: Path = ASSETS_DIR / "policies"


def shipped_policies() -> dict[str, Path]:
    """Name → folder of every shipped policy."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED_DIR.iterdir()) if (p / "card.json").is_file()}
