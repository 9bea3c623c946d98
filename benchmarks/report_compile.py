"""The ``et.compile`` section of ``benchmarks.md``: compile time per model and the compiled
networks' latency against the hand-converted ones (:mod:`benchmarks.bench_compile`)."""

from __future__ import annotations

from typing import Any

from benchmarks.report_data import Timing, _select, _table


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _compile_rows(timings: list[Timing]) -> list[list[str]]:
    rows = []
    for row in _select(timings, kind="compile"):
        phases = row.get("timings", {})
        errors = row.get("max_error", {})
        load = row.get("load_average") or []
        rows.append(
            [
                row.get("model", "?"),
                f"{row.get('convs_before', '?')} → {row.get('convs_after', '?')}",
                _seconds(row["ms"] / 1000.0),
                _seconds(row.get("cpu_s")),
                " / ".join(_seconds(phases.get(k)) for k in ("capture", "rewrite", "verify")),
                " / ".join(f"{errors.get(k, float('nan')):.1e}" for k in ("float64", "float32")),
                f"{load[0]:.1f}" if load else "—",
            ]
        )
    return rows


def _heap_reuse(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "—"
    return (
        f"{entry['compiled_ms']:.1f} / {entry['hand_ms']:.1f} ms, {entry['ratio_wall']:.2f} "
        f"(control {entry['control_wall']:.2f})"
    )


def _latency_rows(facts: dict[str, Any]) -> list[list[str]]:
    rows = []
    for model, entry in facts.get("interleaved", {}).get("compile", {}).items():
        wall, cpu = entry["ratio_wall"], entry["ratio_cpu"]
        control = max(abs(entry["control_wall"] - 1.0), abs(entry["control_cpu"] - 1.0))
        # slower: both ratios above 1 by more than 5 % and by more than the control's spread
        mark = " **slower**" if min(wall, cpu) > 1.0 + max(0.05, control) else ""
        rows.append(
            [
                model,
                f"{entry['compiled_ms']:.1f}",
                f"{entry['hand_ms']:.1f}",
                f"{wall:.2f}{mark}",
                f"{cpu:.2f}",
                f"{entry['control_wall']:.2f} / {entry['control_cpu']:.2f}",
                _heap_reuse(entry.get("heap_reuse")),
                "yes" if entry.get("same_ops") else "**no**",
            ]
        )
    return rows


def compile_section(timings: list[Timing], facts: dict[str, Any]) -> list[str]:
    """Both tables, or nothing when ``bench_compile`` did not run."""
    compile_rows, latency_rows = _compile_rows(timings), _latency_rows(facts)
    lines: list[str] = []
    if compile_rows:
        lines += [
            "## et.compile: compile time",
            "",
            "One compile per round (3 rounds) of each network's training form with random "
            "weights, 3×16×16 example, on 2 cores shared with other work: wall time is the "
            "minimum over the rounds, CPU the minimum process CPU time (less disturbed by the "
            "background load, given with the 1-minute load average at the start); the phases "
            "are the certificate's wall times of the last round. Goal: under 5 s each.",
            "",
            *_table(
                [
                    "model",
                    "convs",
                    "wall s",
                    "CPU s",
                    "capture / rewrite / verify s",
                    "max error f64 / f32",
                    "load",
                ],
                compile_rows,
            ),
            "",
        ]
    if latency_rows:
        lines += [
            "## et.compile: compiled network / hand-converted network",
            "",
            "3×128×128 input, batch 1, float32, no grad, timed round-robin with a copy of the "
            "hand-converted network as a control; ms: each runner's minimum; ratio: the median "
            "over the passes of compiled / hand within a pass (wall, process CPU); control: the "
            "same for the copy / hand, the spread the load alone gives. Same ops: the two "
            "dispatch the same aten compute ops (views left out). Heap reuse: the same, in a "
            "child process where glibc serves large tensors from its reused heap "
            "(MALLOC_MMAP_THRESHOLD_=2³⁰), as an arena allocator does: compiled / hand ms, "
            "ratio wall (control); with glibc's defaults the page faults of fresh large tensors, "
            "which depend on the order a forward frees its intermediates, weigh on the ratio.",
            "",
            *_table(
                [
                    "model",
                    "compiled ms",
                    "hand ms",
                    "ratio wall",
                    "ratio CPU",
                    "control wall / CPU",
                    "heap reuse",
                    "same ops",
                ],
                latency_rows,
            ),
        ]
    return lines
