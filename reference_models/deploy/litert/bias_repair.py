"""Repair the per-channel int32 biases that the LiteRT converter quantizes from a uniform vector.

    from reference_models.deploy.litert.bias_repair import repair_uniform_biases
    data, repaired = repair_uniform_biases(data)   # data: the bytes of an INT8 .tflite

The converter bug. ``litert-torch`` lowers a constant whose entries are all equal as an MLIR
*splat* (one value standing for the whole tensor), and the TFLite quantizer then turns a splat
float bias into a splat int32 bias: every channel gets ``q = round(b / s_0)``, the integer of
channel 0, while the file declares the per-channel scales ``s_c = s_in · s_w,c`` it should have
used. Channel c then adds ``q · s_c = b · s_c / s_0`` instead of ``b``.

Where it bites. Every ET form ends with the clip conv, whose bias is the constant 1 (it computes
``1 − ReLU(1 − t)``). Its rows are ±identity rows, so its weight scales are equal as long as
nothing rescales the channels it reads; once the E10 INT8 layout rescales them by α_c, the
weight scales differ, and each output pixel is shifted by ``s_c/s_0 − 1`` (measured on ABPN-ET:
up to 0.039, 10/255; INT8 fidelity 34.9 dB instead of 47.0 dB). A bias of 0 is unaffected
(``0 · s_c = 0``), and so is any conv whose weight scales are all equal.

The repair. A per-channel int32 bias whose integers are all equal and non-zero while its scales
are not is such a splat: its value is ``b = q · s_0`` (channel 0 was quantized correctly, so
within ``s_0/2``), and channel c is rewritten as ``round(b / s_c)`` in place in the flatbuffer
(same length, same buffer). A bias buffer that another tensor shares is refused rather than
changed for both. A genuine per-channel bias with equal integers would need ``b_c ∝ s_c``
exactly; :func:`~reference_models.deploy.litert.export.export_tflite` measures the repaired file
against PyTorch before keeping it in any case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RepairedBias", "repair_uniform_biases"]

#: Field offset of ``Buffer.data`` in the flatbuffer vtable (schema field 0).
_BUFFER_DATA_FIELD = 4


@dataclass(frozen=True)
class RepairedBias:
    """One repaired bias: the operator's index, the splat value and how many channels."""

    operator: int
    value: float
    channels: int


def _convolutions(tflite) -> set[int]:
    ops = tflite.BuiltinOperator
    return {ops.CONV_2D, ops.DEPTHWISE_CONV_2D, ops.TRANSPOSE_CONV, ops.FULLY_CONNECTED}


def repair_uniform_biases(data: bytes) -> tuple[bytes, list[RepairedBias]]:
    """``data`` with every splat-quantized per-channel int32 bias requantized channel by
    channel (see the module doc), and the list of what was repaired (empty: unchanged bytes).

    Raises :class:`ValueError` when a bias to repair shares its buffer with another tensor.
    """
    import tflite

    buffer = bytearray(data)
    model = tflite.Model.GetRootAsModel(buffer, 0)
    kinds = _convolutions(tflite)
    repaired: list[RepairedBias] = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        readers: dict[int, int] = {}
        for t in range(graph.TensorsLength()):
            index = graph.Tensors(t).Buffer()
            readers[index] = readers.get(index, 0) + 1
        for o in range(graph.OperatorsLength()):
            operator = graph.Operators(o)
            code = model.OperatorCodes(operator.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin not in kinds or operator.InputsLength() < 3 or operator.Inputs(2) < 0:
                continue
            tensor = graph.Tensors(operator.Inputs(2))
            quantization = tensor.Quantization()
            if tensor.Type() != tflite.TensorType.INT32 or quantization is None:
                continue
            scales = quantization.ScaleAsNumpy().astype(np.float64)
            if not isinstance(scales, np.ndarray) or scales.size < 2:
                continue
            table = model.Buffers(tensor.Buffer())._tab
            field = table.Offset(_BUFFER_DATA_FIELD)
            if not field or table.VectorLen(field) != 4 * scales.size:
                continue  # no data in the flatbuffer (external buffer): nothing to repair here
            start = table.Vector(field)
            values = np.frombuffer(bytes(buffer[start : start + 4 * scales.size]), dtype="<i4")
            if values[0] == 0 or not (values == values[0]).all() or (scales == scales[0]).all():
                continue
            if readers[tensor.Buffer()] > 1:
                raise ValueError(f"operator {o}: its splat bias buffer is shared; cannot repair")
            value = float(values[0]) * float(scales[0])
            fixed = np.clip(np.round(value / scales), -(2**31), 2**31 - 1).astype("<i4")
            buffer[start : start + 4 * scales.size] = fixed.tobytes()
            repaired.append(RepairedBias(o, value, int(scales.size)))
    return (bytes(buffer) if repaired else data), repaired
