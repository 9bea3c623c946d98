"""INT8 ONNX (``reference_models.deploy.onnx.int8``): QDQ file after the layout the one decision
rule chose, its fidelity measured, the decision written beside it, nothing written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from reference_models import ABPN_ET
from reference_models.deploy.export_contract import ExportError
from reference_models.deploy.onnx.int8 import export_onnx_int8
from reference_models.deploy.onnx.runtime import ort_session, run_ort
from tests.export.scaled_weights import randomize_scaled


def _model() -> ABPN_ET:
    return randomize_scaled(
        ABPN_ET(num_feat=8, num_block=1, scale=2, num_in_ch=3), seed=0, gain=0.5
    )


def _images() -> list[torch.Tensor]:
    return [torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(3)]


def test_int8_onnx_is_quantized_and_its_fidelity_measured(tmp_path: Path) -> None:
    path = tmp_path / "m_int8.onnx"
    report = export_onnx_int8(_model(), path, calibration=_images(), height=16, width=16)
    assert path.is_file() and report.bytes == path.stat().st_size
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # no temporaries left; the decision beside the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_int8.onnx", "m_int8.onnx.json"]
    # The reported fidelity is the file's, recomputed here.
    session = ort_session(path, threads=1)
    squared, count = 0.0, 0
    for x in _images():
        with torch.no_grad():
            expected = _model()(x).clamp(0, 1).numpy().astype(np.float64)
        got = run_ort(session, x.numpy()).astype(np.float64)
        squared += float(((got - expected) ** 2).sum())
        count += expected.size
    assert 10 * np.log10(count / squared) == pytest.approx(report.fidelity_db, abs=1e-6)
    # the decision etds export writes: the same rule, judged by ONNX Runtime itself
    decision = json.loads((tmp_path / "m_int8.onnx.json").read_text())
    assert report.decision is not None and decision["chosen"] == report.decision.chosen.name
    assert decision["judge"] == "ONNX Runtime" and decision["backend"] == "onnx"
    assert decision["candidates"][0]["name"] == "plain" and len(decision["candidates"]) > 2
    judged = [c for c in decision["candidates"] if c["runtime_db"] is not None]
    chosen = next(c for c in judged if c["name"] == decision["chosen"])
    assert chosen["runtime_db"] == max(c["runtime_db"] for c in judged)
    assert report.layout is report.decision.chosen.report


def test_nothing_written_below_the_fidelity_floor(tmp_path: Path) -> None:
    path = tmp_path / "m_int8.onnx"
    with pytest.raises(ExportError, match="nothing written"):
        export_onnx_int8(
            _model(), path, calibration=_images(), height=16, width=16, min_fidelity_db=1e9
        )
    assert list(tmp_path.iterdir()) == []
