"""Proof of R21 (BatchNorm2d before a Linear over the tokens); see
:mod:`et.rules.fuse_bn_token_linear` for the statement."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fuse_bn_token_linear import RULE, fuse_bn_token_linear
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, overridden_forward, shapes_must_match
from proofs.symbolic_ops import batch_norm, difference, symbols_array

C, O, H, W = 3, 2, 2, 2  # channels, Linear outputs, map of the symbolic check


def _tokens(x: np.ndarray) -> np.ndarray:
    """``x.flatten(1).T`` for one sample ``[C, H, W]``: ``[H·W, C]``, channels last."""
    return np.array(
        [[x[c].flatten()[p] for c in range(x.shape[0])] for p in range(x[0].size)],
        dtype=object,
    )


def _linear(tokens: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``L`` applied to every token (the last axis)."""
    return np.array(
        [
            [sum(weight[o, c] * z[c] for c in range(len(z))) + bias[o] for o in range(len(bias))]
            for z in tokens
        ],
        dtype=object,
    )


def _fold(weight, bias, mean, var, gamma, beta, eps):
    """The R21 formula, written once for the proof: W' = W·diag(t), b' = b + W·(β − μ·t)."""
    t = [gamma[c] / sp.sqrt(var[c] + eps) for c in range(len(gamma))]
    new_weight = np.array(
        [[weight[o, c] * t[c] for c in range(len(t))] for o in range(weight.shape[0])],
        dtype=object,
    )
    shift = [beta[c] - mean[c] * t[c] for c in range(len(t))]
    new_bias = np.array(
        [bias[o] + sum(weight[o, c] * shift[c] for c in range(len(t))) for o in range(len(bias))],
        dtype=object,
    )
    return new_weight, new_bias


class _TokenHead(nn.Module):
    """``linear(bn(x).flatten(2).transpose(1, 2))`` (``bn`` None: no BatchNorm)."""

    def __init__(self, bn: nn.Module | None, linear: nn.Linear) -> None:
        super().__init__()
        self.bn, self.linear = bn, linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x) if self.bn is not None else x
        return self.linear(x.flatten(2).transpose(1, 2))


def _conformance(d: Derivation) -> None:
    bn, linear = randomize(nn.BatchNorm2d(5), 0), randomize(nn.Linear(5, 4), 1)
    fused = fuse_bn_token_linear(bn, linear)
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    expected_w = linear.weight.detach() * t
    expected_b = (linear.bias + linear.weight @ (bn.bias - bn.running_mean * t)).detach()
    error = max(
        (fused.weight - expected_w).abs().max().item(), (fused.bias - expected_b).abs().max().item()
    )
    d.true(
        "conformance: et.rules.fuse_bn_token_linear computes W·diag(t) and b + W·(β − μ·t)",
        error < 1e-12,
        f"max deviation {error:.3e} from the derived formula",
    )


def _branch(case: dict[str, object]):
    def build():
        linear = randomize(nn.Linear(4, 3, bias=bool(case["bias"])), 1)
        bn = randomize(nn.BatchNorm2d(4, affine=bool(case["affine"])), 2)
        folded = _TokenHead(None, fuse_bn_token_linear(bn, linear))
        return _TokenHead(bn, linear), folded, (4, 5, 3)

    return build


@register_proof("R21")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    eps = sp.Symbol("epsilon", positive=True)
    weight = symbols_array("W", (O, C), real=True)
    bias = symbols_array("b", (O,), real=True)
    stats = (
        symbols_array("mu", (C,), real=True),
        symbols_array("var", (C,), positive=True),
        symbols_array("gamma", (C,), real=True),
        symbols_array("beta", (C,), real=True),
    )
    x = symbols_array("x", (C, H, W), real=True)
    d.zero(
        "L(tokens(BN2d(x))) = L'(tokens(x)) for symbolic x (3×2×2), W, b, μ, σ², γ, β, ε",
        difference(
            _linear(_tokens(batch_norm(x, *stats, eps)), weight, bias),
            _linear(_tokens(x), *_fold(weight, bias, *stats, eps)),
        ),
    )
    z, t, m = sp.symbols("z t m", real=True)
    w_oc = sp.Symbol("w", real=True)
    d.equal(
        "one token, one channel term: w·(t·z + m) = (w·t)·z + w·m (the fold at each of the "
        "positions, whatever their number)",
        w_oc * (t * z + m),
        (w_oc * t) * z + w_oc * m,
    )
    d.scope(
        "general per token (the identity holds at each position separately, so for any H·W); "
        "symbolic check of the whole map at 3 channels, 2 outputs, 2×2 positions"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.fuse_bn_token_linear equals the original on every code branch",
        ((case, _branch(case)) for case in grid(bias=(1, 0), affine=(1, 0))),
    )
    y1, y2, mu, var, gamma, beta = sp.symbols("y1 y2 mu sigma^2 gamma beta", real=True)
    batch_mean = (y1 + y2) / 2
    batch_var = ((y1 - batch_mean) ** 2 + (y2 - batch_mean) ** 2) / 2
    values = {y1: 1, y2: 3, mu: 0, var: 1, gamma: 1, beta: 0}
    d.counterexample(
        RULE.preconditions[0],
        "train-mode BN on the batch {y1=1, y2=3} with running μ=0, σ²=1, γ=1, β=0, ε=0, "
        "Linear = identity on one feature",
        (gamma * (y1 - batch_mean) / sp.sqrt(batch_var) + beta).subs(values),
        (gamma * (y1 - mu) / sp.sqrt(var) + beta).subs(values),
    )
    shapes_must_match(d, RULE.preconditions[1], "the BN channels and the Linear's features")
    # no transpose: the Linear reads the 2 positions of each channel (x[c] = (1, 0)) as features
    scale, w_row = (1, 2), (1, 0)  # t per channel; the Linear's one output over the positions
    d.counterexample(
        RULE.preconditions[2],
        "x of 2 channels × 2 positions, x[1] = (1, 0), t = (1, 2), m = 0, a Linear(2 → 1) of "
        "weight (1, 0) over the positions (no transpose): output of channel 1 is t₁·x[1, 0] = 2, "
        "the fold scales feature 0 by t₀ = 1",
        sp.Integer(sum(w_row[j] * scale[1] * (1, 0)[j] for j in range(2))),
        sp.Integer(sum(w_row[j] * scale[j] * (1, 0)[j] for j in range(2))),
    )
    other_consumer(d, RULE.preconditions[3], "the BN output")
    overridden_forward(d, RULE.preconditions[4], nn.BatchNorm2d, "bn")
    d.reach(
        GENERAL_IN_PART,
        "per token for any number of positions; the whole map symbolically at 3 channels, "
        "2 outputs, 2×2 positions",
    )
    return d.result
