"""E5: a dual-stream layer is one conv with a block weight matrix (general, then exhaustive)."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_dual_stream import (
    RULE,
    merge_activations,
    merge_dual_stream,
    merge_dual_stream_first,
)
from et.testing import probe_inputs
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import groups_are_dense, shapes_must_match
from proofs.symbolic_ops import conv2d, difference, elementwise, relu, symbols_array


def block_column_equals(product: sp.MatrixExpr, expected: list[sp.MatrixExpr]) -> bool:
    """True when ``block_collapse(product)`` is the column of blocks ``expected``."""
    collapsed = sp.block_collapse(product)
    if len(expected) == 1:
        blocks = [collapsed]
    else:
        blocks = [collapsed.blocks[i, 0] for i in range(len(expected))]
    residuals = [sp.simplify(got - want) for got, want in zip(blocks, expected, strict=True)]
    return all(r == 0 or getattr(r, "is_ZeroMatrix", False) for r in residuals)


def _random_conv(generator, cin, cout, **kw) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, dtype=torch.float64, **kw)
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return conv


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    geometry = {"kernel_size": 3, "padding": 2, "dilation": 2}
    backbone = _random_conv(generator, 5, 6, **geometry)
    residual = _random_conv(generator, 3, 3, **geometry)
    r2b = _random_conv(generator, 3, 6, **geometry)
    b2r = _random_conv(generator, 5, 3, **geometry)
    merged = merge_dual_stream(backbone, residual, r2b, b2r)
    expected_w = torch.cat(
        [torch.cat([backbone.weight, r2b.weight], 1), torch.cat([b2r.weight, residual.weight], 1)]
    )
    expected_b = torch.cat([backbone.bias + r2b.bias, residual.bias + b2r.bias])
    error = max(
        (merged.weight - expected_w).abs().max().item(),
        (merged.bias - expected_b).abs().max().item(),
    )
    first_b, first_r = (
        _random_conv(generator, 3, 6, **geometry),
        _random_conv(generator, 3, 3, **geometry),
    )
    x = probe_inputs((3, 7, 6), samples=8)
    with torch.no_grad():
        stacked = torch.cat([first_b(x), first_r(x)], 1)
        error = max(
            error, (merge_dual_stream_first(first_b, first_r)(x) - stacked).abs().max().item()
        )
    d.true(
        "conformance: et.rules.merge_dual_stream builds [[W_b, W_r2b], [W_b2r, W_r]] with bias "
        "[b_b + b_r2b; b_r + b_b2r] (backbone first), and the first-layer stack",
        error < 1e-12,
        f"max deviation {error:.3e}",
    )


class _DualStream(nn.Module):
    """The original layer: ``[act_b(W_b x_b + W_r2b x_r); act_r(W_r x_r + W_b2r x_b)]``."""

    def __init__(self, convs: dict[str, nn.Conv2d | None], acts: tuple[nn.Module, nn.Module]):
        super().__init__()
        self.convs, self.acts, self.split = convs, acts, convs["backbone"].in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_b, x_r = x[:, : self.split], x[:, self.split :]
        c = self.convs
        y_b = c["backbone"](x_b) + (c["r2b"](x_r) if c["r2b"] is not None else 0)
        y_r = c["residual"](x_r) + (c["b2r"](x_b) if c["b2r"] is not None else 0)
        return torch.cat([self.acts[0](y_b), self.acts[1](y_r)], 1)


class _FirstLayer(nn.Module):
    def __init__(self, backbone: nn.Conv2d, residual: nn.Conv2d):
        super().__init__()
        self.backbone, self.residual = backbone, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.backbone(x), self.residual(x)], 1)


def _activations(kind: str) -> tuple[nn.Module, nn.Module]:
    if kind == "prelu-per-channel":
        return randomize(nn.PReLU(3), 5), randomize(nn.PReLU(2), 6)
    if kind == "prelu-shared":
        return nn.PReLU(1, 0.3).double(), nn.PReLU(1, 0.3).double()
    return nn.ReLU(), nn.ReLU()


def _branch(case: dict[str, object]):
    """One code branch of E5's transforms: (original, merged, input shape)."""

    def build():
        geometry = {
            "kernel_size": 3,
            "padding": 1,
            "stride": case["stride"],
            "dilation": case["dilation"],
            "padding_mode": case["padding_mode"],
            "bias": case["bias"],
        }
        if case["layer"] == "first":
            backbone = randomize(nn.Conv2d(2, 3, **geometry), 1)
            residual = randomize(nn.Conv2d(2, 2, **geometry), 2)
            return (
                _FirstLayer(backbone, residual),
                merge_dual_stream_first(backbone, residual),
                (2, 7, 6),
            )
        convs = {
            "backbone": randomize(nn.Conv2d(4, 3, **geometry), 1),
            "residual": randomize(nn.Conv2d(2, 2, **geometry), 2),
            "r2b": randomize(nn.Conv2d(2, 3, **geometry), 3) if "r2b" in case["links"] else None,
            "b2r": randomize(nn.Conv2d(4, 2, **geometry), 4) if "b2r" in case["links"] else None,
        }
        acts = _activations(str(case["activation"]))
        merged = merge_dual_stream(convs["backbone"], convs["residual"], convs["r2b"], convs["b2r"])
        act = merge_activations(*acts)
        return _DualStream(convs, acts), nn.Sequential(merged, act), (6, 7, 6)

    return build


BRANCHES = grid(
    layer=("first", "hidden"),
    links=("none", "r2b", "b2r", "r2b+b2r"),
    bias=(True, False),
    activation=("relu", "prelu-per-channel", "prelu-shared"),
    padding_mode=("zeros", "reflect", "circular"),
    stride=(2,),
    dilation=(2,),
)
# the first layer has no links and no activation of its own
BRANCHES = [
    c
    for c in BRANCHES
    if c["layer"] == "hidden" or (c["links"] == "none" and c["activation"] == "relu")
]


@register_proof("E5")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    nb, nr, mb, mr = sp.symbols("n_b n_r m_b m_r", integer=True, positive=True)
    wb, wr = sp.MatrixSymbol("W_b", mb, nb), sp.MatrixSymbol("W_r", mr, nr)
    wr2b, wb2r = sp.MatrixSymbol("W_r2b", mb, nr), sp.MatrixSymbol("W_b2r", mr, nb)
    xb, xr = sp.MatrixSymbol("x_b", nb, 1), sp.MatrixSymbol("x_r", nr, 1)
    d.step(
        "With shared kernel, stride, padding and dilation, every conv of the layer reads the same "
        "patch positions: y = b + Σ_taps W_t·p_t, and the stacked input's patch is [p_b; p_r]",
        r"y = b + \sum_t W_t\, p_t",
    )
    block = sp.BlockMatrix([[wb, wr2b], [wb2r, wr]])
    d.true(
        "one tap, general sizes: [[W_b, W_r2b], [W_b2r, W_r]]·[x_b; x_r] = "
        "[W_b x_b + W_r2b x_r; W_b2r x_b + W_r x_r]",
        block_column_equals(
            block * sp.BlockMatrix([[xb], [xr]]), [wb * xb + wr2b * xr, wb2r * xb + wr * xr]
        ),
    )
    d.true(
        "first layer (one input x): [W_b; W_r]·x = [W_b x; W_r x]",
        block_column_equals(
            sp.BlockMatrix([[wb], [sp.MatrixSymbol("V_r", mr, nb)]]) * xb,
            [wb * xb, sp.MatrixSymbol("V_r", mr, nb) * xb],
        ),
    )
    d.step(
        "Summing over taps and adding the biases gives the merged conv with bias "
        "[b_b + b_r2b; b_r + b_b2r]; an element-wise f applied to [y_b; y_r] is [f(y_b); f(y_r)]"
    )
    checked = 0
    for kernel, stride, padding, dilation in itertools.product(
        [(1, 1), (3, 3), (2, 3)], [1, 2], [0, 1], [1, 2]
    ):
        x_b, x_r = (
            symbols_array("xb", (2, 3, 3), real=True),
            symbols_array("xr", (1, 3, 3), real=True),
        )
        w = {
            name: symbols_array(name, shape, real=True)
            for name, shape in (
                ("wb", (2, 2, *kernel)),
                ("wr", (1, 1, *kernel)),
                ("wrb", (2, 1, *kernel)),
                ("wbr", (1, 2, *kernel)),
            )
        }
        b = {
            name: symbols_array(name, (n,), real=True)
            for name, n in (("bb", 2), ("br", 1), ("brb", 2), ("bbr", 1))
        }
        geometry = (stride, padding, dilation)
        y_b = conv2d(x_b, w["wb"], b["bb"], *geometry) + conv2d(x_r, w["wrb"], b["brb"], *geometry)
        y_r = conv2d(x_r, w["wr"], b["br"], *geometry) + conv2d(x_b, w["wbr"], b["bbr"], *geometry)
        merged_w = np.concatenate(
            [np.concatenate([w["wb"], w["wrb"]], 1), np.concatenate([w["wbr"], w["wr"]], 1)]
        )
        merged_b = np.concatenate([b["bb"] + b["brb"], b["br"] + b["bbr"]])
        merged = conv2d(np.concatenate([x_b, x_r]), merged_w, merged_b, *geometry)
        d.zero(
            f"merged = [y_b; y_r]: k={kernel} s={stride} p={padding} d={dilation}",
            difference(np.concatenate([y_b, y_r]), merged),
        )
        checked += 1
    f = sp.Function("f")
    y = symbols_array("y", (3, 2, 2), real=True)
    stacked = elementwise(y, f)
    separate = np.concatenate([elementwise(y[:2], f), elementwise(y[2:], f)])
    d.zero(
        "an element-wise f (the same on every channel) on [y_b; y_r] is [f(y_b); f(y_r)]",
        difference(stacked, separate),
    )
    d.scope(
        "general (block matrices of symbolic sizes per tap), plus an exhaustive symbolic check of "
        f"{checked} geometries (kernels 1×1, 3×3, 2×3; strides, paddings, dilations 1–2) with "
        "both cross convs"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_dual_stream (merge_dual_stream, merge_dual_stream_first, "
        "merge_activations) equals the two-stream layer on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    d.counterexample(
        RULE.preconditions[3],
        "backbone ReLU, residual identity, merged with ReLU: a residual output of −1 becomes 0",
        relu(-1),
        sp.Integer(-1),
    )
    row = np.array([[[sp.Integer(1), sp.Integer(2), sp.Integer(3)]]], dtype=object)
    ones = np.array([[[[sp.Integer(1)] * 3]]], dtype=object)
    d.counterexample(
        RULE.preconditions[0],
        "residual conv 1×3 of ones with padding 0 on the row (1, 2, 3), read with the backbone's "
        "padding 1 in the merged conv: output 0 is 6, the merged one 3",
        conv2d(row, ones, None, 1, 0)[0, 0, 0],
        conv2d(row, ones, None, 1, (0, 1))[0, 0, 0],
    )
    groups_are_dense(d, RULE.preconditions[1])
    shapes_must_match(d, RULE.preconditions[2], "the streams' channel counts")
    d.reach(
        GENERAL_IN_PART,
        "one tap with block matrices of symbolic sizes; the sum over taps in prose, the "
        "geometries exhaustively",
    )
    return d.result
