"""Tests that kill the mutants of ``et/rules/merge_kxk_1x1.py`` (R9) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id, a changed condition or a missing detail passed); a non-conv second
module (which must be refused, not crash) and convs of two dtypes were never tried.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_kxk_1x1 import CHANNELS, POINTWISE, TORCH_MODULES, merge_kxk_1x1


def _triple(conv, pointwise) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        merge_kxk_1x1(conv, pointwise)
    return info.value.rule, info.value.condition, info.value.detail


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        (nn.Linear(2, 3), nn.Conv2d(3, 4, 1), "got Linear, expected torch.nn.Conv2d"),
        (nn.Conv2d(2, 3, 3), nn.Linear(3, 4), "got Linear, expected torch.nn.Conv2d"),
    ],
)
def test_non_conv_is_refused_naming_its_type(first, second, detail: str) -> None:
    assert _triple(first, second) == ("R9", TORCH_MODULES, detail)


@pytest.mark.parametrize(
    ("pointwise", "condition", "detail"),
    [
        (nn.Conv2d(3, 4, (1, 3)), POINTWISE, "its kernel is (1, 3)"),
        (nn.Conv2d(3, 4, 1, stride=(1, 2)), POINTWISE, "its stride is (1, 2)"),
        (
            nn.Conv2d(3, 4, 1, padding=(0, 1)),
            POINTWISE,
            "its padding is (0, 1): it would read zeros around the K×K output",
        ),
        (nn.Conv2d(5, 4, 1), CHANNELS, "5 != 3"),
    ],
    ids=["kernel", "stride", "padding", "channels"],
)
def test_bad_pointwise_is_refused_with_condition_and_detail(
    pointwise: nn.Conv2d, condition: str, detail: str
) -> None:
    assert _triple(nn.Conv2d(2, 3, 3), pointwise) == ("R9", condition, detail)


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_convs_of_two_dtypes_merge_in_the_kxk_convs_dtype(dtypes) -> None:
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=dtypes[0])
    pointwise = nn.Conv2d(3, 4, 1, dtype=dtypes[1])
    merged = merge_kxk_1x1(conv, pointwise)
    assert merged.weight.dtype == dtypes[0] and merged.bias.dtype == dtypes[0]
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = pointwise(conv(x.to(dtypes[0])).to(dtypes[1])).double()
        got = merged(x.to(dtypes[0])).double()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
