"""LiteRT INT8 export of the paper models at 360×640: wall time and peak memory, one subprocess
each, as a user runs it.

    pytest benchmarks/bench_int8_export.py            # one export at a time (≈ 1 GB each)

Each case runs ``etds export CKPT OUT.tflite --int8 --calibration Set5 --height 360 --width
640`` in a fresh Python process and records its wall time (pytest-benchmark, one round: the
converter's import and first-call costs are part of what a user waits for) and its peak
resident memory, ``VmHWM`` from ``/proc/self/status`` read by the process itself just before it
exits (the kernel's high-water mark of the whole process, the converter's native memory
included). The CPU line (:mod:`benchmarks.machine`) goes with each entry: conversion time
depends on the core, not on int8 instructions, but the file's INT8 latency does. Goals (issue
28): under 60 s and under 2 GB on 2 cores. Exports run serially; two LiteRT conversions in
parallel would share the cores and the memory being measured.

Measured on 7 December 2026 (Intel Xeon, 2 logical CPUs, AVX512-VNNI; other jobs at a load
average of 1.5–3.4): ECBSR-ET 55.7 s / 1.19 GB (fidelity 41.02 dB), ABPN-ET 73.4 s / 1.74 GB
(44.97 dB), ETDS-M 98.4 s / 2.20 GB (42.36 dB); issue 28 measured 6 min and 12 GB before the
candidates were scored on tiles. ABPN-ET and ETDS-M are still above the goals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.conftest import PROJECT_ROOT
from benchmarks.machine import cpu_line, read_cpu

HEIGHT, WIDTH = 360, 640
#: the paper models (checkpoint of the shared selection): ETDS-M in its training form (the export
#: converts it), and the ET forms of ABPN and ECBSR as the authors released them
MODELS = {
    "ETDS-M M6C32 x4": "ETDS_M6C32_x4_normal_loss.pth",
    "ABPN-ET M4C28 x3": "ABPN_ET_M4C28_x3.pth",
    "ECBSR-ET M4C16 x2": "ECBSR_ET_M4C16_x2.pth",
}
GOAL_SECONDS = 60.0
GOAL_GB = 2.0

#: runs ``etds`` with the given arguments, then prints the process's VmHWM (kB) as JSON on the
#: last line of stderr
_RUN_AND_REPORT_PEAK = """
import json, sys
from etds.cli import main
status = main(sys.argv[1:])
peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(json.dumps({'vmhwm_kb': int(peak.split()[1])}), file=sys.stderr)
sys.exit(status)
"""


def export_in_subprocess(args: list[str]) -> tuple[dict, int]:
    """Run ``etds ARGS`` in a new Python process; its ``--json`` summary and VmHWM in kB."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN_AND_REPORT_PEAK, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"etds {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    peak = json.loads(done.stderr.strip().splitlines()[-1])["vmhwm_kb"]
    return json.loads(done.stdout.strip().splitlines()[-1]), peak


@pytest.mark.parametrize("name", list(MODELS))
def test_litert_int8_export(
    benchmark, name: str, checkpoints_dir: Path, set5_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("litert_torch")
    out = tmp_path / "model_int8.tflite"
    args = ["export", str(checkpoints_dir / MODELS[name]), str(out), "--int8"]
    args += ["--calibration", str(set5_dir), "--height", str(HEIGHT), "--width", str(WIDTH)]
    args += ["--json"]
    benchmark.group = "LiteRT INT8 export at 360×640"
    summary, peak_kb = benchmark.pedantic(
        export_in_subprocess, args=(args,), rounds=1, warmup_rounds=0, iterations=1
    )
    seconds = benchmark.stats.stats.max
    benchmark.extra_info.update(
        {
            "kind": "int8-export",
            "model": name,
            "size": [HEIGHT, WIDTH],
            "seconds": seconds,
            "vmhwm_gb": peak_kb / 2**20,
            "fidelity_db": summary.get("fidelity_db"),
            "cpu": cpu_line(read_cpu()),
            "load_average": list(os.getloadavg()),
            "goal": f"< {GOAL_SECONDS:.0f} s, < {GOAL_GB:.0f} GB",
        }
    )
    assert out.is_file()
