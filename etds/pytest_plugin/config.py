"""The ``[tool.etds]`` table of a project's ``pyproject.toml``, read and checked.

:func:`read_table` finds the table (``None`` when the file or the table is absent: the plugin is
then inert); :func:`parse` turns it into a :class:`ProjectConfig` or raises :class:`ConfigError`
with one line naming the key that is wrong, with "did you mean" for a misspelt key. Nothing
here imports torch: an inert project pays only for reading its ``pyproject.toml``.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: keys of ``[tool.etds]``
TOP_KEYS = ("certificates", "models")
#: keys of one ``[[tool.etds.models]]`` entry
ENTRY_KEYS = (
    "name",
    "factory",
    "kwargs",
    "weights",
    "input-shape",
    "domain",
    "mode",
    "convert",
    "expect",
    "xfail",
)
#: keys of an entry's ``expect`` table
EXPECT_KEYS = ("max-convs", "no-ops", "rules")
MODES = ("compile", "convert")
#: a name becomes the last part of a node id: no separators, no spaces, no brackets
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
#: ``package.module:callable`` or ``path/to/file.py:callable``
TARGET_PATTERN = re.compile(r"[^:\s]+:[A-Za-z_][A-Za-z0-9_.]*")


class ConfigError(ValueError):
    """``[tool.etds]`` is malformed; the message is one line naming the key."""


@dataclass(frozen=True)
class Expect:
    """Plainness an entry asks for: at most ``max_convs`` convolutions, none of ``no_ops`` left
    in the result, each of ``rules`` applied (compile mode) at least once."""

    max_convs: int | None = None
    no_ops: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.max_convs is not None or bool(self.no_ops) or bool(self.rules)


@dataclass(frozen=True)
class ModelEntry:
    """One ``[[tool.etds.models]]`` entry; paths are resolved from the project directory."""

    index: int
    name: str
    factory: str
    input_shape: tuple[int, int, int]
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    domain: tuple[float, float] = (0.0, 1.0)
    mode: str = "compile"
    convert: str | None = None
    expect: Expect = Expect()
    xfail: str | None = None


@dataclass(frozen=True)
class ProjectConfig:
    """The whole table: where certificates go (``None``: nowhere) and the models."""

    root: Path
    certificates: Path | None
    models: tuple[ModelEntry, ...]


def read_table(pyproject: Path) -> dict[str, Any] | None:
    """``[tool.etds]`` of ``pyproject`` (``None`` when either is missing). A file that is not
    valid TOML counts as missing unless it mentions ``tool.etds``, when it raises
    :class:`ConfigError`: a user who declared models must not silently get none."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        if "tool.etds" in text:
            raise ConfigError(f"{pyproject} is not valid TOML: {error}") from None
        return None
    tool = data.get("tool")
    if not isinstance(tool, dict) or "etds" not in tool:
        return None
    table = tool["etds"]
    if not isinstance(table, dict):
        raise ConfigError("[tool.etds] must be a table")
    return table


def _unknown(key: str, allowed: tuple[str, ...], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(allowed)})"
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _unknown(key, allowed, where)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _target(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = _string(entry, key, where)
    if value is not None and not TARGET_PATTERN.fullmatch(value):
        raise ConfigError(
            f"{where}: {key!r} must be 'package.module:callable' or 'path/file.py:callable', "
            f"got {value!r}"
        )
    return value


def _input_shape(value: Any, where: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(
            f"{where}: 'input-shape' must be three positive integers [C, H, W], got {value!r}"
        )
    return (value[0], value[1], value[2])


def _domain(value: Any, where: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(_is_number(v) and not math.isnan(v) for v in value)
        or value[0] > value[1]
    ):
        raise ConfigError(f"{where}: 'domain' must be [low, high] with low <= high, got {value!r}")
    return (float(value[0]), float(value[1]))


def _string_list(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: 'expect.{key}' must be a list of strings, got {value!r}")
    return tuple(value)


def _expect(value: Any, mode: str, where: str) -> Expect:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'expect' must be a table, got {value!r}")
    _check_keys(value, EXPECT_KEYS, f"{where} expect")
    max_convs = value.get("max-convs")
    if max_convs is not None and (
        not isinstance(max_convs, int) or isinstance(max_convs, bool) or max_convs < 0
    ):
        raise ConfigError(
            f"{where}: 'expect.max-convs' must be a non-negative integer, got {max_convs!r}"
        )
    rules = _string_list(value["rules"], "rules", where) if "rules" in value else ()
    if rules and mode != "compile":
        raise ConfigError(f"{where}: 'expect.rules' applies to mode = 'compile' only")
    no_ops = _string_list(value["no-ops"], "no-ops", where) if "no-ops" in value else ()
    return Expect(max_convs, no_ops, rules)


def _xfail(value: Any, where: str) -> str | None:
    if value is False or value is None:
        return None
    if value is True:
        return "expected to fail"
    if isinstance(value, str) and value.strip():
        return value
    raise ConfigError(f"{where}: 'xfail' must be true or a reason string, got {value!r}")


def _entry(index: int, entry: Any, root: Path) -> ModelEntry:
    where = f"[[tool.etds.models]] entry {index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table, got {entry!r}")
    if isinstance(entry.get("name"), str):
        where += f" ({entry['name']!r})"
    _check_keys(entry, ENTRY_KEYS, where)
    factory = _target(entry, "factory", where)
    if factory is None:
        raise ConfigError(f"{where}: missing 'factory' (e.g. factory = \"mypkg.models:build\")")
    name = _string(entry, "name", where) or factory.rpartition(":")[2]
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}: 'name' may hold only letters, digits, '_', '.' and '-', got {name!r}"
        )
    if "input-shape" not in entry:
        raise ConfigError(f"{where}: missing 'input-shape' (C, H, W of the example input)")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: 'kwargs' must be a table, got {kwargs!r}")
    mode = entry.get("mode", "compile")
    if mode not in MODES:
        raise ConfigError(f"{where}: 'mode' must be 'compile' or 'convert', got {mode!r}")
    convert = _target(entry, "convert", where)
    if mode == "convert" and convert is None:
        raise ConfigError(f"{where}: mode = 'convert' needs 'convert' (module:callable)")
    if mode == "compile" and convert is not None:
        raise ConfigError(f"{where}: 'convert' is read only with mode = 'convert'")
    weights = _string(entry, "weights", where)
    return ModelEntry(
        index=index,
        name=name,
        factory=factory,
        input_shape=_input_shape(entry["input-shape"], where),
        kwargs=dict(kwargs),
        weights=root / weights if weights is not None else None,
        domain=_domain(entry["domain"], where) if "domain" in entry else (0.0, 1.0),
        mode=mode,
        convert=convert,
        expect=_expect(entry.get("expect", {}), mode, where),
        xfail=_xfail(entry.get("xfail"), where),
    )


def parse(table: dict[str, Any], root: Path) -> ProjectConfig:
    """Check ``table`` (the contents of ``[tool.etds]``) and resolve its paths from ``root``;
    raises :class:`ConfigError` at the first problem."""
    _check_keys(table, TOP_KEYS, "[tool.etds]")
    certificates = _string(table, "certificates", "[tool.etds]")
    models = table.get("models", [])
    if not isinstance(models, list):
        raise ConfigError("[tool.etds]: 'models' must be an array of tables ([[tool.etds.models]])")
    entries = tuple(_entry(i, entry, root) for i, entry in enumerate(models))
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(
                f"[[tool.etds.models]] entry {entry.index + 1}: 'name' {entry.name!r} is also "
                f"entry {seen[entry.name] + 1}'s (names are test ids: give each its own)"
            )
        seen[entry.name] = entry.index
    return ProjectConfig(
        root=root,
        certificates=root / certificates if certificates is not None else None,
        models=entries,
    )
