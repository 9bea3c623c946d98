"""Bind a proof to the code: run the library's transform over every branch of its code.

A proof derives its formula once; this module makes the proof *drive* the transform in ``et/``
on one instance per code branch (bias or none, groups, padding modes, strides, dilations,
transposed or not, …) and compare, in float64, the original computation with the transformed
module on non-constant probes. Any branch where the code departs from the theorem (a dropped
bias, a permuted slope vector, a padding mode that was not carried over) fails the proof with
the branch's parameters in the message. The appendix prints the branches in one line and
``appendix-cases.json`` lists them all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from proofs.contract import Derivation

Forward = Callable[[torch.Tensor], torch.Tensor]
# A branch builds (original, transformed, input shape without the batch axis).
Build = Callable[[], tuple[Forward, Forward, tuple[int, ...]]]

TOLERANCE = 1e-10


def grid(**axes: Sequence[object]) -> list[dict[str, object]]:
    """Every combination of the named axes, in order (``grid(bias=(True, False), g=(1, 2))``)."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Fill every parameter (and BatchNorm's running statistics) with seeded float64 noise;
    variances are kept positive. Returns ``module`` in eval mode, float64."""
    generator = torch.Generator().manual_seed(seed)
    module = module.double().eval()
    with torch.no_grad():
        for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
            if tensor.dtype != torch.float64:
                continue
            values = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return module


def random_rectifier(kind: str, channels: int) -> nn.Module:
    """A float64 rectifier of ``kind``: "ReLU", "LeakyReLU" (slope 0.3), "identity", "PReLU
    shared" or "PReLU per channel" (slopes drawn with seed 3), for rules that act through one."""
    if kind == "PReLU shared":
        return randomize(nn.PReLU(1, dtype=torch.float64), 3)
    if kind == "PReLU per channel":
        return randomize(nn.PReLU(channels, dtype=torch.float64), 3)
    return {"ReLU": nn.ReLU(), "LeakyReLU": nn.LeakyReLU(0.3), "identity": nn.Identity()}[kind]


def probes(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Two non-constant float64 inputs: seeded noise, and a ramp that differs along every axis
    (so flipped kernels, permuted channels and wrong borders all show)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((1, *shape), generator=generator, dtype=torch.float64)
    count = 1
    for n in shape:
        count *= n
    ramp = torch.linspace(-1.0, 2.0, count, dtype=torch.float64).reshape(1, *shape) ** 2
    return torch.cat([noise, ramp])


def check_branches(
    d: Derivation,
    claim: str,
    branches: Iterable[tuple[Mapping[str, object], Build]],
    tolerance: float = TOLERANCE,
) -> None:
    """Run every branch; record one computed step listing them, or fail on the first branch
    whose transformed module differs from the original by more than ``tolerance``."""
    seen: list[dict[str, object]] = []
    for parameters, build in branches:
        original, transformed, shape = build()
        x = probes(shape, seed=len(seen))
        with torch.no_grad():
            error = (original(x) - transformed(x)).abs().max().item()
        label = ", ".join(f"{k}={v}" for k, v in parameters.items())
        d.true(
            f"{claim} [{label}]",
            error <= tolerance,
            f"the transform differs from the original by {error:.3e} on the branch {label}",
        )
        d.result.steps.pop()  # one summary step below, not one per branch
        seen.append({k: _text(v) for k, v in parameters.items()})
    d.checked_cases(claim, seen)


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def random_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    *,
    seed: int,
    **options: object,
) -> nn.Conv2d:
    """A float64 ``nn.Conv2d`` with seeded random weights (``options`` as for ``nn.Conv2d``)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, **options)  # type: ignore[arg-type]
    return randomize(conv, seed)  # type: ignore[return-value]


class Composed(nn.Module):
    """``outer(inner(x))`` for plain callables (the original side of a branch)."""

    def __init__(self, fn: Forward) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
