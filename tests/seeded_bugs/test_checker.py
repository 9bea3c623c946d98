"""Tests that kill the mutants of the checker (``et/testing.py``, ``et/probes.py``) the checker's
own tests and the seeded bugs let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): ``assert_equivalent`` passing on its
``seed``, ``clamp`` and ``rtol`` was never observed (every caller used the defaults, or a pair
where the argument does not matter), ``EquivalenceReport.allowed`` was never evaluated with
``rtol`` left at its default, and the failure message (where the largest difference is, border
or interior) was only matched loosely.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import et.testing
from et.probes import probe_batches
from et.testing import EquivalenceReport, assert_equivalent, compare_outputs


def _conv(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(3, 3, 3, padding=1, dtype=torch.float64).eval()


def _report(**changes) -> EquivalenceReport:
    fields = dict(
        max_abs_error=0.5,
        scale=2.0,
        rounding=1e-6,
        where=(1, 2, 3, 4),
        size=(5, 6),
        on_border=True,
        inputs=7,
        output_shape=(2, 3, 5, 6),
        dtype=torch.float32,
        oracle_dtype=torch.float64,
        mode="eval",
        nonfinite=False,
    )
    return EquivalenceReport(**(fields | changes))


def test_allowed_is_atol_plus_rtol_scale_plus_rounding() -> None:
    report = _report()
    assert report.allowed(atol=0.25) == 0.25 + 16.0 * 1e-6  # rtol defaults to 0
    assert report.allowed(atol=0.0, rtol=0.5, rounding_factor=0.0) == 1.0
    assert report.allowed(atol=0.0, rounding_factor=2.0) == 2e-6


def test_describe_says_where_the_largest_difference_is() -> None:
    assert _report().describe() == (
        "max |difference| 5.000e-01 (relative 2.500e-01; the original's own rounding "
        "1.000e-06) at sample 1 (5×6 input), channel 2, row 3, column 4 (on the border) over "
        "7 inputs; float32 vs a float64 oracle, eval mode"
    )
    inside = _report(on_border=False, where=(2,), mode="train", dtype=torch.float64)
    assert inside.describe() == (
        "max |difference| 5.000e-01 (relative 2.500e-01; the original's own rounding "
        "1.000e-06) at sample 2 (5×6 input), channel 0, row 0, column 0 (in the interior) over "
        "7 inputs; float64 vs a float64 oracle, train mode"
    )
    assert "sample 0 (5×6 input), channel 0, row 0, column 0" in _report(where=()).describe()


def test_assert_equivalent_draws_its_probes_with_the_given_seed(monkeypatch) -> None:
    seeds = []

    def recording(*args, **kwargs):
        seeds.append(kwargs.get("seed", "not passed"))
        return probe_batches(*args, **kwargs)

    monkeypatch.setattr(et.testing, "probe_batches", recording)
    conv = _conv()
    assert_equivalent(conv, copy.deepcopy(conv))
    assert_equivalent(conv, copy.deepcopy(conv), seed=5)
    assert seeds == [0, 5]


def test_assert_equivalent_compares_clamped_outputs_when_asked() -> None:
    original = _conv()
    with torch.no_grad():
        original.weight.mul_(4)  # outputs well outside [0, 1]
    clamped = nn.Sequential(copy.deepcopy(original), nn.Hardtanh(0.0, 1.0))
    report = assert_equivalent(original, clamped, clamp=(0.0, 1.0))
    assert report.scale <= 1.0
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(original, clamped)


def test_assert_equivalent_allows_the_given_relative_error() -> None:
    original = _conv()
    scaled = copy.deepcopy(original)
    with torch.no_grad():
        scaled.weight.mul_(1 + 1e-8)
        scaled.bias.mul_(1 + 1e-8)
    assert_equivalent(original, scaled, atol=0.0, rtol=1e-6)
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(original, scaled, atol=0.0, rtol=0.0)
    # the message states the allowance: here rtol · max|original output| (rounding is ~1e-16)
    with torch.no_grad():
        scale = max(original(x).abs().max().item() for x in probe_batches(3))
    allowed = rf"\(allowed {1e-9 * scale:.3e}\); stored weights in float64"
    with pytest.raises(AssertionError, match=allowed):
        assert_equivalent(original, scaled, atol=0.0, rtol=1e-9)


class _Bump(nn.Module):
    """``conv`` plus 1e-3 at one output pixel (every sample and channel)."""

    def __init__(self, conv: nn.Conv2d, row: int, col: int) -> None:
        super().__init__()
        self.conv, self.row, self.col = copy.deepcopy(conv), row, col

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).clone()
        y[..., self.row, self.col] += 1e-3
        return y


@pytest.mark.parametrize(
    ("row", "col", "border"), [(3, 3, False), (3, 0, True), (5, 3, True), (0, 6, True)]
)
def test_the_largest_difference_is_located_on_the_border_or_inside(row, col, border) -> None:
    conv = _conv()
    x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    report = compare_outputs(conv, _Bump(conv, row, col), x)
    assert report.where[2:] == (row, col)
    assert report.on_border is border
    assert report.output_shape == (2, 3, 6, 7)
    assert report.size == (6, 7)


def test_inputs_are_counted_over_every_batch() -> None:
    conv = _conv()
    batches = [
        torch.rand(5, 3, 4, 4, dtype=torch.float64),
        torch.rand(2, 3, 6, 5, dtype=torch.float64),
    ]
    assert compare_outputs(conv, copy.deepcopy(conv), batches).inputs == 7
    # an empty batch adds nothing and breaks nothing
    empty = torch.zeros(0, 3, 4, 4, dtype=torch.float64)
    assert compare_outputs(conv, copy.deepcopy(conv), [empty, *batches]).inputs == 7
    with pytest.raises(ValueError) as raised:
        compare_outputs(conv, copy.deepcopy(conv), [])
    assert str(raised.value) == "no inputs to compare on"


def test_the_input_size_reported_is_its_last_two_dimensions() -> None:
    linear = nn.Linear(4, 4, dtype=torch.float64)
    assert compare_outputs(
        linear, copy.deepcopy(linear), torch.rand(5, 4, dtype=torch.float64)
    ).size == (5, 4)
    assert compare_outputs(
        linear, copy.deepcopy(linear), torch.rand(4, dtype=torch.float64)
    ).size == (1, 1)
    conv = _conv()
    unbatched = torch.rand(3, 6, 7, dtype=torch.float64)
    assert compare_outputs(conv, copy.deepcopy(conv), unbatched).size == (6, 7)


def test_the_default_dtype_is_the_converted_models_then_the_originals() -> None:
    conv = _conv()
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    assert compare_outputs(conv, copy.deepcopy(conv).float(), x).dtype == torch.float32
    relu32 = nn.Sequential(copy.deepcopy(conv).float(), nn.ReLU())
    assert compare_outputs(relu32, nn.ReLU(), x).dtype == torch.float32


def _cancelling() -> nn.Sequential:
    """``(x + 10⁴) − 10⁴`` through two 1×1 convs: exact in float64, ~5e-4 off in float32."""
    up, down = (nn.Conv2d(3, 3, 1, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        for conv, shift in ((up, 1e4), (down, -1e4)):
            conv.weight.copy_(torch.eye(3, dtype=torch.float64).reshape(3, 3, 1, 1))
            conv.bias.fill_(shift)
    return nn.Sequential(up, down).eval()


def test_the_originals_own_rounding_is_measured_in_the_compared_dtype() -> None:
    original = _cancelling()
    x = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    report = compare_outputs(original, copy.deepcopy(original).float(), x)
    assert report.dtype == torch.float32
    assert 1e-4 < report.rounding < 2e-3  # float32 spacing at 10⁴ is 2⁻¹⁰ ≈ 9.8e-4
    assert report.equivalent(atol=0.0)  # the converted model is the original, rounded


def test_the_rounding_reference_runs_in_the_requested_mode() -> None:
    torch.manual_seed(0)
    original = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))
    with torch.no_grad():
        original[1].running_mean.fill_(5.0)  # eval and train mode differ by far
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    report = compare_outputs(original, copy.deepcopy(original), x, mode="train")
    assert report.mode == "train"
    assert report.rounding < 1e-4


class _CastsToFloat32(nn.Module):
    """A forward that casts its input to float32: it cannot run with float64 weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = copy.deepcopy(_conv()).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.float())


def test_an_original_run_as_written_gets_its_dtypes_rounding_floor() -> None:
    from et.testing import ULPS_AT_LEAST

    original = _CastsToFloat32()
    x = torch.rand(3, 3, 5, 5, dtype=torch.float64)
    report = compare_outputs(original, copy.deepcopy(original), x)
    assert report.oracle_dtype == torch.float32
    eps = torch.finfo(torch.float32).eps
    assert report.rounding == pytest.approx(4 * ULPS_AT_LEAST * eps * report.scale, rel=1e-12)


class _CastsToFloat32WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        with torch.no_grad():
            self.bn.running_mean.fill_(5.0)  # eval and train mode differ by far

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x.float()))


def test_an_original_run_as_written_keeps_the_requested_mode() -> None:
    original = _CastsToFloat32WithBatchNorm()
    x = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    report = compare_outputs(original, copy.deepcopy(original), x, mode="train")
    assert report.oracle_dtype == torch.float32
    assert report.max_abs_error < 1e-5


class _CastsItsWeights(nn.Module):
    """A forward that casts its weights (not its input) to float32: run as written, it needs
    float32 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = copy.deepcopy(_conv()).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.conv.weight.float(), self.conv.bias.float()
        return torch.nn.functional.conv2d(x, weight, bias, padding=1)


def test_an_original_run_as_written_gets_inputs_in_its_own_dtype() -> None:
    original = _CastsItsWeights()
    x = torch.rand(3, 3, 5, 5, dtype=torch.float64)
    report = compare_outputs(original, copy.deepcopy(original), x)
    assert report.oracle_dtype == torch.float32
    assert report.max_abs_error == 0.0
    # against a float64 model the inputs arrive in float64 and must be cast for the original
    report = compare_outputs(original, _conv(), x)
    assert report.oracle_dtype == torch.float32 and report.dtype == torch.float64
    assert report.max_abs_error < 1e-5
