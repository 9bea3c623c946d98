"""E10's refusals at their boundaries and the dtypes of what it returns (kill tests of the
mutation pass; ``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et import PreconditionError
from et.rules.rescale_channels import HOMOGENEOUS, SHAPE, ChannelClamp, rescale_channels


def _convs(dtype1=torch.float64, dtype2=torch.float64) -> tuple[nn.Conv2d, nn.Conv2d]:
    torch.manual_seed(0)
    return nn.Conv2d(2, 3, 3, padding=1).to(dtype1), nn.Conv2d(3, 2, 1).to(dtype2)


ALPHA = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)


@pytest.mark.parametrize(
    "upper",
    [
        torch.tensor([1.0, 1.0, 1.0, 1.0]),  # one bound too many, all positive
        torch.tensor([1.0, 0.0, 1.0]),  # a zero bound kills its channel
        torch.tensor([1.0, -1.0, 1.0]),
    ],
)
def test_a_per_channel_clip_needs_one_positive_bound_per_channel(upper) -> None:
    conv1, conv2 = _convs()
    with pytest.raises(PreconditionError) as error:
        rescale_channels(conv1, ChannelClamp(upper), conv2, ALPHA)
    assert error.value.condition == HOMOGENEOUS


def test_a_per_channel_clip_with_positive_bounds_is_scaled() -> None:
    conv1, conv2 = _convs()
    _, clip, _ = rescale_channels(conv1, ChannelClamp(torch.tensor([1.0, 0.5, 2.0])), conv2, ALPHA)
    assert torch.equal(clip.upper, torch.tensor([0.5, 1.0, 8.0], dtype=torch.float64))


def test_a_clip_to_zero_is_refused() -> None:
    """A clip to [0, M] needs M > 0 (M = 0 is no clip the rule scales)."""
    clip = nn.Hardtanh(0.0, 1.0)
    clip.max_val = 0.0
    conv1, conv2 = _convs()
    with pytest.raises(PreconditionError) as error:
        rescale_channels(conv1, clip, conv2, ALPHA)
    assert error.value.condition == HOMOGENEOUS


def test_an_alpha_that_is_no_tensor_is_refused_with_an_empty_shape() -> None:
    conv1, conv2 = _convs()
    with pytest.raises(PreconditionError) as error:
        rescale_channels(conv1, nn.ReLU(), conv2, [0.5, 2.0, 4.0])  # type: ignore[arg-type]
    assert error.value.condition == SHAPE
    assert error.value.detail == "α shape (), conv₁.out_channels=3, conv₂.in_channels=3"


def test_alpha_is_used_in_the_weights_dtype() -> None:
    """A float32 α with float64 convs: the clip bounds α·M are computed in float64 (0.1 is
    not a float32 number), as are the scaled weights."""
    conv1, conv2 = _convs()
    alpha = ALPHA.float()
    scaled1, clip, scaled2 = rescale_channels(conv1, nn.Hardtanh(0.0, 0.1), conv2, alpha)
    assert clip.upper.dtype == torch.float64
    assert torch.equal(clip.upper, torch.tensor(0.1, dtype=torch.float64) * ALPHA)
    assert scaled1.weight.dtype == scaled2.weight.dtype == torch.float64


def test_a_float32_second_conv_gets_float32_weights_divided_in_float32() -> None:
    """conv₂'s columns are divided by α in conv₂'s own dtype."""
    conv1, conv2 = _convs(torch.float64, torch.float32)
    alpha = torch.tensor([0.1, 3.0, 7.0], dtype=torch.float64)
    _, _, scaled2 = rescale_channels(conv1, nn.ReLU(), conv2, alpha)
    assert scaled2.weight.dtype == torch.float32
    inverse = (1.0 / alpha.float()).reshape(1, 3, 1, 1)
    assert torch.equal(scaled2.weight.detach(), conv2.weight.detach() * inverse)
