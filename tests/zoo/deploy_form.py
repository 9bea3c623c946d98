"""The check every zoo family of issue 26 passes: ``et.compile`` reaches the authors' deploy form.

``check_deploy_form`` compiles a float64 model and requires: no more convs and no more branch
joins (``add``, ``sub``, ``cat``) than the authors' deploy form, no BatchNorm left, no op
computing from constants alone (a kernel built in ``forward`` is evaluated once), float64
equal within 1e-9 relative at the example's size and at another one, float32 within 1e-4
relative at two sizes (the example's and another).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

import et
from et.compiler import Compiled, count_convs
from et.testing import compare_outputs, probe_inputs

JOINS = ("add.Tensor", "sub.Tensor", "cat.default")


@dataclass(frozen=True)
class DeployForm:
    """What the authors' deploy form holds: its convs and its branch joins (sums, concats)."""

    convs: int
    joins: int = 0


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
) -> Compiled:
    """Compile ``model`` on a ``(1, *shape)`` example and check it against ``deploy``."""
    model = model.double().eval()
    channels, height, width = shape
    example = torch.rand(1, *shape, dtype=torch.float64)
    compiled = et.compile(model, (example,))
    certificate = compiled.certificate
    assert count_convs(compiled.module) <= deploy.convs, (certificate.ops_after, deploy)
    assert joins(compiled) <= deploy.joins, (certificate.ops_after, deploy)
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
        assert report32.max_rel_error <= 1e-4, report32.describe()
    return compiled
