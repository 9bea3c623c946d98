"""An entry's ``expect`` table checked against what was measured on the resulting network.

Ops are ATen op names as the certificate's ``ops_after`` counts them (``batch_norm``,
``add``, ``conv2d``...): ``no-ops = ["add"]`` is met when no ``add.*`` (nor in-place
``add_.*``) call is left; a fully qualified overload (``"add.Tensor"``) matches only itself.
A name that is not an ATen op fails the check instead of passing silently.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from etds.pytest_plugin.config import Expect


@dataclass(frozen=True)
class Measured:
    """What the checks saw: convolution calls left, op counts, rule applications (compile
    mode) and ``(node, op, rule, precondition)`` of each op left unfolded."""

    convs: int
    ops: Mapping[str, int]
    rules: Mapping[str, int]
    unfolded: Sequence[tuple[str, str, str, str]] = ()


def _matches(name: str, op: str) -> bool:
    name = name.removeprefix("aten.")
    if "." in name:
        return op == name
    base = op.split(".")[0]
    return base in (name, f"{name}_")


def _known_op(name: str) -> bool:
    import torch

    return hasattr(torch.ops.aten, name.removeprefix("aten.").split(".")[0])


def _unknown_op(name: str, ops: Mapping[str, int]) -> str:
    seen = sorted({op.split(".")[0] for op in ops} | {"batch_norm", "add", "conv2d", "cat"})
    close = difflib.get_close_matches(name.lower(), seen, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"expect.no-ops: {name!r} is not an ATen op name{hint}"


def unmet(expect: Expect, measured: Measured) -> list[str]:
    """One line per ``expect`` entry that is not met, with the numbers."""
    problems = []
    if expect.max_convs is not None and measured.convs > expect.max_convs:
        problems.append(
            f"expect.max-convs = {expect.max_convs}: {measured.convs} convolutions are left "
            f"({measured.convs - expect.max_convs} too many)"
        )
    for name in expect.no_ops:
        if not _known_op(name):
            problems.append(_unknown_op(name, measured.ops))
            continue
        left = {op: n for op, n in measured.ops.items() if _matches(name, op)}
        if left:
            counts = ", ".join(f"{op} ×{n}" for op, n in sorted(left.items()))
            problems.append(f"expect.no-ops: {name!r} is still called ({counts})")
    for rule in expect.rules:
        if rule not in measured.rules:
            used = ", ".join(sorted(measured.rules)) or "none"
            problems.append(f"expect.rules: {rule} was never applied (applied: {used})")
    return problems


def unfolded_lines(measured: Measured) -> list[str]:
    """``node (op): rule refused: precondition`` for each op left unfolded."""
    return [
        f"{node} ({op}): {rule} refused: {precondition}"
        for node, op, rule, precondition in measured.unfolded
    ]
