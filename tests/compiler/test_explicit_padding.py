"""G14 (``conv2d(x, padding="same" | "valid")`` written with numbers) on hand-built ATen graphs
(kill tests of the mutation pass over the code changed since the compiler's snapshot): each
rewrite is compared with torch's own string padding, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx

import et
from et.compiler.canonical import explicit_padding
from et.rules.explicit_padding import SPELLED, UNIT_STRIDE, ZEROS_MODE
from tests.compiler.graphs import evaluate, placeholder, workspace

aten = torch.ops.aten


def _string_padded(
    kernel: tuple[int, int], mode: str | None, stride=1, dilation=1, groups=1, bias=True
) -> tuple:
    """A workspace over ``conv2d.padding(x, w, b, stride, mode, dilation, groups)`` (the last
    arguments left out where they are ``None``, as the export writes the schema's defaults)."""
    torch.manual_seed(0)
    weight = torch.randn(4, 2 // groups, *kernel, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64) if bias else None
    x_value = torch.randn(1, 2, 7, 6, dtype=torch.float64)

    def build(graph: fx.Graph) -> fx.Node:
        x = placeholder(graph, "x", *x_value.shape)
        w = graph.get_attr("w")
        w.meta["val"] = weight
        bias_node = graph.get_attr("b") if bias else None
        args = [x, w, bias_node, [stride, stride]]
        if mode is not None:
            args += [mode, [dilation, dilation], groups]
        node = graph.call_function(aten.conv2d.padding, tuple(args))
        node.meta["val"] = "the conv's value"
        return node

    ws, node = workspace(build, {"w": weight, **({"b": b} if bias else {})})
    expected = F.conv2d(
        x_value, weight, b, stride, mode or "valid", dilation=dilation, groups=groups
    )
    return ws, node, x_value, expected


CASES = {
    "same 3x3": ((3, 3), "same", 1),
    "same 2x2 (odd total after)": ((2, 2), "same", 1),
    "same 2x3": ((2, 3), "same", 1),
    "same 3x2 dilated": ((3, 2), "same", 2),
    "same 4x4": ((4, 4), "same", 1),
    "valid 3x3": ((3, 3), "valid", 1),
    "valid dilated": ((3, 3), "valid", 2),
}


@pytest.mark.parametrize("kernel,mode,dilation", CASES.values(), ids=list(CASES))
def test_string_padding_becomes_numbers_with_the_same_values(kernel, mode, dilation) -> None:
    ws, node, x, expected = _string_padded(kernel, mode, dilation=dilation)
    name = node.name
    assert explicit_padding(ws, node) is True
    torch.testing.assert_close(evaluate(ws, x), expected, rtol=0, atol=1e-12)
    convs = ws.graph.find_nodes(op="call_function", target=aten.conv2d.default)
    assert len(convs) == 1 and not ws.graph.find_nodes(op="call_function", target=node.target)
    conv = convs[0]
    assert conv.meta["val"] == "the conv's value"
    assert conv.args[3] == [1, 1] and conv.args[5] == [dilation, dilation] and conv.args[6] == 1
    totals = [dilation * (k - 1) for k in kernel] if mode == "same" else [0, 0]
    pads = ws.graph.find_nodes(op="call_function", target=aten.constant_pad_nd.default)
    if all(t % 2 == 0 for t in totals):
        assert conv.args[4] == [t // 2 for t in totals] and not pads
    else:
        # torch puts the odd one after: left, right, top, bottom
        th, tw = totals
        assert conv.args[4] == [0, 0]
        assert [p.args[1:] for p in pads] == [([tw // 2, tw - tw // 2, th // 2, th - th // 2], 0.0)]
    [application] = ws.record.applications
    assert application.rule == "G14"
    assert application.nodes == (name,)
    # G14's own checks, run by its code (et.rules.explicit_padding), then the graph check
    transform = [(c.rule, c.precondition, c.checked) for c in application.checks[:3]]
    assert transform == [("G14", str(c), "transform") for c in (SPELLED, UNIT_STRIDE, ZEROS_MODE)]
    assert application.preconditions[3:] == ("the kernel size is known",)


def test_the_schema_default_mode_is_valid_and_groups_default_to_one() -> None:
    ws, node, x, expected = _string_padded((3, 3), None)
    assert explicit_padding(ws, node) is True
    torch.testing.assert_close(evaluate(ws, x), expected, rtol=0, atol=1e-12)
    [conv] = ws.graph.find_nodes(op="call_function", target=aten.conv2d.default)
    assert conv.args[3:] == ([1, 1], [0, 0], [1, 1], 1)


def test_a_grouped_conv_without_bias_keeps_its_groups() -> None:
    ws, node, x, expected = _string_padded((3, 3), "same", groups=2, bias=False)
    assert explicit_padding(ws, node) is True
    torch.testing.assert_close(evaluate(ws, x), expected, rtol=0, atol=1e-12)
    [conv] = ws.graph.find_nodes(op="call_function", target=aten.conv2d.default)
    assert conv.args[2] is None and conv.args[6] == 2


def test_same_padding_at_stride_two_is_refused_by_the_rule_and_named() -> None:
    """torch refuses padding="same" with a stride (so no captured model has one: the graph is
    written by hand); the rewrite must not invent a meaning for it. G14's own check refuses,
    the certificate names its precondition, and the op stays."""
    ws, node, _, _ = _string_padded((3, 3), "valid", stride=2)
    node.args = (*node.args[:4], "same", *node.args[5:])
    code = ws.graph.python_code("self").src
    assert explicit_padding(ws, node) is False
    assert ws.graph.python_code("self").src == code
    assert not ws.record.applications
    (refusal,) = ws.record.unfolded({node.name})
    assert (refusal.node, refusal.rule) == (node.name, "G14")
    assert refusal.precondition == str(UNIT_STRIDE)


def test_valid_padding_at_stride_two_becomes_zero_padding() -> None:
    ws, node, x, expected = _string_padded((3, 3), "valid", stride=2)
    assert explicit_padding(ws, node) is True
    torch.testing.assert_close(evaluate(ws, x), expected, rtol=0, atol=1e-12)


def test_other_modes_weights_of_unknown_shape_and_other_ops_are_left_alone() -> None:
    ws, node, _, _ = _string_padded((3, 3), "same")
    node.args = (*node.args[:4], "full", *node.args[5:])
    assert explicit_padding(ws, node) is False
    ws, node, _, _ = _string_padded((3, 3), "same")
    del node.args[1].meta["val"]
    assert explicit_padding(ws, node) is False
    ws, node, _, _ = _string_padded((3, 3), "same")
    node.target = aten.conv2d.default
    assert explicit_padding(ws, node) is False
    assert not ws.record.applications


class SamePadded(torch.nn.Module):
    """A conv written with ``padding="same"`` (an even kernel: the odd pad goes after)."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, kernel, padding="same", dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("kernel", [3, 4])
def test_compiled_g14_lists_the_checks_its_rule_ran(kernel: int) -> None:
    """Through et.compile: G14's application lists the checks et.rules.explicit_padding's
    code ran, and the compiled module equals torch's 'same' conv at other sizes."""
    torch.manual_seed(kernel)
    model = SamePadded(kernel).eval()
    compiled = et.compile(model, (torch.rand(1, 3, 8, 8, dtype=torch.float64),))
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "G14"]
    ran = [c.precondition for c in applied.checks if c.checked == "transform"]
    assert ran == [str(SPELLED), str(UNIT_STRIDE), str(ZEROS_MODE)]
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(compiled.module(x), model(x), rtol=0, atol=1e-12)
