"""Tests that kill the mutants of ``et/rules/merge_summed_convs.py`` its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the geometry of the merged conv
(``padding_mode``) was not checked against a non-default value, and a refusal re-raised under
E6 could lose its detail or rule id.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_summed_convs import SAME_OUTPUTS, merge_summed_convs


def _conv(in_ch: int, out_ch: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, dtype=torch.float64, **kwargs)


def test_padding_mode_is_kept() -> None:
    torch.manual_seed(0)
    a, b = _conv(4, 6, padding_mode="replicate"), _conv(2, 6, padding_mode="replicate")
    merged = merge_summed_convs(a, b)
    assert merged.padding_mode == "replicate"
    x, r = torch.rand(2, 4, 5, 5, dtype=torch.float64), torch.rand(2, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(merged(torch.cat([x, r], 1)), a(x) + b(r), rtol=0, atol=1e-12)


def test_different_outputs_refusal_names_rule_and_widths() -> None:
    with pytest.raises(PreconditionError) as info:
        merge_summed_convs(_conv(4, 6), _conv(2, 5))
    assert (info.value.rule, info.value.condition, info.value.detail) == (
        "E6",
        SAME_OUTPUTS,
        "6 != 5",
    )


def test_a_reraised_refusal_keeps_its_detail_under_e6() -> None:
    with pytest.raises(PreconditionError) as info:
        merge_summed_convs(_conv(4, 6), nn.Conv2d(2, 6, 5, padding=2, dtype=torch.float64))
    assert info.value.rule == "E6"
    assert info.value.detail  # what the shared check found, not dropped on the way
    assert info.value.detail in str(info.value)
