"""The check every zoo family of issue 26 passes: ``et.compile`` reaches the authors' deploy form.

:func:`check_deploy_form` compiles a float64 model and requires: no more convs and no more
branch joins (``add``, ``sub``, ``cat``) than the authors' deploy form (exactly as many with
``exact=True``, for the tests that say what is left), no more conv multiply-adds per output
pixel than the deploy form's when it states them (:func:`conv_macs`), no BatchNorm left, no op
computing from constants alone (a kernel built in ``forward`` is evaluated once), float64 equal
within 1e-9 relative at the example's size and at another one, float32 within ``tolerance32``
(1e-4) relative plus 16× the original's own float32 rounding at both. :func:`conv_shapes`
reads each compiled conv's weight shape and groups, for the tests that pin the deploy form's
convs one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode

import et
from et.compiler import Compiled, count_convs
from et.compiler.pipeline import CONV_CALLS
from et.compiler.workspace import arguments
from et.testing import compare_outputs, probe_inputs

JOINS = ("add.Tensor", "sub.Tensor", "cat.default")


@dataclass(frozen=True)
class DeployForm:
    """What the authors' deploy form holds: its convs, its branch joins (sums, concats) and,
    where stated, its convs' multiply-adds per output pixel at the example's size (worked out
    by hand from the paper's deploy architecture, :func:`conv_macs`'s count)."""

    convs: int
    joins: int = 0
    macs: float | None = None


@dataclass(frozen=True)
class ConvShape:
    """One compiled conv: its weight shape ``[out, in/groups, kh, kw]`` and its groups."""

    weight: tuple[int, ...]
    groups: int

    @property
    def macs_per_pixel(self) -> int:
        """Multiply-adds per pixel of its own output: the weight's entry count."""
        return math.prod(self.weight)


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


class _ConvMacs(TorchDispatchMode):
    """Sums ``out.numel() · (C_in / g) · k_h · k_w`` over every ``aten.convolution`` run (a
    conv's multiply-adds: each output entry is one dot product of that length)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket is torch.ops.aten.convolution:
            self.total += out.numel() * math.prod(args[1].shape[1:])
        return out


def conv_macs(module: nn.Module, example: torch.Tensor) -> float:
    """Multiply-adds of every conv ``module`` runs on ``example`` (batch 1), per pixel of its
    (first) output: each conv's at its own output size, so a strided or pooled-to-1×1 conv
    counts for what it computes."""
    counter = _ConvMacs()
    with torch.no_grad(), counter:
        output = module(example)
    first = output[0] if isinstance(output, tuple | list) else output
    return counter.total / math.prod(first.shape[2:])


def joins(compiled: Compiled) -> int:
    """Branch joins left in the compiled graph (sums, differences, concatenations)."""
    return sum(compiled.certificate.ops_after.get(name, 0) for name in JOINS)


def constant_only_ops(module: fx.GraphModule) -> list[str]:
    """The calls whose every input is a constant (nothing reaches them from an input)."""
    reached: set[fx.Node] = set()
    for node in module.graph.nodes:
        if node.op == "placeholder" or any(a in reached for a in node.all_input_nodes):
            reached.add(node)
    return [n.name for n in module.graph.nodes if n.op == "call_function" and n not in reached]


def check_deploy_form(
    model: nn.Module,
    shape: tuple[int, int, int],
    deploy: DeployForm,
    other_size: tuple[int, int] | None = None,
    *,
    exact: bool = False,
    tolerance32: float = 1e-4,
) -> Compiled:
    """Compile ``model`` on a ``(1, *shape)`` example and check it against ``deploy`` (see the
    module docstring); ``other_size`` is the second size checked (default ``(h + 3, w + 2)``)."""
    model = model.double().eval()
    channels, height, width = shape
    example = torch.rand(1, *shape, dtype=torch.float64)
    compiled = et.compile(model, (example,))
    certificate = compiled.certificate
    counts = (count_convs(compiled.module), joins(compiled))
    if exact:
        assert counts == (deploy.convs, deploy.joins), (certificate.ops_after, deploy)
    else:
        assert counts[0] <= deploy.convs and counts[1] <= deploy.joins, (
            certificate.ops_after,
            deploy,
        )
    if deploy.macs is not None:
        macs = conv_macs(compiled.module, example)
        assert macs <= deploy.macs, (macs, deploy, conv_shapes(compiled.module))
    assert not any("batch_norm" in name for name in certificate.ops_after), certificate.unfolded
    assert constant_only_ops(compiled.module) == []
    other = other_size or (height + 3, width + 2)
    for size in ((height, width), other):
        inputs = probe_inputs((channels, *size), samples=4)
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
        report32 = compare_outputs(
            model, compiled.module, probe_inputs((channels, *size)), dtype=torch.float32
        )
        # a deep net's float32 output is off by its own rounding already: the compiled one may
        # differ by tolerance32 relative plus 16× that (et.testing's standard allowance)
        assert report32.max_abs_error <= report32.allowed(atol=0.0, rtol=tolerance32), (
            report32.describe()
        )
    return compiled
