"""Capture details that only some forwards exercise (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.export import Dim

import et
from et.compiler.capture import (
    CaptureError,
    _batched,
    _dynamic_shapes,
    capture,
    functionalize_slice_copies,
)
from et.testing import compare_outputs, probe_inputs


class BatchReshape(nn.Module):
    """Squeeze-and-excitation written with the batch size: ``reshape(x.shape[0], -1, 1, 1)``.
    Captured at static shapes it only runs at the example's batch, so the compiler must fall
    back to the capture with a dynamic batch."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * torch.sigmoid(y.mean(dim=(2, 3)).reshape(x.shape[0], -1, 1, 1))


def test_a_forward_using_the_batch_size_runs_at_every_batch() -> None:
    torch.manual_seed(0)
    model = BatchReshape(3).double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 6, 6, dtype=torch.float64),))
    assert "dynamic" in compiled.certificate.capture
    for batch in (1, 3, 8):
        inputs = probe_inputs((3, 7, 5), samples=batch)
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()


# --- the capture's helpers and its modes ---------------------------------------------------


def test_a_batch_of_one_is_captured_as_two_equal_rows() -> None:
    """torch.export specialises a size-1 dimension: a batch of 1 becomes 2 copies of the
    example; a larger batch is kept as it is (the same tensor)."""
    one = torch.rand(1, 3, 4, 5)
    three = torch.rand(3, 3, 4, 5)
    (two,), (kept,) = _batched((one,)), _batched((three,))
    assert two.shape == (2, 3, 4, 5)
    assert torch.equal(two[0], one[0]) and torch.equal(two[1], one[0])
    assert kept is three


def test_dynamic_dimensions_are_batch_height_and_width() -> None:
    """The batch (0) and the spatial axes (2, 3) are dynamic, the channels (1) are not; axes
    past a tensor's rank are left out."""
    shapes = _dynamic_shapes((torch.rand(1, 3, 4, 5), torch.rand(2, 3, 4), torch.rand(2, 3)))
    assert [sorted(s) for s in shapes] == [[0, 2, 3], [0, 2], [0]]
    assert all(value is Dim.AUTO for s in shapes for value in s.values())


def _placeholder_shape(module: torch.fx.GraphModule) -> tuple:
    (node,) = [n for n in module.graph.nodes if n.op == "placeholder"]
    return tuple(node.meta["val"].shape)


def test_a_static_capture_keeps_the_example_shape() -> None:
    """dynamic=False exports eval mode at the example's own shape (batch 1, not the batched
    copy), says so, and marks the module static."""
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU()).train()
    captured = capture(model, (torch.rand(1, 3, 6, 5),), dynamic=False)
    assert captured.method == "torch.export (eval mode, static shapes)"
    assert captured.dynamic is False and captured.module.meta["dynamic"] is False
    assert _placeholder_shape(captured.module) == (1, 3, 6, 5)
    assert model.training is False  # left in eval mode


def test_a_dynamic_capture_has_symbolic_batch_and_spatial_sizes() -> None:
    """dynamic=True exports with symbolic batch, height and width (the channels stay fixed)
    and runs at other sizes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU()).double().eval()
    captured = capture(model, (torch.rand(1, 3, 6, 5, dtype=torch.float64),), dynamic=True)
    assert captured.method == "torch.export (eval mode, dynamic batch and spatial sizes)"
    assert captured.dynamic is True and captured.module.meta["dynamic"] is True
    batch, channels, height, width = _placeholder_shape(captured.module)
    assert channels == 3
    assert not any(isinstance(s, int) for s in (batch, height, width))
    x = torch.rand(3, 3, 7, 4, dtype=torch.float64)
    assert torch.allclose(captured.module(x), model(x), rtol=1e-12, atol=0)


class EvalRefusing(nn.Module):
    """Exports only in training mode (like a block that switches its own mode in forward)."""

    def __init__(self, extra: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            raise ValueError("no eval export\nsecond line")
        return self.conv(x)


@pytest.mark.parametrize("dynamic", [False, True])
def test_without_mode_dependent_modules_the_train_mode_export_is_the_fallback(dynamic) -> None:
    """The eval export failed and no module depends on the mode: the train-mode graph is
    captured, the method says why, and the model is left in eval mode."""
    model = EvalRefusing()
    captured = capture(model, (torch.rand(1, 3, 4, 4),), dynamic=dynamic)
    shapes = "dynamic batch and spatial sizes" if dynamic else "static shapes"
    assert captured.method == (
        f"torch.export (train mode, {shapes}); "
        "the eval-mode export failed and no module depends on the mode"
    )
    assert captured.dynamic is dynamic
    assert model.training is False


@pytest.mark.parametrize("dynamic", [False, True])
def test_with_a_mode_dependent_module_only_eval_mode_is_tried(dynamic) -> None:
    """With a BatchNorm the train-mode graph computes another function: only the eval export
    is tried, and its error (first line) is reported with the capture's mode and shapes."""
    model = EvalRefusing(nn.BatchNorm2d(3))
    with pytest.raises(CaptureError) as error:
        capture(model, (torch.rand(1, 3, 4, 4),), dynamic=dynamic)
    shapes = "dynamic" if dynamic else "static"
    assert str(error.value) == f"could not capture the module: eval/{shapes}: no eval export"
    assert model.training is False


class AlwaysFails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError()


def test_every_failed_attempt_is_listed() -> None:
    """Both modes are tried and listed, separated by ' | '; an error without a message is
    named by its repr."""
    with pytest.raises(CaptureError) as error:
        capture(AlwaysFails(), (torch.rand(1, 3, 4, 4),), dynamic=False)
    assert str(error.value) == (
        "could not capture the module: eval/static: RuntimeError() | train/static: RuntimeError()"
    )


class ChannelMax(nn.Module):
    """torch.max over a dimension: a node whose recorded value is a pair of tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.max(x, dim=1, keepdim=True)[0] * 2


def test_a_static_capture_with_a_tuple_valued_node_is_static() -> None:
    """Only the inputs' recorded shapes decide whether the capture is dynamic."""
    captured = capture(ChannelMax(), (torch.rand(1, 3, 4, 4),), dynamic=False)
    assert captured.dynamic is False
    assert captured.method == "torch.export (eval mode, static shapes)"


class SliceWrite(nn.Module):
    """conv → BN, then a slice of the result overwritten by a slice of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x)) * 1.0
        y[:, 0:1] = x[:, 1:2]
        return y


def test_a_slice_write_is_made_functional_without_a_re_trace() -> None:
    """Slice writes are rewritten on the exported graph itself: no torch re-trace, so the
    BatchNorm stays the one aten.batch_norm call export wrote."""
    torch.manual_seed(0)
    model = SliceWrite().double().eval()
    captured = capture(model, (torch.rand(1, 3, 4, 4, dtype=torch.float64),), dynamic=False)
    targets = [n.target for n in captured.module.graph.nodes if n.op == "call_function"]
    assert aten.batch_norm.default in targets
    assert aten.slice_scatter.default in targets and aten.copy_.default not in targets
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert torch.equal(captured.module(x), model(x))


class InPlace(nn.Module):
    """An in-place add (not a slice write): torch's functionalisation removes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        y.add_(1)
        return F.silu(y)


def test_an_in_place_op_is_functionalised_without_decomposing_the_rest() -> None:
    """Other in-place writes are functionalised by torch with an empty decomposition table:
    no mutating op is left, and ops such as silu are kept as they are."""
    captured = capture(InPlace(), (torch.rand(1, 3, 4, 4, dtype=torch.float64),), dynamic=False)
    targets = [n.target for n in captured.module.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.silu.default in targets
    assert torch.ops.aten.add.Tensor in targets
    assert not any(getattr(t, "_schema", None) and t._schema.is_mutable for t in targets)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    assert torch.allclose(captured.module(x), F.silu(x * 2 + 1), rtol=1e-14, atol=0)


# --- slice writes made functional ----------------------------------------------------------

aten = torch.ops.aten


def _slice_write(graph: fx.Graph, base: fx.Node, source: fx.Node) -> fx.Node:
    """``base[:, 1:3, ::2][..., 1:]`` (three nested slices, one with step 2) ``.copy_(src)``."""
    view = graph.call_function(aten.slice.Tensor, (base, 1, 1, 3))
    view = graph.call_function(aten.slice.Tensor, (view, 2, 0, 9223372036854775807, 2))
    view = graph.call_function(aten.slice.Tensor, (view, 3, 1))
    return graph.call_function(aten.copy_.default, (view, source))


def _eager_slice_write(base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    base[:, 1:3, ::2][..., 1:].copy_(source)
    return base


def test_a_write_into_nested_slices_becomes_slice_scatters() -> None:
    """``view.copy_(src)`` into a chain of slices of a computed value becomes copy +
    nested slice_scatter (innermost first); readers of the value after the write read the
    result, readers before it the value as it was."""
    graph = fx.Graph()
    x, source = graph.placeholder("x"), graph.placeholder("source")
    base = graph.call_function(aten.mul.Tensor, (x, 3.0))
    before = graph.call_function(aten.relu.default, (base,))
    _slice_write(graph, base, source)
    after = graph.call_function(aten.neg.default, (base,))
    graph.output(graph.call_function(aten.add.Tensor, (before, after)))
    functionalize_slice_copies(graph)
    targets = [n.target for n in graph.nodes]
    assert aten.copy_.default not in targets
    assert targets.count(aten.slice_scatter.default) == 3
    assert targets.count(aten.copy.default) == 1
    module = fx.GraphModule(nn.Module(), graph)
    x, source = torch.randn(2, 4, 5, 6), torch.randn(2, 1, 1)  # broadcast over the view
    base = x * 3.0
    expected = base.relu() - _eager_slice_write(base.clone(), source)
    assert torch.equal(module(x, source), expected)


def test_two_writes_into_one_value_are_rewritten_in_turn() -> None:
    """The second write reads the result of the first (its slice is re-pointed to it), and the
    reader after both sees both."""
    graph = fx.Graph()
    x, a, b = graph.placeholder("x"), graph.placeholder("a"), graph.placeholder("b")
    base = graph.call_function(aten.mul.Tensor, (x, 2.0))
    first = graph.call_function(aten.slice.Tensor, (base, 1, 0, 1))
    graph.call_function(aten.copy_.default, (first, a))
    second = graph.call_function(aten.slice.Tensor, (base, 1, 2, 3))
    graph.call_function(aten.copy_.default, (second, b))
    graph.output(graph.call_function(aten.neg.default, (base,)))
    functionalize_slice_copies(graph)
    assert aten.copy_.default not in [n.target for n in graph.nodes]
    module = fx.GraphModule(nn.Module(), graph)
    x, a, b = torch.randn(2, 4, 3, 3), torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    expected = x * 2.0
    expected[:, 0:1], expected[:, 2:3] = a, b
    assert torch.equal(module(x, a, b), -expected)


def test_a_write_into_a_slice_of_an_input_is_left() -> None:
    """Writing into a slice of a graph input is no local value: that copy_ stays; a later
    write into a computed value is still rewritten."""
    graph = fx.Graph()
    x, source = graph.placeholder("x"), graph.placeholder("source")
    _slice_write(graph, x, source)
    base = graph.call_function(aten.neg.default, (x,))
    _slice_write(graph, base, source)
    graph.output(graph.call_function(aten.relu.default, (base,)))
    functionalize_slice_copies(graph)
    targets = [n.target for n in graph.nodes]
    assert targets.count(aten.copy_.default) == 1
    (copy_,) = [n for n in graph.nodes if n.target == aten.copy_.default]
    assert copy_.args[0].args[0].args[0].args[0] is x
    assert targets.count(aten.slice_scatter.default) == 3


def test_a_copy_into_a_computed_value_without_a_slice_or_read_after_is_left() -> None:
    """Only an unread copy_ into a slice is rewritten: a copy_ straight into a computed value,
    and a copy_ whose result is read, stay."""
    graph = fx.Graph()
    x, source = graph.placeholder("x"), graph.placeholder("source")
    base = graph.call_function(aten.mul.Tensor, (x, 3.0))
    graph.call_function(aten.copy_.default, (base, source))
    view = graph.call_function(aten.slice.Tensor, (base, 1, 0, 1))
    read = graph.call_function(aten.copy_.default, (view, source))
    graph.output(graph.call_function(aten.add.Tensor, (base, read)))
    functionalize_slice_copies(graph)
    targets = [n.target for n in graph.nodes]
    assert targets.count(aten.copy_.default) == 2 and aten.slice_scatter.default not in targets
