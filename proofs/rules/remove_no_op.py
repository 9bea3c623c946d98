"""Proof of G7 (no-ops removed, constant-mode pad); see :mod:`et.rules.remove_no_op`.

The index ranges of a full slice are derived with symbolic sizes; the ops' values are checked
exhaustively by running torch's own ops on *index-coded* float64 tensors (each entry its flat
index, so an entry moved, dropped, repeated or rounded shows as an exact difference).
"""

from __future__ import annotations

import itertools

import sympy as sp
import torch
import torch.nn.functional as F

from et.rules.remove_no_op import END_OF_ANY_AXIS, RULE, remove_no_op
from proofs.code_branches import check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof

aten = torch.ops.aten
SHAPES = [(1, 1, 1, 1), (1, 2, 3, 1), (2, 3, 2, 4)]
FORMATS = (torch.contiguous_format, torch.channels_last, torch.preserve_format)


def _coded(shape: tuple[int, ...]) -> torch.Tensor:
    numel = 1
    for n in shape:
        numel *= n
    return torch.arange(numel, dtype=torch.float64).reshape(shape)


def _differences(results: list[torch.Tensor], expected: torch.Tensor) -> list[sp.Rational]:
    """Per result: the largest entry difference from ``expected`` as an exact rational (1 for
    another shape or dtype), so a case holds only where every one is 0."""
    out = []
    for result in results:
        if result.shape != expected.shape or result.dtype != expected.dtype:
            out.append(sp.Integer(1))
            continue
        gap = (result - expected).abs().max() if result.numel() else torch.tensor(0.0)
        out.append(sp.Rational(float(gap)))
    return out


def _general(d: Derivation) -> None:
    n, k = sp.symbols("n k", integer=True, nonnegative=True)
    d.equal(
        "slice(x, 0, e, 1) with e = n + k ≥ n keeps min(e, n) = n entries, the j-th being x[j]",
        sp.Min(n + k, n),
        n,
    )


def _exhaustive(d: Derivation) -> int:
    """Every op of the theorem on index-coded tensors of SHAPES, along every axis."""
    checked = 0
    for shape in SHAPES:
        x = _coded(shape)
        base = torch.zeros(shape, dtype=torch.float64)
        results = [aten.alias.default(x), aten.copy.default(base, x)]
        results += [aten.clone.default(x, memory_format=f) for f in FORMATS]
        results += [aten.contiguous.default(x, memory_format=f) for f in FORMATS[:2]]
        for dim, end in itertools.product(range(4), (None, "length", END_OF_ANY_AXIS)):
            end = shape[dim] if end == "length" else end  # the axis's own length too
            results.append(aten.slice.Tensor(x, dim, 0, end, 1))
            results.append(aten.slice_scatter.default(base, x, dim, None, end, 1))
        d.zero(
            f"exhaustive case shape={shape}: clone, alias, contiguous, copy, full slices and "
            "scatters return x entry by entry",
            _differences(results, x),
        )
        for widths, value in itertools.product(((1, 0), (0, 2, 1, 1)), (None, 0.0, 2.5)):
            written = aten.pad.default(x, list(widths), "constant", value)
            plain = aten.constant_pad_nd.default(x, list(widths), 0.0 if value is None else value)
            d.zero(
                f"exhaustive case shape={shape} pad={widths} value={value}",
                _differences([written], plain),
            )
            checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        op = case["op"]
        shape = (3, 4, 5)
        source = ((1, *shape), torch.float64)
        if op in ("clone", "alias", "contiguous"):
            function = getattr(aten, op).default
            return function, remove_no_op(op), shape
        if op == "copy":
            return (
                lambda x: aten.copy.default(torch.zeros_like(x), x),
                remove_no_op(op, source=source, base=source),
                shape,
            )
        if op == "slice":
            return (
                lambda x: aten.slice.Tensor(x, 2, 0, 4, 1),
                remove_no_op(op, start=0, end=4, step=1, length=4),
                shape,
            )
        if op == "slice_scatter":
            return (
                lambda x: aten.slice_scatter.default(torch.zeros_like(x), x, 3, 0, None, 1),
                remove_no_op(op, source=source, base=source, end=None),
                shape,
            )
        return (
            lambda x: F.pad(x, (1, 2, 0, 1), "constant", 1.5),
            remove_no_op(op, widths=(1, 2, 0, 1), mode="constant", value=1.5),
            shape,
        )

    return build


@register_proof("G7")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    d.step(
        "clone, alias and contiguous read x[i] at every index i (a memory format is a layout); "
        "copy and a whole-axis scatter write x into every entry of a base of x's type; "
        "aten.pad in mode 'constant' is constant_pad_nd with value 0 for None"
    )
    cases = _exhaustive(d)
    d.scope(
        f"slice ranges general; the values exhaustive over {len(SHAPES)} shapes (every axis, "
        f"{cases} pad cases) on index-coded float64 tensors; the code branches"
    )
    check_branches(
        d,
        "et.rules.remove_no_op equals the op it removes on every code branch",
        (
            (case, _branch(case))
            for case in grid(
                op=("clone", "alias", "contiguous", "copy", "slice", "slice_scatter", "pad")
            )
        ),
        tolerance=0.0,
    )
    x = _coded((1, 1, 1, 3))  # (0, 1, 2)
    d.counterexample(
        RULE.preconditions[0],
        "neg(x) for x = (0, 1, 2): entry 1 is −1, x's is 1",
        int(aten.neg.default(x)[0, 0, 0, 1]),
        int(x[0, 0, 0, 1]),
    )
    bigger = aten.copy.default(torch.zeros(1, 1, 2, 3, dtype=torch.float64), x)
    d.counterexample(
        RULE.preconditions[1],
        "x = (0, 1, 2) copied onto a 2×3 base broadcasts: the result has 6 entries, x has 3",
        bigger.numel(),
        x.numel(),
    )
    d.counterexample(
        RULE.preconditions[2],
        "x = (0, 1, 2) sliced from 1: entry 0 is 1, x's is 0",
        int(aten.slice.Tensor(x, 3, 1)[0, 0, 0, 0]),
        int(x[0, 0, 0, 0]),
    )
    d.counterexample(
        RULE.preconditions[3],
        "x = (0, 1, 2) sliced with step 2 keeps 2 entries, x has 3",
        aten.slice.Tensor(x, 3, 0, None, 2).numel(),
        x.numel(),
    )
    d.counterexample(
        RULE.preconditions[4],
        "x = (0, 1, 2) reflect-padded by 1 starts with 1, the constant pad with 0",
        int(F.pad(x, (1, 1, 0, 0), "reflect")[0, 0, 0, 0]),
        int(F.pad(x, (1, 1, 0, 0))[0, 0, 0, 0]),
    )
    d.reach(GENERAL_IN_PART, "slice index ranges; the ops' values exhaustively")
    return d.result
