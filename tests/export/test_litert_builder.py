"""The LiteRT flatbuffer written without TensorFlow computes the same function as PyTorch.

Skipped where ``ai-edge-litert``/``tflite`` are not installed (they belong to the ``bench``
extra). Weights are random with non-zero biases; every ×2/×3/×4 case includes the channel
permutation for DEPTH_TO_SPACE, and the ×3 case the dummy channel that is dropped.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("tflite")
pytest.importorskip("ai_edge_litert")

from reference_models import ABPN_ET, ETDSForInference
from reference_models.deploy.litert import flatbuffer as litert
from reference_models.deploy.litert.runtime import litert_interpreter, run_litert


def _model(scale: int, align: int | None, seed: int) -> ETDSForInference:
    model = ETDSForInference(3, 3, scale, 2, 8, 3, align=align)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def _compare(model: ETDSForInference, height: int, width: int) -> float:
    interpreter = litert_interpreter(
        litert.tflite_bytes(model, height=height, width=width), threads=1
    )
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    actual = run_litert(interpreter, x.permute(0, 2, 3, 1).numpy())
    with torch.no_grad():
        expected = model(x).permute(0, 2, 3, 1).numpy()
    assert actual.shape == expected.shape
    return float(np.abs(actual - expected).max() * 255)


@pytest.mark.parametrize(("scale", "align"), [(2, 4), (3, None), (3, 4), (4, 1)])
def test_litert_equals_pytorch(scale: int, align: int | None) -> None:
    model = _model(scale, align, seed=scale)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).abs().max() > 0  # not a vacuous all-zero net
    assert _compare(model, 11, 17) < 0.01


def test_depth_to_space_order_matters(monkeypatch) -> None:
    """Without the channel permutation the flatbuffer computes a different image."""
    model = _model(2, 4, seed=7)
    assert _compare(model, 9, 9) < 0.01
    monkeypatch.setattr(litert, "depth_to_space_order", lambda c, s: np.arange(c * s * s))
    assert _compare(model, 9, 9) > 1.0


def test_depth_to_space_order_is_tensorflow_layout() -> None:
    """TF DEPTH_TO_SPACE reads channel (i·s + j)·C + c for offset (i, j), colour c; PyTorch
    PixelShuffle reads c·s² + i·s + j. Checked on a tensor whose values are their channel."""
    colors, scale = 3, 2
    order = litert.depth_to_space_order(colors, scale)
    channels = torch.arange(colors * scale * scale, dtype=torch.float32).view(1, -1, 1, 1)
    shuffled = torch.nn.PixelShuffle(scale)(channels)[0]  # [c, i, j] = channel read
    for i in range(scale):
        for j in range(scale):
            for c in range(colors):
                assert order[(i * scale + j) * colors + c] == shuffled[c, i, j]


def test_other_architectures_are_refused() -> None:
    with pytest.raises(TypeError, match="ETDSForInference"):
        litert.tflite_bytes(ABPN_ET(8, 2, 2), height=8, width=8)
