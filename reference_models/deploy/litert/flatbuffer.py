"""Write a plain ETDS (``ETDSForInference``) as a LiteRT/TFLite flatbuffer, without TensorFlow.

    from reference_models.deploy.litert.flatbuffer import tflite_bytes
    from reference_models.deploy.litert.runtime import litert_interpreter
    data = tflite_bytes(model, height=360, width=640)        # NHWC float32 model
    interpreter = litert_interpreter(data, threads=2)        # LiteRT + XNNPACK (its default)

The network is the one the paper deployed: ``CONV_2D`` (3×3, SAME, fused ReLU) repeated, the
1×1 clip conv (fused ReLU) and ``DEPTH_TO_SPACE``. Layout conversions:

* activations are NHWC, weights OHWI: ``W_tfl[o, i, j, c] = W_torch[o, c, i, j]``;
* PixelShuffle reads channel ``c·s² + i·s + j`` for output pixel offset ``(i, j)`` and colour
  ``c``; TFLite ``DEPTH_TO_SPACE`` reads ``(i·s + j)·C + c``. So the clip conv's output ``k_tfl
  = (i·s + j)·C + c`` takes PyTorch's row ``c·s² + i·s + j``; the dummy channels (ET width
  alignment) are dropped, which is exact because they are sliced off before PixelShuffle.

Needs the ``tflite`` (schema bindings with builders) and ``flatbuffers`` packages; running it
needs ``ai-edge-litert``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reference_models.architectures.etds import ETDSForInference

__all__ = ["TFLiteConv", "depth_to_space_order", "tflite_bytes"]

_SCHEMA_VERSION = 3
_BUFFER_ALIGNMENT = 16


@dataclass(frozen=True)
class TFLiteConv:
    """One ``CONV_2D`` with fused ReLU: OHWI float32 ``weight`` and its ``bias``."""

    weight: np.ndarray
    bias: np.ndarray


def depth_to_space_order(colors: int, scale: int) -> np.ndarray:
    """``order[k_tfl] = k_torch``: the PyTorch PixelShuffle channel that TFLite DEPTH_TO_SPACE
    channel ``k_tfl = (i·s + j)·C + c`` must carry, namely ``c·s² + i·s + j``."""
    order = np.empty(colors * scale * scale, dtype=np.int64)
    for i in range(scale):
        for j in range(scale):
            for c in range(colors):
                order[(i * scale + j) * colors + c] = c * scale * scale + i * scale + j
    return order


def _ohwi(conv: torch.nn.Conv2d) -> TFLiteConv:
    weight = conv.weight.detach().cpu().to(torch.float32).permute(0, 2, 3, 1).numpy()
    bias = conv.bias.detach().cpu().to(torch.float32).numpy()
    return TFLiteConv(np.ascontiguousarray(weight), np.ascontiguousarray(bias))


def etds_convs(model: ETDSForInference) -> tuple[list[TFLiteConv], int]:
    """The convs of ``model`` in TFLite layout (clip conv permuted for DEPTH_TO_SPACE) and the
    block size."""
    if not isinstance(model, ETDSForInference):
        raise TypeError(f"need ETDSForInference (convert the model first), got {type(model)}")
    convs = [_ohwi(model.conv_first)]
    convs += [_ohwi(conv) for conv in model.backbone_convs]
    convs.append(_ohwi(model.conv_last))
    clip = _ohwi(model.conv_clip)
    order = depth_to_space_order(model.colors, model.upscale)
    convs.append(TFLiteConv(clip.weight[order], clip.bias[order]))
    return convs, model.upscale


def _bytes_vector(builder, data: bytes) -> int:
    """A ubyte vector aligned to 16 bytes (XNNPACK reads weights in place)."""
    builder.StartVector(1, len(data), _BUFFER_ALIGNMENT)
    builder.head = builder.head - len(data)
    builder.Bytes[builder.head : builder.head + len(data)] = data
    return builder.EndVector()


def _int_vector(builder, start, values: list[int]) -> int:
    start(builder, len(values))
    for value in reversed(values):
        builder.PrependInt32(value)
    return builder.EndVector()


def _offset_vector(builder, start, offsets: list[int]) -> int:
    start(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def tflite_bytes(model: ETDSForInference, *, height: int, width: int) -> bytes:
    """The TFLite flatbuffer of ``model`` for a ``1×height×width×C`` float32 NHWC input."""
    import flatbuffers
    import tflite

    convs, scale = etds_convs(model)
    colors = model.colors
    builder = flatbuffers.Builder(1 << 16)

    # Buffers: 0 is the empty sentinel; then weight, bias per conv.
    payloads: list[bytes] = [b""]
    for conv in convs:
        payloads += [conv.weight.tobytes(), conv.bias.tobytes()]
    buffer_offsets = []
    for payload in payloads:
        data = _bytes_vector(builder, payload) if payload else None
        tflite.BufferStart(builder)
        if data is not None:
            tflite.BufferAddData(builder, data)
        buffer_offsets.append(tflite.BufferEnd(builder))

    # Tensors: activations (buffer 0) and constants.
    tensors: list[tuple[str, list[int], int]] = [("input", [1, height, width, colors], 0)]
    operators: list[tuple[int, list[int], list[int], str]] = []
    current = 0
    for index, conv in enumerate(convs):
        weight_t = len(tensors)
        tensors.append((f"conv{index}/weight", list(conv.weight.shape), 1 + 2 * index))
        tensors.append((f"conv{index}/bias", list(conv.bias.shape), 2 + 2 * index))
        out_t = len(tensors)
        tensors.append((f"conv{index}/relu", [1, height, width, conv.weight.shape[0]], 0))
        operators.append((0, [current, weight_t, weight_t + 1], [out_t], "conv"))
        current = out_t
    output_t = len(tensors)
    tensors.append(("output", [1, height * scale, width * scale, colors], 0))
    operators.append((1, [current], [output_t], "d2s"))

    tensor_offsets = []
    for name, shape, buffer in tensors:
        name_offset = builder.CreateString(name)
        shape_offset = _int_vector(builder, tflite.TensorStartShapeVector, shape)
        tflite.TensorStart(builder)
        tflite.TensorAddShape(builder, shape_offset)
        tflite.TensorAddType(builder, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(builder, buffer)
        tflite.TensorAddName(builder, name_offset)
        tensor_offsets.append(tflite.TensorEnd(builder))

    operator_offsets = []
    for opcode, inputs, outputs, kind in operators:
        if kind == "conv":
            tflite.Conv2DOptionsStart(builder)
            tflite.Conv2DOptionsAddPadding(builder, tflite.Padding.SAME)
            tflite.Conv2DOptionsAddStrideH(builder, 1)
            tflite.Conv2DOptionsAddStrideW(builder, 1)
            tflite.Conv2DOptionsAddDilationHFactor(builder, 1)
            tflite.Conv2DOptionsAddDilationWFactor(builder, 1)
            tflite.Conv2DOptionsAddFusedActivationFunction(
                builder, tflite.ActivationFunctionType.RELU
            )
            options, options_type = (
                tflite.Conv2DOptionsEnd(builder),
                tflite.BuiltinOptions.Conv2DOptions,
            )
        else:
            tflite.DepthToSpaceOptionsStart(builder)
            tflite.DepthToSpaceOptionsAddBlockSize(builder, scale)
            options, options_type = (
                tflite.DepthToSpaceOptionsEnd(builder),
                tflite.BuiltinOptions.DepthToSpaceOptions,
            )
        inputs_offset = _int_vector(builder, tflite.OperatorStartInputsVector, inputs)
        outputs_offset = _int_vector(builder, tflite.OperatorStartOutputsVector, outputs)
        tflite.OperatorStart(builder)
        tflite.OperatorAddOpcodeIndex(builder, opcode)
        tflite.OperatorAddInputs(builder, inputs_offset)
        tflite.OperatorAddOutputs(builder, outputs_offset)
        tflite.OperatorAddBuiltinOptionsType(builder, options_type)
        tflite.OperatorAddBuiltinOptions(builder, options)
        operator_offsets.append(tflite.OperatorEnd(builder))

    tensors_vec = _offset_vector(builder, tflite.SubGraphStartTensorsVector, tensor_offsets)
    inputs_vec = _int_vector(builder, tflite.SubGraphStartInputsVector, [0])
    outputs_vec = _int_vector(builder, tflite.SubGraphStartOutputsVector, [output_t])
    operators_vec = _offset_vector(builder, tflite.SubGraphStartOperatorsVector, operator_offsets)
    graph_name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensors_vec)
    tflite.SubGraphAddInputs(builder, inputs_vec)
    tflite.SubGraphAddOutputs(builder, outputs_vec)
    tflite.SubGraphAddOperators(builder, operators_vec)
    tflite.SubGraphAddName(builder, graph_name)
    subgraph = tflite.SubGraphEnd(builder)

    opcode_offsets = []
    for code in (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTH_TO_SPACE):
        tflite.OperatorCodeStart(builder)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, code)  # codes < 127: both fields
        tflite.OperatorCodeAddBuiltinCode(builder, code)
        tflite.OperatorCodeAddVersion(builder, 1)
        opcode_offsets.append(tflite.OperatorCodeEnd(builder))

    opcodes_vec = _offset_vector(builder, tflite.ModelStartOperatorCodesVector, opcode_offsets)
    subgraphs_vec = _offset_vector(builder, tflite.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = _offset_vector(builder, tflite.ModelStartBuffersVector, buffer_offsets)
    description = builder.CreateString("etds ETDSForInference")
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, _SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(builder, opcodes_vec)
    tflite.ModelAddSubgraphs(builder, subgraphs_vec)
    tflite.ModelAddBuffers(builder, buffers_vec)
    tflite.ModelAddDescription(builder, description)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
