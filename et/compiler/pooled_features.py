"""How a global pool of an ``(N, C, H, W)`` map, flattened to ``(N, C)``, is written in the graph.

The patterns here bind the pooled map as ``normed`` and name the ops of the chain ``spread``,
``pool``, ``pool2``, ``scaled``, ``flat``, ``flat2`` (in that data order, each present or not), so
that a rewrite can walk the chain from the map to its reader (:data:`CHAIN_STEPS`).

* :data:`POOLED_MEANS`: the mean over all H·W positions (R16): ``mean.dim`` over H and W (kept,
  then ``flatten``/``view``/``reshape``, or without keepdim), ``adaptive_avg_pool2d(·, [1, 1])``
  flattened, the unit axes squeezed or indexed away, ``flatten(2).mean(-1)``, nested means, and
  **a sum divided by the count**: ``x.sum((2, 3)) / (h·w)`` and ``x.sum(-1).sum(-1) / (H·W)``,
  where the divisor must be the summed map's own ``H·W`` (:func:`divisor_is_positions`, the
  symbolic sizes compared as expressions), since only then is the quotient the mean.
* :data:`POOLED_MAXIMA`: the maximum over all H·W positions (R22): ``amax`` over H and W (kept
  and flattened, or not), ``adaptive_max_pool2d(·, [1, 1])[0]`` flattened, and ``max_pool2d``
  whose window is the map's whole (captured) size (:func:`window_is_map`).

A view or reshape of the ``(N, C, 1, 1)`` pool keeps each sample's C channels together whatever
shape it writes, and the Linear reading it mixes its last axis, whose width the rule checks
against the channels. ``squeeze()`` with no axis is not read: with a batch of 1 it drops the
batch axis too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import sympy
import torch
from torch import fx

from et.compiler.patterns import Op, Var, number

aten = torch.ops.aten

#: the names a pooled chain's ops are bound under, in data order (map → Linear)
CHAIN_STEPS = ("spread", "pool", "pool2", "scaled", "flat", "flat2")
#: the graph check of a sum divided by a count
DIVISOR = "the divisor is the summed map's H·W, so the quotient is the mean over all positions"


def spatial(dims: object) -> bool:
    """``dim`` of a reduction over H and W of an ``(N, C, H, W)`` tensor."""
    return (
        isinstance(dims, list | tuple)
        and len(dims) == 2
        and {d % 4 for d in dims if isinstance(d, int)} == {2, 3}
    )


def one_axis(*axes: int) -> Callable[[object], bool]:
    """A ``dim`` argument naming one of ``axes``: an int, or a list of one int."""

    def names(dim: object) -> bool:
        if isinstance(dim, list | tuple) and len(dim) == 1:
            dim = dim[0]
        return isinstance(dim, int) and not isinstance(dim, bool) and dim in axes

    return names


def flattened(pool: Op) -> tuple[Op, ...]:
    """The ``(N, C, 1, 1)`` ``pool`` as ``(N, C)``: ``flatten(1)``, a view or a reshape."""
    return (
        Op(aten.flatten.using_ints, name="flat", self=pool, start_dim=1),
        Op(aten.view.default, name="flat", self=pool, size=Var("size")),
        Op(aten.reshape.default, name="flat", self=pool, shape=Var("size")),
    )


def unit_axes_removed(pool: Op) -> tuple[Op, ...]:
    """The ``(N, C, 1, 1)`` pool with its two unit axes removed: ``squeeze((2, 3))``, two
    ``squeeze(d)``, or ``[:, :, 0, 0]`` (two ``select(d, 0)``): the first removes H or W
    (axis 2 or 3), the second the one left (axis 2 of the rank-3 result)."""
    first, second = one_axis(2, 3, -1, -2), one_axis(2, -1)
    return (
        Op(aten.squeeze.dims, name="flat", self=pool, dim=Var("sq", spatial)),
        Op(
            aten.squeeze.dim,
            name="flat2",
            self=Op(aten.squeeze.dim, name="flat", self=pool, dim=Var("d1", first)),
            dim=Var("d2", second),
        ),
        Op(
            aten.select.int,
            name="flat2",
            self=Op(aten.select.int, name="flat", self=pool, dim=Var("d1", first), index=0),
            dim=Var("d2", second),
            index=0,
        ),
    )


def _nested(target: object) -> Op:
    """``x.op(3).op(2)`` (older MobileNet ports): W then H (or H then W) reduced in turn."""
    first = Op(target, name="pool", self=Var("normed"), dim=Var("d1", one_axis(2, 3, -1, -2)))
    return Op(target, name="pool2", self=first, dim=Var("d2", one_axis(2, -1)))


def _divided(total: Op) -> Op:
    return Op(aten.div.Tensor, name="scaled", self=total, other=Var("count"))


_MEAN_KEEP = Op(
    aten.mean.dim, name="pool", self=Var("normed"), dim=Var("dims", spatial), keepdim=True
)
_ADAPTIVE = Op(
    aten.adaptive_avg_pool2d.default, name="pool", self=Var("normed"), output_size=[1, 1]
)
#: ``x.flatten(2)``: H·W positions on one axis (EfficientFormerV2's head averages it)
_SPREAD = Op(aten.flatten.using_ints, name="spread", self=Var("normed"), start_dim=2)
_SUM = aten.sum.dim_IntList
_SUM_KEEP = Op(_SUM, name="pool", self=Var("normed"), dim=Var("dims", spatial), keepdim=True)

#: every spelling of the global mean flattened to ``(N, C)`` that R16 reads
POOLED_MEANS: tuple[Op, ...] = (
    *flattened(_MEAN_KEEP),
    *flattened(_ADAPTIVE),
    *unit_axes_removed(_MEAN_KEEP),
    *unit_axes_removed(_ADAPTIVE),
    Op(aten.mean.dim, name="pool", self=Var("normed"), dim=Var("dims", spatial), keepdim=False),
    Op(aten.mean.dim, name="pool", self=_SPREAD, dim=Var("dims", lambda d: d in ([2], [-1]))),
    _nested(aten.mean.dim),
    _divided(Op(_SUM, name="pool", self=Var("normed"), dim=Var("dims", spatial))),
    _divided(_nested(_SUM)),
    *flattened(_divided(_SUM_KEEP)),
)

_AMAX_KEEP = Op(
    aten.amax.default, name="pool", self=Var("normed"), dim=Var("dims", spatial), keepdim=True
)
_ADAPTIVE_MAX = Op(
    operator.getitem,
    name="pool2",
    self=Op(aten.adaptive_max_pool2d.default, name="pool", self=Var("normed"), output_size=[1, 1]),
    index=0,
)
_MAX_POOL = Op(
    aten.max_pool2d.default,
    name="pool",
    self=Var("normed"),
    kernel_size=Var("kernel"),
    stride=Var("stride"),
    padding=Var("padding"),
    ceil_mode=Var("ceil_mode"),
)

#: every spelling of the global maximum flattened to ``(N, C)`` that R22 reads
POOLED_MAXIMA: tuple[Op, ...] = (
    Op(aten.amax.default, name="pool", self=Var("normed"), dim=Var("dims", spatial)),
    *flattened(_AMAX_KEEP),
    *unit_axes_removed(_AMAX_KEEP),
    *flattened(_ADAPTIVE_MAX),
    *unit_axes_removed(_ADAPTIVE_MAX),
    *flattened(_MAX_POOL),
    *unit_axes_removed(_MAX_POOL),
)


def _size_expression(size: object) -> object:
    """A size as an expression: an int as it is, a symbolic size as its sympy expression."""
    if isinstance(size, torch.SymInt):
        return size.node.expr
    if isinstance(size, int) and not isinstance(size, bool):
        return sympy.Integer(size)
    if number(size) and float(size).is_integer():
        return sympy.Integer(int(size))
    return None


def map_sizes(node: object) -> tuple[object, object] | None:
    """``(H, W)`` of the captured ``(N, C, H, W)`` value ``node`` as expressions, or None."""
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 4:
        return None
    sizes = tuple(_size_expression(s) for s in shape[2:])
    return None if None in sizes else sizes


def _count(value: object) -> object:
    """The divisor as an expression: a number, or a graph value computed from sizes (its
    captured symbolic value)."""
    if isinstance(value, fx.Node):
        return _size_expression(value.meta.get("val"))
    return _size_expression(value)


def divisor_is_positions(ws: object, node: fx.Node, found: dict) -> bool | None:
    """Whether a sum's divisor ``count`` equals ``H·W`` of the summed map, as expressions in
    the capture's symbolic sizes (so it holds at every size the capture admits); None where
    the chain has no division."""
    if "count" not in found:
        return None
    sizes, count = map_sizes(found["normed"]), _count(found["count"])
    if sizes is None or count is None:
        return False
    return sympy.simplify(count - sizes[0] * sizes[1]) == 0


def divisor_detail(ws: object, node: fx.Node, found: dict) -> str:
    sizes = map_sizes(found["normed"])
    area = "unknown" if sizes is None else f"{sizes[0]}·{sizes[1]}"
    return f"the sum is divided by {_count(found['count'])}, the map has H·W = {area}"


def window_is_map(found: dict) -> bool | None:
    """For ``max_pool2d``: whether one window covers the whole map (kernel = the captured
    ``(H, W)``, padding 0; stride and ceil mode then leave one window); None for other
    spellings."""
    if "kernel" not in found:
        return None
    sizes = map_sizes(found["normed"])
    kernel = found["kernel"]
    kernel = list(kernel) if isinstance(kernel, list | tuple) else [kernel]
    kernel = kernel * 2 if len(kernel) == 1 else kernel
    padding = found["padding"]
    padding = list(padding) if isinstance(padding, list | tuple) else [padding]
    if sizes is None or len(kernel) != 2 or any(p != 0 for p in padding):
        return False
    return all(_size_expression(k) == s for k, s in zip(kernel, sizes, strict=True))
