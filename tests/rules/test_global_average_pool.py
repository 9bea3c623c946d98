"""G11: global average pooling. Properties over sizes and every AvgPool2d keyword; negative
tests (the size precondition included)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.global_average_pool import (
    DIVISOR,
    NO_PADDING,
    TORCH_MODULES,
    WINDOW_IS_IMAGE,
    global_average_pool,
)
from et.strategies import image_batches


@given(data=st.data())
def test_whole_image_pool_is_the_mean(data: st.DataObject) -> None:
    x = data.draw(image_batches(3, min_size=1, max_size=9))
    height, width = x.shape[2:]
    pool = nn.AvgPool2d(
        (height, width),
        stride=data.draw(st.sampled_from([None, 1, 2, 5])),
        ceil_mode=data.draw(st.booleans()),
        count_include_pad=data.draw(st.booleans()),
        divisor_override=data.draw(st.sampled_from([None, height * width])),
    )
    mean = global_average_pool(pool, (height, width))
    expected, got = pool(x), mean(x)
    assert got.shape == expected.shape == (x.shape[0], 3, 1, 1)
    assert torch.allclose(got, x.mean(dim=(2, 3), keepdim=True), rtol=1e-12, atol=0)
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


def test_registered_by_id_and_name() -> None:
    pool = nn.AvgPool2d((2, 3))
    assert isinstance(apply_rule("G11", pool, (2, 3)), nn.AdaptiveAvgPool2d)
    assert isinstance(apply_rule("global_average_pool", pool, (2, 3)), nn.AdaptiveAvgPool2d)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

X = torch.arange(1.0, 21.0, dtype=torch.float64).reshape(1, 1, 4, 5)


def _refused(condition: str, pool: nn.Module, size: tuple[int, int]) -> None:
    with pytest.raises(PreconditionError) as info:
        global_average_pool(pool, size)
    assert info.value.rule == "G11" and info.value.condition is condition


def test_another_size_differs_and_is_refused() -> None:
    pool = nn.AvgPool2d((4, 4))  # the image is 4×5: the last column is never read
    assert (pool(X) - X.mean(dim=(2, 3), keepdim=True)).abs().max() > 0.1
    _refused(WINDOW_IS_IMAGE, pool, (4, 5))


def test_padding_differs_and_is_refused() -> None:
    pool = nn.AvgPool2d((4, 5), stride=1, padding=(1, 2))
    assert pool(X).shape != (1, 1, 1, 1)
    _refused(NO_PADDING, pool, (4, 5))


def test_another_divisor_differs_and_is_refused() -> None:
    pool = nn.AvgPool2d((4, 5), divisor_override=4)
    assert (pool(X) - X.mean(dim=(2, 3), keepdim=True)).abs().max() > 1.0
    _refused(DIVISOR, pool, (4, 5))


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.AvgPool2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted((4, 5)).double()
    x = torch.rand(1, 1, 4, 5).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.AvgPool2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted((4, 5)), (4, 5))
    _refused(TORCH_MODULES, nn.MaxPool2d((4, 5)), (4, 5))
