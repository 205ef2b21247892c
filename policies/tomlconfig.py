"""TOML in and out, for every configuration file of the project: ``read_toml`` parses a file,
``build`` turns a table into a typed dataclass strictly (unknown keys, wrong types and bad values
are one-line ``ConfigError``s naming the file and the key), ``load_section`` does both for a
``[section]`` with dotted overrides on top, and ``toml_value``/``write_toml`` write TOML back.
Training configs (``telesurg.policies.config``), the stack's configs (``telesurg.teleop.settings``)
and sweep files use it; launch files (``telesurg.teleop.launch_file``) read with it and check their
own format (process tables with placeholders, not dataclasses). Imports nothing of telesurg."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration file, key or value (reported to the user as one line)."""


# ---------------------------------------------------------------------- reading
def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a ``ConfigError`` naming ``what`` it is."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} not found")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: malformed TOML: {exc}") from None


def parse_override(item: str) -> tuple[str, Any]:
    """``"hyperparams.gamma=0.98"`` → ("hyperparams.gamma", 0.98). Values are TOML; a bare word
    that is not valid TOML is taken as a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. hyperparams.gamma=0.98)")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``key`` ``"a.b"``, creating tables on the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a table")
        node = nxt
    node[parts[-1]] = value


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
    """``cls(**table)`` with every value checked against its field's type (nested dataclasses,
    optionals, tuples, lists, dicts, literals, paths); ``where`` names the table in errors
    (``"file: [robot]"``, its keys as ``file: [robot].arm``; ``"file:"``, its keys as ``file: arm``)."""
    top = where.endswith(":")  # a file's top level ("path:"): its keys follow after a space
    name_of = where.rstrip(":")
    if not isinstance(table, dict):
        raise ConfigError(f"{name_of} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{name_of}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _convert(hints[name], value, f"{where} {name}" if top else f"{where}.{name}")
        for name, value in table.items()
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name_of}: {exc}") from None


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
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be an array, got {value!r}")
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
            return items if origin is list else tuple(items)
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} elements, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    return value


# ---------------------------------------------------------------------- writing
def toml_value(v: Any) -> str:
    """A value as TOML text: booleans, numbers, strings and paths (a JSON string literal is a valid
    TOML basic string), arrays and inline tables of them. The one TOML writer of the project."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_toml(path: Path, section: str, tables: dict[str, dict[str, Any]]) -> Path:
    """Write a config file: ``tables[""]`` holds the keys of ``[section]``, ``tables["x"]`` those of
    ``[section.x]`` (values: bool, number, string, path, or arrays of them)."""
    lines = []
    for name, keys in tables.items():
        lines.append(f"[{section}{'.' + name if name else ''}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
