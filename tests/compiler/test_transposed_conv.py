"""A transposed conv in a graph compiles to a conv, PixelShuffle and a crop (R15)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import fx, nn

from et.compiler.transposed_conv import transposed_as_shuffle
from et.compiler.workspace import Workspace
from tests.compiler.graphs import aten, call, workspace
from tests.zoo import blocks
from tests.zoo.test_zoo import check_compiled


@st.composite
def deconvs(draw) -> nn.ConvTranspose2d:
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    kernel = draw(st.integers(1, 4))
    padding = draw(st.integers(0, max(0, (dilation * (kernel - 1)) // 2)))
    # torch: output padding below the stride or the dilation
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    groups = draw(st.sampled_from([1, 2]))
    return nn.ConvTranspose2d(
        2 * groups,
        3 * groups,
        kernel,
        stride,
        padding,
        output_padding,
        groups,
        bias=draw(st.booleans()),
        dilation=dilation,
    )


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(deconv=deconvs(), size=st.integers(3, 7), seed=st.integers(0, 2**31 - 1))
def test_a_transposed_conv_becomes_conv_and_pixel_shuffle(
    deconv: nn.ConvTranspose2d, size: int, seed: int
) -> None:
    blocks.randomize(deconv, torch.Generator().manual_seed(seed))
    compiled = check_compiled(deconv, deconv.in_channels, size, expected_convs=1)
    assert compiled.certificate.rules_used().get("R15") == 1
    ops = compiled.certificate.ops_after
    assert "pixel_shuffle.default" in ops
    assert not any("transpose" in op for op in ops)


class UpsampleHead(nn.Module):
    """FSRCNN-style: a body conv, ReLU, then a stride-2 transposed conv as the upsampler."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

    def forward(self, x):
        return self.up(torch.relu(self.body(x)))


def test_an_upsampling_head_is_plain_convs_and_a_shuffle() -> None:
    model = blocks.randomize(UpsampleHead(), torch.Generator().manual_seed(3))
    compiled = check_compiled(model, 3, 6, expected_convs=2)
    assert compiled.certificate.rules_used().get("R15") == 1


def test_unequal_strides_are_refused_and_named() -> None:
    deconv = nn.ConvTranspose2d(3, 2, 3, stride=(2, 1), padding=1)
    blocks.randomize(deconv, torch.Generator().manual_seed(4))
    compiled = check_compiled(deconv, 3, 5, expected_convs=1)
    assert "R15" not in compiled.certificate.rules_used()
    refused = [u for u in compiled.certificate.unfolded if u.rule == "R15"]
    assert refused and "stride" in refused[0].precondition


# R15 on hand-built graphs: a transposed conv (either ATen spelling) becomes conv,
# PixelShuffle and a crop of the last rows/columns, equal in float64 to torch's transposed conv
# at input sizes the rewrite never saw; the certificate names R15 on the node; a refusal, a plain
# convolution and a transposed conv with computed weights are left alone (kill tests of the
# mutation pass; ``mutation/survivors.txt`` names the survivors left).

IN, OUT = 2, 3


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape, equal values up to float64 rounding. (Not ``torch.testing.assert_close``:
    its first call imports ``torch.distributed.tensor``, seconds a kill test must not pay.)"""
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def _deconv(
    spelling: str,
    *,
    kernel: tuple[int, int] = (3, 3),
    stride: tuple[int, int] = (2, 2),
    padding: tuple[int, int] = (1, 1),
    output_padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    bias: bool = True,
) -> tuple[Workspace, fx.Node, dict]:
    """A workspace over one transposed conv ``IN → OUT`` written as ``conv_transpose2d`` or
    as ``convolution(..., transposed=True)``; also returns torch's arguments for it."""
    generator = torch.Generator().manual_seed(sum(kernel) + sum(padding))
    weight = torch.randn(IN, OUT, *kernel, generator=generator, dtype=torch.float64)
    constants = {"w": weight}
    if bias:
        constants["b"] = torch.randn(OUT, generator=generator, dtype=torch.float64)
    geometry = [list(v) for v in (stride, padding, output_padding, dilation)]
    params = dict(
        weight=weight,
        bias=constants.get("b"),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )

    def build(graph: fx.Graph) -> fx.Node:
        x = graph.placeholder("x")
        w = graph.get_attr("w")
        b = graph.get_attr("b") if bias else None
        s, p, a, d = geometry
        if spelling == "conv_transpose2d":
            return call(graph, aten.conv_transpose2d.input, x, w, b, s, p, a, 1, d)
        return call(graph, aten.convolution.default, x, w, b, s, p, d, True, a, 1)

    ws, node = workspace(build, constants)
    return ws, node, params


def _assert_equals_torch(ws: Workspace, params: dict) -> None:
    module = ws.finish()
    generator = torch.Generator().manual_seed(8)
    for shape in ((1, IN, 4, 5), (2, IN, 6, 3)):
        x = torch.rand(shape, generator=generator, dtype=torch.float64)
        expected = F.conv_transpose2d(x, **params)
        got = module(x)
        assert _same(got, expected)


SPELLINGS = ["conv_transpose2d", "convolution"]

# geometries: one that needs no crop, one cropping rows only, one cropping columns only, and
# one cropping both (by different counts), with and without bias
GEOMETRIES = {
    "no crop": dict(kernel=(4, 4), stride=(2, 2), padding=(1, 1)),
    "rows cropped": dict(kernel=(3, 4), stride=(2, 2), padding=(1, 1)),
    "columns cropped": dict(kernel=(4, 3), stride=(2, 2), padding=(1, 1), bias=False),
    "both cropped": dict(kernel=(1, 1), stride=(3, 3), padding=(0, 0), output_padding=(1, 0)),
    "dilated": dict(kernel=(3, 5), stride=(3, 3), padding=(0, 1), dilation=(1, 2)),
    "output padding": dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 0)),
}


def _slices(ws: Workspace) -> list[tuple]:
    return [n.args[1:] for n in ws.graph.nodes if n.target == aten.slice.Tensor]


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_a_transposed_conv_becomes_conv_shuffle_and_crop(spelling: str, geometry: str) -> None:
    """``ConvTranspose2d(x) = crop(PS_s(conv(x; V)))``: the graph holds conv, pixel_shuffle
    and a slice ``[0:−n]`` per cropped axis, equal to torch's transposed conv at other input
    sizes; the new output keeps the op's shape metadata; R15 is recorded on the node."""
    ws, node, params = _deconv(spelling, **GEOMETRIES[geometry])
    val = torch.empty(0)
    node.meta["val"] = val
    name = node.name
    assert transposed_as_shuffle(ws, node) is True
    ops = [n.target for n in ws.graph.nodes if n.op == "call_function"]
    assert ops[:2] == [aten.conv2d.default, aten.pixel_shuffle.default]
    assert set(ops[2:]) <= {aten.slice.Tensor}
    for dim, start, end in _slices(ws):
        assert dim in (2, 3) and start == 0 and end < 0  # counted from the end: any size
    output = next(iter(ws.graph.find_nodes(op="output"))).args[0]
    assert output.meta["val"] is val
    (applied,) = ws.record.applications
    assert (applied.rule, applied.nodes) == ("R15", (name,))
    assert applied.preconditions[-1] == "the kernel and bias are constants"
    _assert_equals_torch(ws, params)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_unequal_strides_are_refused_on_the_graph(spelling: str) -> None:
    """PixelShuffle has one scale: a transposed conv with strides (2, 1) stays, and the
    certificate names R15's failed condition and the strides."""
    ws, node, params = _deconv(spelling, stride=(2, 1))
    assert transposed_as_shuffle(ws, node) is False
    assert not ws.record.applications
    (refused,) = ws.record.unfolded({node.name})
    assert (refused.node, refused.rule) == (node.name, "R15")
    assert refused.precondition == "the same stride on both axes"
    assert refused.detail == "stride (2, 1): PixelShuffle has one scale"
    _assert_equals_torch(ws, params)


def test_a_plain_convolution_is_not_a_transposed_one() -> None:
    """``convolution(..., transposed=False)`` is an ordinary conv: R15 leaves it alone."""
    weight = torch.randn(OUT, IN, 3, 3, dtype=torch.float64)

    def build(graph: fx.Graph) -> fx.Node:
        x, w = graph.placeholder("x"), graph.get_attr("w")
        args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        return call(graph, aten.convolution.default, *args)

    ws, node = workspace(build, {"w": weight})
    assert transposed_as_shuffle(ws, node) is False
    assert not ws.record.applications
    x = torch.rand(1, IN, 5, 4, dtype=torch.float64)
    assert _same(ws.finish()(x), F.conv2d(x, weight, padding=1))


@pytest.mark.parametrize("computed", ["weight", "bias"])
def test_a_transposed_conv_with_a_computed_weight_or_bias_is_left_alone(computed: str) -> None:
    """R15 rewrites constant kernels only: a weight or bias that is a graph input is no
    constant, and the op stays as it was."""

    def build(graph: fx.Graph) -> fx.Node:
        x = graph.placeholder("x")
        w = graph.placeholder("w") if computed == "weight" else graph.get_attr("w")
        b = graph.placeholder("b") if computed == "bias" else graph.get_attr("b")
        args = (x, w, b, [2, 2], [1, 1], [0, 0], 1, [1, 1])
        return call(graph, aten.conv_transpose2d.input, *args)

    constants = {"w": torch.randn(IN, OUT, 3, 3), "b": torch.randn(OUT)}
    ws, node = workspace(build, constants)
    assert transposed_as_shuffle(ws, node) is False
    assert [n.target for n in ws.graph.nodes if n.op == "call_function"] == [
        aten.conv_transpose2d.input
    ]
    assert not ws.record.applications
