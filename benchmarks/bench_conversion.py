"""Time of converting and verifying every shared checkpoint, and of the full ``etds prove``.

Conversion: :func:`reference_models.conversions.pipeline.convert_checkpoint` (what ``etds
convert`` runs: load, ``convert(model, align=4)``, verify in float64 on the default fuzzed
inputs, reload, write), in process. A checkpoint already in its inference form
converts to a copy of itself; one without an ET conversion (ESPCN, FSRCNN, Plain) is skipped.
``etds prove``: one run of the command in a subprocess (Python start-up included), all proofs,
one worker, no PDF.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.conftest import PROJECT_ROOT, shared_path
from reference_models import load_checkpoint
from reference_models.conversions import NotConvertibleError, converted_arch
from reference_models.conversions.pipeline import convert_checkpoint
from reference_models.conversions.verification import DEFAULT_TOLERANCE_255

SHARED = shared_path() / "official" / "checkpoints"
CHECKPOINTS = sorted(p.name for p in SHARED.glob("*.pth")) if SHARED.is_dir() else []


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_convert_and_verify(benchmark, checkpoints_dir: Path, name: str, tmp_path: Path) -> None:
    path = checkpoints_dir / name
    try:
        target = converted_arch(load_checkpoint(path))
    except NotConvertibleError as error:
        pytest.skip(str(error))

    def convert_and_verify() -> float:
        report = convert_checkpoint(path, tmp_path / name, align=4)
        assert report.written, report
        return report.max_abs_error_255

    benchmark.group = "conversion"
    benchmark.extra_info.update({"kind": "conversion", "checkpoint": name, "target": target})
    error = benchmark.pedantic(convert_and_verify, rounds=3, warmup_rounds=0, iterations=1)
    benchmark.extra_info["max_abs_error_255"] = error
    assert error <= DEFAULT_TOLERANCE_255


def test_prove(benchmark, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "et", "prove", "--out", str(tmp_path), "--no-pdf", "--json"]

    def prove() -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)

    benchmark.group = "prove"
    benchmark.extra_info.update({"kind": "prove"})
    result = benchmark.pedantic(prove, rounds=1, warmup_rounds=0, iterations=1)
    assert result.returncode == 0, result.stderr[-2000:]
