"""The INT8 ``.tflite`` keeps a uniform conv bias per channel (``deploy/litert/bias_repair.py``).

litert-torch lowers an all-equal bias as a splat, and the quantizer then gives every channel
channel 0's integer although the scales differ per channel. The ET forms' clip conv has the
bias 1 in every channel; after the E10 layout its weight scales differ, and the file added
``s_c/s_0`` instead of 1 (ABPN-ET: 34.9 instead of 47.0 dB).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip(
    "litert_torch", reason="litert-torch not installed (pip install -e '.[litert]'; CI has it)"
)
import tflite

from reference_models.deploy.litert.bias_repair import repair_uniform_biases
from reference_models.deploy.litert.export import tflite_bytes
from reference_models.deploy.litert.runtime import litert_interpreter

UNIFORM_BIAS = 0.75


def _model() -> nn.Module:
    """conv → ReLU → 1×1 conv with the bias 0.75 everywhere and rows of unequal size (so the
    per-channel weight scales of the last conv differ by up to 4×)."""
    generator = torch.Generator().manual_seed(3)
    first, last = nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 6, 1)
    with torch.no_grad():
        first.weight.copy_(torch.randn(first.weight.shape, generator=generator) * 0.3)
        first.bias.copy_(torch.rand(5, generator=generator) * 0.1)
        rows = torch.randn(last.weight.shape, generator=generator).sign() * 0.1
        last.weight.copy_(rows * torch.linspace(0.5, 2.0, 6).reshape(6, 1, 1, 1))
        last.bias.fill_(UNIFORM_BIAS)
    return nn.Sequential(first, nn.ReLU(), last, nn.ReLU()).eval()


def _images() -> list[torch.Tensor]:
    return [torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(3)]


@pytest.fixture(scope="module")
def int8_file() -> bytes:
    return tflite_bytes(_model(), height=8, width=8, calibration=_images())


def _last_bias(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The int32 bias and its per-channel scales of the file's last CONV_2D."""
    interpreter = litert_interpreter(data, threads=1)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    bias = details[int(ops[-1]["inputs"][2])]
    return interpreter.get_tensor(bias["index"]), bias["quantization_parameters"]["scales"]


def _bias_span(data: bytes) -> tuple[int, int]:
    """Byte offset and length of the last CONV_2D's bias data inside ``data``."""
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    convs = [
        graph.Operators(o)
        for o in range(graph.OperatorsLength())
        if model.OperatorCodes(graph.Operators(o).OpcodeIndex()).BuiltinCode()
        == tflite.BuiltinOperator.CONV_2D
    ]
    table = model.Buffers(graph.Tensors(convs[-1].Inputs(2)).Buffer())._tab
    field = table.Offset(4)
    return table.Vector(field), table.VectorLen(field)


def _as_the_converter_writes_it(data: bytes) -> bytes:
    """``data`` with the last conv's bias integers all set to channel 0's (the converter's
    splat output, before the repair)."""
    start, length = _bias_span(data)
    values = np.frombuffer(data[start : start + length], dtype="<i4")
    broken = bytearray(data)
    broken[start : start + length] = np.full_like(values, values[0]).tobytes()
    return bytes(broken)


def test_the_file_adds_the_uniform_bias_in_every_channel(int8_file: bytes) -> None:
    values, scales = _last_bias(int8_file)
    assert len(set(scales.tolist())) == 6  # the case the converter gets wrong
    assert np.abs(values * scales - UNIFORM_BIAS).max() <= scales.max() / 2 + scales[0] / 2


def test_repair_requantizes_a_splat_bias_per_channel(int8_file: bytes) -> None:
    broken = _as_the_converter_writes_it(int8_file)
    values, scales = _last_bias(broken)
    assert np.abs(values * scales - UNIFORM_BIAS).max() > 0.1  # 0.75·(4 − 1)/4 off at worst
    repaired, report = repair_uniform_biases(broken)
    assert len(report) == 1 and report[0].channels == 6
    assert report[0].value == pytest.approx(UNIFORM_BIAS, abs=float(scales[0]))
    values, scales = _last_bias(repaired)
    assert np.abs(values * scales - UNIFORM_BIAS).max() <= scales.max() / 2 + scales[0] / 2
    assert len(repaired) == len(broken)


def test_a_correct_file_is_returned_unchanged(int8_file: bytes) -> None:
    data, report = repair_uniform_biases(int8_file)
    assert report == [] and data is int8_file


def test_a_zero_bias_is_not_a_splat_to_repair(int8_file: bytes) -> None:
    start, length = _bias_span(int8_file)
    zeroed = bytearray(int8_file)
    zeroed[start : start + length] = bytes(length)
    data, report = repair_uniform_biases(bytes(zeroed))
    assert report == [] and data == bytes(zeroed)


def test_a_shared_bias_buffer_is_refused(int8_file: bytes) -> None:
    broken = bytearray(_as_the_converter_writes_it(int8_file))
    model = tflite.Model.GetRootAsModel(broken, 0)
    graph = model.Subgraphs(0)
    biases = _conv_biases(model)
    bias_buffer = graph.Tensors(biases[-1]).Buffer()
    # Point the first conv's bias tensor at the same buffer (Tensor.buffer is field 2).
    first_bias = graph.Tensors(biases[0])
    position = first_bias._tab.Pos + first_bias._tab.Offset(8)
    broken[position : position + 4] = np.uint32(bias_buffer).tobytes()
    with pytest.raises(ValueError, match="shared"):
        repair_uniform_biases(bytes(broken))


def _conv_biases(model) -> list[int]:
    graph = model.Subgraphs(0)
    return [
        graph.Operators(o).Inputs(2)
        for o in range(graph.OperatorsLength())
        if model.OperatorCodes(graph.Operators(o).OpcodeIndex()).BuiltinCode()
        == tflite.BuiltinOperator.CONV_2D
    ]
