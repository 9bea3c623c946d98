"""Training configurations: BasicSR-style YAML plus dotted ``key=value`` overrides.

A configuration is a nested ``dict`` read from YAML with the vocabulary of the authors' files
(``network_g: {type: ETDS, ...}``, ``datasets: {train: ..., val: ...}``, ``train: {optim_g,
scheduler, total_iter, ema_decay, ...}``, ``val: {val_freq, ...}``, ``logger: {...}``).

Overrides are ``dotted.key=value`` strings; the value is parsed as YAML, so
``train.total_iter=30`` is an int, ``train.optim_g.lr=1e-3`` a float,
``datasets.train.dataroot_lq=null`` ``None`` and ``train.scheduler.milestones=[10,20]`` a list.
Missing intermediate mappings are created; descending into a non-mapping is an error.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

Config = dict[str, Any]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``5e-4`` and ``1e5`` as floats.

    YAML 1.1 (PyYAML) requires a dot in a float, so the authors write ``!!float 5e-4``; users
    typing ``--set train.optim_g.lr=1e-3`` should not get the string ``"1e-3"``.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with the float rule above; malformed YAML raises ``ValueError``.

    The loader is a ``SafeLoader``: tags such as ``!!python/object`` are refused, never run.
    """
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"not valid YAML{line}: {problem}") from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read the YAML file at ``path`` and apply ``overrides`` (``dotted.key=value``) in order."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        config = parse_yaml(text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a training config must be a YAML mapping")
    for override in overrides:
        config = apply_override(config, override)
    return config


def apply_override(config: Config, override: str) -> Config:
    """Return a copy of ``config`` with ``dotted.key=value`` set (value parsed as YAML)."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {override!r} is not of the form dotted.key=value")
    value = parse_yaml(raw) if raw.strip() else None
    result = copy.deepcopy(config)
    node: Any = result
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ValueError(f"override {override!r}: {where} is {child!r}, not a mapping")
        node = child
    node[parts[-1]] = value
    return result


def get(config: Config, dotted: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``, or ``default`` when any level is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def dump_config(config: Config) -> str:
    """The configuration as YAML text (kept beside the checkpoints of a run)."""
    return yaml.safe_dump(config, sort_keys=False)
