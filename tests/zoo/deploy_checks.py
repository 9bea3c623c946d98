"""What a compiled zoo network is checked for against its authors' deploy form.

* equivalence: float64 within 1e-9 relative at the example's size and another one, float32
  (the compiled module cast to it) within 1e-4 relative at two sizes;
* no BatchNorm left, the conv count at most the deploy form's;
* no conv denser than the deploy form's: the weight count (multiply-adds per output pixel) of
  every conv, and its groups, read from the compiled graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

import et
from et.compiler import count_convs
from et.compiler.pipeline import CONV_CALLS
from et.compiler.workspace import arguments
from et.testing import compare_outputs, probe_inputs


@dataclass(frozen=True)
class ConvShape:
    """One compiled conv: its weight shape ``[out, in/groups, kh, kw]`` and its groups."""

    weight: tuple[int, ...]
    groups: int

    @property
    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel: the weight's entry count."""
        count = 1
        for n in self.weight:
            count *= n
        return count


def _attribute(module: nn.Module, target: str) -> torch.Tensor:
    value: object = module
    for part in target.split("."):
        value = getattr(value, part)
    return value  # type: ignore[return-value]


def conv_shapes(module: fx.GraphModule) -> list[ConvShape]:
    """Every conv call of the compiled graph, in graph order."""
    shapes = []
    for node in module.graph.nodes:
        if node.target not in CONV_CALLS:
            continue
        values = arguments(node)
        weight = values["weight"]
        tensor = _attribute(module, str(weight.target)) if weight.op == "get_attr" else None
        if tensor is None:
            tensor = weight.meta["val"]
        shapes.append(ConvShape(tuple(tensor.shape), int(values["groups"])))
    return shapes


def compile_and_check(
    model: nn.Module,
    channels: int,
    sizes: tuple[tuple[int, int], tuple[int, int]],
    *,
    max_convs: int,
    tolerance32: float = 1e-4,
) -> et.compiler.Compiled:
    """Compile ``model`` (float64, eval) at ``sizes[0]`` and check it at both sizes."""
    model = model.double().eval()
    example = torch.rand(1, channels, *sizes[0], dtype=torch.float64)
    compiled = et.compile(model, (example,))
    ops = " ".join(compiled.certificate.ops_after)
    assert "batch_norm" not in ops, compiled.certificate.unfolded
    assert count_convs(compiled.module) <= max_convs, compiled.certificate.ops_after
    for size in sizes:
        inputs = probe_inputs((channels, *size), samples=4)
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
        report32 = compare_outputs(
            model, compiled.module, probe_inputs((channels, *size)), dtype=torch.float32
        )
        assert report32.max_rel_error <= tolerance32, report32.describe()
    return compiled
