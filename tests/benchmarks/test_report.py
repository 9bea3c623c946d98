"""``benchmarks/report.py`` on a synthetic pytest-benchmark JSON (no timing is run here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _report_module():
    # ``benchmarks`` is not an installed package: load the file itself.
    spec = importlib.util.spec_from_file_location(
        "etds_benchmarks_report", PROJECT_ROOT / "benchmarks" / "report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(name: str, seconds: list[float], **info) -> dict:
    ordered = sorted(seconds)
    return {
        "name": name,
        "extra_info": info,
        "stats": {
            "min": ordered[0],
            "median": ordered[len(ordered) // 2],
            "rounds": len(seconds),
        },
    }


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    benchmarks = [
        _bench("a", [0.30, 0.20], kind="model", model="M x2", form="original", runtime="ort"),
        _bench("b", [0.10, 0.15], kind="model", model="M x2", form="et", runtime="ort", align=4),
        _bench("c", [0.40, 0.50], kind="model", model="M x2", form="et", runtime="ort", align=1),
        _bench("d", [0.05], kind="operator", op="nearest", form="original", runtime="torch"),
        _bench("e", [0.20], kind="operator", op="nearest", form="et", runtime="torch"),
        _bench("f", [0.08], kind="deploy", model="P x4", runtime="litert xnnpack"),
        _bench("g", [0.10], kind="deploy", model="P x4", runtime="ort default"),
        _bench("h", [1.5], kind="conversion", checkpoint="M.pth", target="M_ET"),
        _bench("i", [42.0], kind="prove"),
        _bench(
            "l",
            [0.27, 0.25],
            kind="training-step",
            config="E_x4",
            device="cpu",
            batch=32,
            lq_size=64,
            total_iter=1_600_000,
            workers=12,
        ),
        _bench(
            "m",
            [0.16],
            kind="training-batch",
            config="E_x4",
            batch=32,
            workers=12,
            image_format="png",
            hr_kb_per_file=420.4,
        ),
    ]
    facts = {
        "psnr": {
            "M x2": {
                "original/onnxruntime": 30.0,
                "original/onnxruntime-int8": 29.5,
                "et/onnxruntime": 30.0,
                "et/onnxruntime-int8": 28.0,
            }
        },
        "interleaved": {
            "models": {
                "M x2": {"onnxruntime": {"original": 200.0, "et": 150.0, "et-align1": 250.0}}
            },
            "deploy": {"model": "P x4", "ms": {"litert xnnpack": 80.0, "ort default": 100.0}},
        },
        "notes": ["a note from the run"],
        "machine": {"cpu": "Test CPU 9000", "logical_cpus": 2, "threads": 2, "torch": "9.9"},
    }
    # runtime "onnxruntime" rows for the plot
    benchmarks.append(
        _bench("j", [0.2], kind="model", model="M x2", form="original", runtime="onnxruntime")
    )
    benchmarks.append(
        _bench("k", [0.1], kind="model", model="M x2", form="et", runtime="onnxruntime", align=4)
    )
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": benchmarks, "etds": facts, "machine_info": {}}))
    return path


def test_markdown_ratios_and_facts(synthetic: Path) -> None:
    report = _report_module()
    text = report.markdown(*report.load(synthetic))
    # min over rounds: ET 0.10 / original 0.20; align 1: 0.40 / 0.20 is slower
    assert "| M x2 (align 4) | ort | 200.0 | 100.0 | 0.50 |" in text
    assert "| M x2 (align 1) | ort | 200.0 | 400.0 | 2.00 **slower** |" in text
    assert "| nearest | 50.0 | 200.0 | 4.00 **slower** |" in text
    assert "| ort default | 100.0 | 100.0 | 1.25 |" in text
    assert "| M x2 | et | — | 30.0000 | 28.0000 | -2.000 |" in text
    assert "| M.pth | M_ET | 1500.0 | 1 |" in text
    assert "42.0 s" in text
    assert "Test CPU 9000" in text and "torch 9.9" in text
    assert "a note from the run" in text
    # 1.6 M × 0.25 s = 400 000 s = 4.6 days; the loader's 160 ms per batch per worker
    assert "| E_x4 | cpu | 32 × 64² | 250.0 | 1,600,000 | 4.6 d |" in text
    assert "one batch of 32 in one worker" in text and "(the configs use 12)" in text
    assert "| png | 160.0 | 420 |" in text


def test_round_robin_tables(synthetic: Path) -> None:
    report = _report_module()
    text = report.markdown(*report.load(synthetic))
    assert "| M x2 | onnxruntime | 200.0 | 150.0 | 0.75 | 250.0 | 1.25 **slower** |" in text
    assert "| litert xnnpack | 80.0 | 1.00 |" in text
    assert "| ort default | 100.0 | 1.25 |" in text
    # the plot takes the round-robin latency over the pytest-benchmark row (0.1 s)
    timings, facts, _ = report.load(synthetic)
    assert report._latency(timings, facts, "M x2", "et", "onnxruntime") == 150.0


def test_write_report_makes_markdown_and_svg(synthetic: Path, tmp_path: Path) -> None:
    report = _report_module()
    out = tmp_path / "out"
    written = report.write_report(synthetic, out)
    assert {p.name for p in written} == {"benchmarks.md", "psnr_latency.svg"}
    assert b"<svg" in (out / "psnr_latency.svg").read_bytes()[:2000]
    assert sorted(p.name for p in out.iterdir()) == ["benchmarks.md", "psnr_latency.svg"]


def test_command_line(synthetic: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(synthetic), "--out", str(tmp_path / "o")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "benchmarks.md").is_file()


def test_empty_json_gives_a_report_without_tables(tmp_path: Path) -> None:
    report = _report_module()
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    text = report.markdown(*report.load(path))
    assert "ET/original" not in text and text.startswith("# ")
