"""The stack's settings: TOML tables → typed frozen dataclasses, strictly (unknown keys, wrong types
and bad values are one-line ``ConfigError``s naming the file and the key), through the project's one
TOML reader and writer (``telesurg.policies.tomlconfig``); and output paths with ``{time}``."""

from __future__ import annotations

import time
from pathlib import Path

from telesurg.policies.tomlconfig import ConfigError, build, load_section, write_toml

__all__ = ["ConfigError", "build", "load_section", "output_path", "write_toml"]


def output_path(text: str) -> Path:
    """An output file's path from configuration: ``{time}`` becomes the local start time
    (``YYYYmmdd-HHMMSS``), so each run writes a file of its own."""
    return Path(text.replace("{time}", time.strftime("%Y%m%d-%H%M%S")))
