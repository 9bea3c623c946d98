"""The verification ``et.compile`` runs before it returns: the probe sizes, the fallback to the
example's size, a wrong fold caught, and what the certificate records about it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import VerificationError
from et.compiler.sizes import SizeError
from et.compiler.verify import _describe, measure
from et.compiler.workspace import Workspace
from et.domain import IMAGE_UNIT
from et.testing import ROUNDING_FACTOR, ULPS_AT_LEAST, compare_outputs, probe_inputs


def _conv_bn(kernel: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, kernel, padding=kernel // 2), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    return model.eval()


def test_an_example_is_verified_at_its_own_size_an_odd_size_and_a_larger_one() -> None:
    compiled = et.compile(_conv_bn(), (torch.rand(1, 3, 40, 43),))
    assert compiled.certificate.verified_sizes == [[40, 43], [41, 45], [48, 51]]
    assert compiled.certificate.sizes == "h >= 2 and w >= 2"
    assert compiled.certificate.max_error["float64"] <= 1e-12


def test_a_wide_kernel_widens_the_larger_size() -> None:
    compiled = et.compile(_conv_bn(kernel=11), (torch.rand(1, 3, 40, 40),))
    assert compiled.certificate.verified_sizes == [[40, 40], [41, 43], [51, 51]]


def test_a_model_only_captured_at_static_shapes_holds_at_its_example_size_only() -> None:
    # four valid stride-2 convs (ReLUs between: nothing merges): torch.export cannot solve
    # the size constraints of the symbolic capture, so the static one is used
    torch.manual_seed(1)
    layers = [m for _ in range(4) for m in (nn.Conv2d(3, 3, 3, stride=2), nn.ReLU())]
    compiled = et.compile(nn.Sequential(*layers).eval(), (torch.rand(1, 3, 40, 40),))
    assert "static shapes" in compiled.certificate.capture
    assert compiled.certificate.sizes == "h == 40 and w == 40"
    assert compiled.certificate.verified_sizes == [[40, 40]]
    with pytest.raises(SizeError, match="h == 40 and w == 40"):
        compiled.module(torch.rand(1, 3, 48, 48))


def test_a_wrong_fold_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert compiled.certificate.verified_sizes == [[12, 12], [13, 15], [20, 20]]


# where verification says the worst difference is (the message a refused compile shows)


def test_the_worst_difference_is_located_by_sample_channel_row_and_column() -> None:
    error = torch.zeros(2, 3, 5, 6, dtype=torch.float64)
    error[1, 2, 3, 4] = 0.5
    assert _describe(error, (3, 5, 6), 2.0, "float64") == (
        "max |difference| 5.000e-01 (relative 2.500e-01) at sample 1, channel 2, row 3, "
        "column 4 of the 5×6 probes (float64)"
    )


def test_an_output_without_rows_and_columns_is_located_at_row_and_column_zero() -> None:
    error = torch.zeros(2, 3, dtype=torch.float64)
    error[1, 2] = 0.25
    assert _describe(error, (3, 7, 8), 1.0, "float64").endswith(
        "at sample 1, channel 2, row 0, column 0 of the 7×8 probes (float64)"
    )


# float32 judged as float32, on the module as it is returned


class FarClip(nn.Module):
    """A clip whose upper bound is far above the signal (a fold that stores ``M − b`` in
    float32 loses the bias to rounding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.clamp(self.conv(x), 0, 1e5)


def _float32_error_and_bound(model: nn.Module, compiled: nn.Module) -> tuple[float, float]:
    """max |compiled₃₂ − original₆₄| and ``F·ρ`` (ρ: the original's own float32 rounding, at
    least U ulps of the largest output) on probes the compiler did not see."""
    x = probe_inputs((3, 10, 14), samples=8, seed=5, dtype=torch.float32)
    oracle = copy.deepcopy(model).double()
    with torch.no_grad():
        expected = oracle(x.double())
        own = (model(x).double() - expected).abs().max().item()
        got = (compiled(x).double() - expected).abs().max().item()
    scale = expected.abs().max().item()
    rho = max(own, ULPS_AT_LEAST * torch.finfo(torch.float32).eps * scale)
    return got, ROUNDING_FACTOR * rho


def test_a_fold_that_loses_float32_precision_is_never_certified() -> None:
    torch.manual_seed(11)
    model = FarClip().eval()
    try:
        compiled = et.compile(model, (torch.rand(1, 3, 8, 8),))
    except VerificationError as error:
        assert "float32" in str(error) and "rounding" in str(error)
        return
    assert {t.dtype for t in compiled.module.state_dict().values()} == {torch.float32}
    error, bound = _float32_error_and_bound(model, compiled.module)
    assert error <= bound
    assert (
        compiled.certificate.max_error["float32"] <= compiled.certificate.max_error["bound float32"]
    )


def test_the_certificate_states_the_float32_bound_the_returned_module_met() -> None:
    compiled = et.compile(_conv_bn(), (torch.rand(1, 3, 12, 12),))
    errors = compiled.certificate.max_error
    assert compiled.certificate.dtype == "float32"
    assert 0 < errors["original float32"] <= errors["bound float32"] / ROUNDING_FACTOR
    assert errors["float32"] <= errors["bound float32"]


class IdentityAttribute(nn.Module):
    """A 3×3 conv plus DBB's identity branch: a 1×1 identity kernel kept as a plain tensor
    attribute (float32, neither parameter nor buffer: ``.double()`` leaves it) and cast to
    the input's dtype in ``forward`` (export asserts the attribute's dtype there)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.identity = torch.eye(c).reshape(c, c, 1, 1)

    def forward(self, x):
        return self.conv(x) + F.conv2d(x, self.identity.to(x.dtype))


def test_a_float64_model_with_a_plain_tensor_attribute_compiles_to_a_module_that_runs() -> None:
    torch.manual_seed(12)
    model = IdentityAttribute(4).double().eval()
    compiled = et.compile(model, (torch.rand(1, 4, 10, 10, dtype=torch.float64),))
    ops = [n.target for n in compiled.module.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten._assert_tensor_metadata.default not in ops
    inputs = [probe_inputs((4, 9, 13))]
    report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
    assert report.max_rel_error <= 1e-9
    assert compiled.certificate.convs_after == 1


class Shifted(nn.Module):
    def __init__(self, inner: nn.Module, shift: float) -> None:
        super().__init__()
        self.inner, self.shift = inner, shift

    def forward(self, x):
        return self.inner(x) + self.shift


def test_the_returned_module_is_judged_in_its_dtype_against_the_original_rounding() -> None:
    torch.manual_seed(13)
    original = nn.Conv2d(3, 2, 3, padding=1).double()
    as_float = copy.deepcopy(original).float()
    shapes = [(3, 6, 6), (3, 7, 9)]
    options = {"clamp": None, "tolerance": 1e-9, "dtype": torch.float32}
    errors = measure(original, original, as_float, shapes, IMAGE_UNIT, **options)
    assert 0 < errors["float32"] <= errors["bound float32"]
    # 1e-4 is far below the float64 judgement's reach here (the float64 form is exact) and
    # far above sixteen times float32's rounding of outputs near 1
    off = Shifted(as_float, 1e-4)
    with pytest.raises(VerificationError, match=r"in float32 differs .* rounding"):
        measure(original, original, off, shapes, IMAGE_UNIT, **options)
