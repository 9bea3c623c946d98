"""The ``et.compile`` section of the benchmark report, on synthetic rows (nothing is timed)."""

from __future__ import annotations

from benchmarks.report_compile import compile_section
from benchmarks.report_data import Timing


def _compile_row(model: str, ms: float) -> Timing:
    row = Timing(
        kind="compile",
        model=model,
        convs_before=41,
        convs_after=21,
        cpu_s=0.9,
        timings={"capture": 0.5, "rewrite": 0.25, "verify": 0.125},
        max_error={"float64": 1.2e-13, "float32": 4.8e-5},
        load_average=[3.25, 2.0, 1.0],
    )
    row.update(ms=ms)
    return row


def test_compile_times_and_latency_ratios() -> None:
    facts = {
        "interleaved": {
            "compile": {
                "A": {
                    "compiled_ms": 10.0,
                    "hand_ms": 10.0,
                    "ratio_wall": 1.02,
                    "ratio_cpu": 0.9,
                    "control_wall": 1.01,
                    "control_cpu": 0.99,
                    "same_ops": True,
                    "heap_reuse": {
                        "compiled_ms": 8.0,
                        "hand_ms": 8.5,
                        "ratio_wall": 0.96,
                        "control_wall": 1.01,
                    },
                },
                "B": {
                    "compiled_ms": 12.0,
                    "hand_ms": 10.0,
                    "ratio_wall": 1.2,
                    "ratio_cpu": 1.1,
                    "control_wall": 1.02,
                    "control_cpu": 0.97,
                    "same_ops": False,
                },
                "C": {
                    "compiled_ms": 12.0,
                    "hand_ms": 10.0,
                    "ratio_wall": 1.2,
                    "ratio_cpu": 1.1,
                    "control_wall": 1.3,
                    "control_cpu": 0.97,
                    "same_ops": True,
                },
            }
        }
    }
    text = "\n".join(compile_section([_compile_row("RepVGG-20", 1500.0)], facts))
    assert (
        "| RepVGG-20 | 41 → 21 | 1.50 | 0.90 | 0.50 / 0.25 / 0.12 | 1.2e-13 / 4.8e-05 | 3.2 |"
        in text
    )
    heap_reuse = "8.0 / 8.5 ms, 0.96 (control 1.01)"
    assert f"| A | 10.0 | 10.0 | 1.02 | 0.90 | 1.01 / 0.99 | {heap_reuse} | yes |" in text
    # slower by wall and CPU both beyond the control's spread, and a different op list, marked
    assert "| B | 12.0 | 10.0 | 1.20 **slower** | 1.10 | 1.02 / 0.97 | — | **no** |" in text
    # the same ratios within a control that moved by 30 %: not called slower
    assert "| C | 12.0 | 10.0 | 1.20 | 1.10 | 1.30 / 0.97 | — | yes |" in text


def test_no_rows_no_section() -> None:
    assert compile_section([], {}) == []
