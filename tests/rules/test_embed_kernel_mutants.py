"""Tests that kill the mutants of ``et/rules/embed_kernel.py`` (R4) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id, a changed condition or a missing detail passed). The details name
integer paddings, so a true division where a floor division belongs shows up as ``-1.0``.
"""

from __future__ import annotations

import pytest
from torch import nn

from et.contract import PreconditionError
from et.rules.embed_kernel import TORCH_MODULES, embed_kernel


def _triple(conv, kernel_size, **kwargs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        embed_kernel(conv, kernel_size, **kwargs)
    return info.value.rule, info.value.condition, info.value.detail


def test_non_conv_is_refused_naming_its_type() -> None:
    assert _triple(nn.Linear(2, 2), 3) == (
        "R4",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_larger_kernel_is_refused() -> None:
    assert _triple(nn.Conv2d(2, 2, (5, 3)), 3) == (
        "R4",
        "K ≥ k on each axis",
        "kernel (5, 3) does not fit into (3, 3)",
    )


def test_odd_difference_is_refused() -> None:
    assert _triple(nn.Conv2d(2, 2, 3), (5, 4)) == (
        "R4",
        "K − k is even on each axis",
        "kernel (3, 3) → (5, 4) would sit off-centre",
    )


def test_negative_needed_padding_is_refused() -> None:
    assert _triple(nn.Conv2d(2, 2, 1), 5, padding=1) == (
        "R4",
        "the small branch's padding p_K − d·(K − k)/2 is ≥ 0",
        "padding (1, 1) for kernel (5, 5) needs padding (-1, -1) on kernel (1, 1); "
        "a negative padding is a crop of the input",
    )


def test_wrong_small_padding_is_refused_with_the_resulting_padding() -> None:
    conv = nn.Conv2d(2, 2, 3, dilation=(1, 2))
    assert _triple(conv, 5, padding=(2, 3)) == (
        "R4",
        "the small branch's padding is p_K − d·(K − k)/2",
        "kernel (3, 3) with padding (0, 0) and dilation (1, 2) embeds into (5, 5) with "
        "padding (1, 2), not (2, 3)",
    )


def test_embedded_padding_is_integral() -> None:
    embedded = embed_kernel(nn.Conv2d(2, 2, (1, 3), padding=(0, 1), dilation=(2, 1)), 5)
    assert embedded.padding == (4, 2)
    assert all(isinstance(p, int) for p in embedded.padding)
