"""A valid conv reading a crop ``x[a:−b]`` compiles to a conv on x with zero taps
(G12; R4 when centred), so ACNet's crop variant merges to one conv (tests/zoo has the block)."""

from __future__ import annotations

import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import nn

import et
from tests.zoo import blocks
from tests.zoo.test_zoo import check_compiled


class CroppedConv(nn.Module):
    """``conv(x[:, :, a:−a, b:−b])`` (an axis with 0 is not cropped)."""

    def __init__(self, c: int, kernel, stride: int, dilation: int, rows: int, cols: int) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        self.conv = nn.Conv2d(c, c + 1, kernel, stride, 0, dilation)

    def forward(self, x):
        if self.rows:
            x = x[:, :, self.rows : -self.rows, :]
        if self.cols:
            x = x[:, :, :, self.cols : -self.cols]
        return self.conv(x)


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    kh=st.sampled_from([1, 3]),
    kw=st.sampled_from([1, 3]),
    stride=st.sampled_from([1, 2]),
    dilation=st.sampled_from([1, 2]),
    taps=st.tuples(st.integers(0, 1), st.integers(0, 1)).filter(any),
    channels=st.sampled_from([1, 3]),
    # from 3: the conv's output then has 2 pixels or more a side at stride 2 too (a 1-pixel
    # map makes torch.export fix the example's size, so the compile would hold there only)
    extra=st.integers(3, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_centred_crop_becomes_zero_taps(
    kh: int, kw: int, stride: int, dilation: int, taps, channels: int, extra: int, seed: int
) -> None:
    rows, cols = (t * dilation for t in taps)  # crops of whole dilated taps
    model = CroppedConv(channels, (kh, kw), stride, dilation, rows, cols)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    size = 2 * max(rows, cols) + dilation * (max(kh, kw) - 1) + extra
    compiled = check_compiled(model, channels, size, expected_convs=1)
    assert compiled.certificate.rules_used().get("G12") == sum(1 for t in taps if t)
    assert "slice.Tensor" not in compiled.certificate.ops_after


def test_a_padded_conv_keeps_its_crop_and_says_why() -> None:
    # with padding 1 the crop is followed by zeros where x has values: no zero-tap form
    model = CroppedConv(3, 3, 1, 1, 1, 0)
    model.conv.padding = (1, 1)
    blocks.randomize(model, torch.Generator().manual_seed(4))
    compiled = check_compiled(model, 3, 7, expected_convs=1)
    assert "G12" not in compiled.certificate.rules_used()
    refused = [u for u in compiled.certificate.unfolded if u.rule == "G12"]
    assert refused and "padding 0" in refused[0].precondition
    assert "slice.Tensor" in compiled.certificate.ops_after


def test_an_off_centre_crop_takes_its_own_zero_taps() -> None:
    class OneSided(nn.Module):
        def __init__(self, end: int | None) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.end = end

        def forward(self, x):
            return self.conv(x[:, :, 1 : self.end, :])

    for end in (None, -2):
        model = blocks.randomize(OneSided(end), torch.Generator().manual_seed(5))
        compiled = check_compiled(model, 3, 7, expected_convs=1)
        assert compiled.certificate.rules_used().get("G12") == 1
        assert "slice.Tensor" not in compiled.certificate.ops_after
        assert "R4" not in compiled.certificate.rules_used()  # not centred: no embedding


def test_a_crop_counted_from_the_start_is_left_alone() -> None:
    class FromStart(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(x[:, :, 1:6, :])  # holds at one input height only

    model = blocks.randomize(FromStart(), torch.Generator().manual_seed(6))
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 7, 7, dtype=torch.float64),))
    assert "G12" not in compiled.certificate.rules_used()


def test_a_crop_not_a_multiple_of_the_dilation_is_refused() -> None:
    model = CroppedConv(3, 3, 1, 2, 1, 0)  # crop 1 row, dilation 2
    blocks.randomize(model, torch.Generator().manual_seed(6))
    compiled = check_compiled(model, 3, 9, expected_convs=1)
    refused = [u for u in compiled.certificate.unfolded if u.rule == "G12"]
    assert refused and "dilated taps" in refused[0].precondition
