"""Proof of R16 (BatchNorm → Linear fold, with or without a global average pool between);
see :mod:`et.rules.fuse_bn_linear` for the statement."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fuse_bn_linear import RULE, fuse_bn_linear
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, overridden_forward, shapes_must_match
from proofs.symbolic_ops import batch_norm, difference, symbols_array

C, O = 3, 2  # features (BN channels) and Linear outputs of the symbolic check


def _stats(channels: int) -> tuple[np.ndarray, ...]:
    return (
        symbols_array("mu", (channels,), real=True),
        symbols_array("var", (channels,), positive=True),
        symbols_array("gamma", (channels,), real=True),
        symbols_array("beta", (channels,), real=True),
    )


def _linear(z: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.array(
        [sum(weight[o, c] * z[c] for c in range(len(z))) + bias[o] for o in range(len(bias))],
        dtype=object,
    )


def _fold(weight, bias, mean, var, gamma, beta, eps):
    """The R16 formula, written once for the proof: W' = W·diag(t), b' = b + W·(β − μ·t)."""
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


def _conformance(d: Derivation) -> None:
    """The library's transform computes the derived formula (float64, random values)."""
    bn, linear = randomize(nn.BatchNorm1d(5), 0), randomize(nn.Linear(5, 4), 1)
    fused = fuse_bn_linear(bn, linear)
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    expected_w = linear.weight.detach() * t
    expected_b = (linear.bias + linear.weight @ (bn.bias - bn.running_mean * t)).detach()
    error = max(
        (fused.weight - expected_w).abs().max().item(), (fused.bias - expected_b).abs().max().item()
    )
    d.true(
        "conformance: et.rules.fuse_bn_linear.fuse_bn_linear computes W·diag(t) and "
        "b + W·(β − μ·t)",
        error < 1e-12,
        f"max deviation {error:.3e} from the derived formula",
    )


def _branch(case: dict[str, object]):
    """One code branch: (the original head, the folded head, input shape)."""

    def build():
        bias, affine = bool(case["bias"]), bool(case["affine"])
        linear = randomize(nn.Linear(4, 3, bias=bias), 1)
        if case["bn"] == "1d":
            bn = randomize(nn.BatchNorm1d(4, affine=affine), 2)
            return nn.Sequential(bn, linear), fuse_bn_linear(bn, linear), (4,)
        bn, pool = randomize(nn.BatchNorm2d(4, affine=affine), 2), nn.AdaptiveAvgPool2d(1)
        original = nn.Sequential(bn, pool, nn.Flatten(), linear)
        folded = nn.Sequential(pool, nn.Flatten(), fuse_bn_linear(bn, linear, pool))
        return original, folded, (4, 5, 3)

    return build


@register_proof("R16")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    eps = sp.Symbol("epsilon", positive=True)
    weight = symbols_array("W", (O, C), real=True)
    bias = symbols_array("b", (O,), real=True)
    stats = _stats(C)
    new_weight, new_bias = _fold(weight, bias, *stats, eps)
    # General over symbolic W, b, statistics and input, for C = 3 features and 2 outputs.
    x = symbols_array("x", (C,), real=True)
    d.zero(
        "L(BN(x)) = L'(x) for symbolic x, W, b, μ, σ², γ, β, ε (3 features, 2 outputs)",
        difference(
            _linear(batch_norm(x, *stats, eps), weight, bias),
            _linear(x, *_fold(weight, bias, *stats, eps)),
        ),
    )
    # BatchNorm2d, then the mean over a symbolic 2×2 map of each channel, then the Linear.
    image = symbols_array("x", (C, 2, 2), real=True)

    def mean(z: np.ndarray) -> np.ndarray:
        return np.array([sum(z[c].flatten()) / z[c].size for c in range(C)], dtype=object)

    d.zero(
        "L(mean_HW(BN2d(x))) = L'(mean_HW(x)): the mean commutes with the per-channel affine "
        "map (symbolic 3×2×2 x)",
        difference(
            _linear(mean(batch_norm(image, *stats, eps)), weight, bias),
            _linear(mean(image), new_weight, new_bias),
        ),
    )
    # The commutation step itself, for any number n of positions.
    n = sp.Symbol("n", positive=True, integer=True)
    k = sp.Symbol("k", integer=True)
    xs = sp.IndexedBase("x")
    t, m = sp.symbols("t m", real=True)
    d.equal(
        "mean over n positions of (t·x_k + m) = t·mean(x) + m, for every n",
        sp.Sum(t * xs[k] + m, (k, 1, n)).doit() / n,
        t * sp.Sum(xs[k], (k, 1, n)).doit() / n + m,
    )
    d.scope(
        "general over weights, biases, statistics, ε and input for 3 features and 2 outputs; "
        "the pool step (mean commutes with a per-channel affine map) for any number of "
        "positions; BatchNorm2d + global mean checked symbolically on a 2×2 map"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.fuse_bn_linear.fuse_bn_linear equals the original head on every code branch",
        ((case, _branch(case)) for case in grid(bn=("1d", "2d"), bias=(1, 0), affine=(1, 0))),
    )
    # Dropped precondition: BN in train mode normalises with the batch's statistics.
    y1, y2, mu, var, gamma, beta = sp.symbols("y1 y2 mu sigma^2 gamma beta", real=True)
    batch_mean = (y1 + y2) / 2
    batch_var = ((y1 - batch_mean) ** 2 + (y2 - batch_mean) ** 2) / 2
    train_bn = gamma * (y1 - batch_mean) / sp.sqrt(batch_var) + beta
    folded = gamma * (y1 - mu) / sp.sqrt(var) + beta
    values = {y1: 1, y2: 3, mu: 0, var: 1, gamma: 1, beta: 0}
    d.counterexample(
        RULE.preconditions[0],
        "train-mode BN on the batch {y1=1, y2=3} with running μ=0, σ²=1, γ=1, β=0, ε=0, "
        "Linear = identity on one feature",
        train_bn.subs(values),
        folded.subs(values),
    )
    shapes_must_match(d, RULE.preconditions[1], "the BN channels and the Linear's features")
    # Feature axis: BatchNorm1d on (1, 2, 2) scales axis 1, the Linear mixes the last axis.
    xa = np.array([[1, 0], [1, 0]], dtype=object)  # x[c, l]
    scale, w_row = (1, 2), (1, 0)  # t per BN channel, one Linear output over l
    original = sum(w_row[j] * scale[1] * xa[1, j] for j in range(2))  # output of row c = 1
    rewritten = sum(w_row[j] * scale[j] * xa[1, j] for j in range(2))
    d.counterexample(
        RULE.preconditions[2],
        "BatchNorm1d(2) on x of shape (1, 2, 2) = [[1, 0], [1, 0]] with t = (1, 2), m = 0, and "
        "Linear(2 → 1) of weight (1, 0) on the last axis: row 1 of the original is t₁·x[1, 0], "
        "the fold scales feature 0 by t₀",
        sp.Integer(original),
        sp.Integer(rewritten),
    )
    other_consumer(d, RULE.preconditions[3], "the BN output")
    overridden_forward(d, RULE.preconditions[4], nn.BatchNorm2d, "bn")
    d.reach(
        GENERAL_IN_PART,
        "symbolic weights, statistics and input at 3 features and 2 outputs; the pool step for "
        "any number of positions",
    )
    return d.result
