"""Tests that kill the mutants of ``et/rules/concat_convs.py`` (R11) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id, a changed condition or a missing detail passed; the detail names the
offending branch by its index), and branches of different dtypes were never stacked (the result
takes the first branch's dtype).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.concat_convs import NONEMPTY, SAME_GEOMETRY, SAME_INPUT, TORCH_MODULES, concat_convs


def _triple(convs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        concat_convs(convs)
    return info.value.rule, info.value.condition, info.value.detail


def test_empty_sequence_is_refused() -> None:
    assert _triple([]) == ("R11", NONEMPTY, "got an empty sequence")


def test_non_conv_branch_is_refused_listing_the_types() -> None:
    convs = [nn.Conv2d(2, 3, 3), nn.Linear(2, 3)]
    assert _triple(convs) == (
        "R11",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


@pytest.mark.parametrize(
    ("field", "label", "other", "shown", "first_shown"),
    [
        ("in_channels", SAME_INPUT, {"in_channels": 3}, "3", "2"),
        ("kernel_size", SAME_GEOMETRY, {"kernel_size": 1}, "(1, 1)", "(3, 3)"),
        ("stride", SAME_GEOMETRY, {"stride": 2}, "(2, 2)", "(1, 1)"),
        ("dilation", SAME_GEOMETRY, {"dilation": 2}, "(2, 2)", "(1, 1)"),
        ("padding", SAME_GEOMETRY, {"padding": 0}, "(0, 0)", "(1, 1)"),
        (
            "padding_mode",
            SAME_GEOMETRY,
            {"padding_mode": "reflect"},
            "'reflect'",
            "'zeros'",
        ),
    ],
)
def test_mismatch_names_the_branch_index_and_both_values(
    field: str, label: str, other: dict, shown: str, first_shown: str
) -> None:
    """Branches 0 and 1 agree; branch 2 differs in ``field``: the detail names branch 2."""
    base = {"in_channels": 2, "kernel_size": 3, "padding": 1}
    convs = [nn.Conv2d(out_channels=3, **base), nn.Conv2d(out_channels=1, **base)]
    convs.append(nn.Conv2d(out_channels=2, **{**base, **other}))
    assert _triple(convs) == (
        "R11",
        label,
        f"branch 2 has {field}={shown}, branch 0 has {first_shown}",
    )


@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_mixed_dtypes_stack_in_the_first_branchs_dtype(dtypes) -> None:
    torch.manual_seed(0)
    convs = [nn.Conv2d(2, 3, 3, padding=1, dtype=d) for d in dtypes]
    stacked = concat_convs(convs)
    assert stacked.weight.dtype == dtypes[0] and stacked.bias.dtype == dtypes[0]
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = torch.cat([conv(x.to(conv.weight.dtype)).double() for conv in convs], dim=1)
        torch.testing.assert_close(stacked(x.to(dtypes[0])).double(), expected, rtol=0, atol=1e-5)
