"""How the workspace reads convs, channel counts and constants off the graph (kill tests of the
mutation pass; ``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv

from tests.compiler.graphs import aten, call, workspace

WEIGHT = {"w": torch.randn(4, 3, 3, 3), "b": torch.randn(4)}


def _conv(target, *rest):
    def build(g):
        return call(g, target, g.placeholder("x"), g.get_attr("w"), g.get_attr("b"), *rest)

    return build


def test_conv2d_arguments_are_read_per_axis() -> None:
    ws, node = workspace(_conv(aten.conv2d.default, [1, 2], [0, 1], [2, 1], 1), WEIGHT)
    conv = ws.conv_site(node).conv
    assert (conv.stride, conv.padding, conv.dilation) == ((1, 2), (0, 1), (2, 1))
    ws, node = workspace(_conv(aten.conv2d.default, [2], [1], [3], 1), WEIGHT)
    conv = ws.conv_site(node).conv
    assert (conv.stride, conv.padding, conv.dilation) == ((2, 2), (1, 1), (3, 3))


def test_convolution_op_is_read_unless_transposed() -> None:
    args = ([1, 2], [1, 0], [1, 1])
    ws, node = workspace(_conv(aten.convolution.default, *args, False, [0, 0], 1), WEIGHT)
    conv = ws.conv_site(node).conv
    assert (conv.stride, conv.padding, conv.groups) == ((1, 2), (1, 0), 1)
    ws, node = workspace(_conv(aten.convolution.default, *args, True, [0, 0], 1), WEIGHT)
    assert ws.conv_site(node) is None


def test_a_conv_with_string_padding_is_not_read() -> None:
    ws, node = workspace(_conv(aten.conv2d.default, [1, 1], "same", [1, 1], 1), WEIGHT)
    assert ws.conv_site(node) is None


def test_channels_from_metadata_slices_and_channel_preserving_ops() -> None:
    def sliced(*args):
        def build(g):
            x = g.placeholder("x")
            x.meta["val"] = torch.empty(1, 6, 4, 4)
            return call(g, aten.slice.Tensor, x, *args)

        return build

    for args, expected in [
        ((1, 1, 4), 3),
        ((-3, 2, None), 4),
        ((1, None, 2), 2),
        ((1, 2, 100), 4),
        ((1, 0, 6, 2), None),  # every other channel: not counted
        ((1, 0, 6, 1), 6),
    ]:
        ws, node = workspace(sliced(*args))
        assert ws.channels(node) == expected, args

    def relu_of_slice(g):
        return call(g, aten.relu.default, sliced(1, 1, 4)(g))

    ws, node = workspace(relu_of_slice)
    assert ws.channels(node) == 3


def test_channels_of_a_node_whose_value_is_no_tensor() -> None:
    def build(g):
        node = call(g, aten.sym_size.int, g.placeholder("x"), 0)
        node.meta["val"] = 5
        return node

    ws, node = workspace(build)
    assert ws.channels(node) is None
    assert ws.channels("not a node") is None


def test_tensor_of_a_non_tensor_attribute_is_none() -> None:
    ws, node = workspace(lambda g: g.get_attr("k"), {"k": 3})
    assert ws.tensor(node) is None
    assert ws.lower_bound(None) == -math.inf
    assert ws.lower_bound(2) == 2.0


def test_emit_conv_without_bias_and_refusing_other_padding_modes() -> None:
    ws, node = workspace(lambda g: g.placeholder("x"))
    out = next(n for n in ws.graph.nodes if n.op == "output")
    conv = nn.Conv2d(3, 4, 3, bias=False)
    emitted = ws.emit_conv(conv, node, out)
    assert emitted.args[2] is None
    assert torch.equal(ws.tensor(emitted.args[1]), conv.weight.detach())
    with pytest.raises(ValueError, match="zero-padded convs only"):
        ws.emit_conv(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), node, out)


def test_constants_are_numbered_from_zero_and_unused_ones_are_dropped() -> None:
    """``constant`` names buffers et_const_0, et_const_1, ...; ``finish`` deletes the folded
    constants no op reads and keeps the read ones."""
    ws, node = workspace(lambda g: call(g, aten.mul.Tensor, g.placeholder("x"), 2.0))
    used = ws.constant(torch.tensor([1.0, 2.0]), node)
    unused = ws.constant(torch.tensor([3.0]), node)
    assert (used.target, unused.target) == ("et_const_0", "et_const_1")
    node.update_arg(1, used)
    ws.graph.erase_node(unused)
    module = ws.finish()
    assert hasattr(module, "et_const_0") and not hasattr(module, "et_const_1")
    assert torch.equal(module(torch.ones(2)), torch.tensor([1.0, 2.0]))


def test_finish_leaves_the_buffers_of_sub_modules_alone() -> None:
    """Only the root's own folded constants are candidates for deletion: a sub-module (even
    one whose name starts like a folded constant) keeps its buffers."""
    inner = nn.Module()
    inner.register_buffer("w", torch.ones(1))
    ws, _ = workspace(lambda g: g.placeholder("x"))
    ws.module.add_module("et_const_sub", inner)
    module = ws.finish()
    assert torch.equal(module.et_const_sub.w, torch.ones(1))


def test_conv_site_of_a_value_that_is_no_node_is_none() -> None:
    ws, node = workspace(lambda g: g.placeholder("x"))
    assert ws.conv_site(3) is None
    assert ws.conv_site(None) is None
    assert ws.conv_site(node) is None  # a placeholder


def test_channels_without_metadata_of_nodes_with_no_input() -> None:
    """Nodes without a recorded value and without inputs (a constant, an input, a call with
    no arguments) have no derivable channel count; nor does a non-channel-preserving op."""
    ws, node = workspace(lambda g: g.get_attr("c"), {"c": torch.zeros(2)})
    assert ws.channels(node) is None
    ws, node = workspace(lambda g: g.placeholder("x"))
    assert ws.channels(node) is None
    ws, node = workspace(lambda g: call(g, aten.relu.default))
    assert ws.channels(node) is None

    def sigmoid(g):
        x = g.placeholder("x")
        x.meta["val"] = torch.empty(1, 6, 4, 4)
        return call(g, aten.sigmoid.default, x)

    ws, node = workspace(sigmoid)
    assert ws.channels(node) is None  # sigmoid is not listed as channel-preserving
    assert ws.channels(node.args[0]) == 6


def test_a_symbolic_channel_count_is_unknown() -> None:
    """A recorded NCHW value whose channel dimension is symbolic gives None (no guess)."""
    env = ShapeEnv()
    with FakeTensorMode(shape_env=env):
        value = torch.empty(1, env.create_unbacked_symint(), 4, 4)

    def build(g):
        x = g.placeholder("x")
        x.meta["val"] = value
        return x

    ws, node = workspace(build)
    assert ws.channels(node) is None


def test_emit_conv_refusal_message() -> None:
    ws, node = workspace(lambda g: g.placeholder("x"))
    out = next(n for n in ws.graph.nodes if n.op == "output")
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    with pytest.raises(ValueError, match=r"^the compiler emits zero-padded convs only$"):
        ws.emit_conv(conv, node, out)
