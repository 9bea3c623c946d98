"""Reading an ATen call's arguments by schema name (issue 25): positional, keyword and default
values bind to one name each; a call that does not bind is no match."""

from __future__ import annotations

import math

import pytest
import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv

from et.compiler.certificate import CertificateBuilder
from et.compiler.workspace import Workspace, arguments, unit_alpha
from et.domain import InputDomain
from tests.compiler.graphs import aten, call, keyed, workspace


def _node(target, args: tuple, **kwargs) -> fx.Node:
    graph = fx.Graph()
    x = graph.placeholder("x")
    return keyed(graph, target, (x, *args), **kwargs)


def test_positional_keyword_and_default_arguments_bind_by_name() -> None:
    node = _node(aten.slice.Tensor, (2,), end=-1)
    values = arguments(node)
    assert values is not None
    assert (values["dim"], values["start"], values["end"], values["step"]) == (2, None, -1, 1)
    assert values["self"] is node.args[0]


def test_a_keyword_only_argument_is_read_from_the_keywords() -> None:
    assert arguments(_node(aten.add.Tensor, (1.0,), alpha=2))["alpha"] == 2
    assert arguments(_node(aten.add.Tensor, (1.0,)))["alpha"] == 1
    assert unit_alpha(_node(aten.add.Tensor, (1.0,))) is True
    assert unit_alpha(_node(aten.sub.Tensor, (1.0,), alpha=0.5)) is False


def test_none_for_an_argument_that_cannot_be_none_is_its_default() -> None:
    values = arguments(_node(aten.pad.default, ([1, 1], None, None)))
    assert (values["mode"], values["value"]) == ("constant", None)  # value is optional


def test_calls_that_do_not_bind_are_no_match() -> None:
    assert arguments(_node(aten.add.Tensor, (1.0,), beta=2)) is None  # unknown keyword
    assert arguments(_node(aten.slice.Tensor, (2,), dim=3)) is None  # dim given twice
    assert arguments(_node(aten.add.Tensor, ())) is None  # `other` missing
    assert arguments(_node(aten.add.Tensor, (1.0, 2))) is None  # alpha is keyword-only
    graph = fx.Graph()
    assert arguments(graph.placeholder("x")) is None
    assert arguments(graph.call_function(max, (1, 2))) is None  # no ATen schema


# How the workspace reads convs, channel counts and constants off the graph (kill tests of the
# mutation pass; ``mutation/survivors.txt`` names each one).

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


def test_the_workspace_keeps_its_record_and_bounds() -> None:
    builder = CertificateBuilder()
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(x)
    ws = Workspace(fx.GraphModule(nn.Module(), graph), InputDomain(0.25, 1.0), builder)
    assert ws.record is builder
    assert ws.lower_bound(x) == 0.25


def test_a_constant_of_a_sub_module_is_read_through_its_dotted_name() -> None:
    inner = nn.Module()
    inner.register_buffer("w", torch.arange(3.0))
    ws, node = workspace(lambda g: g.get_attr("inner.w"), {"inner": inner})
    assert torch.equal(ws.tensor(node), torch.arange(3.0))


def test_a_new_constant_is_placed_before_the_given_node() -> None:
    ws, node = workspace(lambda g: call(g, aten.relu.default, g.placeholder("x")))
    ws.constant(torch.ones(1), node)
    assert [n.op for n in ws.graph.nodes] == ["placeholder", "get_attr", "call_function", "output"]


def _conv_of(*args, constants=WEIGHT):
    def build(g):
        x = g.placeholder("x")

        def value(a):
            if isinstance(a, str):
                return x if a == "x" else g.get_attr(a)
            return a

        values = [value(a) for a in args]
        return call(g, aten.conv2d.default, *values)

    return workspace(build, constants)


def test_conv2d_defaults_and_the_site_it_describes() -> None:
    """aten.conv2d with only input, weight and bias: stride 1, padding 0, dilation 1,
    groups 1; the site is the call node reading the input node."""
    ws, node = _conv_of("x", "w", "b")
    site = ws.conv_site(node)
    assert site.node is node and site.input is node.args[0]
    conv = site.conv
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((1, 1), (0, 0), (1, 1), 1)
    assert torch.equal(conv.weight.detach(), WEIGHT["w"])
    assert torch.equal(conv.bias.detach(), WEIGHT["b"])
    ws, node = _conv_of("x", "w", None)
    assert ws.conv_site(node).conv.bias is None


def test_a_grouped_conv2d_keeps_its_groups() -> None:
    grouped = {"w": torch.randn(6, 1, 3, 3), "b": torch.randn(6)}
    ws, node = _conv_of("x", "w", "b", [1, 1], [1, 1], [1, 1], 3, constants=grouped)
    conv = ws.conv_site(node).conv
    assert (conv.in_channels, conv.out_channels, conv.groups) == (3, 6, 3)


@pytest.mark.parametrize(
    "args",
    [
        ("x", "x", None),  # weight from the input
        ("x", "w", "x"),  # bias from the input
        (1.0, "w", "b"),  # no input node
    ],
)
def test_a_conv_with_non_constant_parameters_or_no_input_node_is_not_read(args) -> None:
    ws, node = _conv_of(*args)
    assert ws.conv_site(node) is None


def test_a_conv_whose_weight_is_not_4d_is_not_read() -> None:
    ws, node = _conv_of("x", "w", "b", constants={"w": torch.randn(4, 3, 3), "b": torch.zeros(4)})
    assert ws.conv_site(node) is None


def test_emit_conv_writes_weight_and_bias_before_the_given_node() -> None:
    ws, node = workspace(lambda g: g.placeholder("x"))
    out = next(n for n in ws.graph.nodes if n.op == "output")
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1)
    emitted = ws.emit_conv(conv, node, out)
    assert [n.op for n in ws.graph.nodes] == [
        "placeholder", "get_attr", "get_attr", "call_function", "output",
    ]  # fmt: skip
    assert emitted.args[0] is node
    assert torch.equal(ws.tensor(emitted.args[1]), conv.weight.detach())
    assert torch.equal(ws.tensor(emitted.args[2]), conv.bias.detach())
    assert emitted.args[3:] == ([2, 2], [1, 1], [1, 1], 1)


def test_sole_user() -> None:
    def build(g):
        x = g.placeholder("x")
        return call(g, aten.add.Tensor, call(g, aten.relu.default, x), x)

    ws, add = workspace(build)
    relu, x = add.args
    assert ws.sole_user(relu, add) is True
    assert ws.sole_user(x, add) is False  # x also feeds the relu
