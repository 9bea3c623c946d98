"""G8 in the compiler (:mod:`et.compiler.cancel_constants`): ``(x + c) − c`` and
``(x − c) + c`` are x by :mod:`et.rules.cancel_constants`'s transform, whose checks the
certificate lists; where the rule refuses (an ``alpha`` other than 1, a constant that widens x)
the refusal names its precondition, the ops stay and the compile is exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import et
from et.rules import cancel_constants as g8

F64 = torch.float64


class Shifted(nn.Module):
    """``relu(outer(inner(x, k), k))`` with the ops' alphas, for a constant k of ``shape``."""

    def __init__(self, inner, outer, alphas=(1, 1), shape=(1, 3, 1, 1)) -> None:
        super().__init__()
        self.inner, self.outer, self.alphas = inner, outer, alphas
        self.k = nn.Parameter(
            torch.linspace(-1.0, 2.0, int(torch.Size(shape).numel())).reshape(shape)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = self.inner(x, self.k, alpha=self.alphas[0])
        return torch.relu(self.outer(shifted, self.k, alpha=self.alphas[1]))


def _compile(model: nn.Module, channels: int = 3) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = model.double().eval()
    x = torch.rand(1, channels, 6, 7, dtype=F64)
    compiled = et.compile(model, (x,))
    y = torch.rand(2, channels, 9, 8, dtype=F64)
    with torch.no_grad():
        assert torch.allclose(compiled.module(y), model(y), rtol=1e-12, atol=1e-12)
    return compiled


@pytest.mark.parametrize(("inner", "outer"), [(torch.add, torch.sub), (torch.sub, torch.add)])
def test_compiled_g8_lists_the_checks_its_rule_ran(inner, outer) -> None:
    compiled = _compile(Shifted(inner, outer))
    assert compiled.certificate.ops_after == {"relu.default": 1}
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "G8"]
    ran = [c.precondition for c in applied.checks if c.checked == "transform"]
    assert ran == [str(g8.OPPOSITE), str(g8.SAME_CONSTANT), str(g8.NO_BROADCAST)]


@pytest.mark.parametrize(
    ("model", "channels", "condition"),
    [
        (Shifted(torch.add, torch.sub, alphas=(1, 2)), 3, g8.OPPOSITE),
        (Shifted(torch.sub, torch.add, alphas=(0.5, 1)), 3, g8.OPPOSITE),
        (Shifted(torch.add, torch.sub), 1, g8.NO_BROADCAST),
    ],
    ids=["(x + c) − 2c", "(x − c/2) + c", "c widens x"],
)
def test_a_g8_refusal_names_the_rules_precondition(model, channels, condition) -> None:
    compiled = _compile(model, channels)
    assert "G8" not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("relu.default") == 1
    assert len(compiled.certificate.ops_after) > 1  # the shift ops stay
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "G8"]
    assert refusal.precondition == str(condition)
