"""Proof of R23 (a per-channel scale after a Linear's outputs are laid out as channels); see
:mod:`et.rules.scale_linear_outputs` for the statement."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.scale_linear_outputs import RULE, scale_linear_outputs
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, shapes_must_match
from proofs.symbolic_ops import difference, symbols_array

I, O, P = 2, 3, 2  # Linear inputs, outputs (channels) and token positions of the symbolic check


def _linear(tokens: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``L`` on every token: ``[P, O]``."""
    return np.array(
        [
            [sum(weight[o, i] * z[i] for i in range(len(z))) + bias[o] for o in range(O)]
            for z in tokens
        ],
        dtype=object,
    )


class _Block(nn.Module):
    """``γ ⊙ y.transpose(1, 2).reshape(N, O, H, W)`` for ``y = linear(z)``, z of ``(N, H·W, I)``."""

    def __init__(self, linear: nn.Linear, gamma: torch.Tensor | None) -> None:
        super().__init__()
        self.linear, self.gamma = linear, gamma

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.linear(z.flatten(2).transpose(1, 2))  # the input map (N, I, H, W) as tokens
        n, _, h, w = z.shape
        laid = y.transpose(1, 2).reshape(n, self.linear.out_features, h, w)
        return laid if self.gamma is None else self.gamma * laid


def _branch(case: dict[str, object]):
    def build():
        linear = randomize(nn.Linear(4, 3, bias=bool(case["bias"])), 1)
        gamma = torch.randn(3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        scaled = scale_linear_outputs(linear, gamma)
        return _Block(linear, gamma.reshape(3, 1, 1)), _Block(scaled, None), (4, 3, 5)

    return build


@register_proof("R23")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    weight, bias = symbols_array("W", (O, I), real=True), symbols_array("b", (O,), real=True)
    scale, tokens = symbols_array("s", (O,), real=True), symbols_array("z", (P, I), real=True)
    new_weight = np.array(
        [[scale[o] * weight[o, i] for i in range(I)] for o in range(O)], dtype=object
    )
    new_bias = np.array([scale[o] * bias[o] for o in range(O)], dtype=object)
    original = _linear(tokens, weight, bias)
    # the layout M: [p, o] → [o, p] (transpose), the channel of each entry its feature o
    laid = original.T
    d.zero(
        "s ⊙ M(L(z)) = M(L'(z)), symbolic z (2 positions × 2 inputs), W, b, s (3 outputs)",
        difference(
            np.array([[scale[o] * laid[o, p] for p in range(P)] for o in range(O)], dtype=object),
            _linear(tokens, new_weight, new_bias).T,
        ),
    )
    n, o, h, w = sp.symbols("n o h w", integer=True, nonnegative=True)
    channels, height, width = sp.symbols("O H W", integer=True, positive=True)
    d.equal(
        "row-major index of [n, o, p] in (N, O, H·W) = that of [n, o, h, w] in (N, O, H, W), "
        "p = h·W + w: channels kept",
        (n * channels + o) * (height * width) + (h * width + w),
        ((n * channels + o) * height + h) * width + w,
    )
    d.scope(
        "symbolic at 2 inputs, 3 outputs, 2 positions (per feature, so any number); the index "
        "identity for every size"
    )
    check_branches(
        d,
        "the code equals the original on every code branch",
        ((case, _branch(case)) for case in grid(bias=(1, 0))),
    )
    shapes_must_match(d, RULE.preconditions[0], "the scale and the Linear's output features")
    d.counterexample(
        RULE.preconditions[1],
        "no transpose: y[p, o] (2 × 2) reshaped puts y[0, 1] = 1 in channel 0; s = (1, 2)",
        sp.Integer(1 * 1),
        sp.Integer(2 * 1),
    )
    other_consumer(d, RULE.preconditions[2], "the Linear's output")

    class AddsOneLinear(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = AddsOneLinear(1, 1, bias=False).double()
    with torch.no_grad():
        impostor.weight.fill_(1.0)
        x2 = torch.full((1, 1), 2.0, dtype=torch.float64)
        original, torch_function = impostor(x2).item(), nn.Linear.forward(impostor, x2).item()
    d.counterexample(
        RULE.preconditions[3],
        "linear: an AddsOneLinear (x ↦ x + 1), refused; x = 2",
        sp.Rational(original),
        sp.Rational(torch_function),
    )
    d.reach(
        GENERAL_IN_PART,
        "2 inputs, 3 outputs, 2 positions; the index identity for every size",
    )
    return d.result
