"""LiteRT INT8 export of the paper models at 360×640: wall time, CPU time and peak memory, one
subprocess each, as a user runs it.

    pytest benchmarks/bench_int8_export.py            # one export at a time (≈ 1.3 GB each)

Each case runs ``etds export CKPT OUT.tflite --int8 --calibration Set5 --height 360 --width
640`` in a fresh Python process and records its wall time (pytest-benchmark, one round: the
converter's import and first-call costs are part of what a user waits for), its CPU time (user +
sys of the child, ``RUSAGE_CHILDREN``), its peak resident memory, ``VmHWM`` from
``/proc/self/status`` read by the process itself just before it exits (the kernel's high-water
mark of the whole process, the converter's native memory included), and the 1-minute load
average sampled every :data:`LOAD_SAMPLE_SECONDS` during the run. On a shared machine the wall
time is an upper bound and the CPU time the load-independent figure; read both with the load.
The CPU line (:mod:`benchmarks.machine`) goes with each entry: conversion time depends on the
core, not on int8 instructions, but the file's INT8 latency does. Goals (issue 28): under 60 s
and under 2 GB on 2 cores. Run the exports serially to time them: two at once share the cores
(each one's VmHWM and CPU time stay its own).

Measured on 8 December 2026 (AMD EPYC, 2 logical CPUs, AVX2, no VNNI), one or two exports at a
time under other jobs; CPU time, VmHWM, INT8 fidelity, chosen layout, wall time at the mean load:

| model | CPU s | VmHWM GB | dB | layout | wall s (load) |
|---|---|---|---|---|---|
| ETDS-S M4C32 ×4 | 86.0 | 1.38 | 34.82 | E10 0.75 | 469 (12.9) |
| ETDS-T M5C16 ×3 | 54.5 | 1.07 | 39.01 | E10 0.75 | 84 (7.8) |
| ETDS-M M6C32 ×4 (training form) | 159.6 | 1.30 | 42.36 | E10 1, calibrated copies | 1219 (20.1) |
| ABPN-ET M4C28 ×3 | 121.4 | 1.14 | 44.97 | E10 1, exact copies | 1018 (20.6) |
| ABPN M4C28 ×3 | 79.8 | 1.20 | 48.78 | E10 1 | 85 (3.1) |
| ECBSR M4C16 ×2 | 68.9 | 0.99 | 41.23 | E10 0.25 | 64 (3.0) |
| ECBSR-ET M4C16 ×2 | 171.0 | 1.11 | 41.02 | R24 ReLU pairs | 819 (13.3) |

Every peak is under the 2 GB goal (7 December: ETDS-M 2.20 GB, ABPN-ET 1.74 GB; issue 28:
12 GB before the candidates were scored on tiles), with the same fidelities as then. The 60 s
goal is not met: at a load of 3 the wall time is about the CPU time (ABPN 85 s wall for 80 s
CPU, ECBSR 64 s for 69 s), so CPU times of 55–171 s stand for about as many seconds on an idle
2-core machine. Where ETDS-M's CPU goes (one profiled run): the layout candidates 37 s and
their simulations 29 s (on 64×64 tiles), three tile conversions with their LiteRT scores 46 s,
the 360×640 conversion 13 s, its fidelity check 15 s, imports the rest.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.conftest import PROJECT_ROOT
from benchmarks.machine import cpu_line, read_cpu

HEIGHT, WIDTH = 360, 640
#: every paper model with a checkpoint in the shared selection, in the form a user exports it:
#: the released ETDS inference forms (ETDS-S, ETDS-T) and the dual-stream training form of
#: ETDS-M (the export converts it), the originals of ABPN and ECBSR and their ET forms as the
#: authors released them
MODELS = {
    "ETDS-S M4C32 x4": "ETDS_M4C32_x4.pth",
    "ETDS-T M5C16 x3": "ETDS_M5C16_x3.pth",
    "ETDS-M M6C32 x4": "ETDS_M6C32_x4_normal_loss.pth",
    "ABPN M4C28 x3": "ABPN_M4C28_x3.pth",
    "ABPN-ET M4C28 x3": "ABPN_ET_M4C28_x3.pth",
    "ECBSR M4C16 x2": "ECBSR_M4C16_x2.pth",
    "ECBSR-ET M4C16 x2": "ECBSR_ET_M4C16_x2.pth",
}
GOAL_SECONDS = 60.0
GOAL_GB = 2.0
#: seconds between two samples of the load average while an export runs
LOAD_SAMPLE_SECONDS = 2.0

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


@dataclass(frozen=True)
class ExportRun:
    """One export in its own process: its ``--json`` summary, wall and CPU seconds (user + sys
    of the child and anything it waited for: ``RUSAGE_CHILDREN`` before and after, the exports
    run one at a time), VmHWM, and the 1-minute load average sampled during it."""

    summary: dict
    wall_s: float
    cpu_s: float
    vmhwm_kb: int
    load: list[float]


def _sample_load(samples: list[float], done: threading.Event) -> None:
    while True:
        samples.append(os.getloadavg()[0])
        if done.wait(LOAD_SAMPLE_SECONDS):
            return


def export_in_subprocess(args: list[str]) -> ExportRun:
    """Run ``etds ARGS`` in a new Python process and measure it (:class:`ExportRun`)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-c", _RUN_AND_REPORT_PEAK, *args]
    samples: list[float] = []
    done = threading.Event()
    sampler = threading.Thread(target=_sample_load, args=(samples, done), daemon=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    sampler.start()
    child = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    sampler.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if child.returncode:
        raise RuntimeError(f"etds {' '.join(args)}: {child.stderr.strip()[-2000:]}")
    peak = json.loads(child.stderr.strip().splitlines()[-1])["vmhwm_kb"]
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    return ExportRun(summary, wall, cpu, peak, samples)


@pytest.mark.parametrize("name", list(MODELS))
def test_litert_int8_export(
    benchmark, name: str, checkpoints_dir: Path, set5_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("litert_torch")
    checkpoint = checkpoints_dir / MODELS[name]
    if not checkpoint.is_file():
        pytest.skip(f"{checkpoint} is not in the shared selection")
    out = tmp_path / "model_int8.tflite"
    args = ["export", str(checkpoint), str(out), "--int8"]
    args += ["--calibration", str(set5_dir), "--height", str(HEIGHT), "--width", str(WIDTH)]
    args += ["--json"]
    benchmark.group = "LiteRT INT8 export at 360×640"
    run = benchmark.pedantic(
        export_in_subprocess, args=(args,), rounds=1, warmup_rounds=0, iterations=1
    )
    benchmark.extra_info.update(
        {
            "kind": "int8-export",
            "model": name,
            "size": [HEIGHT, WIDTH],
            "seconds": run.wall_s,
            "cpu_seconds": run.cpu_s,
            "vmhwm_gb": run.vmhwm_kb / 2**20,
            "fidelity_db": run.summary.get("fidelity_db"),
            "layout": run.summary.get("layout"),
            "cpu": cpu_line(read_cpu()),
            "load_average": {
                "min": min(run.load),
                "mean": sum(run.load) / len(run.load),
                "max": max(run.load),
            },
            "goal": f"< {GOAL_SECONDS:.0f} s, < {GOAL_GB:.0f} GB",
        }
    )
    assert out.is_file()
