"""The zoo section of ``benchmarks.md``: each family's compiled network against the authors'
deploy form on ONNX Runtime, timed round-robin (:mod:`benchmarks.bench_zoo_ort`)."""

from __future__ import annotations

from typing import Any

from benchmarks.report_data import _table

#: a compiled form is marked slower when both of its ratios exceed this (the issue's 10 %)
SLOWER = 1.10


def _pair(values: dict[str, float], digits: int) -> str:
    return f"{values['compiled']:.{digits}f} / {values['deploy']:.{digits}f}"


def _row(family: str, entry: dict[str, Any]) -> list[str]:
    ratio, within = entry["ratio_median"], entry["ratio_within_pass"]
    mark = " **slower**" if min(ratio, within) > SLOWER else ""
    convs = entry["convs"]
    return [
        family,
        entry["input"],
        _pair(entry["median_ms"], 2),
        _pair(entry["min_ms"], 2),
        f"{ratio:.2f}{mark}",
        f"{within:.2f}",
        f"{entry['ratio_min']:.2f}",
        f"{convs['compiled']} / {convs['deploy']}",
        _pair(entry["mmacs"], 1),
    ]


def _heavier(zoo: dict[str, Any]) -> list[str]:
    """One sentence per family whose compiled form computes more multiply-adds than the
    deploy form (a costlier merge, the first thing to read when it is slower)."""
    lines = []
    for family, entry in zoo.items():
        compiled, deploy = entry["mmacs"]["compiled"], entry["mmacs"]["deploy"]
        if compiled > deploy * 1.01:
            lines.append(
                f"- {family}: the compiled form computes {compiled / deploy:.2f}× the deploy "
                f"form's multiply-adds ({compiled:.1f} against {deploy:.1f} MMACs), with "
                f"{entry['convs']['compiled']} convs against {entry['convs']['deploy']}."
            )
    return lines


def zoo_ort_section(facts: dict[str, Any]) -> list[str]:
    """The table, or nothing when ``bench_zoo_ort`` did not run."""
    zoo = facts.get("interleaved", {}).get("zoo_ort", {})
    if not zoo:
        return []
    return [
        "## Zoo: et.compile output / the authors' deploy form, ONNX Runtime round-robin",
        "",
        "Each family's training form (random weights, `tests/zoo`) compiled by `et.compile`, "
        "against the deploy form the paper's re-parameterization gives, folded from the same "
        "weights (`benchmarks/zoo_deploy_forms.py`); both exported alike (TorchScript "
        "exporter, opset 17, static shape), batch 1, float32, ONNX Runtime on the pinned "
        "threads. The two sessions alternate within each pass (order swapped every pass); ms: "
        "median and minimum over the passes, compiled / deploy; ratio: compiled / deploy of "
        "the medians, the median of the within-pass ratios (**slower**: both above "
        f"{SLOWER:.2f}) and the ratio of the minima (the least disturbed runs: on a loaded "
        "machine the medians carry the load's waits); MMACs: multiply-adds per image.",
        "",
        *_table(
            [
                "family",
                "input",
                "median ms",
                "min ms",
                "ratio",
                "within-pass ratio",
                "ratio of minima",
                "convs",
                "MMACs",
            ],
            [_row(family, entry) for family, entry in zoo.items()],
        ),
        *(["", *heavier] if (heavier := _heavier(zoo)) else []),
    ]
