"""Graph canonicalisations: rewrite how ``forward`` was written into one normal form.

None changes a weight; each is a catalogue rule of tensor algebra (G2, G11, G15 in
:mod:`et.rules`), whose own check runs through :meth:`Workspace.run` / :meth:`Workspace.apply`
at every site, so the certificate lists what it checked. The main one turns a per-channel
constant canvas with a tensor written into its interior (ECBSR's ``pad_with_bias``:
``out = b.expand(...)``, ``out[:, :, 1:-1, 1:-1] = y``, captured as ``slice_scatter``) into
``pad₀(y − c) + c``, after which G3/G4/G1 and R7 fold the pair exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn

from et.compiler.cancel_constants import cancel_constants
from et.compiler.explicit_padding import explicit_padding
from et.compiler.no_ops import INT_MAX, constant_pad, remove_no_ops
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, number
from et.compiler.workspace import (
    Workspace,
    arguments,
    aten_pair,
    unit_alpha,
)
from et.contract import PreconditionError
from et.rules.global_average_pool import check_global_pool

aten = torch.ops.aten


def fill_value(ws: Workspace, node: object) -> torch.Tensor | None:
    """The per-channel constant ``[1, C, 1, 1]`` (or scalar) that fills ``node``, if it is a
    constant canvas (a broadcast constant, possibly cloned or sliced on spatial axes)."""
    if not isinstance(node, fx.Node):
        return None
    constant = ws.tensor(node)
    if constant is not None:
        if constant.ndim == 4:
            corner = constant[:1, :, :1, :1]
            return corner if torch.equal(constant, corner.expand_as(constant)) else None
        if constant.ndim == 0:
            return constant.reshape(1, 1, 1, 1)
        return None
    values = arguments(node)
    if values is None:
        return None
    if node.target in (aten.clone.default, aten.expand.default):
        return fill_value(ws, values["self"])
    if node.target == aten.copy.default:
        return fill_value(ws, values["src"])  # the source broadcast over the view
    if node.target == aten.slice.Tensor and values["dim"] in (2, 3, -1, -2):
        return fill_value(ws, values["self"])
    if node.target == aten.full.default and isinstance(values["fill_value"], int | float):
        value = float(values["fill_value"])
        return torch.tensor(value, dtype=torch.float64).reshape(1, 1, 1, 1)
    if node.target in (aten.ones.default, aten.zeros.default):
        value = 1.0 if node.target == aten.ones.default else 0.0
        return torch.tensor(value, dtype=torch.float64).reshape(1, 1, 1, 1)
    binary = (aten.mul.Tensor, aten.add.Tensor)
    if node.target in binary and unit_alpha(node):
        a, b = fill_value(ws, values["self"]), fill_value(ws, values["other"])
        if a is not None and b is not None:
            return a * b if node.target == aten.mul.Tensor else a + b
    return None


def _write_into_fill(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G2: ``slice_scatter(fill(c), y, dim, a, −b)`` = ``pad₀(y − c, a, b on dim) + c``."""
    dim, start, end = found["dim"], found["start"] or 0, found["end"]
    high = 0 if end is None or end >= INT_MAX else -end
    pads = [start, high, 0, 0] if dim in (3, -1) else [0, 0, start, high]
    return _shifted_zero_pad(
        ws, node, found["source"], pads, fill_value(ws, found["base"]), [node], found[GRAPH]
    )


def _shifted_zero_pad(
    ws: Workspace,
    node: fx.Node,
    source: fx.Node,
    pads: list[int],
    fill: torch.Tensor,
    nodes: list[fx.Node],
    graph_checks: tuple,
) -> bool:
    """Replace ``node`` by ``pad₀(source − c, pads) + c`` once G2's own check (one value per
    channel, widths ≥ 0) has held on ``fill`` and ``pads``; a refusal is recorded."""
    channels = ws.channels(source) or int(fill.reshape(-1).numel())
    try:
        _, checks = ws.apply("G2", fill, pads, channels)
    except PreconditionError as error:
        ws.record.refused(node, "G2", error.condition, error.detail)
        return False
    constant = ws.constant(fill, node)
    shifted = ws.call(aten.sub.Tensor, (source, constant), node)
    padded = ws.call(aten.constant_pad_nd.default, (shifted, pads, 0.0), node)
    result = ws.call(aten.add.Tensor, (padded, constant), node)
    result.meta["val"] = node.meta.get("val")
    ws.record.applied("G2", nodes, (*checks, *graph_checks))
    ws.replace(node, result)
    return True


def _from_the_end(end: object) -> bool:
    return end is None or (isinstance(end, int) and (end >= INT_MAX or end < 0))


write_into_fill = driver(
    Rewrite(
        "G2",
        (
            Op(
                aten.slice_scatter.default,
                self=Var("base"),
                src=Var("source"),
                dim=Var("dim", lambda d: d in (2, 3, -1, -2)),
                start=Var("start", lambda s: s is None or isinstance(s, int)),
                end=Var("end", _from_the_end),
                step=1,
            ),
        ),
        _write_into_fill,
        (
            GraphCheck(
                "the canvas is one constant per channel",
                lambda ws, node, found: fill_value(ws, found["base"]) is not None,
                refuses=False,
            ),
        ),
    )
)


def _strip(node: fx.Node) -> tuple[int, int, int] | None:
    values = arguments(node)
    if values is None:
        return None
    dim, start, end, step = values["dim"], values["start"] or 0, values["end"], values["step"]
    if dim not in (2, 3) or step != 1 or not isinstance(start, int):
        return None
    end = INT_MAX if end is None or (isinstance(end, int) and end >= INT_MAX) else end
    return (dim, start, end) if isinstance(end, int) else None


def _border(ws: Workspace, node: fx.Node):
    """``(pad node, pads, c)`` when ``node`` ends a chain of writes of one per-channel constant
    c over every border strip of a zero pad (and nothing else), else None."""
    strips, values, current = set(), [], node
    while current.target == aten.slice_scatter.default:
        strip = _strip(current)
        value = fill_value(ws, arguments(current)["src"]) if strip is not None else None
        if strip is None or value is None:
            return None
        strips.add(strip)
        values.append(value)
        current = arguments(current)["self"]
    padding = arguments(current)
    if current.target != aten.constant_pad_nd.default or not values or padding is None:
        return None
    if len(padding["pad"]) > 4:
        return None  # the pad also widens the channels (or batch): no spatial border
    pads = list(padding["pad"]) + [0] * (4 - len(padding["pad"]))
    if float(padding["value"]) != 0.0:
        return None
    sides = [(3, 0, pads[0]), (3, -pads[1], INT_MAX), (2, 0, pads[2]), (2, -pads[3], INT_MAX)]
    wanted = {side for side, width in zip(sides, pads, strict=True) if width > 0}
    first = values[0]
    if strips != wanted or any(v.shape != first.shape or not torch.equal(v, first) for v in values):
        return None
    return current, pads, first


def _write_border(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G2: ``y`` zero-padded by p, then every border strip overwritten with one per-channel
    constant c (DBB's BN-and-pad: ``out[:, :, 0:p, :] = c`` …) is ``pad₀(y − c, p) + c``."""
    current, pads, first = _border(ws, node)
    source = arguments(current)["self"]
    return _shifted_zero_pad(ws, node, source, pads, first, [current, node], found[GRAPH])


_SCATTER = {n: Var(n) for n in ("self", "src", "dim", "start", "end", "step")}
write_border = driver(
    Rewrite(
        "G2",
        (Op(aten.slice_scatter.default, **_SCATTER),),
        _write_border,
        (
            GraphCheck(
                "every border strip holds the same constant",
                lambda ws, node, found: _border(ws, node) is not None,
                refuses=False,
            ),
        ),
    )
)


def _merge_zero_pads(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G15: two zero paddings in a row are one: ``pad₀(pad₀(x, p), q) = pad₀(x, p + q)`` for
    non-negative p, q (entry-wise, the shorter list extended by zeros); G15's transform checks
    the values and widths and adds them."""
    try:
        merged, checks = ws.apply(
            "G15", list(found["first"]), list(found["outer"]), (found["v"], found["w"])
        )
    except PreconditionError as error:
        ws.record.refused(node, "G15", error.condition, error.detail)
        return False
    pad = ws.call(aten.constant_pad_nd.default, (found["x"], list(merged.widths), 0.0), node)
    pad.meta["val"] = node.meta.get("val")
    ws.record.applied("G15", [found["inner"], node], (*checks, *found[GRAPH]))
    ws.replace(node, pad)
    return True


def _zero(value: object) -> bool:
    return number(value) and float(value) == 0.0


merge_zero_pads = driver(
    Rewrite(
        "G15",
        (
            Op(
                aten.constant_pad_nd.default,
                self=Op(
                    aten.constant_pad_nd.default,
                    name="inner",
                    single_user=True,
                    self=Var("x"),
                    pad=Var("first"),
                    value=Var("v", _zero),
                ),
                pad=Var("outer"),
                value=Var("w", _zero),
            ),
        ),
        _merge_zero_pads,
    )
)


def _global_pool(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G11: an average pool whose window is the whole image is the spatial mean,
    ``avg_pool2d(x, (H, W), padding 0) = mean(x, dims (2, 3), keepdim)`` at any stride (one
    window fits). Only where the map's size is a number in the graph (a static capture, or a
    size the capture's guards fix, so the compiled module holds at that size only): a symbolic
    size equal to the window at the example is no proof at others. ``ceil_mode`` and
    ``divisor_override`` are left at their defaults by the pattern (a window sum divided by
    anything but its size is no mean); ``count_include_pad`` is moot at padding 0. (A window
    written as the input's own size is traced as the mean already: :mod:`et.compiler.capture`.)
    """
    size = [int(s) for s in found["x"].meta["val"].shape[2:]]
    stride = found["stride"] or None  # ATen's [] (or None) is the window
    pool = nn.AvgPool2d(
        tuple(_window(found["kernel"])),
        stride=None if stride is None else aten_pair(stride),
        padding=aten_pair(found["padding"]),
        count_include_pad=bool(found["include"]),
    )
    try:
        _, checks = ws.run(check_global_pool, pool, size)
    except PreconditionError as error:
        ws.record.refused(node, "G11", error.condition, error.detail)
        return False
    mean = ws.call(aten.mean.dim, (found["x"], [2, 3], True), node)
    ws.record.applied("G11", [node], (*checks, *found[GRAPH]))
    ws.replace(node, mean)
    return True


def _whole_image(ws: Workspace, node: fx.Node, found: dict) -> bool:
    x = found["x"]
    value = x.meta.get("val") if isinstance(x, fx.Node) else None
    if value is None or value.ndim != 4:
        return False
    size, kernel = [value.shape[2], value.shape[3]], _window(found["kernel"])
    # type first: comparing a SymInt with a number would answer for the example's size
    return all(type(v) is int for v in (*size, *kernel)) and kernel == size


def _window(kernel: object) -> list:
    """An ATen ``kernel_size`` (an int, or a list of one or two) as two entries."""
    return list(kernel) * (2 // len(kernel)) if isinstance(kernel, list) else [kernel] * 2


global_pool = driver(
    Rewrite(
        "G11",
        (
            Op(
                aten.avg_pool2d.default,
                self=Var("x"),
                kernel_size=Var("kernel"),
                stride=Var("stride"),
                padding=Var("padding", lambda p: p in (0, [0, 0], [0])),
                count_include_pad=Var("include"),
            ),
        ),
        _global_pool,
        (GraphCheck("the window covers the whole captured image", _whole_image, refuses=False),),
    )
)


CANONICAL_PATTERNS: tuple[Callable[[Workspace, fx.Node], bool], ...] = (
    remove_no_ops,
    explicit_padding,
    constant_pad,
    write_into_fill,
    write_border,
    cancel_constants,
    merge_zero_pads,
    global_pool,
)
