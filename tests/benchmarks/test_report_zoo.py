"""The zoo section of the benchmark report, on synthetic entries (nothing is timed)."""

from __future__ import annotations

from typing import Any

from benchmarks.report_zoo import zoo_ort_section


def _entry(compiled_ms: float, deploy_ms: float, within: float) -> dict[str, Any]:
    return {
        "input": "3×128×128",
        "median_ms": {"compiled": compiled_ms, "deploy": deploy_ms},
        "min_ms": {"compiled": compiled_ms - 1, "deploy": deploy_ms - 1},
        "ratio_median": compiled_ms / deploy_ms,
        "ratio_within_pass": within,
        "ratio_min": (compiled_ms - 1) / (deploy_ms - 1),
        "convs": {"compiled": 15, "deploy": 17},
        "mmacs": {"compiled": 250.0, "deploy": 40.5},
    }


def _rows(section: list[str]) -> dict[str, list[str]]:
    rows = [line.strip("| ").split(" | ") for line in section if line.startswith("| ")]
    return {row[0]: row for row in rows[1:]}


def test_each_family_is_a_row_and_a_slower_compiled_form_is_marked() -> None:
    facts = {
        "interleaved": {
            "zoo_ort": {
                "Even": _entry(10.0, 10.0, 1.0),
                "Slow": _entry(12.5, 10.0, 1.2),  # both ratios above 1.10
                "Noisy": _entry(12.5, 10.0, 1.0),  # only the medians' ratio
            }
        }
    }
    rows = _rows(zoo_ort_section(facts))
    assert rows["Even"] == [
        "Even",
        "3×128×128",
        "10.00 / 10.00",
        "9.00 / 9.00",
        "1.00",
        "1.00",
        "1.00",
        "15 / 17",
        "250.0 / 40.5",
    ]
    assert rows["Slow"][4] == "1.25 **slower**" and rows["Slow"][5] == "1.20"
    assert rows["Slow"][6] == f"{11.5 / 9.0:.2f}"
    assert rows["Noisy"][4] == "1.25"


def test_no_zoo_run_no_section() -> None:
    assert zoo_ort_section({"interleaved": {}}) == []
    assert zoo_ort_section({}) == []


def test_a_compiled_form_with_more_multiply_adds_is_named() -> None:
    heavy = _entry(12.5, 10.0, 1.2)  # 250.0 against 40.5 MMACs
    even = {**_entry(10.0, 10.0, 1.0), "mmacs": {"compiled": 40.5, "deploy": 40.5}}
    section = zoo_ort_section({"interleaved": {"zoo_ort": {"Heavy": heavy, "Even": even}}})
    named = [line for line in section if line.startswith("- ")]
    assert named == [
        f"- Heavy: the compiled form computes {250.0 / 40.5:.2f}× the deploy form's "
        "multiply-adds (250.0 against 40.5 MMACs), with 15 convs against 17."
    ]
