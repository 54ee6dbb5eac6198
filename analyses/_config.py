"""Typed analysis configs from a TOML/JSON file and `key=value` overrides."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from featurebias.errors import ConfigError

C = TypeVar("C")
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def load_config(cls: type[C], path: str | Path | None = None,
                overrides: Iterable[str] = ()) -> C:
    """`cls()` updated by the file at `path` (TOML or JSON), then by `key=value` strings.

    Values are converted to the field's declared type (`int`, `float`, `bool`, `str`, tuples
    of those, optionally `| None`); an unknown key or a value of the wrong kind raises a
    `ConfigError` that lists what the config accepts.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read(Path(path)))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        values[key.strip()] = text.strip()
    return build(cls, values)


def build(cls: type[C], values: Mapping[str, Any]) -> C:
    """`cls(**values)` with every value converted to its field's type."""
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for {cls.__name__}; "
                          f"expected some of {fields}")
    converted = {k: _convert(v, hints[k], k) for k, v in values.items()}
    return cls(**converted)


def as_dict(config) -> dict[str, Any]:
    """A config as plain JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot parse config file {path}: {e}") from e


def _convert(value: Any, kind: Any, key: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if _is_none(value) and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is tuple:
        items = _split(value)
        item_kind = args[0] if args else str
        return tuple(_convert(v, item_kind, key) for v in items)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
    elif kind in (int, float, str):
        try:
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return kind(value)
        except (TypeError, ValueError):
            pass
    elif kind is Any:
        return value
    raise ConfigError(f"config key {key!r} expects {getattr(kind, '__name__', kind)}, "
                      f"got {value!r}")


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""})


def _split(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    text = str(value).strip().strip("[]()")
    return [v.strip() for v in text.split(",") if v.strip()]
