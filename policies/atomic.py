"""Folders written whole or not at all: built in a temporary sibling, then moved into place."""

from __future__ import annotations

import shutil
from pathlib import Path


def replace_atomically(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``, replacing what is there; if the move fails half way
    (an error, Ctrl-C), the previous ``target`` is put back."""
    if not target.exists():
        new.rename(target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if not target.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
