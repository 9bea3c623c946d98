"""What the compiler must not fold: each case stays unfolded, is named in the certificate, and
the compiled module still computes the original function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import VerificationError, count_convs
from et.testing import compare_outputs, probe_inputs


class BNWithReLU(nn.BatchNorm2d):
    """A BatchNorm subclass whose forward adds a ReLU (a class-name matcher folds it wrongly)."""

    def forward(self, x):
        return F.relu(super().forward(x))


def _bn(c: int, cls=nn.BatchNorm2d) -> nn.BatchNorm2d:
    bn = cls(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    return bn


def _compile(model, domain=(0.0, 1.0)):
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 7, 7, dtype=torch.float64),), domain=domain)
    inputs = probe_inputs((3, 8, 9), domain=domain)
    report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


def test_subclass_with_another_forward_keeps_its_relu() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), _bn(3, BNWithReLU))
    compiled = _compile(model)
    assert compiled.certificate.ops_after.get("relu.default") == 1


def test_conv_feeding_bn_and_another_branch_is_not_folded() -> None:
    torch.manual_seed(1)

    class FanOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), _bn(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) * torch.sigmoid(y)

    compiled = _compile(FanOut())
    refusals = [(u.rule, u.precondition) for u in compiled.certificate.unfolded]
    assert any(rule == "R1" and "feeds nothing" in cond for rule, cond in refusals), refusals


def test_bn_with_batch_statistics_is_left() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3, track_running_stats=False)
    )
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(2, 3, 7, 7, dtype=torch.float64),))
    assert any(u.rule == "R1" for u in compiled.certificate.unfolded)
    assert count_convs(compiled.module) == 1


def test_nonlinearity_between_two_convs_blocks_the_merge() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 3, 3))
    compiled = _compile(model)
    assert count_convs(compiled.module) == 2


def test_negative_inputs_block_the_identity_carry() -> None:
    torch.manual_seed(4)

    class Anchor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1)
            )

        def forward(self, x):
            return F.pixel_shuffle(self.body(x) + torch.repeat_interleave(x, 4, dim=1), 2)

    positive = _compile(Anchor(), domain=(0.0, 1.0))
    assert positive.certificate.rules_used().get("E4") == 1
    negative = _compile(Anchor(), domain=(-1.0, 1.0))
    assert any(u.rule == "E4" and "≥ 0" in u.precondition for u in negative.certificate.unfolded)
    assert "E4" not in negative.certificate.rules_used()


def test_nearest_anchor_is_carried_like_repeat_interleave() -> None:
    torch.manual_seed(5)

    class NearestAnchor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1)
            )

        def forward(self, x):
            return F.pixel_shuffle(self.body(x), 2) + F.interpolate(x, scale_factor=2)

    compiled = _compile(NearestAnchor())
    used = compiled.certificate.rules_used()
    assert used.get("E9") == 1 and used.get("E4") == 1
    assert compiled.certificate.convs_after == 2


def test_a_module_that_is_not_a_function_of_its_input_raises() -> None:
    class Noisy(nn.Module):
        def forward(self, x):
            return x + torch.rand_like(x)

    with pytest.raises(VerificationError):
        et.compile(Noisy(), (torch.rand(1, 3, 7, 7),))


class ShiftPadded(nn.Module):
    """1×1 → BN → border filled with ``fill`` → valid 3×3: one 3×3 only if ``fill`` is the BN's
    shift (the value the 1×1-BN writes everywhere else), to within rounding."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.reduce, self.bn = nn.Conv2d(3, 4, 1, bias=False), _bn(4)
        self.expand = nn.Conv2d(4, 3, 3, bias=False)
        self.offset = offset

    def forward(self, x):
        bn = self.bn
        shift = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fill = (shift + self.offset).view(1, -1, 1, 1)
        out = F.pad(bn(self.reduce(x)), [1, 1, 1, 1])
        out[:, :, :1, :] = fill
        out[:, :, -1:, :] = fill
        out[:, :, :, :1] = fill
        out[:, :, :, -1:] = fill
        return self.expand(out)


def test_border_fill_off_the_bn_shift_keeps_two_convs() -> None:
    torch.manual_seed(7)
    exact = _compile(ShiftPadded(0.0))
    assert count_convs(exact.module) == 1
    # 1e-6 is far above float64 rounding: a real difference the fold must not absorb
    off = _compile(ShiftPadded(1e-6))
    assert count_convs(off.module) == 2
    assert any(u.rule == "R7" and "b₁" in u.precondition for u in off.certificate.unfolded)


class DepthwiseBesideDense(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.dense = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.dw(x) + self.dense(x)


def test_a_dense_branch_is_not_forced_into_depthwise_groups() -> None:
    torch.manual_seed(8)
    model = DepthwiseBesideDense()
    with torch.no_grad():
        model.dense.weight.mul_(torch.eye(4).view(4, 4, 1, 1))  # block-diagonal: regroups
    diagonal = et.compile(model.double().eval(), (torch.rand(1, 4, 7, 7, dtype=torch.float64),))
    assert [n.args[6] for n in diagonal.module.graph.nodes if "conv" in str(n.target)] == [4]
    with torch.no_grad():
        model.dense.weight[0, 1] = 0.5  # one entry off the diagonal blocks
    model = model.double().eval()
    dense = et.compile(model, (torch.rand(1, 4, 7, 7, dtype=torch.float64),))
    assert [n.args[6] for n in dense.module.graph.nodes if "conv" in str(n.target)] == [1]
    report = compare_outputs(model, dense.module, probe_inputs((4, 8, 9)), dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()


def test_average_pool_that_excludes_padding_is_not_a_conv() -> None:
    torch.manual_seed(9)

    class PoolThenPointwise(nn.Module):
        def __init__(self, include_pad: bool) -> None:
            super().__init__()
            self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=include_pad)
            self.point = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.point(self.pool(x))

    assert count_convs(_compile(PoolThenPointwise(True)).module) == 1
    kept = _compile(PoolThenPointwise(False))
    assert kept.certificate.ops_after.get("avg_pool2d.default") == 1
    assert any(u.rule == "R10" for u in kept.certificate.unfolded)


def test_crop_before_a_padded_conv_is_not_absorbed() -> None:
    torch.manual_seed(10)

    class CropThenConv(nn.Module):
        def __init__(self, padding: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, (1, 3), padding=(0, padding))

        def forward(self, x):
            return self.conv(x[:, :, 1:-1, 1:-2])

    assert "G12" in _compile(CropThenConv(0)).certificate.rules_used()
    # padded along the cropped width: the zero ring would sit where x has values
    kept = _compile(CropThenConv(1))
    assert kept.certificate.ops_after.get("slice.Tensor", 0) >= 1
    assert any(u.rule == "G12" for u in kept.certificate.unfolded)


@pytest.mark.parametrize("tiling", ["repeat", "cat"])
def test_tiled_anchor_with_negative_inputs_is_not_carried(tiling: str) -> None:
    torch.manual_seed(11)

    class Tiled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1)
            )

        def forward(self, x):
            anchor = x.repeat(1, 4, 1, 1) if tiling == "repeat" else torch.cat([x] * 4, dim=1)
            return F.pixel_shuffle(self.body(x) + anchor, 2)

    assert _compile(Tiled()).certificate.rules_used().get("E4") == 1
    negative = _compile(Tiled(), domain=(-1.0, 1.0))
    assert any(u.rule == "E4" and "≥ 0" in u.precondition for u in negative.certificate.unfolded)
    assert "E4" not in negative.certificate.rules_used()


def test_concatenation_of_different_tensors_is_no_anchor() -> None:
    torch.manual_seed(12)

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1)
            )

        def forward(self, x):
            return self.body(x) + torch.cat([x, x.flip(2)], dim=1)

    compiled = _compile(Mixed())
    assert "E3" not in compiled.certificate.rules_used()
    assert compiled.certificate.ops_after.get("flip.default") == 1
