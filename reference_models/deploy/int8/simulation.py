"""Simulated INT8 of any network (its ``torch.export`` graph), to score layouts without a runtime.

    from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db
    db = simulated_int8_fidelity_db(model, images)   # PSNR of fake-INT8 against float64, dB

The scheme is the one LiteRT's and ONNX Runtime's post-training quantizers apply (as
:mod:`reference_models.deploy.litert.export` configures LiteRT), on a whole ATen graph:

* every conv weight int8 symmetric per output channel
  (:func:`fake_quant_weight`);
* the input in [0, 1] and every other value the graph computes int8 affine per tensor over its
  calibration range (:func:`fake_quant_activation`),
  except where the runtimes store nothing: a conv read only by a ReLU (fused into it) and the
  ops that only move values (PixelShuffle, slices, reshapes, ``et.compile``'s size check),
  which keep their input's levels.

On a plain conv chain these are the tensors LiteRT stores: every conv output but one a ReLU
reads, and every activation (a PReLU/LeakyReLU runs as a float op between a quantized conv
output and a re-quantized activation). It also covers graphs that are not one chain (a residual
add the compiler could not fold, two streams). The output compared is the network's first
output, clamped to [0, 1] as exported.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import fx, nn

from et.testing import first_output
from reference_models.deploy.compiled_network import CompiledNetwork
from reference_models.deploy.export_contract import ClampedFirstOutput
from reference_models.deploy.int8.graph_chains import graph_in_dtype, same_size_batches

__all__ = [
    "SCALE_FLOOR",
    "fake_quant_activation",
    "fake_quant_weight",
    "simulated_int8_fidelity_db",
]

#: The smallest scale the converter's observers give (``eps = 2**-12`` in litert-torch's
#: ``get_symmetric_quantization_config``): a weight row with ``max|W| < 127·2⁻¹²`` or an
#: activation spanning less than ``255·2⁻¹²`` gets coarser levels than its range would.
SCALE_FLOOR = 2.0**-12


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel int8 rounding of a conv weight (levels −127…127,
    ``s = max(max|W|/127, 2⁻¹²)``)."""
    scale = (weight.abs().amax(dim=(1, 2, 3), keepdim=True) / 127).clamp_min(SCALE_FLOOR)
    return torch.round(weight / scale) * scale


def fake_quant_activation(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Affine per-tensor int8 rounding over ``[min(0, low), max(0, high)]`` (levels −128…127,
    ``s = max((hi − lo)/255, 2⁻¹²)``)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / 255, SCALE_FLOOR)
    zero_point = round(-128 - low / scale)
    return (torch.clamp(torch.round(x / scale) + zero_point, -128, 127) - zero_point) * scale


aten = torch.ops.aten
#: Ops that only move values: the runtimes keep their input's quantization.
_MOVES = {
    aten.pixel_shuffle.default,
    aten.slice.Tensor,
    aten.view.default,
    aten.reshape.default,
    aten.permute.default,
    aten.clone.default,
    aten.contiguous.default,
}
_CONVS = (aten.conv2d.default, aten.convolution.default)


def _stored(node: fx.Node) -> bool:
    """Whether the runtime stores ``node``'s output as an int8 tensor of its own."""
    if node.op != "call_function" or node.target in _MOVES:
        return False
    if getattr(node.target, "__name__", "") in {"require_size", "getitem"}:
        return False
    if node.target in _CONVS:
        users = list(node.users)
        return not (len(users) == 1 and users[0].target is aten.relu.default)
    return True


class _FakeInt8(fx.Interpreter):
    """Runs the graph observing (``ranges`` is ``None``) or fake-quantizing its stored values."""

    def __init__(self, module: fx.GraphModule, ranges: dict[fx.Node, list[float]] | None) -> None:
        super().__init__(module)
        self.ranges = ranges
        self.observed: dict[fx.Node, list[float]] = {}

    def run_node(self, n: fx.Node) -> object:
        if self.ranges is not None and n.op == "call_function" and n.target in _CONVS:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            args = (args[0], fake_quant_weight(args[1]), *args[2:])
            result = n.target(*args, **kwargs)
        else:
            result = super().run_node(n)
        if n.op == "placeholder" and self.ranges is not None:
            return fake_quant_activation(result, 0.0, 1.0)
        if not isinstance(result, torch.Tensor) or not result.is_floating_point():
            return result
        if not _stored(n):
            return result
        if self.ranges is None:
            low, high = float(result.min()), float(result.max())
            seen = self.observed.setdefault(n, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)
            return result
        return fake_quant_activation(result, *self.ranges[n])


def _float64_graph(
    model: nn.Module, example: torch.Tensor
) -> tuple[fx.GraphModule, Callable[[object], torch.Tensor]]:
    """The ATen graph of ``model`` in float64 and what turns its output into the exported
    image: a compiled network's own program (no new capture), else ``torch.export`` of
    ``clamp(model(x)[0], 0, 1)``."""
    if isinstance(model, CompiledNetwork):
        program = graph_in_dtype(model.program, torch.float64)
        return program, lambda output: torch.clamp(first_output(output), 0.0, 1.0)
    wrapped = ClampedFirstOutput(copy.deepcopy(model).double().eval()).eval()
    # the calibration images run as one batch: a batch of 2 keeps the batch size symbolic
    batch = {0: torch.export.Dim.AUTO}
    example = example[:1].expand(2, *example.shape[1:])
    with torch.no_grad():
        graph = torch.export.export(
            wrapped, (example.to(torch.float64),), dynamic_shapes=(batch,)
        ).module()
    return graph, first_output


def simulated_int8_fidelity_db(model: nn.Module, images: Sequence[torch.Tensor]) -> float:
    """PSNR (dB, peak 1) of the fake-INT8 ``clamp(model(x)[0], 0, 1)`` against its float64 run,
    over ``images`` (``1×C×h×w`` in [0, 1])."""
    graph, finish = _float64_graph(model, images[0])
    batches = same_size_batches(images)
    observer = _FakeInt8(graph, None)
    squared, count = 0.0, 0
    with torch.no_grad():
        exact = [finish(observer.run(batch)) for batch in batches]
        for batch, expected in zip(batches, exact, strict=True):
            got = finish(_FakeInt8(graph, observer.observed).run(batch))
            squared += float(((got - expected) ** 2).sum())
            count += expected.numel()
    mse = squared / max(count, 1)
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)
