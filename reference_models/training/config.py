"""Training configurations: BasicSR-style YAML plus dotted ``key=value`` overrides.

A configuration is a nested ``dict`` read from YAML with the vocabulary of the authors' files
(``network_g: {type: ETDS, ...}``, ``datasets: {train: ..., val: ...}``, ``train: {optim_g,
scheduler, total_iter, ema_decay, ...}``, ``val: {val_freq, ...}``, ``logger: {...}``).

Overrides are ``dotted.key=value`` strings; the value is parsed as YAML, so
``train.total_iter=30`` is an int, ``train.optim_g.lr=1e-3`` a float,
``datasets.train.dataroot_lq=null`` ``None`` and ``train.scheduler.milestones=[10,20]`` a list.
Missing intermediate mappings are created; descending into a non-mapping is an error.

:func:`load_config` refuses an override whose key is not in the file (a typo such as
``train.totl_iter`` would otherwise be ignored while the full recipe runs), naming the closest
existing key; a key the trainer reads that the authors' files leave out (:data:`OPTIONAL_KEYS`)
is accepted, and any other new key is added on purpose with a ``+`` prefix
(``+train.my_option=1``, Hydra's convention).
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

Config = dict[str, Any]

#: keys the trainer reads (with a default) that the authors' configs leave out
OPTIONAL_KEYS = frozenset({"device", "datasets.train.lq_cache_dir"})


class UnknownKeyError(ValueError):
    """An override names a key the configuration does not have."""


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
        check_override_key(config, override)
        config = apply_override(config, override)
    return config


def dotted_keys(config: Config, prefix: str = "") -> list[str]:
    """Every key of ``config`` as a dotted path, mappings and leaves (``train``,
    ``train.total_iter``, …)."""
    keys = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        keys.append(path)
        if isinstance(value, dict):
            keys.extend(dotted_keys(value, f"{path}."))
    return keys


def check_override_key(config: Config, override: str) -> None:
    """Raise :class:`UnknownKeyError` when the key of ``override`` is not in ``config``, not in
    :data:`OPTIONAL_KEYS` and not marked new with ``+``; the message names the closest key."""
    key, sep, _ = override.partition("=")
    key = key.strip()
    if not sep or not key:
        return  # malformed: apply_override says how
    if key.startswith("+") or key in OPTIONAL_KEYS or get(config, key, _MISSING) is not _MISSING:
        return
    close = difflib.get_close_matches(key, dotted_keys(config), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "no similar key"
    raise UnknownKeyError(
        f"--set {override}: the config has no key {key} ({hint}); write +{key}=... to add it"
    )


_MISSING = object()


def apply_override(config: Config, override: str) -> Config:
    """Return a copy of ``config`` with ``dotted.key=value`` set (value parsed as YAML)."""
    key, sep, raw = override.partition("=")
    key = key.strip().removeprefix("+")
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
