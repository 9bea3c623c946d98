"""Counterexamples (or the reason there is none) for hypotheses that many rules share.

Each function records, on a :class:`~proofs.contract.Derivation`, what happens when one
hypothesis is dropped: a counterexample evaluates the theorem's two sides on small numbers
(computed with :mod:`proofs.symbolic_ops` where a convolution is involved) and the derivation
checks that they differ; where dropping the hypothesis leaves one side undefined, the entry
says "none known" and why.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.contract import torch_semantics_violation
from proofs.contract import Derivation, ProofFailure
from proofs.symbolic_ops import conv2d


def _row(*values: int) -> np.ndarray:
    """A 1×1×n image (one channel, one row) of integers."""
    return np.array([[[sp.Integer(v) for v in values]]], dtype=object)


def _taps(*values: int, out_channels: int = 1, in_channels: int = 1) -> np.ndarray:
    return np.array(
        [[[[sp.Integer(v) for v in values]]] * in_channels] * out_channels, dtype=object
    )


def shapes_must_match(d: Derivation, precondition: str, what: str) -> None:
    """A channel-count hypothesis: without it one side is not defined."""
    d.none_known(
        precondition,
        f"without it {what} do not match: one side is undefined (the code refuses such modules)",
    )


def groups_are_dense(d: Derivation, precondition: str) -> None:
    """``groups = 1``: grouped weights are block-diagonal dense ones."""
    d.none_known(
        precondition,
        "a grouped conv is the dense conv with a block-diagonal weight, and with that dense "
        "weight the statement still holds; the hypothesis restricts the code (which writes one "
        "dense weight), not the mathematics",
    )


def other_consumer(d: Derivation, precondition: str, intermediate: str) -> None:
    """The intermediate tensor is also read elsewhere: after the fold it no longer exists."""
    y, t, m = sp.Integer(1), sp.Integer(2), sp.Integer(0)
    d.counterexample(
        precondition,
        f"a second module reads {intermediate} y = 1; after the fold it reads the folded "
        "module's output instead, t·y + m with t = 2, m = 0",
        y,
        t * y + m,
    )


def stride_between(d: Derivation, precondition: str) -> None:
    """A strided first conv: the composite reads every other pixel, one conv cannot."""
    x = _row(1, 2, 3, 4)
    composite = conv2d(conv2d(x, _taps(1), stride=(1, 2)), _taps(1))
    merged = conv2d(x, _taps(1))
    d.counterexample(
        precondition,
        "x = (1, 2, 3, 4), first conv 1 tap of weight 1 with stride 2, second 1 tap of weight 1: "
        "output 1 of the composite is x[2], of the merged conv x[1]",
        composite[0, 0, 1],
        merged[0, 0, 1],
    )


def different_inputs(d: Derivation, precondition: str, combine: str) -> None:
    """Branches that read different tensors cannot share one conv on one input."""
    x1, x2 = _row(1), _row(2)
    original = conv2d(x2, _taps(1))[0, 0, 0]
    merged = conv2d(x1, _taps(1))[0, 0, 0]
    d.counterexample(
        precondition,
        f"two 1×1 branches of weight 1 read x₁ = 1 and x₂ = 2 and are {combine}; the merged conv "
        "reads x₁ only: the second branch's value",
        original,
        merged,
    )


def padding_modes_differ(d: Derivation, precondition: str) -> None:
    """One branch pads by reflection, the merged conv with zeros."""
    x = _row(1, 2, 3)
    reflected = np.array([[[x[0, 0, 1], *x[0, 0], x[0, 0, 1]]]], dtype=object)
    kernel = _taps(1, 0, 0)
    d.counterexample(
        precondition,
        "x = (1, 2, 3), a 3-tap branch (1, 0, 0) with padding 1 in reflect mode, merged into a "
        "zero-padded conv: output 0 reads x[1] = 2 in the original and the zero border in the "
        "merged conv",
        conv2d(reflected, kernel)[0, 0, 0],
        conv2d(x, kernel, padding=(0, 1))[0, 0, 0],
    )


def structural(d: Derivation, precondition: str, role: str) -> None:
    """A hypothesis that names what the rewrite applies to, not a condition of the identity."""
    d.none_known(
        precondition,
        f"it names {role}; the identity itself does not depend on it, and with anything else "
        "the rewrite has no left side to apply to",
    )


def undefined_without(d: Derivation, precondition: str, what: str) -> None:
    """A count or shape hypothesis: without it the statement names no tensor to compare."""
    d.none_known(
        precondition,
        f"without it {what}: the statement is undefined (the code refuses such input)",
    )


def undeclared_border(d: Derivation, precondition: str, declared: str) -> None:
    """The original pads with a value the caller did not declare (here 1, where the declared
    fills are 0): the rewrite reproduces the declared fill, not the actual one."""
    x = _row(1, 2, 3)
    kernel = _taps(1, 0, 0)
    padded_with_one = np.array([[[sp.Integer(1), *x[0, 0], sp.Integer(1)]]], dtype=object)
    d.counterexample(
        precondition,
        f"x = (1, 2, 3), every bias 0 (so each declared fill, {declared}, is 0), one 3-tap conv "
        "(1, 0, 0) with padding 1 whose original input is padded with 1: output 0 reads the "
        "border, 1 in the original and 0 in the rewrite",
        conv2d(padded_with_one, kernel)[0, 0, 0],
        conv2d(x, kernel, padding=(0, 1))[0, 0, 0],
    )


def _plain_module(kind: type[nn.Module], cls: type[nn.Module]) -> nn.Module:
    """A one-channel float64 instance of ``cls`` (``kind`` or a subclass) on which torch's
    ``kind`` computes x ↦ 2x (a conv of weight 2) or x ↦ x (BN with unit statistics, a 1×1 pool)."""
    if kind in (nn.Conv2d, nn.ConvTranspose2d):
        module = cls(1, 1, 1, bias=False)
        with torch.no_grad():
            module.weight.fill_(2.0)  # type: ignore[operator]
    elif kind is nn.BatchNorm2d:
        module = cls(1, eps=0.0)  # unit running variance, zero mean: the identity
    elif kind is nn.AvgPool2d:
        module = cls(1)
    else:
        raise ValueError(f"no impostor for {kind.__name__}")
    return module.double().eval()


def overridden_forward(
    d: Derivation, precondition: str, kind: type[nn.Module], role: str, *, brief: bool = False
) -> None:
    """``role`` is a subclass of torch's ``kind`` whose ``forward`` adds 1 to torch's output.

    ``brief`` words the description in one sentence (the graph rules G…, whose rewrites read one
    module).

    The rewrite is built from the module's parameters only, so it reproduces torch's ``kind``;
    the original runs the overridden forward. The module is a real subclass, run by torch, and
    :func:`et.contract.torch_semantics_violation` must report it (so the code refuses it).
    """

    class Overridden(kind):  # type: ignore[valid-type,misc]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    Overridden.__qualname__ = Overridden.__name__ = f"AddsOne{kind.__name__}"
    module = _plain_module(kind, Overridden)
    violation = torch_semantics_violation(module, kind)
    if violation is None:
        raise ProofFailure(d.result.rule, f"counterexample for '{precondition}'", "not refused")
    function = "2x" if kind in (nn.Conv2d, nn.ConvTranspose2d) else "x"
    x = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    with torch.no_grad():
        original = module(x).item()
        torch_function = kind.forward(module, x).item()
    # one sentence everywhere: the appendix repeats it for every rule that takes modules
    description = (
        f"{role}: an {Overridden.__name__} (x ↦ {function} + 1), refused; x = 2"
        if brief
        else f"{role}: an {Overridden.__name__} (x ↦ {function} + 1), refused; the rewrite reads "
        "only the parameters, other modules pass x; x = 2"
    )
    d.counterexample(
        precondition,
        description,
        sp.Rational(original),
        sp.Rational(torch_function),
    )
