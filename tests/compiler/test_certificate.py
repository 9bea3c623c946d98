"""The certificate claims what ran: each application lists the preconditions evaluated at its
site, where (graph or the rule's own transform) and with what outcome, never the catalogue's
list; G6 is recorded where it applies (issue 25)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import et
from et.compiler.certificate import CertificateBuilder, Check
from et.contract import PreconditionError, observe_preconditions
from et.rules import clip_as_relu as e2
from et.rules import merge_dual_stream as e5


def test_observed_preconditions_are_the_evaluated_ones_with_their_outcome() -> None:
    """Nested observers each see every evaluation inside them; a refusal is seen as False."""
    with observe_preconditions() as outer:
        e2.BOUND.require(True, "")
        with observe_preconditions() as inner, pytest.raises(PreconditionError):
            e2.IS_CONV.require(False, "not a conv")
        e2.BOUND.require(True, "")
    assert inner == [(e2.IS_CONV, False)]
    assert outer == [(e2.BOUND, True), (e2.IS_CONV, False), (e2.BOUND, True)]
    e2.BOUND.require(True, "")  # outside any block: nobody records it
    assert len(outer) == 3


def test_observed_checks_are_transform_checks_each_once() -> None:
    checks = CertificateBuilder.observed([(e2.BOUND, True), (e2.IS_CONV, True), (e2.BOUND, True)])
    assert checks == (
        Check("E2", str(e2.BOUND), "transform", True),
        Check("E2", str(e2.IS_CONV), "transform", True),
    )


def test_the_json_writes_each_check_with_where_it_ran_and_its_outcome() -> None:
    builder = CertificateBuilder()
    ran = Check("E2", str(e2.BOUND), "transform", True)
    builder.applied("E2", ["conv", "clamp"], (ran, "fan-out 1"))
    certificate = et.compiler.Certificate("export", (0.0, 1.0), builder.applications)
    (application,) = json.loads(certificate.to_json())["applications"]
    assert application["preconditions"] == [str(e2.BOUND), "fan-out 1"]
    assert application["checks"] == [
        {"rule": "E2", "precondition": str(e2.BOUND), "checked": "transform", "holds": True},
        {"rule": "E2", "precondition": "fan-out 1", "checked": "graph", "holds": True},
    ]


class Streams(nn.Module):
    """``relu(conv₁(x))`` and ``relu(conv₂(x))`` read the same input, then meet in a product."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(6, 6, 3, padding=1, groups=groups)
        self.second = nn.Conv2d(6, 6, 3, padding=1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.first(x)) * torch.relu(self.second(x))


def _compile(model: nn.Module, channels: int = 6) -> et.compiler.Compiled:
    torch.manual_seed(0)
    return et.compile(model.eval(), (torch.rand(1, channels, 6, 6),))


def test_two_relu_streams_cite_e5_with_the_checks_its_transform_ran() -> None:
    torch.manual_seed(1)
    compiled = _compile(Streams(groups=1))
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "E5"]
    ran = {c.precondition for c in applied.checks if c.checked == "transform" and c.holds}
    # merge_dual_stream_first checks geometry, groups and channels; merge_activations the ReLUs
    assert {str(e5.SHARED_GEOMETRY), str(e5.SINGLE_GROUP), str(e5.CHANNELS)} <= ran
    assert str(e5.SAME_ACTIVATION) in ran
    assert all(c.rule == "E5" for c in applied.checks)


def test_grouped_relu_streams_are_stacked_by_r11_and_their_relus_by_g6() -> None:
    """E5 needs groups = 1: grouped streams are stacked by R11 (dense), and the one ReLU on the
    stacked channels read back as slices is G6, recorded on both ReLUs."""
    torch.manual_seed(2)
    compiled = _compile(Streams(groups=3))
    used = compiled.certificate.rules_used()
    assert "E5" not in used
    assert used.get("R11") == 1 and used.get("G6") == 1
    (g6,) = [a for a in compiled.certificate.applications if a.rule == "G6"]
    assert len(g6.nodes) == 2


def test_e2_claims_no_catalogue_precondition_that_was_not_evaluated() -> None:
    class Clipped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.clamp(self.conv(x), 0.0, 1.0)

    torch.manual_seed(3)
    compiled = _compile(Clipped(), channels=3)
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "E2"]
    assert str(e2.ISOLATED) not in applied.preconditions  # a graph fact, checked as fan-out
    assert str(e2.BOUND) in applied.preconditions
