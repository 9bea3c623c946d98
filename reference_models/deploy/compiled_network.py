"""A network folded by ``et.compile`` (or read from the ``.pt2`` ``etds compile`` writes) as a
super-resolution model the deploy code can export, lay out and score.

    from reference_models.deploy.compiled_network import compile_network, load_pt2
    network = load_pt2("net.pt2")                 # CompiledNetwork: network.program is the graph
    network = compile_network(user_module, colors=3, height=64, width=64, label="net.py:build")

The program is an fx ``GraphModule`` of ATen calls; :class:`CompiledNetwork` returns its first
output (as :class:`~reference_models.deploy.export_contract.ClampedFirstOutput` expects) and says
how many
colour channels it reads (``colors``), which the exporters need and a graph does not declare.
The INT8 layout of such a network works on ``program``
(:mod:`reference_models.deploy.int8.layout`); :meth:`CompiledNetwork.with_program` wraps the
laid-out graph the same way.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import fx, nn

from et.testing import first_output

__all__ = ["CompiledNetwork", "compile_network", "load_pt2", "program_colors"]

# Copying a program loaded from a .pt2 (every layout candidate is a copy) makes torch's pytree
# warn about its own deprecated LeafSpec check, once per copy: noise to a user, not a problem.
warnings.filterwarnings(
    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
)


class CompiledNetwork(nn.Module):
    """``x ↦ program(x)[0]`` (or ``program(x)`` for one output) with ``colors`` input channels;
    ``arch`` names where it came from (reports print it)."""

    def __init__(self, program: fx.GraphModule, *, colors: int, arch: str) -> None:
        super().__init__()
        self.program = program
        self.colors = colors
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return first_output(self.program(x))

    def train(self, mode: bool = True) -> CompiledNetwork:
        """Set this wrapper's flag only: a program loaded from a ``.pt2`` refuses ``.train()``
        and ``.eval()``, and a compiled program has no mode-dependent op (``et.compile``
        captures the eval-mode function)."""
        self.training = mode
        return self

    def with_program(self, program: fx.GraphModule) -> CompiledNetwork:
        """The same network description around another (e.g. laid-out) program."""
        return CompiledNetwork(program, colors=self.colors, arch=self.arch)


def program_colors(program: fx.GraphModule) -> int:
    """The input channels of the first ``aten.conv2d``/``aten.convolution`` of ``program``
    (weight ``O×(C/groups)×k×k``); raises ``ValueError`` where there is none."""
    from reference_models.deploy.int8.graph_chains import (
        CONV_TARGETS,
        graph_constant,
        schema_arguments,
    )

    for node in program.graph.nodes:
        if node.op == "call_function" and node.target in CONV_TARGETS:
            arguments = schema_arguments(node)
            weight = graph_constant(program, arguments["weight"])
            if weight is None and isinstance(arguments["weight"], fx.Node):
                weight = arguments["weight"].meta.get("val")
            if isinstance(weight, torch.Tensor):
                return int(weight.shape[1]) * int(arguments["groups"])
    raise ValueError("the program has no convolution to read its input channels from")


def load_pt2(path: str | os.PathLike[str]) -> CompiledNetwork:
    """The program of a ``.pt2`` file (``torch.export.load(...).module()``) as a network."""
    with open(path, "rb") as file:  # a file object: any name, with or without ".pt2"
        program = torch.export.load(file).module()
    return CompiledNetwork(program, colors=program_colors(program), arch=os.fspath(path))


def compile_network(
    model: nn.Module,
    *,
    colors: int,
    height: int,
    width: int,
    label: str,
    domain: tuple[float, float] = (0.0, 1.0),
) -> CompiledNetwork:
    """``et.compile`` of ``model`` on a random ``1×colors×height×width`` example from
    ``domain`` (seed 0, as ``etds compile``); raises what ``et.compile`` raises."""
    import et

    low, high = domain
    generator = torch.Generator().manual_seed(0)
    example = low + (high - low) * torch.rand(1, colors, height, width, generator=generator)
    compiled = et.compile(model.eval(), (example,), domain=domain)
    return CompiledNetwork(compiled.module.eval(), colors=colors, arch=label)
