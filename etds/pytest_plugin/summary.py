"""The terminal summary: one row per model that ran.

Each item's findings travel in its report's ``user_properties`` (``("etds", row)``), which
``pytest-xdist`` carries from the workers to the controller, where :class:`Summary` collects
them from ``pytest_runtest_logreport`` and prints them in the table's order.
"""

from __future__ import annotations

import math
from typing import Any

HEADER = ("model", "mode", "convs", "rules", "max error f64 / own", "sizes", "result")


def row_of(report) -> dict[str, Any] | None:
    """The ``etds`` row an item's call report carries, or ``None``."""
    for key, value in getattr(report, "user_properties", ()):
        if key == "etds" and isinstance(value, dict):
            return value
    return None


def outcome(report) -> str:
    """``passed``, ``FAILED``, ``xfailed``, ``XPASS`` or ``skipped``, as pytest counts it."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "XPASS"
    if report.passed:
        return "passed"
    return "FAILED" if report.failed else "skipped"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.1e}"


def _errors(errors: dict[str, float]) -> str:
    own = [(dtype, value) for dtype, value in errors.items() if dtype != "float64"]
    text = _number(errors.get("float64"))
    for dtype, value in own:
        text += f" / {_number(value)} ({dtype})"
    return text


def _convs(convs) -> str:
    before, after = convs
    if before is None and after is None:
        return "-"
    return f"{'?' if before is None else before} → {'?' if after is None else after}"


def _rules(rules: dict[str, int]) -> str:
    return ", ".join(f"{rule}×{n}" if n > 1 else rule for rule, n in rules.items()) or "-"


def cells(row: dict[str, Any], result: str) -> tuple[str, ...]:
    """The table cells of one row."""
    sizes = ", ".join(f"{h}×{w}" for h, w in row["sizes"]) or "-"
    return (
        row["name"],
        row["mode"],
        _convs(row["convs"]),
        _rules(row["rules"]),
        _errors(row["errors"]),
        sizes,
        result,
    )


def render(rows: list[tuple[str, ...]]) -> list[str]:
    """``rows`` (header first) as aligned text lines."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


class Summary:
    """Rows collected from the items' call reports."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, ...]] = {}

    def add(self, report) -> None:
        """Record ``report``'s row (call reports of etds items only)."""
        row = row_of(report)
        if report.when == "call" and row is not None:
            self.rows[row["index"]] = cells(row, outcome(report))

    def lines(self) -> list[str]:
        """The table, or nothing when no model ran."""
        if not self.rows:
            return []
        return render([HEADER, *(self.rows[i] for i in sorted(self.rows))])
