"""Graph canonicalisations with keyword arguments: each keyword is read by its schema name and
handled exactly, or the pattern does not match (issue 25). Each case fails on a matcher that
reads positions only (it would take the keyword's default)."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

import et
from et.compiler.canonical import (
    INT_MAX,
    cancel_constants,
    constant_pad,
    explicit_padding,
    fill_value,
    global_pool,
    merge_zero_pads,
    remove_no_ops,
    write_border,
    write_into_fill,
)
from et.compiler.certificate import CertificateBuilder
from et.compiler.workspace import Workspace
from et.domain import IMAGE_UNIT
from et.rules import cancel_constants as g8
from et.rules import fill_as_zero_pad as g2
from et.rules import global_average_pool as g11
from et.rules import merge_zero_pads as g15
from et.rules import remove_no_op as g7
from tests.compiler.graphs import (
    aten,
    call,
    evaluate,
    keyed,
    placeholder,
    rewrite_keeps_function,
    workspace,
)

F64 = torch.float64
X = torch.rand(1, 3, 5, 6, dtype=F64, generator=torch.Generator().manual_seed(0))


def _x(g):
    return placeholder(g, "x", 1, 3, 5, 6)


def test_a_pad_whose_mode_is_a_keyword_is_no_constant_pad() -> None:
    ws, node = workspace(
        lambda g: keyed(g, aten.pad.default, (_x(g), [1, 1, 2, 0]), mode="reflect")
    )
    assert rewrite_keeps_function(ws, constant_pad, node, X) is False


def test_a_pad_whose_value_is_a_keyword_keeps_its_value() -> None:
    ws, node = workspace(lambda g: keyed(g, aten.pad.default, (_x(g), [1, 1, 2, 0]), value=2.5))
    assert rewrite_keeps_function(ws, constant_pad, node, X) is True


def test_a_slice_whose_start_is_a_keyword_is_no_full_slice() -> None:
    ws, node = workspace(lambda g: keyed(g, aten.slice.Tensor, (_x(g), 2), start=1))
    assert rewrite_keeps_function(ws, remove_no_ops, node, X) is False


def test_a_pad_of_a_keyword_value_is_not_merged_as_zero() -> None:
    def build(g):
        inner = keyed(g, aten.constant_pad_nd.default, (_x(g), [1, 1]), value=1.0)
        return call(g, aten.constant_pad_nd.default, inner, [0, 0, 1, 1])

    ws, node = workspace(build)
    assert rewrite_keeps_function(ws, merge_zero_pads, node, X) is False


def test_constants_added_with_alpha_do_not_cancel() -> None:
    constants = {"c": torch.tensor([1.0, -2.0, 0.5], dtype=F64).reshape(1, 3, 1, 1)}

    def build(g):
        c = g.get_attr("c")
        return call(g, aten.sub.Tensor, keyed(g, aten.add.Tensor, (_x(g), c), alpha=2), c)

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, cancel_constants, node, X) is False


def test_padding_same_given_as_keywords_is_written_with_its_dilation() -> None:
    weight = torch.randn(4, 3, 3, 2, dtype=F64, generator=torch.Generator().manual_seed(1))

    def build(g):
        w = g.get_attr("w")
        w.meta["val"] = weight
        return keyed(g, aten.conv2d.padding, (_x(g), w), padding="same", dilation=[2, 1])

    ws, node = workspace(build, {"w": weight})
    assert rewrite_keeps_function(ws, explicit_padding, node, X) is True


def test_a_write_whose_bounds_are_keywords_pads_by_them() -> None:
    constants = {"canvas": torch.full((1, 3, 5, 9), 0.25, dtype=F64)}

    def build(g):
        canvas = g.get_attr("canvas")
        return keyed(g, aten.slice_scatter.default, (canvas, _x(g)), dim=3, start=1, end=-2, step=1)

    ws, node = workspace(build, constants)
    assert rewrite_keeps_function(ws, write_into_fill, node, X) is True


def test_a_global_pool_with_a_keyword_divisor_is_no_mean() -> None:
    def build(g):
        return keyed(g, aten.avg_pool2d.default, (_x(g), [5, 6]), divisor_override=7)

    ws, node = workspace(build)
    assert rewrite_keeps_function(ws, global_pool, node, X) is False


# Graph canonicalisations on forwards that almost match them (kill tests of the mutation pass;
# ``mutation/survivors.txt`` names each one): the near-miss must stay exact.


def _border_writes(step: int) -> tuple[Workspace, fx.Node]:
    """``pad₀(x, 2)`` then a per-channel constant written into the four border strips of
    width 2, every ``step``-th row or column (DBB's BN-and-pad writes with step 1)."""
    root = nn.Module()
    root.register_buffer("value", torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64))
    graph = fx.Graph()
    current = graph.call_function(
        aten.constant_pad_nd.default, (graph.placeholder("x"), [2, 2, 2, 2], 0.0)
    )
    value = graph.get_attr("value")
    for dim, start, end in ((2, 0, 2), (2, -2, INT_MAX), (3, 0, 2), (3, -2, INT_MAX)):
        source = graph.call_function(aten.expand.default, (value, [1, 3, 2, 2]))
        current = graph.call_function(
            aten.slice_scatter.default, (current, source, dim, start, end, step)
        )
    graph.output(current)
    workspace = Workspace(fx.GraphModule(root, graph), IMAGE_UNIT, CertificateBuilder())
    return workspace, current


@pytest.mark.parametrize("step", [1, 2])
def test_only_contiguous_border_strips_are_a_constant_pad(step: int) -> None:
    # step 2 leaves the inner ring of the border at 0: no constant pad computes that
    workspace, last = _border_writes(step)
    assert write_border(workspace, last) is (step == 1)
    assert [a.rule for a in workspace.record.applications] == (["G2"] if step == 1 else [])


# fill_value: which graph values are one constant per channel, and which constant


def _fill(build, constants=None) -> torch.Tensor | None:
    ws, node = workspace(build, constants)
    return fill_value(ws, node)


def _assert_fill(found: torch.Tensor | None, expected: list[float]) -> None:
    assert found is not None
    assert found.shape == (1, len(expected), 1, 1)
    assert found.reshape(-1).tolist() == pytest.approx(expected)


PER_CHANNEL = torch.tensor([0.5, -1.0, 2.0]).reshape(1, 3, 1, 1)


def test_fill_of_constants() -> None:
    canvas = {"c": PER_CHANNEL.expand(2, 3, 4, 5).clone()}
    _assert_fill(_fill(lambda g: g.get_attr("c"), canvas), [0.5, -1.0, 2.0])
    varying = PER_CHANNEL.expand(2, 3, 4, 5).clone()
    varying[1, 0, 2, 3] = 7.0
    assert _fill(lambda g: g.get_attr("c"), {"c": varying}) is None
    _assert_fill(_fill(lambda g: g.get_attr("c"), {"c": torch.tensor(0.75)}), [0.75])
    assert _fill(lambda g: g.get_attr("c"), {"c": torch.ones(3, 4, 5)}) is None
    assert _fill(lambda g: g.placeholder("x")) is None


def test_fill_through_copies_broadcasts_and_spatial_slices() -> None:
    constant = {"c": PER_CHANNEL}

    def through(*ops):
        def build(g):
            node = g.get_attr("c")
            for op, *rest in ops:
                node = call(g, op, node, *rest)
            return node

        return build

    _assert_fill(_fill(through((aten.clone.default,)), constant), [0.5, -1.0, 2.0])
    _assert_fill(_fill(through((aten.expand.default, [1, 3, 4, 4])), constant), [0.5, -1.0, 2.0])
    for dim in (2, 3, -1, -2):
        _assert_fill(_fill(through((aten.slice.Tensor, dim, 0, 1)), constant), [0.5, -1.0, 2.0])
    assert _fill(through((aten.slice.Tensor, 1, 0, 1)), constant) is None  # a channel slice
    assert _fill(through((aten.relu.default,)), constant) is None

    def copied(g):
        return call(g, aten.copy.default, g.placeholder("view"), g.get_attr("c"))

    _assert_fill(_fill(copied, constant), [0.5, -1.0, 2.0])


def test_fill_of_factory_ops_and_their_sums_and_products() -> None:
    def full(g, value=0.25):
        return call(g, aten.full.default, [1, 3, 4, 4], value)

    found = _fill(full)
    _assert_fill(found, [0.25])
    assert found.dtype == torch.float64
    for op, value in ((aten.ones.default, 1.0), (aten.zeros.default, 0.0)):
        found = _fill(lambda g, op=op: call(g, op, [1, 3, 4, 4]))
        _assert_fill(found, [value])
        assert found.dtype == torch.float64  # the exact constant, not float32's rounding
    _assert_fill(_fill(lambda g: call(g, aten.add.Tensor, full(g), full(g, 3.0))), [3.25])
    _assert_fill(_fill(lambda g: call(g, aten.mul.Tensor, full(g), full(g, 3.0))), [0.75])
    assert _fill(lambda g: call(g, aten.add.Tensor, full(g), g.placeholder("x"))) is None
    assert _fill(lambda g: call(g, aten.add.Tensor, g.placeholder("x"), full(g))) is None
    assert _fill(lambda g: call(g, aten.sub.Tensor, full(g), full(g))) is None


# --- shared helpers of the rewrite tests below ---------------------------------------------


def _applications(ws: Workspace) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(a.rule, a.nodes, a.preconditions) for a in ws.record.applications]


def _dyadic(*shape: int) -> torch.Tensor:
    """Random multiples of 1/8 in [−4, 4): sums and differences with the constants used here
    are exact in float64, so a rewrite must reproduce the original bit for bit."""
    generator = torch.Generator().manual_seed(sum(shape))
    return torch.randint(-32, 32, shape, generator=generator).to(torch.float64) / 8


def _returned(ws: Workspace) -> fx.Node:
    """The node the graph returns."""
    return next(n for n in ws.graph.nodes if n.op == "output").args[0]


def _listing(ws: Workspace) -> list[tuple[str, object]]:
    return [(n.op, n.target) for n in ws.graph.nodes]


def _evaluate(ws: Workspace, *inputs: torch.Tensor) -> torch.Tensor:
    """The (rewritten) graph, checked well formed, run on ``inputs``."""
    ws.graph.lint()
    return evaluate(ws, *inputs)


def _assert_untouched(ws: Workspace, listing: list[tuple[str, object]]) -> None:
    """A refused rewrite leaves the graph as it was and records nothing."""
    assert _listing(ws) == listing
    assert ws.record.applications == []


# What G12 and G2 both leave: the input, the constant c, then pad₀(y − c) + c (sub, pad, add)
SHIFTED_PAD_OPS = ["placeholder", "get_attr"] + ["call_function"] * 3 + ["output"]


def _refuses(pattern, build, constants=None) -> None:
    ws, _ = workspace(build, constants)
    before = _listing(ws)
    assert pattern(ws, _returned(ws)) is False
    _assert_untouched(ws, before)


# --- G7 remove_no_ops: copies, full slices and whole overwrites are their source ------------


@pytest.mark.parametrize("op", [aten.clone.default, aten.alias.default, aten.contiguous.default])
def test_a_copy_of_an_input_is_the_input(op) -> None:
    ws, node = workspace(lambda g: call(g, op, g.placeholder("x")))
    name = node.name
    assert remove_no_ops(ws, node) is True
    assert _listing(ws) == [("placeholder", "x"), ("output", "output")]
    assert _returned(ws).name == "x"
    assert _applications(ws) == [
        ("G7", (name,), (g7.OPERATION, "the copied value is not a constant"))
    ]
    (application,) = ws.record.applications
    assert [c.checked for c in application.checks] == ["transform", "graph"]


def test_copies_that_are_kept() -> None:
    """A copy of a constant is left for constant folding; a copy with a second argument, of a
    non-tensor, or any other op is no plain copy."""
    constants = {"c": torch.ones(1, 3, 1, 1)}
    _refuses(remove_no_ops, lambda g: call(g, aten.clone.default, g.get_attr("c")), constants)
    _refuses(
        remove_no_ops,
        lambda g: call(g, aten.clone.default, g.placeholder("x"), torch.contiguous_format),
    )
    _refuses(remove_no_ops, lambda g: call(g, aten.alias.default, 2.0))
    _refuses(remove_no_ops, lambda g: call(g, aten.relu.default, g.placeholder("x")))


def _copy_onto(view_shape, source_shape):
    def build(g):
        view = placeholder(g, "view", *view_shape) if view_shape else g.placeholder("view")
        source = placeholder(g, "y", *source_shape) if source_shape else g.placeholder("y")
        return call(g, aten.copy.default, view, source)

    return build


def test_a_copy_onto_an_equal_shaped_tensor_is_the_source() -> None:
    ws, node = workspace(_copy_onto((1, 3, 4, 5), (1, 3, 4, 5)))
    name = node.name
    assert remove_no_ops(ws, node) is True
    assert _returned(ws).name == "y"
    assert _applications(ws) == [("G7", (name,), (g7.OPERATION, g7.SAME_TYPE))]
    # the view's shape read from a constant (no capture metadata on get_attr nodes)
    ws, node = workspace(
        lambda g: call(g, aten.copy.default, g.get_attr("c"), placeholder(g, "y", 1, 3, 4, 5)),
        {"c": torch.zeros(1, 3, 4, 5, dtype=torch.float64)},
    )
    assert remove_no_ops(ws, node) is True
    assert _returned(ws).name == "y"
    # a float32 view: the copy casts the float64 source, so it is no no-op
    ws, node = workspace(
        lambda g: call(g, aten.copy.default, g.get_attr("c"), placeholder(g, "y", 1, 3, 4, 5)),
        {"c": torch.zeros(1, 3, 4, 5)},
    )
    assert remove_no_ops(ws, node) is False


def test_copies_that_broadcast_or_whose_shapes_are_unknown_are_kept() -> None:
    _refuses(remove_no_ops, _copy_onto((1, 3, 4, 5), (1, 3, 1, 1)))  # a broadcast
    _refuses(remove_no_ops, _copy_onto((1, 3, 4, 5), (1, 3, 4, 4)))
    _refuses(remove_no_ops, _copy_onto(None, None))  # neither shape known
    _refuses(remove_no_ops, _copy_onto((1, 3, 4, 5), None))
    _refuses(remove_no_ops, _copy_onto(None, (1, 3, 4, 5)))
    _refuses(  # the source a number, not a node
        remove_no_ops,
        lambda g: call(g, aten.copy.default, placeholder(g, "view", 1, 3, 4, 5), 1.0),
    )
    _refuses(  # a constant source of another shape
        remove_no_ops,
        lambda g: call(g, aten.copy.default, placeholder(g, "view", 1, 3, 4, 5), g.get_attr("c")),
        {"c": torch.zeros(1, 3, 1, 5)},
    )


FULL_SLICES = [(), (2,), (3, 0, INT_MAX), (2, None, None, None), (3, 0, INT_MAX + 1, 1)]
PART_SLICES = [(2, 1), (2, -1), (3, 0, 4), (3, 0, INT_MAX - 1), (2, 0, None, 2), (2, 0, 2.5)]


@pytest.mark.parametrize("rest", FULL_SLICES)
def test_a_full_slice_is_its_source(rest) -> None:
    ws, node = workspace(lambda g: call(g, aten.slice.Tensor, g.placeholder("x"), *rest))
    name = node.name
    assert remove_no_ops(ws, node) is True
    assert _listing(ws) == [("placeholder", "x"), ("output", "output")]
    assert _applications(ws) == [("G7", (name,), (g7.OPERATION, g7.FULL_RANGE, g7.UNIT_STEP))]


@pytest.mark.parametrize("rest", PART_SLICES)
def test_a_partial_slice_is_kept(rest) -> None:
    _refuses(remove_no_ops, lambda g: call(g, aten.slice.Tensor, g.placeholder("x"), *rest))


def test_a_slice_to_a_symbolic_end_or_of_a_number_is_kept() -> None:
    _refuses(
        remove_no_ops,
        lambda g: call(g, aten.slice.Tensor, g.placeholder("x"), 2, 0, g.placeholder("n")),
    )
    _refuses(remove_no_ops, lambda g: call(g, aten.slice.Tensor, 2.0))


@pytest.mark.parametrize("rest", FULL_SLICES)
def test_a_write_over_the_whole_base_is_the_written_tensor(rest) -> None:
    def build(g):
        base, y = placeholder(g, "base", 1, 3, 4, 5), placeholder(g, "y", 1, 3, 4, 5)
        return call(g, aten.slice_scatter.default, base, y, *rest)

    ws, node = workspace(build)
    name = node.name
    assert remove_no_ops(ws, node) is True
    assert _listing(ws) == [("placeholder", "base"), ("placeholder", "y"), ("output", "output")]
    checked = (g7.OPERATION, g7.SAME_TYPE, g7.FULL_RANGE, g7.UNIT_STEP)
    assert _applications(ws) == [("G7", (name,), checked)]


@pytest.mark.parametrize(
    ("base", "source"),
    [((1, 3, 4, 5), None), (None, (1, 3, 4, 5)), ((1, 3, 4, 5), (1, 3, 4, 5, "float32"))],
    ids=["source unknown", "base unknown", "a float32 source cast to float64"],
)
def test_a_whole_write_of_another_or_unknown_type_is_refused_by_g7(base, source) -> None:
    """G7's own check decides a write over the whole base, and its refusal is recorded."""

    def build(g):
        nodes = []
        for name, shape in (("base", base), ("y", source)):
            node = placeholder(g, name, *shape[:4]) if shape else g.placeholder(name)
            if shape and len(shape) == 5:
                node.meta["val"] = node.meta["val"].float()
            nodes.append(node)
        return call(g, aten.slice_scatter.default, *nodes, 3)

    ws, node = workspace(build)
    assert remove_no_ops(ws, node) is False
    (refusal,) = ws.record.unfolded({node.name})
    assert (refusal.rule, refusal.precondition) == ("G7", g7.SAME_TYPE)


@pytest.mark.parametrize("rest", PART_SLICES)
def test_a_write_into_part_of_the_base_is_kept(rest) -> None:
    def build(g):
        return call(g, aten.slice_scatter.default, g.placeholder("base"), g.placeholder("y"), *rest)

    _refuses(remove_no_ops, build)
    _refuses(  # the written value a number
        remove_no_ops, lambda g: call(g, aten.slice_scatter.default, g.placeholder("base"), 1.0)
    )


# --- G2 write_into_fill: a tensor written into a constant canvas is pad₀(y − c) + c ---------

CANVAS = (1, 3, 6, 7)
CANVAS_FILL = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).reshape(1, 3, 1, 1)


def _written_shape(dim: int, start, end, step) -> list[int]:
    """The shape of ``canvas[..., start:end:step, ...]`` on ``dim`` (Python slicing)."""
    shape = list(CANVAS)
    shape[dim] = len(range(shape[dim])[slice(start, end, step)])
    return shape


def _canvas_write(*rest, base: str = "canvas"):
    """``slice_scatter(canvas, y, *rest)``: ``y`` written into a per-channel constant canvas
    (``base="input"``: into an input instead); the graph's inputs are (``canvas``,) ``y``."""
    dim = rest[0] if rest and rest[0] is not None else 0
    args = [*rest, None, None, None, None][:4]
    shape = _written_shape(dim, args[1], args[2], args[3])

    def build(g):
        if base == "canvas":
            canvas = call(g, aten.expand.default, g.get_attr("c"), list(CANVAS))
        else:
            canvas = placeholder(g, "canvas", *CANVAS)
        node = call(g, aten.slice_scatter.default, canvas, placeholder(g, "y", *shape), *rest)
        node.meta["val"] = torch.empty(CANVAS, dtype=torch.float64)
        return node

    return build, shape


WRITES_INTO_FILL = [
    # (slice_scatter's arguments after the source, the expected pad [W₀, W₁, H₀, H₁])
    ((3, 1, -2), [1, 2, 0, 0]),
    ((-1, 2), [2, 0, 0, 0]),
    ((2, 0, -1), [0, 0, 0, 1]),
    ((-2, 1, INT_MAX), [0, 0, 1, 0]),
    ((2, None, -3, None), [0, 0, 0, 3]),
    ((3, 1, -1, 1), [1, 1, 0, 0]),
    ((2, 2, INT_MAX + 7), [0, 0, 2, 0]),
    ((3, 1, None), [1, 0, 0, 0]),
]


@pytest.mark.parametrize(("rest", "pads"), WRITES_INTO_FILL)
def test_a_write_into_a_constant_canvas_is_a_shifted_zero_pad(rest, pads) -> None:
    build, shape = _canvas_write(*rest)
    ws, node = workspace(build, {"c": CANVAS_FILL})
    name, val = node.name, node.meta["val"]
    y = _dyadic(*shape)
    dim, start, end, step = [*rest, None, None, None][:4]
    expected = torch.slice_scatter(CANVAS_FILL.expand(CANVAS), y, dim, start, end, step or 1)
    assert write_into_fill(ws, node) is True
    add = _returned(ws)
    padded, constant = add.args
    assert add.target == aten.add.Tensor
    assert padded.target == aten.constant_pad_nd.default and padded.args[1:] == (pads, 0.0)
    shifted = padded.args[0]
    assert shifted.target == aten.sub.Tensor and shifted.args == (
        ws.graph.find_nodes(op="placeholder", target="y")[0],
        constant,
    )
    assert torch.equal(ws.tensor(constant), CANVAS_FILL)
    assert add.meta["val"] is val
    checked = (g2.WIDTHS, g2.PER_CHANNEL, "the canvas is one constant per channel")
    assert _applications(ws) == [("G2", (name,), checked)]
    assert torch.equal(_evaluate(ws, y), expected)
    # the canvas and its write are gone: only y, the constant and the three new ops remain
    assert [n.op for n in ws.graph.nodes] == SHIFTED_PAD_OPS


REFUSED_WRITES = [
    (),  # dim 0 by default
    (None, 1, -1),  # dim 0 spelled None
    (0, 0, 1),
    (1, 1, -1),  # a channel slice
    (2, 1, -1, 2),  # every other row
    (2, 1, 0),  # an empty write: the end is no count from the far side
    (2, 1, 5),  # a positive end
    (3, 0, INT_MAX - 1),
    (3, 0, -1.0),  # an end that is no int
    (3, 1.0, -1),  # a start that is no int
]


@pytest.mark.parametrize("rest", REFUSED_WRITES)
def test_writes_that_are_no_spatial_border_are_kept(rest) -> None:
    def build(g):
        canvas = call(g, aten.expand.default, g.get_attr("c"), list(CANVAS))
        return call(g, aten.slice_scatter.default, canvas, g.placeholder("y"), *rest)

    _refuses(write_into_fill, build, {"c": CANVAS_FILL})


def test_writes_into_a_varying_canvas_or_of_a_symbolic_start_are_kept() -> None:
    build, _ = _canvas_write(3, 1, -1, base="input")
    _refuses(write_into_fill, build)
    varying = CANVAS_FILL.expand(CANVAS).clone()
    varying[0, 1, 2, 3] = 5.0
    _refuses(
        write_into_fill,
        lambda g: call(g, aten.slice_scatter.default, g.get_attr("c"), g.placeholder("y"), 3, 1),
        {"c": varying},
    )

    def symbolic_start(g):
        canvas = call(g, aten.expand.default, g.get_attr("c"), list(CANVAS))
        start = g.placeholder("s")
        return call(g, aten.slice_scatter.default, canvas, g.placeholder("y"), 3, start, -1)

    _refuses(write_into_fill, symbolic_start, {"c": CANVAS_FILL})
    _refuses(write_into_fill, lambda g: call(g, aten.relu.default, g.placeholder("x")))


# --- G2 write_border: a zero pad whose border strips all hold c is pad₀(y − c) + c ----------

X_SHAPE = (1, 3, 4, 5)
BORDER_FILL = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).reshape(1, 3, 1, 1)


def _bordered(pads, strips, pad_value=(), fills=None, x_shape=X_SHAPE):
    """``constant_pad_nd(x, pads, *pad_value)``, then for each strip (``slice_scatter``'s
    arguments after the source) the constant ``fills[i]`` (default :data:`BORDER_FILL`)
    broadcast over the strip and written into it."""
    padded = list(x_shape)
    full = [*pads, 0, 0, 0, 0][:4]
    padded[3] += full[0] + full[1]
    padded[2] += full[2] + full[3]
    fills = fills or [BORDER_FILL] * len(strips)
    constants = {f"c{i}": fill for i, fill in enumerate(fills)}

    def build(g):
        current = call(
            g, aten.constant_pad_nd.default, placeholder(g, "x", *x_shape), pads, *pad_value
        )
        for i, strip in enumerate(strips):
            dim, start, end, step = [*strip, None, None, None][:4]
            if isinstance(start, int | None) and isinstance(end, int | None):
                shape = list(padded)
                shape[dim] = len(range(shape[dim])[slice(start, end, step)])
            else:
                shape = list(padded)  # never evaluated
            source = call(g, aten.expand.default, g.get_attr(f"c{i}"), shape)
            current = call(g, aten.slice_scatter.default, current, source, *strip)
        current.meta["val"] = torch.empty(padded, dtype=torch.float64)
        return current

    return build, constants


BORDERS = [
    # (the zero pad, the strips written, in the order written)
    ([2, 2, 2, 2], [(2, 0, 2), (2, -2), (3, 0, 2), (3, -2, INT_MAX)]),  # step left out
    ([1, 2, 3, 0], [(3, -2, INT_MAX, 1), (2, 0, 3, 1), (3, 0, 1, 1)]),
    ([1, 1], [(3, None, 1), (3, -1, None)]),  # a pad of the width only
    ([0, 0, 1, 2], [(2, 0, 1), (2, -2, INT_MAX + 3), (2, 0, 1)]),  # one strip written twice
    ([0, 0, 1, 0], [(2, 0, 1)]),  # a single strip
]


@pytest.mark.parametrize("pad_value", [(), (0.0,), (0,)])
@pytest.mark.parametrize(("pads", "strips"), BORDERS)
def test_border_strips_of_one_constant_are_a_shifted_zero_pad(pads, strips, pad_value) -> None:
    build, constants = _bordered(pads, strips, pad_value)
    ws, node = workspace(build, constants)
    pad = next(n for n in ws.graph.nodes if n.target == aten.constant_pad_nd.default)
    names, val, x_node = (pad.name, node.name), node.meta["val"], pad.args[0]
    x = _dyadic(*X_SHAPE)
    expected = _evaluate(ws, x)  # the graph as written: a zero pad, then the strips' writes
    assert write_border(ws, node) is True
    add = _returned(ws)
    padded, constant = add.args
    assert add.target == aten.add.Tensor
    assert padded.target == aten.constant_pad_nd.default
    assert padded.args[1:] == ([*pads, 0, 0][:4], 0.0)
    assert padded.args[0].target == aten.sub.Tensor
    assert padded.args[0].args == (x_node, constant)
    assert torch.equal(ws.tensor(constant), BORDER_FILL)
    assert add.meta["val"] is val
    checked = (g2.WIDTHS, g2.PER_CHANNEL, "every border strip holds the same constant")
    assert _applications(ws) == [("G2", names, checked)]
    assert torch.equal(_evaluate(ws, x), expected)
    # the pad, the strips and their constants are gone; the new constant comes before its use
    assert [n.op for n in ws.graph.nodes] == SHIFTED_PAD_OPS


REFUSED_BORDERS = [
    ([2, 2, 2, 2], [(2, 0, 2), (2, -2), (3, 0, 2)]),  # a strip missing
    ([2, 2], [(3, 0, 2), (3, -2), (2, 0, 1)]),  # a strip outside the pad
    ([2, 2, 2, 2], [(2, 0, 1), (2, -2), (3, 0, 2), (3, -2)]),  # a strip narrower than the pad
    ([2, 2], [(-1, 0, 2), (-1, -2)]),  # dims counted from the end are not read
    ([1, 1], [(3, 0, 1), (3, -1, INT_MAX, 2)]),  # a strided write
    ([1, 1], [(3, 0, 1), (3, -1.0)]),  # a start that is no int
    ([1, 1], [(3, 0, 1.0), (3, -1)]),  # an end that is no int
    ([1, 1], [(3, 0, 1), (3, -1, INT_MAX - 1)]),  # stops short of the edge
]


@pytest.mark.parametrize(("pads", "strips"), REFUSED_BORDERS)
def test_border_writes_that_are_no_constant_pad_are_kept(pads, strips) -> None:
    build, constants = _bordered(pads, strips)
    _refuses(write_border, build, constants)


def test_borders_of_other_constants_or_paddings_are_kept() -> None:
    strips = [(3, 0, 1), (3, -1)]
    other = torch.tensor([0.5, -1.0, 2.5], dtype=torch.float64).reshape(1, 3, 1, 1)
    _refuses(write_border, *_bordered([1, 1], strips, fills=[BORDER_FILL, other]))
    _refuses(write_border, *_bordered([1, 1], strips, fills=[other, BORDER_FILL]))
    _refuses(write_border, *_bordered([1, 1], strips, pad_value=(1.0,)))
    _refuses(write_border, *_bordered([1, 1], []))  # a pad and no write

    def onto_input(g):
        base, source = (
            placeholder(g, "x", 1, 3, 4, 7),
            call(g, aten.expand.default, g.get_attr("c"), [1, 3, 4, 1]),
        )
        return call(g, aten.slice_scatter.default, base, source, 3, 0, 1)

    _refuses(write_border, onto_input, {"c": BORDER_FILL})

    def varying_source(g):
        padded = call(g, aten.constant_pad_nd.default, placeholder(g, "x", *X_SHAPE), [1, 1])
        current = call(g, aten.slice_scatter.default, padded, g.placeholder("s"), 3, 0, 1)
        source = call(g, aten.expand.default, g.get_attr("c"), [1, 3, 4, 1])
        return call(g, aten.slice_scatter.default, current, source, 3, -1)

    _refuses(write_border, varying_source, {"c": BORDER_FILL})
    _refuses(write_border, lambda g: call(g, aten.relu.default, g.placeholder("x")))


# --- G8 cancel_constants: (x + c) − c = x and (x − c) + c = x -------------------------------

C = torch.tensor([0.5, -1.0, 2.0]).reshape(1, 3, 1, 1)
SHIFTS = {"c": C, "same": C.clone(), "other": C + 1, "flat": C.reshape(3, 1, 1)}


def _shifted(inner_op, outer_op, inner_c="c", outer_c="same", inner_extra=(), outer_extra=()):
    def build(g):
        x = placeholder(g, "x", *X_SHAPE)  # G8's rule checks x's shape: captured here
        c = g.get_attr(inner_c) if isinstance(inner_c, str) else inner_c
        inner = call(g, inner_op, x, c, *inner_extra)
        outer = g.get_attr(outer_c) if isinstance(outer_c, str) else outer_c
        return call(g, outer_op, inner, outer, *outer_extra)

    return build


@pytest.mark.parametrize(
    ("inner", "outer"), [(aten.add.Tensor, aten.sub.Tensor), (aten.sub.Tensor, aten.add.Tensor)]
)
def test_a_constant_added_and_taken_away_cancels(inner, outer) -> None:
    ws, node = workspace(_shifted(inner, outer), SHIFTS)
    inner_node = node.args[0]
    names = (inner_node.name, node.name)
    assert cancel_constants(ws, node) is True
    assert _listing(ws) == [("placeholder", "x"), ("output", "output")]
    # the checks G8's own code ran (et.rules.cancel_constants), then the declared graph checks
    ran = tuple(str(c) for c in (g8.OPPOSITE, g8.SAME_CONSTANT, g8.NO_BROADCAST))
    graph = ("the same constant c on both", "both alphas are numbers and x's shape is known")
    assert _applications(ws) == [("G8", names, (*ran, *graph))]


def test_shifts_that_do_not_cancel_are_kept() -> None:
    add, sub, mul = aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor
    for build in (
        _shifted(add, add),  # twice the same way
        _shifted(sub, sub),
        _shifted(mul, sub),
        _shifted(add, mul),
        _shifted(add, sub, outer_c="other"),  # another constant
        _shifted(add, sub, outer_c="flat"),  # the same numbers in another shape
        _shifted(add, sub, inner_c=1.0, outer_c="same"),  # a number is no constant tensor
        _shifted(add, sub, outer_c=1.0),
        _shifted(add, sub, inner_c=1.0, outer_c=1.0),
        _shifted(add, sub, inner_extra=(2,)),  # a third argument (alpha) changes the sum
        _shifted(add, sub, outer_extra=(2,)),
    ):
        _refuses(cancel_constants, build, SHIFTS)

    def from_a_number(g):
        return call(g, aten.sub.Tensor, 1.0, g.get_attr("c"))

    _refuses(cancel_constants, from_a_number, SHIFTS)

    def input_shift(g):  # (x + y) − c with y an input
        inner = call(g, aten.add.Tensor, g.placeholder("x"), g.placeholder("y"))
        return call(g, aten.sub.Tensor, inner, g.get_attr("c"))

    _refuses(cancel_constants, input_shift, SHIFTS)
    _refuses(cancel_constants, lambda g: call(g, aten.sub.Tensor, g.placeholder("x")), SHIFTS)


# --- G15 merge_zero_pads: two zero paddings in a row are one ----------------------------------


def _two_pads(first, outer, first_value=(), outer_value=(), shared=False):
    def build(g):
        inner = call(
            g, aten.constant_pad_nd.default, placeholder(g, "x", *X_SHAPE), first, *first_value
        )
        node = call(g, aten.constant_pad_nd.default, inner, outer, *outer_value)
        node.meta["val"] = torch.empty(1)
        return call(g, aten.add.Tensor, node, inner) if shared else node

    return build


MERGED_PADS = [
    ([1, 0, 2, 0], [0, 3], [1, 3, 2, 0]),
    ([1, 2], [3, 0, 0, 4], [4, 2, 0, 4]),
    ([0, 1, 1, 0], [2, 0, 1, 1], [2, 1, 2, 1]),
]


@pytest.mark.parametrize("values", [((), ()), ((0.0,), (0,)), ((0,), ())])
@pytest.mark.parametrize(("first", "outer", "merged"), MERGED_PADS)
def test_two_zero_pads_are_one(first, outer, merged, values) -> None:
    ws, node = workspace(_two_pads(first, outer, *values))
    names, val = (node.args[0].name, node.name), node.meta["val"]
    x = _dyadic(*X_SHAPE)
    expected = torch.nn.functional.pad(torch.nn.functional.pad(x, first), outer)
    assert merge_zero_pads(ws, node) is True
    pad = _returned(ws)
    assert pad.target == aten.constant_pad_nd.default
    assert pad.args[0].name == "x" and pad.args[1:] == (merged, 0.0)
    assert pad.meta["val"] is val
    assert _applications(ws) == [("G15", names, (g15.ZERO_VALUES, g15.NON_NEGATIVE))]
    assert torch.equal(_evaluate(ws, x), expected)
    assert [n.op for n in ws.graph.nodes] == ["placeholder", "call_function", "output"]


def test_pads_that_are_not_two_sole_zero_pads_are_kept() -> None:
    for build in (
        _two_pads([1, 1], [1, 1], outer_value=(1.0,)),
        _two_pads([1, 1], [1, 1], first_value=(-1.0,)),
        _two_pads([1, -1], [1, 1]),  # a crop
        _two_pads([1, 1], [0, -1]),
        _two_pads([1, 1], [1, 1], shared=True),  # the inner pad read elsewhere too
    ):
        ws, _ = workspace(build)
        node = next(n for n in reversed(ws.graph.nodes) if n.target == aten.constant_pad_nd.default)
        before = _listing(ws)
        assert merge_zero_pads(ws, node) is False
        _assert_untouched(ws, before)

    def after_a_relu(g):
        inner = call(g, aten.relu.default, g.placeholder("x"))
        return call(g, aten.constant_pad_nd.default, inner, [1, 1])

    _refuses(merge_zero_pads, after_a_relu)
    _refuses(
        merge_zero_pads, lambda g: call(g, aten.constant_pad_nd.default, g.placeholder("x"), [1, 1])
    )
    _refuses(merge_zero_pads, lambda g: call(g, aten.relu.default, g.placeholder("x")))


# --- G7 constant_pad: aten.pad(x, p, "constant", v) is constant_pad_nd(x, p, v) -------------


@pytest.mark.parametrize(
    ("rest", "value"),
    [
        ((), 0.0),
        (("constant",), 0.0),
        ((None, None), 0.0),
        (("constant", 2), 2.0),
        ((None, -0.5), -0.5),
    ],
)
def test_a_constant_mode_pad_is_constant_pad_nd(rest, value) -> None:
    def build(g):
        node = call(g, aten.pad.default, placeholder(g, "x", *X_SHAPE), (1, 2, 0, 3), *rest)
        node.meta["val"] = torch.empty(1)
        return node

    ws, node = workspace(build)
    name, val = node.name, node.meta["val"]
    x = _dyadic(*X_SHAPE)
    assert constant_pad(ws, node) is True
    pad = _returned(ws)
    assert pad.target == aten.constant_pad_nd.default
    assert pad.args[0].name == "x" and pad.args[1] == [1, 2, 0, 3] and pad.args[2] == value
    assert type(pad.args[2]) is float
    assert pad.meta["val"] is val
    assert _applications(ws) == [("G7", (name,), (g7.OPERATION, g7.CONSTANT_MODE))]
    expected = torch.nn.functional.pad(x, (1, 2, 0, 3), value=value)
    assert torch.equal(_evaluate(ws, x), expected)


def test_other_pad_modes_are_kept() -> None:
    for mode in ("reflect", "replicate", "circular"):
        _refuses(
            constant_pad,
            lambda g, mode=mode: call(g, aten.pad.default, g.placeholder("x"), [1, 1], mode),
        )
    _refuses(constant_pad, lambda g: call(g, aten.relu.default, g.placeholder("x")))


# --- G11 global_pool: an average pool over the whole image is the spatial mean ---------------


def _pool(*rest, shape=(1, 3, 4, 5), source="x"):
    def build(g):
        x = placeholder(g, "x", *shape) if shape else g.placeholder("x")
        return call(g, aten.avg_pool2d.default, x if source == "x" else source, *rest)

    return build


WHOLE_IMAGE_POOLS = [
    ([4, 5],),
    ([4, 5], [1, 1], 0),
    ([4, 5], [7, 3], [0, 0], False),
    ([4, 5], None, [0]),
    ([4, 5], [4, 5], [0, 0], False, True),
]


@pytest.mark.parametrize("rest", WHOLE_IMAGE_POOLS)
def test_a_pool_over_the_whole_image_is_the_mean(rest) -> None:
    ws, node = workspace(_pool(*rest))
    name = node.name
    x = _dyadic(1, 3, 4, 5)
    expected = torch.nn.functional.avg_pool2d(x, (4, 5))
    assert global_pool(ws, node) is True
    mean = _returned(ws)
    assert mean.target == aten.mean.dim and mean.args[0].name == "x"
    assert mean.args[1:] == ([2, 3], True)
    ran = (g11.TORCH_MODULES, g11.WINDOW_IS_IMAGE, g11.NO_PADDING, g11.DIVISOR)
    graph = ("the window covers the whole captured image",)
    assert _applications(ws) == [("G11", (name,), (*ran, *graph))]
    assert torch.allclose(_evaluate(ws, x), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kernel", [4, [4]])
def test_a_square_window_written_once_covers_a_square_image(kernel) -> None:
    ws, node = workspace(_pool(kernel, shape=(1, 3, 4, 4)))
    assert global_pool(ws, node) is True
    assert _returned(ws).target == aten.mean.dim


def test_pools_that_miss_part_of_the_image_or_pad_are_kept() -> None:
    for build in (
        _pool([4, 4]),  # a window narrower than the image
        _pool([5, 4]),
        _pool(4),
        _pool([4]),
        _pool([4, 5], [1, 1], 1),  # padded
        _pool([4, 5], [1, 1], [0, 1]),
        _pool([4, 5], [1, 1], [1]),
        _pool([4, 5], [1, 1], 0, True),  # ceil mode
        _pool([4.0, 5.0]),  # a window that is no int
        _pool([4, 5], shape=None),  # the image size not captured
        _pool([4, 5], shape=(3, 4, 5)),  # no batch axis
        _pool([4, 5], source=2.0),
    ):
        _refuses(global_pool, build)
    _refuses(global_pool, lambda g: call(g, aten.relu.default, g.placeholder("x")))


class _WidenedByConstant(torch.nn.Module):
    """``(y + c) − c`` where c has more channels than y: a broadcast copy of y, not y."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.register_buffer("c", torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv(x) + self.c) - self.c


class _CopiedIntoHalf(torch.nn.Module):
    """A copy into a float16 tensor rounds: it is not a no-op."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        half = torch.empty_like(y, dtype=torch.float16)
        half.copy_(y)
        return half.float()


@pytest.mark.parametrize(
    ("model", "channels", "rule"),
    [(_WidenedByConstant, 1, "G8"), (_CopiedIntoHalf, 3, "G7")],
    ids=["G8 constant that broadcasts", "G7 copy that casts"],
)
def test_a_cancel_or_copy_that_changes_shape_or_dtype_is_left(model, channels, rule) -> None:
    """Before: G8 dropped ``+ c − c`` although c widened y, and G7 dropped a copy that casts to
    float16; each compile then failed verification instead of leaving the op."""
    torch.manual_seed(0)
    original = model().eval()
    compiled = et.compile(original, (torch.rand(1, channels, 8, 8),))
    assert rule not in compiled.certificate.rules_used()
    x = torch.rand(2, channels, 11, 13)
    with torch.no_grad():
        assert torch.equal(compiled.module(x), original(x))


@pytest.mark.parametrize(("base_dtype", "removed"), [(F64, True), (torch.float32, False)])
def test_a_source_a_rewrite_left_untyped_gets_its_dtype_from_the_graph(base_dtype, removed):
    """A node a rewrite emitted carries no record: its dtype is the one the graph computes on
    meta tensors (here relu of a float64 input), so a whole write into a float64 base is x and
    one into a float32 base (a cast) is refused."""

    def build(g):
        base = placeholder(g, "base", 1, 3, 4, 5)
        base.meta["val"] = base.meta["val"].to(base_dtype)
        y = call(g, aten.relu.default, placeholder(g, "y", 1, 3, 4, 5))  # no record
        return call(g, aten.slice_scatter.default, base, y, 2)

    ws, node = workspace(build)
    assert "val" not in node.args[1].meta
    assert remove_no_ops(ws, node) is removed
    if not removed:
        (refusal,) = ws.record.unfolded({node.name})
        assert refusal.precondition == g7.SAME_TYPE and "float32" in refusal.detail
