"""E1: a rectifier is the identity on non-negative inputs; a counterexample without it."""

from __future__ import annotations

import sympy as sp
import torch
from torch import nn

from et.contract import PreconditionError
from et.domain import IMAGE_8BIT, IMAGE_UNIT, REAL
from et.rules.remove_passthrough_activation import RULE, remove_passthrough_activation
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid
from proofs.contract import GENERAL, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import elementwise, prelu, relu, symbols_array


def _conformance(d: Derivation) -> None:
    """The library drops exactly the activations that are the identity on the domain."""
    generator = torch.Generator().manual_seed(0)
    prelu_channels = nn.PReLU(3, dtype=torch.float64)
    with torch.no_grad():
        prelu_channels.weight.copy_(torch.randn(3, generator=generator, dtype=torch.float64))
    zero_slope = nn.PReLU(3, init=0.0, dtype=torch.float64)
    worst = 0.0
    for activation in (nn.ReLU(), nn.LeakyReLU(0.2), prelu_channels, zero_slope):
        for domain in (IMAGE_UNIT, IMAGE_8BIT):
            x = probe_inputs((3, 6, 5), domain=domain, samples=8)
            replacement = remove_passthrough_activation(activation, domain)
            with torch.no_grad():
                worst = max(worst, (activation(x) - replacement(x)).abs().max().item())
    refused = False
    try:
        remove_passthrough_activation(nn.ReLU(), REAL)
    except PreconditionError:
        refused = True
    d.true(
        "conformance: et.rules.remove_passthrough_activation returns Identity, equal to "
        "ReLU/LeakyReLU/PReLU "
        "(slopes random and 0) on [0, 1] and [0, 255] images, and refuses the domain ℝ",
        worst == 0.0 and refused,
        f"max deviation {worst:.3e}, refused REAL: {refused}",
    )


def _prelu(x: sp.Symbol, slope: sp.Expr) -> sp.Piecewise:
    """PReLU written out, unevaluated, so the displayed line shows the definition."""
    return sp.Piecewise(
        (x, sp.GreaterThan(x, 0, evaluate=False)), (slope * x, True), evaluate=False
    )


def _activation(kind: str) -> nn.Module:
    return {
        "ReLU": nn.ReLU(),
        "LeakyReLU": nn.LeakyReLU(0.2),
        "PReLU shared": nn.PReLU(1, 0.25).double(),
        "PReLU per channel": nn.PReLU(3, 0.25).double(),
    }[kind]


def _code_branch(case: dict[str, object]):
    """One code branch of ``remove_passthrough_activation`` on inputs in the domain."""

    def build():
        act, domain = _activation(str(case["activation"])), case["domain"]
        identity = remove_passthrough_activation(act, domain)
        top = float(domain[1])  # type: ignore[index]
        # |x| scaled into [0, top]: the probes made non-negative, as the hypothesis requires
        inside = lambda x: x.abs() / (x.abs().max() + 1) * top  # noqa: E731
        return (
            Composed(lambda x: act(inside(x))),
            Composed(lambda x: identity(inside(x))),
            (3, 4, 5),
        )

    return build


BRANCHES = grid(
    activation=("ReLU", "LeakyReLU", "PReLU shared", "PReLU per channel"),
    domain=((0.0, 1.0), (0.0, 255.0)),
)


@register_proof("E1")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    x = sp.Symbol("x", nonnegative=True)
    a = sp.Symbol("a", real=True)
    d.step(
        "Definitions: ReLU(v) = max(v, 0); PReLU_a(v) = LeakyReLU_a(v) = v if v ≥ 0 else a·v "
        "(torch writes LeakyReLU as max(v, 0) + a·min(v, 0)); each line below is sympy's "
        "evaluation of the left side for a symbol x declared non-negative"
    )
    d.equal(
        "ReLU(x) = x for x ≥ 0",
        sp.Max(x, 0, evaluate=False),
        x,
    )
    d.equal(
        "PReLU_a(x) = x for x ≥ 0 and every slope a",
        _prelu(x, a),
        x,
    )
    d.equal(
        "PReLU_0(x) = x for x ≥ 0 (the slope the authors give carried channels)",
        _prelu(x, sp.Integer(0)),
        x,
    )
    d.equal(
        "LeakyReLU_a(x) = max(x, 0) + a·min(x, 0) = x for x ≥ 0",
        sp.Add(sp.Max(x, 0, evaluate=False), a * sp.Min(x, 0, evaluate=False), evaluate=False),
        x,
    )
    # Per-channel slopes: element-wise check on a tensor of non-negative symbols.
    tensor = symbols_array("x", (3, 2, 2), nonnegative=True)
    slopes = symbols_array("a", (3,), real=True)
    per_channel = tensor.copy()
    for c in range(3):
        per_channel[c] = elementwise(tensor[c], lambda v, c=c: prelu(v, slopes[c]))
    d.zero(
        "per-channel PReLU on a non-negative 3×2×2 tensor is the identity",
        (per_channel - tensor).flatten(),
    )
    d.zero(
        "ReLU on a non-negative 3×2×2 tensor is the identity",
        (elementwise(tensor, relu) - tensor).flatten(),
    )
    d.scope("general (any x ≥ 0, any slope a, symbolic), plus an element-wise check on a tensor")
    _conformance(d)
    check_branches(
        d,
        "remove_passthrough_activation: the activation on its domain, on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    d.counterexample(RULE.preconditions[0], "ReLU at x = −1", relu(-1), sp.Integer(-1))
    d.counterexample(
        RULE.preconditions[0],
        "PReLU with slope 0 at x = −1/2",
        prelu(sp.Rational(-1, 2), 0),
        sp.Rational(-1, 2),
    )
    d.counterexample(
        RULE.preconditions[1],
        "ReLU6 = min(max(x, 0), 6) at x = 7 (non-negative, but clipped)",
        sp.Min(sp.Max(7, 0), 6),
        sp.Integer(7),
    )
    d.reach(GENERAL)
    return d.result
