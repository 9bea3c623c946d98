"""Tests that kill the mutants of ``et/rules/merge_asymmetric.py`` (R5) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id, a changed condition or a missing detail passed), and the "square"
kernel was always square, so a detail naming its height where its width belongs went unseen.
"""

from __future__ import annotations

import pytest
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_asymmetric import NONEMPTY, SAME_GEOMETRY, TORCH_MODULES, merge_asymmetric


def _triple(square, horizontal, vertical) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        merge_asymmetric(square, horizontal, vertical)
    return info.value.rule, info.value.condition, info.value.detail


def test_no_branch_is_refused() -> None:
    assert _triple(None, None, None) == (
        "R5",
        NONEMPTY,
        "all three branches are None",
    )


def test_non_conv_branch_is_refused_naming_its_type() -> None:
    assert _triple(nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2, 2), None) == (
        "R5",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_horizontal_kernel_taller_than_one_row_is_refused() -> None:
    assert _triple(None, nn.Conv2d(2, 2, (2, 3)), None) == (
        "R5",
        "the horizontal kernel is 1×KW",
        "it is 2×3",
    )


def test_vertical_kernel_wider_than_one_column_is_refused() -> None:
    assert _triple(None, None, nn.Conv2d(2, 2, (3, 2))) == (
        "R5",
        "the vertical kernel is KH×1",
        "it is 3×2",
    )


def test_horizontal_width_must_match_a_non_square_big_kernel() -> None:
    """Beside a 5×3 kernel the horizontal branch must be 1×3; a 1×5 one is refused."""
    square = nn.Conv2d(2, 2, (5, 3), padding=(2, 1))
    assert _triple(square, nn.Conv2d(2, 2, (1, 5), padding=(0, 2)), None) == (
        "R5",
        "the horizontal kernel is 1×KW",
        "it is 1×5 beside a square kernel 5×3",
    )


def test_vertical_height_must_match_a_non_square_big_kernel() -> None:
    """Beside a 5×3 kernel the vertical branch must be 5×1; a 3×1 one is refused."""
    square = nn.Conv2d(2, 2, (5, 3), padding=(2, 1))
    assert _triple(square, None, nn.Conv2d(2, 2, (3, 1), padding=(1, 0))) == (
        "R5",
        "the vertical kernel is KH×1",
        "it is 3×1 beside a square kernel 5×3",
    )


def test_branch_mismatch_found_by_r3_is_reported_under_r5() -> None:
    square = nn.Conv2d(2, 2, 3, padding=1)
    rule, condition, _ = _triple(square, nn.Conv2d(2, 2, (1, 3), padding=(0, 1), stride=2), None)
    assert (rule, condition) == ("R5", SAME_GEOMETRY)
