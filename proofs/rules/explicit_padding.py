"""Proof of G14 ('same' / 'valid' padding as numbers); see :mod:`et.rules.explicit_padding`."""

from __future__ import annotations

import warnings

import numpy as np
import sympy as sp
import torch.nn.functional as F
from torch import nn

from et.rules.explicit_padding import RULE, explicit_padding, numeric_padding, same_padding_widths
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.rules.absorb_zero_padding import pad_sides
from proofs.symbolic_ops import conv2d


def _general(d: Derivation) -> None:
    m = sp.Symbol("m", integer=True)
    half = sp.Rational(1, 2)
    t = 2 * m + 1
    d.equal(
        "odd t = d(k − 1): ⌊t/2⌋ + ⌈t/2⌉ = t (even t: both t/2, which G1 absorbs); so the "
        "output keeps length n",
        sp.floor(t * half) + sp.ceiling(t * half),
        t,
    )


def _conformance(d: Derivation) -> None:
    widths = [same_padding_widths(k, dil) for k, dil in (((3, 2), 1), ((4, 3), (2, 1)), (5, 3))]
    conv = nn.Conv2d(2, 4, (2, 3), padding="same", dilation=(1, 2), groups=2)
    pad, numeric = explicit_padding(randomize(conv, 3))
    d.true(
        "conformance: et.rules.explicit_padding puts ⌊t/2⌋ before and ⌈t/2⌉ after",
        widths == [(0, 1, 1, 1), (1, 1, 3, 3), (6, 6, 6, 6)]
        and pad == (2, 2, 0, 1)
        and numeric.padding == (0, 0),
        f"widths {widths}, pad {pad}, padding {numeric.padding}",
    )
    functional = [
        numeric_padding(*g) for g in (("same", (2, 3), (1, 2)), ("same", 3), ("valid", 4))
    ]
    d.true(
        "conformance: the geometry form (a functional conv) gives the same pad and numbers",
        functional == [((2, 2, 0, 1), (0, 0)), ((0, 0, 0, 0), (1, 1)), ((0, 0, 0, 0), (0, 0))],
        f"{functional}",
    )


def _branch(case: dict[str, object]):
    def build():
        conv = randomize(
            nn.Conv2d(
                2,
                4,
                case["kernel"],
                padding=case["padding"],
                dilation=case["dilation"],
                groups=case["groups"],
                bias=case["bias"],
            ),
            11,
        )
        pad, numeric = explicit_padding(conv)
        return conv, (lambda x: numeric(F.pad(x, pad))), (2, 12, 11)

    return build


BRANCHES = grid(
    padding=("same", "valid"),
    kernel=((1, 1), (2, 2), (3, 3), (4, 1), (2, 5)),
    dilation=(1, 2, (3, 1)),
    groups=(1, 2),
    bias=(True, False),
)


def _counterexamples(d: Derivation) -> None:
    d.none_known(
        RULE.preconditions[0],
        "it names the spellings this rule rewrites; no left side to compare otherwise",
    )
    d.none_known(
        RULE.preconditions[1],
        "without it torch defines no 'same' padding: nothing to compare (refused)",
    )
    row = np.array([[[1, 2, 3]]], dtype=object)
    taps = np.array([[[[1, 0, 0]]]], dtype=object)
    d.counterexample(
        RULE.preconditions[2],
        "x = (1, 2, 3), a reflect-mode 'same' conv with taps (1, 0, 0) reads (2, 1, 2, 3, 2): "
        "output 0 is 2; the zero pad of width 1 gives 0",
        conv2d(np.array([[[2, 1, 2, 3, 2]]], dtype=object), taps)[0, 0, 0],
        conv2d(pad_sides(row, (1, 1)), taps)[0, 0, 0],
    )
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "the conv", brief=True)


@register_proof("G14")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    d.step("torch's code defines 'same' (left = t // 2): checked on every branch below")
    _conformance(d)
    with warnings.catch_warnings():  # torch warns that an odd 'same' pad copies the input
        warnings.simplefilter("ignore", UserWarning)
        check_branches(
            d,
            "torch's 'same'/'valid' conv = et.rules.explicit_padding's pad, conv",
            ((case, _branch(case)) for case in BRANCHES),
        )
    d.scope("the steps below")
    _counterexamples(d)
    d.reach(
        GENERAL_IN_PART,
        "the widths; torch's 'same' on the branches",
    )
    return d.result
