"""A valid conv reading a crop ``x[a:−b]`` compiles to a conv on x with zero taps
(G12; R4 when centred), so ACNet's crop variant merges to one conv (tests/zoo has the block)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import fx, nn

import et
from et.compiler.crop_into_kernel import INT_MAX, _crop, absorb_crop
from et.compiler.workspace import Workspace
from et.rules import absorb_crop as g12
from tests.compiler.graphs import aten, call, workspace
from tests.zoo import blocks
from tests.zoo.test_zoo import check_compiled


class CroppedConv(nn.Module):
    """``conv(x[:, :, a:−a, b:−b])`` (an axis with 0 is not cropped)."""

    def __init__(self, c: int, kernel, stride: int, dilation: int, rows: int, cols: int) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        self.conv = nn.Conv2d(c, c + 1, kernel, stride, 0, dilation)

    def forward(self, x):
        if self.rows:
            x = x[:, :, self.rows : -self.rows, :]
        if self.cols:
            x = x[:, :, :, self.cols : -self.cols]
        return self.conv(x)


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    kh=st.sampled_from([1, 3]),
    kw=st.sampled_from([1, 3]),
    stride=st.sampled_from([1, 2]),
    dilation=st.sampled_from([1, 2]),
    taps=st.tuples(st.integers(0, 1), st.integers(0, 1)).filter(any),
    channels=st.sampled_from([1, 3]),
    # from 3: the conv's output then has 2 pixels or more a side at stride 2 too (a 1-pixel
    # map makes torch.export fix the example's size, so the compile would hold there only)
    extra=st.integers(3, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_centred_crop_becomes_zero_taps(
    kh: int, kw: int, stride: int, dilation: int, taps, channels: int, extra: int, seed: int
) -> None:
    rows, cols = (t * dilation for t in taps)  # crops of whole dilated taps
    model = CroppedConv(channels, (kh, kw), stride, dilation, rows, cols)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    size = 2 * max(rows, cols) + dilation * (max(kh, kw) - 1) + extra
    compiled = check_compiled(model, channels, size, expected_convs=1)
    assert compiled.certificate.rules_used().get("G12") == sum(1 for t in taps if t)
    assert "slice.Tensor" not in compiled.certificate.ops_after


def test_a_padded_conv_keeps_its_crop_and_says_why() -> None:
    # with padding 1 the crop is followed by zeros where x has values: no zero-tap form
    model = CroppedConv(3, 3, 1, 1, 1, 0)
    model.conv.padding = (1, 1)
    blocks.randomize(model, torch.Generator().manual_seed(4))
    compiled = check_compiled(model, 3, 7, expected_convs=1)
    assert "G12" not in compiled.certificate.rules_used()
    refused = [u for u in compiled.certificate.unfolded if u.rule == "G12"]
    assert refused and "padding 0" in refused[0].precondition
    assert "slice.Tensor" in compiled.certificate.ops_after


def test_an_off_centre_crop_takes_its_own_zero_taps() -> None:
    class OneSided(nn.Module):
        def __init__(self, end: int | None) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.end = end

        def forward(self, x):
            return self.conv(x[:, :, 1 : self.end, :])

    for end in (None, -2):
        model = blocks.randomize(OneSided(end), torch.Generator().manual_seed(5))
        compiled = check_compiled(model, 3, 7, expected_convs=1)
        assert compiled.certificate.rules_used().get("G12") == 1
        assert "slice.Tensor" not in compiled.certificate.ops_after
        assert "R4" not in compiled.certificate.rules_used()  # not centred: no embedding


def test_a_crop_counted_from_the_start_is_left_alone() -> None:
    class FromStart(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(x[:, :, 1:6, :])  # holds at one input height only

    model = blocks.randomize(FromStart(), torch.Generator().manual_seed(6))
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 7, 7, dtype=torch.float64),))
    assert "G12" not in compiled.certificate.rules_used()


def test_a_crop_not_a_multiple_of_the_dilation_is_refused() -> None:
    model = CroppedConv(3, 3, 1, 2, 1, 0)  # crop 1 row, dilation 2
    blocks.randomize(model, torch.Generator().manual_seed(6))
    compiled = check_compiled(model, 3, 9, expected_convs=1)
    refused = [u for u in compiled.certificate.unfolded if u.rule == "G12"]
    assert refused and "dilated taps" in refused[0].precondition


# G12 on hand-built graphs: which slices count as a crop ``x[a:−b]`` of a spatial axis, the
# zero-tap conv that replaces a crop read by a valid conv (compared with the conv on the cropped
# input in float64, at input sizes other than any the rewrite saw), what the certificate records,
# and the two refusals (kill tests of the mutation pass; ``mutation/survivors.txt`` names the
# survivors left).

#: what ``x[1:]`` is captured as: the end is the largest int64
TO_THE_END = 2**63 - 1


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape, equal values up to float64 rounding. (Not ``torch.testing.assert_close``:
    its first call imports ``torch.distributed.tensor``, seconds a kill test must not pay.)"""
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def _slice(dim: int, start: object, end: object, step: int | None = None) -> fx.Node:
    graph = fx.Graph()
    x = graph.placeholder("x")
    args = (x, dim, start, end) if step is None else (x, dim, start, end, step)
    return call(graph, aten.slice.Tensor, *args)


# (dim, start, end[, step]) -> (axis, a, b): axis 0 = rows, 1 = columns
PARSED = [
    ((2, 1, -1), (0, 1, 1)),
    ((-2, 1, -1), (0, 1, 1)),
    ((3, 2, -1), (1, 2, 1)),
    ((-1, 1, -2), (1, 1, 2)),
    ((2, None, -2), (0, 0, 2)),  # no start: from 0
    ((3, 0, -2), (1, 0, 2)),
    ((3, 1, None), (1, 1, 0)),  # no end: to the end
    ((-2, 2, TO_THE_END), (0, 2, 0)),
    ((2, 1, INT_MAX), (0, 1, 0)),  # the threshold itself counts as "to the end"
    ((2, 1, -1, 1), (0, 1, 1)),  # an explicit step 1
]


@pytest.mark.parametrize(("args", "expected"), PARSED)
def test_a_crop_of_a_spatial_axis_counted_from_both_ends_is_read(args, expected) -> None:
    """``x[..., a:−b]`` on a row or column axis (any spelling of the axis and of "no start",
    "to the end") is ``(axis, a, b)``."""
    assert _crop(_slice(*args)) == expected


NOT_A_CROP = [
    (1, 1, -1),  # the channel axis
    (-3, 1, -1),  # the channel axis, counted from the end
    (0, 1, -1),  # the batch axis
    (2, 1, -1, 2),  # every other row: not a crop
    (3, 1, 5),  # an end counted from the start holds at one input size only
    (2, 1, 0),  # an empty slice
    (2, 0, None),  # the whole axis
    (3, 0, TO_THE_END),  # the whole axis
    (2, -2, None),  # the last rows: counted from the end
]


@pytest.mark.parametrize("args", NOT_A_CROP)
def test_other_slices_are_not_crops(args) -> None:
    """A slice of a non-spatial axis, with a step, an end counted from the start, a start
    counted from the end, or cutting nothing is no crop G12 can absorb."""
    assert _crop(_slice(*args)) is None


def _cropped_conv(
    crop: tuple[int, int, object],
    kernel: tuple[int, int],
    *,
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    stride: tuple[int, int] = (1, 1),
) -> tuple[Workspace, fx.Node, dict]:
    """A workspace over ``conv(x[crop])`` (a 2 → 3 channel conv with a bias)."""
    generator = torch.Generator().manual_seed(sum(kernel) + sum(dilation))
    weight = torch.randn(3, 2, *kernel, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    params = {"w": weight, "b": bias, "stride": stride, "padding": padding, "dilation": dilation}

    def build(graph: fx.Graph) -> fx.Node:
        x = graph.placeholder("x")
        cropped = call(graph, aten.slice.Tensor, x, *crop)
        w, b = graph.get_attr("w"), graph.get_attr("b")
        conv_args = (list(stride), list(padding), list(dilation), 1)
        return call(graph, aten.conv2d.default, cropped, w, b, *conv_args)

    ws, node = workspace(build, {"w": weight, "b": bias})
    return ws, node, params


def _reference(x: torch.Tensor, crop: tuple[int, int, object], params: dict) -> torch.Tensor:
    """The conv on the cropped input, straight from torch."""
    dim, start, end = crop
    index = [slice(None)] * 4
    index[dim] = slice(start, None if end is None else end)
    return F.conv2d(
        x[tuple(index)],
        params["w"],
        params["b"],
        params["stride"],
        params["padding"],
        params["dilation"],
    )


def _assert_equal_at_every_size(ws: Workspace, crop, params: dict) -> None:
    module = ws.finish()
    generator = torch.Generator().manual_seed(3)
    for shape in ((1, 2, 13, 12), (2, 2, 11, 14)):
        x = torch.rand(shape, generator=generator, dtype=torch.float64)
        expected = _reference(x, crop, params)
        got = module(x)
        assert _same(got, expected)


#: the checks G12's own code (et.rules.absorb_crop) runs, then the graph checks it declares
G12_CHECKED = (
    *(str(c) for c in (g12.TORCH_MODULES, g12.NON_NEGATIVE, g12.VALID_ON_CROPPED_AXES)),
    str(g12.WHOLE_TAPS),
    "conv is a conv with constant weight and bias",
    "the crop x[a:−b] is counted from both ends",
)

# (crop as (dim, start, end), kernel, dilation, stride)
CENTRED = [
    ((2, 1, -1), (3, 3), (1, 1), (1, 1)),
    ((2, 2, -2), (3, 1), (1, 1), (2, 1)),  # two taps on each side
    ((3, 2, -2), (1, 3), (1, 2), (1, 1)),  # one dilated tap on each side
    ((-1, 1, -1), (3, 2), (1, 1), (1, 2)),
]


@pytest.mark.parametrize(("crop", "kernel", "dilation", "stride"), CENTRED)
def test_a_centred_crop_becomes_an_embedded_kernel(crop, kernel, dilation, stride) -> None:
    """``conv(x[a:−a]) = conv(x; W with a/d zero taps on both sides)`` (G12, R4's embedding
    read backwards): the crop is gone, the output equals the conv on the crop at other input
    sizes, and the certificate names G12 on the crop and the conv with the checks G12's code
    ran and the graph checks."""
    ws, node, params = _cropped_conv(crop, kernel, dilation=dilation, stride=stride)
    cropped = node.args[0]
    assert absorb_crop(ws, node) is True
    assert [n.target for n in ws.graph.nodes if n.op == "call_function"] == [aten.conv2d.default]
    (applied,) = ws.record.applications
    assert (applied.rule, applied.nodes, applied.preconditions) == (
        "G12",
        (cropped.name, node.name),
        G12_CHECKED,
    )
    assert {c.checked for c in applied.checks[:4]} == {"transform"}
    _assert_equal_at_every_size(ws, crop, params)


OFF_CENTRE = [
    ((2, 1, -2), (3, 3), (1, 1)),
    ((-2, 2, None), (2, 3), (2, 1)),  # one dilated tap before, none after
    ((3, 2, -1), (3, 3), (1, 1)),
    ((-1, None, -2), (3, 2), (1, 1)),  # none before, two after
    ((3, 4, -2), (1, 2), (1, 2)),  # two dilated taps before, one after
]


@pytest.mark.parametrize(("crop", "kernel", "dilation"), OFF_CENTRE)
def test_an_off_centre_crop_becomes_zero_taps_on_its_own_sides(crop, kernel, dilation) -> None:
    """``conv(x[a:−b]) = conv(x; W with a/d zero taps before, b/d after)`` on the cropped
    axis only (no R4: not an embedding), equal to the conv on the crop at other sizes."""
    ws, node, params = _cropped_conv(crop, kernel, dilation=dilation)
    names = (node.args[0].name, node.name)
    assert absorb_crop(ws, node) is True
    (g12,) = ws.record.applications
    assert (g12.rule, g12.nodes, g12.preconditions) == ("G12", names, G12_CHECKED)
    _assert_equal_at_every_size(ws, crop, params)


def _refusal(ws: Workspace, node: fx.Node):
    assert not ws.record.applications
    (refused,) = ws.record.unfolded({node.name})
    assert (refused.node, refused.rule) == (node.name, "G12")
    return refused


def test_a_padded_conv_keeps_its_crop_and_names_the_padding() -> None:
    """With padding on the cropped axis the zeros would stand where x has values: the
    rewrite refuses, says so (and the padding), and leaves the graph as it was."""
    crop = (2, 1, -1)
    ws, node, params = _cropped_conv(crop, (3, 3), padding=(1, 0))
    assert absorb_crop(ws, node) is False
    refused = _refusal(ws, node)
    assert refused.precondition == str(g12.VALID_ON_CROPPED_AXES)  # G12's own check refused
    assert refused.detail == "padding (1, 0) on cropped axis 0"
    assert node.args[0].target == aten.slice.Tensor
    _assert_equal_at_every_size(ws, crop, params)


@pytest.mark.parametrize(("start", "end"), [(1, -1), (2, -1), (1, -2), (3, None)])
def test_a_crop_of_part_of_a_dilated_tap_is_refused_and_named(start, end) -> None:
    """A crop that is not a whole number of dilated taps (on either side) has no zero-tap
    form: refused, with the crop and the dilation in the detail, graph unchanged."""
    crop = (3, start, end)
    ws, node, params = _cropped_conv(crop, (3, 3), dilation=(1, 2))
    assert absorb_crop(ws, node) is False
    refused = _refusal(ws, node)
    assert refused.precondition == str(g12.WHOLE_TAPS)  # G12's own check refused
    assert refused.detail == f"crop ({start}, {0 if end is None else -end}) on axis 1, dilation 2"
    _assert_equal_at_every_size(ws, crop, params)


# --- G12 runs its catalogue rule (issue 25): compiled networks ------------------------------


def test_compiled_g12_lists_the_checks_its_rule_ran() -> None:
    model = blocks.randomize(CroppedConv(3, 3, 1, 1, 1, 1), torch.Generator().manual_seed(7))
    compiled = check_compiled(model, 3, 8, expected_convs=1)
    applications = [a for a in compiled.certificate.applications if a.rule == "G12"]
    assert len(applications) == 2  # one crop per axis
    for applied in applications:
        ran = {c.precondition for c in applied.checks if c.checked == "transform"}
        assert {str(g12.VALID_ON_CROPPED_AXES), str(g12.WHOLE_TAPS)} <= ran
        assert all(c.rule == "G12" for c in applied.checks)


@pytest.mark.parametrize(
    ("padding", "dilation", "condition"),
    [(1, 1, g12.VALID_ON_CROPPED_AXES), (0, 2, g12.WHOLE_TAPS)],
    ids=["padded cropped axis", "part of a dilated tap"],
)
def test_a_compiled_g12_refusal_names_the_rules_precondition(padding, dilation, condition) -> None:
    model = CroppedConv(3, 3, 1, dilation, 1, 0)  # one row cropped from each end
    model.conv.padding = (padding, padding)
    blocks.randomize(model, torch.Generator().manual_seed(8))
    compiled = check_compiled(model, 3, 9, expected_convs=1)  # checks the output too
    assert "slice.Tensor" in compiled.certificate.ops_after
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "G12"]
    assert refusal.precondition == str(condition)
