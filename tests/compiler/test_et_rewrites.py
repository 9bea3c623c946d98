"""The ET rewrites on ordinary code: every keyword of the ATen op is handled exactly or makes
the pattern not match (issue 25), and E2 is left where float32 would lose the output.

Each compile-level case checks the compiled module against the original in float64 (relative
1e-9) at two input sizes; what matters is that compile never raises and never folds wrongly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler.shuffle_rewrites import PRECISION
from et.testing import compare_outputs, probe_inputs

SIZES = ((7, 5), (10, 12))


class Body(nn.Module):
    """Two 3×3 convs (3 → 12), a 1×1 conv (3 → 12) and a 3×3 conv (12 → 12) around a forward
    given as a function."""

    def __init__(self, forward) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 12, 3, padding=1)
        self.b = nn.Conv2d(3, 12, 3, padding=1)
        self.one = nn.Conv2d(3, 12, 1)
        self.c = nn.Conv2d(12, 12, 3, padding=1)
        self.body = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self, x)


def _compiled(forward, seed: int = 0, channels: int = 3) -> tuple[nn.Module, et.compiler.Compiled]:
    torch.manual_seed(seed)
    model = Body(forward).double().eval()
    example = torch.rand(1, channels, 6, 6, dtype=torch.float64)
    compiled = et.compile(model, (example,))  # a VerificationError here is the bug
    for size in SIZES:
        inputs = probe_inputs((channels, *size))
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
    return model, compiled


def _rules(compiled) -> dict[str, int]:
    return compiled.certificate.rules_used()


# --- E6 as really used: PS(a) + α·PS(b), PS(a) − α·PS(b) -----------------------------------


@pytest.mark.parametrize(
    "combine",
    [
        lambda p, q: torch.add(p, q, alpha=2),
        lambda p, q: torch.add(p, q, alpha=-0.5),
        lambda p, q: p - q,
        lambda p, q: torch.sub(p, q, alpha=3),
    ],
    ids=["add alpha 2", "add alpha -0.5", "sub", "sub alpha 3"],
)
def test_a_scaled_sum_of_shuffles_folds_with_the_scale_in_the_second_conv(combine) -> None:
    """``PS(conv_a(x)) ± α·PS(conv_b(x))`` is one conv and one shuffle: E6 after R13 scales
    conv_b by ±α (the rule whose transform ran is recorded with it)."""

    def forward(m, x):
        return combine(F.pixel_shuffle(m.a(x), 2), F.pixel_shuffle(m.b(x), 2))

    _, compiled = _compiled(forward)
    used = _rules(compiled)
    assert used.get("E6") == 1 and used.get("R13") == 1
    assert compiled.certificate.convs_after == 1
    (e6,) = [a for a in compiled.certificate.applications if a.rule == "E6"]
    ran = {c.rule for c in e6.checks if c.checked == "transform"}
    assert ran == {"E6"}  # E6's check_summed_convs ran on the two convs


def test_a_sum_of_shuffles_of_kernels_of_two_sizes_embeds_the_smaller_first() -> None:
    def forward(m, x):
        return torch.add(F.pixel_shuffle(m.a(x), 2), F.pixel_shuffle(m.one(x), 2), alpha=2)

    _, compiled = _compiled(forward)
    assert {"E6", "R4", "R13"} <= set(_rules(compiled))
    assert compiled.certificate.convs_after == 1


def test_a_sum_of_shuffles_of_something_else_is_left_with_its_reason() -> None:
    """E6's theorem is about two convs: ``PS(conv(x)) + 2·PS(relu(conv(x)))`` is left."""

    def forward(m, x):
        return torch.add(
            F.pixel_shuffle(m.a(x), 2), F.pixel_shuffle(torch.relu(m.b(x)), 2), alpha=2
        )

    _, compiled = _compiled(forward)
    assert "E6" not in _rules(compiled)
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E6"]
    assert refusal.precondition == "both summands are PixelShuffles of convs"
    assert refusal.op == "aten.add.Tensor"


# --- alpha in the other sum patterns --------------------------------------------------------


def test_a_scaled_anchor_added_to_a_conv_is_folded_exactly() -> None:
    """E3/E4 with ``conv(h) + 2·repeat_interleave(x, 4)``: the scale is not the anchor's."""

    def forward(m, x):
        anchor = torch.repeat_interleave(x, 4, dim=1)
        return F.pixel_shuffle(torch.add(m.c(torch.relu(m.b(x))), anchor, alpha=2), 2)

    _, compiled = _compiled(forward)
    assert _rules(compiled).get("E3") == 1  # an equal operand: exact under any alpha
    assert "E4" not in _rules(compiled)  # E4 carries the plain sum only


def test_a_scaled_carried_branch_is_folded_exactly() -> None:
    """E4's sum ``conv_a(relu(conv(x))) + 3·conv_b(x)``."""

    def forward(m, x):
        return torch.add(m.c(torch.relu(m.b(x))), m.one(x), alpha=3)

    _, compiled = _compiled(forward)
    assert "E4" not in _rules(compiled)


def test_a_scaled_shift_before_a_valid_conv_is_folded_exactly() -> None:
    """G4: ``conv(x + 2·c; padding 0)``."""
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).reshape(1, 3, 1, 1)

    def forward(m, x):
        return F.conv2d(torch.add(x, shift, alpha=2), m.a.weight, m.a.bias)

    _compiled(forward)


def test_scaled_constants_that_do_not_cancel_are_kept() -> None:
    """G8: ``(x + 2·c) − c`` is ``x + c``, never x."""
    c = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).reshape(1, 3, 1, 1)

    def forward(m, x):
        return m.a(torch.add(x, c, alpha=2) - c)

    _compiled(forward)


# --- E2 in float32 -----------------------------------------------------------------------------


class Offset(nn.Module):
    """``clamp(conv(x), 0, M)`` for a 1×1 conv whose outputs lie in [0.6, 0.8] on [0, 1]."""

    def __init__(self, high: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.high = high
        with torch.no_grad():
            self.conv.weight.fill_(0.2)
            self.conv.bias.fill_(0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.conv(x), 0.0, self.high)


def test_a_clip_bound_far_above_the_signal_is_not_folded_and_the_certificate_says_why() -> None:
    model = Offset(1e5).eval()
    compiled = et.compile(model, (torch.rand(1, 1, 6, 6),))
    assert "E2" not in compiled.certificate.rules_used()
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E2"]
    assert refusal.precondition == PRECISION
    assert "M = 100000" in refusal.detail
    x = torch.rand(4, 1, 9, 9, generator=torch.Generator().manual_seed(3))
    reference = Offset(1e5).double().eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        exact = reference(x.double())
        error = (compiled.module.float()(x) - exact).abs().max().item()
    assert exact.min() > 0.55 and exact.max() < 0.85  # outputs ≈ 0.7
    assert error < 1e-6


def test_a_clip_bound_at_the_signal_is_still_folded() -> None:
    compiled = et.compile(Offset(1.0).eval(), (torch.rand(1, 1, 6, 6),))
    assert compiled.certificate.rules_used().get("E2") == 1
    assert not [u for u in compiled.certificate.unfolded if u.rule == "E2"]


def test_a_scaled_sum_is_not_taken_as_non_negative_for_e4() -> None:
    """``u = relu(x) − 2·relu(x) ≤ 0``: its bound is not the plain sum's, so E4 (which needs
    u ≥ 0) is refused and the network compiles exactly."""

    def forward(m, x):
        u = torch.add(torch.relu(x), torch.relu(x), alpha=-2)
        return m.c(torch.relu(m.b(u))) + m.one(u)

    _, compiled = _compiled(forward)
    assert "E4" not in _rules(compiled)


def test_a_scaled_nearest_anchor_is_its_anchor_conv_scaled_then_carried() -> None:
    """``PS(body(x)) − ½·nearest(x, 2)``: E9, the anchor as a conv (E3) scaled by −½ (R13) and
    summed under one shuffle (E6), then carried (E4): two convs, exact."""

    def forward(m, x):
        body = m.c(torch.relu(m.b(x)))
        return torch.sub(F.pixel_shuffle(body, 2), F.interpolate(x, scale_factor=2), alpha=0.5)

    _, compiled = _compiled(forward)
    assert {"E9", "E3", "R13", "E6", "E4"} <= set(_rules(compiled))
    assert compiled.certificate.convs_after == 2
