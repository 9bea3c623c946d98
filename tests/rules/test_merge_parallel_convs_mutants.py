"""Tests that kill the mutants of ``et/rules/merge_parallel_convs.py`` (R3) its own tests let
survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the rule's tests match the condition
text of a refusal only, so a refusal under another rule id (R4's, whose check R3 reuses for the
centring), with a changed condition or with no detail passed. Each refusal here is checked as
the triple ``(rule, condition, detail)``.
"""

from __future__ import annotations

import pytest
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_parallel_convs import NONEMPTY, TORCH_MODULES, merge_parallel_convs


def _refusal(convs) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        merge_parallel_convs(convs)
    assert info.value.rule == "R3"
    return info.value


def test_empty_list_is_refused_with_rule_condition_and_detail() -> None:
    error = _refusal([])
    assert (error.condition, error.detail) == (NONEMPTY, "got an empty list")


def test_a_branch_that_is_not_a_conv_is_refused_naming_its_type() -> None:
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2, 2)])
    assert (error.condition, error.detail) == (
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_geometry_mismatch_detail_lists_the_values_found() -> None:
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1, stride=2)])
    assert error.condition == "the same stride on every branch"
    assert error.detail == "stride: found [(1, 1), (2, 2)]"


def test_off_centre_kernel_is_refused_under_r3_not_r4() -> None:
    """3×3 and 2×2 branches: K − k = 1 is odd; the centring check is R4's, reported as R3."""
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 2)])
    assert error.condition == "K − k is even on each axis"


def test_misaligned_padding_is_refused_with_the_paddings_in_the_detail() -> None:
    """A 3×3 with padding 1 and a 1×1 with padding 1 centre to paddings (1, 1) and (2, 2)."""
    error = _refusal([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 1, padding=1)])
    assert error.condition == (
        "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches"
    )
    assert error.detail == (
        "kernels [(3, 3), (1, 1)] with paddings [(1, 1), (1, 1)] centre to (3, 3) "
        "with paddings [(1, 1), (2, 2)]"
    )
