"""Proof of R10 (average pool as a convolution); see :mod:`et.rules.avg_pool_as_conv` for the
statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.avg_pool_as_conv import RULE, avg_pool_as_conv
from proofs.code_branches import check_branches, grid
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import avg_pool2d, conv2d, difference, symbols_array

KERNELS = [(1, 1), (2, 2), (3, 3), (2, 3), (3, 1), (4, 4)]
STRIDES = [None, 1, 2, (2, 1)]


def diagonal_kernel(channels: int, kernel: tuple[int, int], divisor: int) -> np.ndarray:
    """``W[o, c, u, v] = δ_oc / divisor`` (the derived weight)."""
    weight = np.empty((channels, channels, *kernel), dtype=object)
    weight.fill(sp.Integer(0))
    for c in range(channels):
        weight[c, c].fill(sp.Rational(1, divisor))
    return weight


def _conformance(d: Derivation) -> None:
    worst = 0.0
    for kernel, stride, padding, divisor in [
        ((3, 2), (2, 1), (1, 1), None),
        (3, 3, 1, None),
        (2, 1, 0, 7),
    ]:
        pool = nn.AvgPool2d(kernel, stride, padding, divisor_override=divisor)
        conv = avg_pool_as_conv(pool, 3, dtype=torch.float64)
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        expected = diagonal_kernel(3, (kh, kw), divisor or kh * kw).astype(np.float64)
        worst = max(worst, (conv.weight.detach() - torch.tensor(expected)).abs().max().item())
        x = torch.rand(2, 3, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        worst = max(worst, (conv(x) - pool(x)).abs().max().item())
    d.true(
        "conformance: et.rules.avg_pool_as_conv.avg_pool_as_conv builds δ_oc/(kh·kw) (or "
        "δ_oc/D) and matches "
        "torch's AvgPool2d in float64",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``avg_pool_as_conv``: (AvgPool2d, conv, input shape)."""

    def build():
        pool = nn.AvgPool2d(
            case["kernel"],
            case["stride"],
            case["padding"],
            count_include_pad=case["count_include_pad"],
        )
        conv = avg_pool_as_conv(pool, 3, depthwise=case["depthwise"], dtype=torch.float64)
        return pool, conv, (3, 7, 8)

    return build


BRANCHES = [
    c
    for c in grid(
        kernel=(2, 3, (2, 3)),
        stride=(None, 1, 2),
        padding=(0, 1),
        count_include_pad=(True, False),
        depthwise=(False, True),
    )
    if c["count_include_pad"] or c["padding"] == 0  # the rule's second hypothesis
]


@register_proof("R10")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    d.step(
        "count_include_pad=True, floor mode: y[c,i,j] = (1/(kh·kw)) Σ_{u,v} xp[c, i·s+u, j·s+v] "
        "with xp zero-padded; a conv with W[o,c] = δ_oc/(kh·kw) sums the same window of channel o",
        r"\sum_c \sum_{u,v} \frac{\delta_{oc}}{k_h k_w} x_p[c, is+u, js+v] = "
        r"\frac{1}{k_h k_w}\sum_{u,v} x_p[o, is+u, js+v]",
    )
    checked = 0
    x = symbols_array("x", (2, 5, 4), real=True)
    for kernel, stride in itertools.product(KERNELS, STRIDES):
        kh, kw = kernel
        for ph, pw in itertools.product(range(kh // 2 + 1), range(kw // 2 + 1)):
            s = stride if stride is not None else kernel
            lhs = avg_pool2d(x, kernel, s, (ph, pw), count_include_pad=True)
            rhs = conv2d(x, diagonal_kernel(2, kernel, kh * kw), None, s, (ph, pw))
            d.zero(f"grid case k={kernel} s={s} p={(ph, pw)}", difference(lhs, rhs))
            checked += 1
        # padding 0: every window is inside the image, so count_include_pad does not matter
        lhs = avg_pool2d(x, kernel, stride, 0, count_include_pad=False)
        rhs = conv2d(x, diagonal_kernel(2, kernel, kh * kw), None, stride or kernel, 0)
        d.zero(
            f"grid case k={kernel} s={stride} p=0, count_include_pad=False", difference(lhs, rhs)
        )
        checked += 1
    d.scope(
        f"exhaustive symbolic check of {checked} pools on a 2×5×4 input: kernels "
        "1×1, 2×2, 3×3, 2×3, 3×1, 4×4; strides default, 1, 2, (2, 1); every legal padding; "
        "count_include_pad=False at padding 0; divisor_override by the conformance step"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.avg_pool_as_conv.avg_pool_as_conv equals the pool on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    corner = avg_pool2d(x[:1, :3, :3], 3, 1, 1, count_include_pad=False)[0, 0, 0]
    as_conv = conv2d(x[:1, :3, :3], diagonal_kernel(1, (3, 3), 9), None, 1, 1)[0, 0, 0]
    d.counterexample(
        RULE.preconditions[1],
        "count_include_pad=False, 3×3 kernel, padding 1: the top-left output averages 4 real "
        "pixels (÷4) while the conv divides by 9",
        corner,
        as_conv,
    )
    row = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]], dtype=torch.float64)
    ceil_last = nn.AvgPool2d((1, 3), 2, ceil_mode=True)(row)[0, 0, 0, -1].item()
    d.true(
        "torch's ceil-mode pool averages its extra window over the 2 pixels it covers",
        ceil_last == 3.5,
        f"got {ceil_last}",
    )
    d.counterexample(
        RULE.preconditions[0],
        "ceil_mode=True, kernel 1×3, stride 2 on the row [1, 2, 3, 4]: the extra window "
        "[3, 4] is divided by 2; a conv (zero padded) would divide by 3",
        sp.Rational(7, 2),
        sp.Rational(7, 3),
    )
    d.reach(EXHAUSTIVE)
    return d.result
