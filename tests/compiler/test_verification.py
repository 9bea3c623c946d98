"""The verification ``et.compile`` runs before it returns: the probe sizes, the fallback to the
example's size, a wrong fold caught, and what the certificate records about it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import et
from et.compiler import VerificationError
from et.compiler.verify import SMALLEST_SIDE, _describe, probe_shapes, shrink
from et.compiler.workspace import Workspace


@given(side=st.integers(1, 4096), base=st.integers(1, 64))
def test_shrink_keeps_small_sides_and_the_residue_of_large_ones(side: int, base: int) -> None:
    small = shrink(side, base)
    if side < 2 * base:
        assert small == side
    else:
        assert base <= small < 2 * base
        assert (side - small) % base == 0  # every power of two up to base divides both alike


@given(
    channels=st.integers(1, 4),
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    kernel=st.integers(1, 31),
)
def test_probe_shapes_are_one_odd_and_one_even_side_per_axis(
    channels: int, height: int, width: int, kernel: int
) -> None:
    first, second = probe_shapes((channels, height, width), kernel)
    assert first[0] == second[0] == channels
    assert second[1] == first[1] + 1 and second[2] == first[2] + 1
    assert first[1] <= height and first[2] <= width
    # a side is shrunk only while the widest kernel still fits with an interior left
    for side, small in ((height, first[1]), (width, first[2])):
        assert small == side or small > kernel


def _conv_bn(kernel: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, kernel, padding=kernel // 2), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    return model.eval()


def test_a_large_example_is_verified_at_small_sizes() -> None:
    compiled = et.compile(_conv_bn(), (torch.rand(1, 3, 40, 43),))
    assert compiled.certificate.verified_sizes == [[8, 11], [9, 12]]
    assert compiled.certificate.max_error["float64"] <= 1e-12


def test_a_wide_kernel_raises_the_smallest_probe_size() -> None:
    compiled = et.compile(_conv_bn(kernel=11), (torch.rand(1, 3, 40, 40),))
    assert compiled.certificate.verified_sizes == [[16, 16], [17, 17]]  # base 12: 12 + 40 % 12


def test_a_model_that_needs_its_example_size_is_verified_there() -> None:
    # four valid stride-2 convs (ReLUs between: nothing merges) need 31 pixels a side, so
    # the original cannot run at the shrunk 8×8
    torch.manual_seed(1)
    layers = [m for _ in range(4) for m in (nn.Conv2d(3, 3, 3, stride=2), nn.ReLU())]
    compiled = et.compile(nn.Sequential(*layers).eval(), (torch.rand(1, 3, 40, 40),))
    assert compiled.certificate.verified_sizes == [[40, 40], [41, 41]]


def test_a_wrong_fold_is_caught_at_the_small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Workspace.apply

    def off_by_a_little(ws: Workspace, name: str, *args):
        fused, checks = real(ws, name, *args)
        if name == "fuse_conv_bn":
            with torch.no_grad():
                fused.bias[0] += 1e-6  # one channel's bias, a millionth off
        return fused, checks

    monkeypatch.setattr(Workspace, "apply", off_by_a_little)
    with pytest.raises(VerificationError, match="differs from the original"):
        et.compile(_conv_bn(), (torch.rand(1, 3, 40, 40),))


def test_certificate_records_phase_times_and_the_thread_count_is_restored() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compiled = et.compile(_conv_bn(), (torch.rand(1, 3, 12, 12),))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    timings = compiled.certificate.timings
    assert set(timings) == {"capture", "rewrite", "verify"}
    assert all(seconds >= 0 for seconds in timings.values())
    assert '"verified_sizes"' in compiled.certificate.to_json()
    assert compiled.certificate.verified_sizes == [[12, 12], [13, 13]]  # 12 < 2·8: kept
    assert SMALLEST_SIDE == 8


# where verification says the worst difference is (the message a refused compile shows)


def test_the_worst_difference_is_located_by_sample_channel_row_and_column() -> None:
    error = torch.zeros(2, 3, 5, 6, dtype=torch.float64)
    error[1, 2, 3, 4] = 0.5
    assert _describe(error, (3, 5, 6), 2.0) == (
        "max |difference| 5.000e-01 (relative 2.500e-01) at sample 1, channel 2, row 3, "
        "column 4 of the 5×6 probes (float64)"
    )


def test_an_output_without_rows_and_columns_is_located_at_row_and_column_zero() -> None:
    error = torch.zeros(2, 3, dtype=torch.float64)
    error[1, 2] = 0.25
    assert _describe(error, (3, 7, 8), 1.0).endswith(
        "at sample 1, channel 2, row 0, column 0 of the 7×8 probes (float64)"
    )
