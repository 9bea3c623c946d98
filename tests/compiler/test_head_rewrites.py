"""R16 and R17 on the graph (``et/compiler/head_rewrites.py``): every ATen spelling of a global
mean and a flatten, scaled and subtracted Linears, the native BatchNorm of a decomposed graph,
and the refusals (each naming its precondition)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler.certificate import CertificateBuilder
from et.compiler.pipeline import rewrite_to_fixed_point
from et.compiler.workspace import Workspace
from et.domain import IMAGE_UNIT
from et.rules.fuse_bn_linear import FEATURE_AXIS
from et.rules.merge_parallel_linears import SCALES
from et.testing import compare_outputs, probe_inputs

DTYPE = torch.float64


def _bn(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=DTYPE))
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator))
                sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
    return module.double().eval()


class Pooled(nn.Module):
    """ReLU, BatchNorm2d, a global mean spelled ``how``, a Linear."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.bn, self.fc, self.how = nn.BatchNorm2d(4), nn.Linear(4, 3), how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(F.relu(x))
        pooled = {
            "mean_view": lambda: y.mean((2, 3), keepdim=True).view(y.size(0), -1),
            "mean_reshape": lambda: y.mean((-1, -2), keepdim=True).reshape(-1, 4),
            "mean": lambda: y.mean((-2, -1)),
            "adaptive_flatten": lambda: F.adaptive_avg_pool2d(y, (1, 1)).flatten(1),
            "avg_pool_whole_map": lambda: F.avg_pool2d(y, y.shape[-2:]).flatten(1),
            "flatten_mean": lambda: y.flatten(2).mean(-1),
        }[self.how]()
        return self.fc(pooled)


def _compile(model: nn.Module, shape=(1, 4, 6, 7)):
    return et.compile(model, (torch.rand(*shape, dtype=DTYPE),))


def _ops(compiled) -> str:
    return " ".join(compiled.certificate.ops_after)


def _equal(model: nn.Module, compiled, shape=(4, 6, 7)) -> None:
    report = compare_outputs(model, compiled.module, probe_inputs(shape), dtype=DTYPE)
    assert report.max_rel_error <= 1e-9, report.describe()


@pytest.mark.parametrize(
    "how",
    [
        "mean_view",
        "mean_reshape",
        "mean",
        "adaptive_flatten",
        "avg_pool_whole_map",
        "flatten_mean",
    ],
)
def test_every_global_mean_spelling_folds(how: str) -> None:
    model = _bn(Pooled(how), 0)
    compiled = _compile(model)
    assert "batch_norm" not in _ops(compiled), compiled.certificate.unfolded
    assert compiled.certificate.rules_used().get("R16") == 1
    _equal(model, compiled)


def test_a_mean_over_part_of_the_flattened_map_is_no_global_mean() -> None:
    class RowsOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn, self.fc = nn.BatchNorm2d(4), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.bn(F.relu(x)).flatten(2, 3).mean(1))  # (N, H·W): mixes C

    model = _bn(RowsOnly(), 7)
    compiled = _compile(model, (1, 4, 2, 3))
    assert "batch_norm" in _ops(compiled)
    _equal(model, compiled, (4, 2, 3))


def test_a_mean_over_one_axis_is_no_global_mean() -> None:
    class RowMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn, self.fc = nn.BatchNorm2d(4), nn.Linear(7, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.bn(F.relu(x)).mean(2))  # (N, C, W): the Linear mixes W

    model = _bn(RowMean(), 1)
    compiled = _compile(model)
    assert "batch_norm" in _ops(compiled)
    _equal(model, compiled)


def test_batch_norm_1d_on_a_sequence_is_refused_as_the_wrong_axis() -> None:
    class Sequence(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn, self.fc = nn.BatchNorm1d(4), nn.Linear(7, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.bn(F.relu(x).mean(2)))  # BN over C of (N, C, W), Linear over W

    model = _bn(Sequence(), 2)
    compiled = _compile(model)
    refusals = [u for u in compiled.certificate.unfolded if u.rule == "R16"]
    assert [u.precondition for u in refusals] == [FEATURE_AXIS]
    assert "rank 3" in refusals[0].detail
    _equal(model, compiled)


class Scaled(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.a, self.b, self.how = nn.Linear(4, 3), nn.Linear(4, 3, bias=False), how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x).mean((2, 3))
        return {
            "sub_alpha": lambda: torch.sub(self.a(h), self.b(h), alpha=0.25),
            "mul": lambda: (self.a(h) + self.b(h)) * 3.0,
            "div": lambda: (self.a(h) + self.b(h)) / 2,
            "by_zero": lambda: self.a(h) / 0.0,
        }[self.how]()


@pytest.mark.parametrize("how", ["sub_alpha", "mul", "div"])
def test_scaled_and_subtracted_linears_become_one(how: str) -> None:
    model = _bn(Scaled(how), 3)
    compiled = _compile(model)
    assert compiled.certificate.ops_after.get("linear.default") == 1, compiled.certificate
    _equal(model, compiled)


def _rewritten(model: nn.Module, x: torch.Tensor, decompose: bool = False) -> Workspace:
    """The rewrites run on ``model``'s exported graph (no verification: the refusal itself)."""
    program = torch.export.export(model, (x,))
    module = (program.run_decompositions() if decompose else program).module()
    ws = Workspace(module, IMAGE_UNIT, CertificateBuilder())
    rewrite_to_fixed_point(ws)
    return ws


def test_a_division_by_zero_is_refused_as_no_finite_factor() -> None:
    ws = _rewritten(_bn(Scaled("by_zero"), 4), torch.rand(2, 4, 3, 3, dtype=DTYPE))
    refusals = [u for u in ws.record._unfolded.values() if u.rule == "R17"]
    assert [u.precondition for u in refusals] == [SCALES]


def test_the_native_batch_norm_of_a_decomposed_graph_folds() -> None:
    """``run_decompositions`` writes BatchNorm as output 0 of
    ``_native_batch_norm_legit_no_training``: R16 reads that spelling too."""
    model = _bn(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 3)), 5)
    x = torch.rand(3, 4, dtype=DTYPE)
    ws = _rewritten(model, x, decompose=True)
    graph = ws.finish()
    assert not any("batch_norm" in str(n.target) for n in graph.graph.nodes)
    [application] = ws.record.applications
    assert application.rule == "R16"
    assert application.nodes[0].startswith("_native_batch_norm_legit_no_training")
    assert "addmm" in application.nodes[-1]
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x), rtol=1e-12, atol=1e-12)


def test_decomposed_heads_averaged_become_one_linear() -> None:
    """``addmm``/``mm`` with a transposed constant weight: the decomposed spelling of Linear."""
    model = _bn(Scaled("div"), 6)
    x = torch.rand(2, 4, 3, 3, dtype=DTYPE)
    ws = _rewritten(model, x, decompose=True)
    graph = ws.finish()
    targets = [n.target for n in graph.graph.nodes]
    assert targets.count(torch.ops.aten.linear.default) == 1
    assert not {torch.ops.aten.addmm.default, torch.ops.aten.mm.default} & set(targets)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x), rtol=1e-12, atol=1e-12)
