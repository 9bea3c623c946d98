"""Forwards written as published blocks write them: the capture survives and folds them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import CaptureError, count_convs
from et.testing import compare_outputs, probe_inputs


def _check(model: nn.Module, channels: int = 3, size: int = 7) -> et.compiler.Compiled:
    model = model.double().eval()
    example = torch.rand(1, channels, size, size, dtype=torch.float64)
    compiled = et.compile(model, (example,))
    for shape in ((channels, size, size), (channels, size + 2, size + 3)):
        report = compare_outputs(model, compiled.module, probe_inputs(shape), dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


class SelfFusingBlock(nn.Module):
    """Multi-branch in training; in eval a kernel built inside forward from parameters
    (a 1×1 then 3×3 pair fused with a conv on the parameters, as ECB's rep_params does)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.k0 = nn.Parameter(torch.randn(c, c, 1, 1))
        self.k1 = nn.Parameter(torch.randn(c, c, 3, 3))
        self.b1 = nn.Parameter(torch.randn(c))

    def forward(self, x):
        if self.training:
            return F.conv2d(F.conv2d(x, self.k0), self.k1, self.b1, padding=1)
        kernel = F.conv2d(self.k1, self.k0.permute(1, 0, 2, 3))
        return F.conv2d(x, kernel, self.b1, padding=1)


def test_kernel_built_in_forward_is_folded_to_one_conv() -> None:
    torch.manual_seed(0)
    compiled = _check(SelfFusingBlock(3))
    assert count_convs(compiled.module) == 1
    assert "G9" in compiled.certificate.rules_used()


class ConstantAttention(nn.Module):
    """Channel attention computed by a Linear from a parameter alone: a constant scale."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.query = nn.Parameter(torch.randn(1, c))
        self.fc = nn.Linear(c, c)

    def forward(self, x):
        attention = torch.sigmoid(self.fc(self.query)).reshape(1, -1, 1, 1)
        return self.conv(x) * attention


def test_constant_attention_folds_into_the_conv() -> None:
    torch.manual_seed(1)
    compiled = _check(ConstantAttention(3))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.ops_after == {"conv2d.default": 1}
    assert "R13" in compiled.certificate.rules_used()


class GlobalPool(nn.Module):
    """Global pooling written with the input's size as the kernel."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 4, 3, padding=1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), x.shape[-1])


def test_pool_with_the_input_size_as_kernel_runs_at_other_sizes() -> None:
    torch.manual_seed(2)
    model = GlobalPool(3).double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 6, 6, dtype=torch.float64),))
    inputs = probe_inputs((3, 9, 9))
    report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
    assert report.max_rel_error <= 1e-9
    assert "G11" in compiled.certificate.rules_used()


class ValuePadded(nn.Module):
    """``F.pad`` with a non-zero value before a valid conv: kept, still the same function."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3)

    def forward(self, x):
        return self.conv(F.pad(x, (1, 1, 1, 1), value=0.5))


def test_non_zero_padding_is_kept_exact() -> None:
    torch.manual_seed(3)
    _check(ValuePadded(3))


class TupleOutput(nn.Module):
    """Two outputs; the first is the image."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        return self.a(x) + self.b(x), self.b(x)


def test_tuple_output_compiles_the_first() -> None:
    torch.manual_seed(4)
    model = TupleOutput(3).double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 7, 7, dtype=torch.float64),))
    assert count_convs(compiled.module) == 1
    x = probe_inputs((3, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(compiled.module(x), model(x)[0], rtol=1e-12, atol=1e-12)


def test_certificate_json_names_rules_and_errors() -> None:
    torch.manual_seed(5)
    compiled = _check(TupleOutput(3))
    import json

    data = json.loads(compiled.certificate.to_json())
    assert data["applications"][0]["rule"] == "R3"
    assert data["applications"][0]["theorem"]
    assert set(data["max_error"]) == {"float64", "float32"}
    assert data["convs_before"] == 2 and data["convs_after"] == 1


def test_the_callers_model_is_not_changed() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    et.compile(model, (torch.rand(1, 3, 7, 7),))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


class AssignsWeightData(nn.Module):
    """Writes ``weight.data`` inside forward (a self-fused deploy kernel), then convolves."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.k3 = nn.Parameter(torch.randn(c, c, 3, 3))
        self.k1 = nn.Parameter(torch.randn(c, c, 1, 1))
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        self.conv.weight.data = self.k3 + F.pad(self.k1, (1, 1, 1, 1))
        self.eval()
        return self.conv(x)


def test_forward_writing_weight_data_is_captured_and_folded() -> None:
    torch.manual_seed(7)
    compiled = _check(AssignsWeightData(3))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.capture.startswith("torch.export")


class BorderWrites(nn.Module):
    """DBB's BN-and-pad: zero-pad, then write a per-channel constant into each border strip."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(c))
        self.conv = nn.Conv2d(c, 4, 3)

    def forward(self, x):
        out = F.pad(x, [1, 1, 1, 1])
        value = self.value.view(1, -1, 1, 1)
        out[:, :, 0:1, :] = value
        out[:, :, -1:, :] = value
        out[:, :, :, 0:1] = value
        out[:, :, :, -1:] = value
        return self.conv(out)


def test_border_strip_writes_become_a_constant_pad() -> None:
    torch.manual_seed(8)
    compiled = _check(BorderWrites(3))
    assert "G2" in compiled.certificate.rules_used()
    assert "slice_scatter.default" not in compiled.certificate.ops_after


class EvalOnlyHostSync(nn.Module):
    """In eval mode reads a parameter as a Python float (a host sync ``torch.export`` cannot
    trace); in training mode computes the same product on the tensor."""

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gain = nn.Parameter(torch.tensor(1.5))
        self.norm = nn.BatchNorm2d(4) if batch_norm else nn.Identity()

    def forward(self, x):
        y = self.norm(self.conv(x))
        if not self.training:
            return y * float(self.gain)
        return y * self.gain


def test_the_training_mode_graph_is_captured_when_eval_mode_export_fails() -> None:
    torch.manual_seed(9)
    model = EvalOnlyHostSync()
    compiled = _check(model)
    assert "train mode" in compiled.certificate.capture
    assert "the eval-mode export failed" in compiled.certificate.capture
    assert count_convs(compiled.module) == 1 and compiled.certificate.rules_used() == {"R13": 1}
    assert not model.training  # the caller's mode is left as it was


def test_no_training_mode_capture_when_a_module_depends_on_the_mode() -> None:
    # with a BatchNorm the two modes compute different functions: no fallback, a clear error
    model = EvalOnlyHostSync(batch_norm=True).eval()
    with pytest.raises(CaptureError, match="eval/") as raised:
        et.compile(model, (torch.rand(1, 3, 7, 7),))
    assert "train/" not in str(raised.value)


class SamePadded(nn.Module):
    """Convs written with ``padding="same"``/``"valid"`` (common in ports of TF models), odd and
    even kernels, dilated, with a linear 3×3 → 1×1 pair and a short residual to fold."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(3, 8, 3, padding="same")
        self.squeeze = nn.Conv2d(8, 3, 1, padding="valid")
        self.even = nn.Conv2d(3, 4, 2, padding="same")
        self.dilated = nn.Conv2d(4, 4, (2, 3), padding="same", dilation=(3, 2))

    def forward(self, x):
        y = F.relu(self.squeeze(self.expand(x)) + x)
        return self.dilated(F.relu(self.even(y)))


def test_same_and_valid_padding_are_written_as_numbers_and_fold() -> None:
    torch.manual_seed(5)
    compiled = _check(SamePadded())
    assert "G14" in compiled.certificate.rules_used()
    assert "conv2d.padding" not in compiled.certificate.ops_after
    assert count_convs(compiled.module) == 3  # expand·squeeze + identity fold into one
