"""TOML tables → typed frozen dataclasses, strictly: unknown keys, wrong types and bad values are
one-line ``ConfigError``s naming the file and the key."""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from telesurg.policies.config import ConfigError, read_toml, set_dotted, toml_value

T = TypeVar("T")

__all__ = ["ConfigError", "build", "load_section", "write_toml"]


def write_toml(path: Path, section: str, tables: dict[str, dict[str, Any]]) -> Path:
    """Write a config file: ``tables[""]`` holds the keys of ``[section]``, ``tables["x"]`` those of
    ``[section.x]`` (values: bool, number, string, path, or arrays of them)."""
    lines = []
    for name, keys in tables.items():
        lines.append(f"[{section}{'.' + name if name else ''}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def load_section(
    path: str | Path | None, section: str, cls: type[T], what: str, overrides: dict[str, Any] | None = None
) -> T:
    """Build ``cls`` from table ``[section]`` of the TOML file at ``path`` (defaults when None), with
    ``overrides`` (dotted keys, e.g. ``{"arm.task": "Palpate"}``; None values are skipped) on top."""
    table: dict[str, Any] = {}
    if path is not None:
        data = read_toml(path, what)
        unknown = sorted(set(data) - {section})
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {unknown}; expected [{section}]")
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(table, key, value)
    return build(cls, table, f"{path or '<defaults>'}: [{section}]")


def build(cls: type[T], table: dict[str, Any], where: str) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in table.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)  # type: ignore[arg-type]
    if tp is Any:
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path string, got {value!r}")
        return Path(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be an array, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} elements, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    return value


def output_path(text: str) -> Path:
    """An output file's path from configuration: ``{time}`` becomes the local start time
    (``YYYYmmdd-HHMMSS``), so each run writes a file of its own."""
    return Path(text.replace("{time}", time.strftime("%Y%m%d-%H%M%S")))
