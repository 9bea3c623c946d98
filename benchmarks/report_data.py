"""The timings of a ``pytest benchmarks --benchmark-json`` file and the table helpers the
report's sections share (:mod:`benchmarks.report`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: The deploy row that stands for "ONNX Runtime fp32" of a model timed only there.
DEPLOY_DEFAULT = "ort default (all, spin)"


class Timing(dict):
    """One benchmark: its ``extra_info`` plus ``ms`` (minimum), ``median_ms`` and ``rounds``."""


def load(path: str | os.PathLike[str]) -> tuple[list[Timing], dict[str, Any], dict[str, Any]]:
    """The timings, the ``etds`` facts and pytest-benchmark's ``machine_info`` of a JSON file."""
    data = json.loads(Path(path).read_text())
    timings = []
    for bench in data.get("benchmarks", []):
        stats = bench["stats"]
        row = Timing(bench.get("extra_info", {}))
        row.update(
            name=bench["name"],
            ms=stats["min"] * 1000.0,
            median_ms=stats["median"] * 1000.0,
            rounds=stats["rounds"],
        )
        timings.append(row)
    return timings, data.get("etds", {}), data.get("machine_info", {})


def _select(timings: Iterable[Timing], **match: Any) -> list[Timing]:
    return [t for t in timings if all(t.get(k) == v for k, v in match.items())]


def _one(timings: Iterable[Timing], **match: Any) -> Timing | None:
    found = _select(timings, **match)
    return found[0] if found else None


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _ratio(et: Timing | None, original: Timing | None) -> str:
    if et is None or original is None or original["ms"] <= 0:
        return "—"
    ratio = et["ms"] / original["ms"]
    mark = " **slower**" if ratio > 1.05 else ""
    return f"{ratio:.2f}{mark}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
