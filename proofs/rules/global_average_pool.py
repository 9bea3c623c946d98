"""Proof of G11 (global average pooling); see :mod:`et.rules.global_average_pool`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from torch import nn

from et.rules.global_average_pool import RULE, global_average_pool
from proofs.code_branches import check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.symbolic_ops import avg_pool2d, difference, symbols_array


def _general(d: Derivation) -> None:
    size, stride = sp.symbols("H s", integer=True, positive=True)
    d.equal(
        "floor and ceil mode: one window, ⌊(H − H)/s⌋ + 1 = ⌈(H − H)/s⌉ + 1; it is the image",
        sp.floor((size - size) / stride) + 1,
        sp.ceiling((size - size) / stride) + 1,
    )


def _grid(d: Derivation) -> int:
    checked = 0
    for height, width, stride in itertools.product([1, 2, 3], [1, 2, 3], [1, 2]):
        x = symbols_array("x", (2, height, width), real=True)
        pooled = avg_pool2d(x, (height, width), stride)
        mean = np.array([[[sum(x[c].flatten()) / (height * width)]] for c in range(2)])
        d.zero(f"grid case H={height} W={width} s={stride}", difference(pooled, mean))
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        size = case["size"]
        divisor = size[0] * size[1] if case["divisor_override"] else None
        pool = nn.AvgPool2d(
            size,
            stride=case["stride"],
            ceil_mode=case["ceil_mode"],
            count_include_pad=case["count_include_pad"],
            divisor_override=divisor,
        )
        return pool, global_average_pool(pool, size), (3, *size)

    return build


BRANCHES = grid(
    size=((4, 4), (3, 5)),
    stride=(None, 1, 3),
    ceil_mode=(False, True),
    count_include_pad=(True, False),
    divisor_override=(False, True),
)


@register_proof("G11")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    check_branches(
        d,
        "et.rules.global_average_pool equals the pool at its size on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    x = np.array([[[sp.Integer(1), sp.Integer(2)]]], dtype=object)
    mean = (x[0, 0, 0] + x[0, 0, 1]) / 2
    d.counterexample(
        RULE.preconditions[0],
        "a 1×1 window on x = (1, 2): output 0 vs the mean",
        avg_pool2d(x, (1, 1))[0, 0, 0],
        mean,
    )
    d.counterexample(
        RULE.preconditions[1],
        "a 1×2 window, padding (0, 1), zeros counted, on x = (1, 2): output 0 vs the mean",
        avg_pool2d(x, (1, 2), 1, (0, 1))[0, 0, 0],
        mean,
    )
    d.counterexample(
        RULE.preconditions[2],
        "divisor_override 1 on x = (1, 2) vs the mean",
        x[0, 0, 0] + x[0, 0, 1],
        mean,
    )
    overridden_forward(d, RULE.preconditions[3], nn.AvgPool2d, "the pool", brief=True)
    d.reach(GENERAL_IN_PART, "window count; sums exhaustively")
    return d.result
