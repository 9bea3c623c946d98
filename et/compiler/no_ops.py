"""G7 on the graph: ops that change no value are removed (:mod:`et.rules.remove_no_op`).

``clone``/``alias``/``contiguous`` of x, a ``copy`` of x onto a base of its own shape and
dtype, a full slice or a full ``slice_scatter``, and a constant-mode ``aten.pad`` (written as
``constant_pad_nd``). The rule's own check runs at every site through
:meth:`Workspace.run` / :meth:`Workspace.apply`; the dtypes and shapes it compares are read
from the graph (captured metadata, the op's own typing rule, or a run on meta tensors for a
node an earlier rewrite made).
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, number
from et.compiler.workspace import (
    Workspace,
    arguments,
    value_dtype,
    value_shape,
)
from et.contract import PreconditionError
from et.rules.remove_no_op import END_OF_ANY_AXIS, TensorType

aten = torch.ops.aten
INT_MAX = END_OF_ANY_AXIS

_NO_OPS = (aten.clone.default, aten.alias.default, aten.contiguous.default)


_LAYOUT_ONLY = {
    aten.clone.default: "clone",
    aten.alias.default: "alias",
    aten.contiguous.default: "contiguous",
}


#: ops whose result has the shape and dtype of their ``self`` argument (copy and scatter
#: write into self; the others return a copy or a view of it)
_TYPE_OF_SELF = (
    aten.slice_scatter.default,
    aten.copy.default,
    aten.clone.default,
    aten.alias.default,
    aten.contiguous.default,
)
#: ops whose result has the dtype of their ``self`` argument
_DTYPE_OF_SELF = (*_TYPE_OF_SELF, aten.slice.Tensor, aten.constant_pad_nd.default)
#: binary ops whose result dtype is the promotion of two float tensors' dtypes
_PROMOTING = (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor)


def _type(ws: Workspace, node: object) -> TensorType:
    """A value's shape (symbolic sizes by name) and dtype as the graph records them, read
    through the ops that keep their ``self``'s shape where a rewrite left no record (None
    where still unknown: G7's check then refuses)."""
    while isinstance(node, fx.Node):
        shape = value_shape(ws, node)
        values = arguments(node) if node.target in _TYPE_OF_SELF else None
        if shape is not None or values is None:
            return (shape, _dtype(ws, node))
        node = values["self"]
    return (None, None)


def _dtype(ws: Workspace, node: object, depth: int = 0) -> torch.dtype | None:
    """A value's dtype: recorded, or derived where a rewrite left no record (ATen's dtype
    depends on the argument dtypes alone): the ``self``'s for the ops that keep it, and for
    add, sub and mul of two tensors of one dtype that dtype, of two floating-point tensors of
    one or more dimensions their promotion; else the dtype the graph computes there on
    meta tensors (:func:`_dtype_on_meta`)."""
    dtype = value_dtype(ws, node)
    if dtype is not None or depth > 64 or not isinstance(node, fx.Node):
        return dtype
    derived = _derived_dtype(ws, node, depth)
    return derived if derived is not None or depth else _dtype_on_meta(ws, node)


def _derived_dtype(ws: Workspace, node: fx.Node, depth: int) -> torch.dtype | None:
    values = arguments(node)
    if values is None:
        return None
    if node.target in _DTYPE_OF_SELF:
        return _dtype(ws, values["self"], depth + 1)
    if node.target in _PROMOTING and isinstance(values["other"], fx.Node):
        first = _dtype(ws, values["self"], depth + 1)
        second = _dtype(ws, values["other"], depth + 1)
        if first is not None and first == second:
            return first  # one dtype: promotion keeps it, whatever the ranks
        floats = first is not None and second is not None and first.is_floating_point
        if floats and second.is_floating_point and _ranks_known(ws, *node.args[:2]):
            return torch.promote_types(first, second)
    return None


def _dtype_on_meta(ws: Workspace, node: fx.Node) -> torch.dtype | None:
    """The dtype of ``node`` when the graph runs on meta tensors (no data, no arithmetic) of the
    captured inputs' dtypes and example shapes, constants included: ATen decides a result's
    dtype from its arguments' dtypes alone, so this is its dtype at every input. None when
    the graph cannot run so (an op without a meta kernel, an input without a record)."""
    inputs = []
    for placeholder in (n for n in ws.graph.nodes if n.op == "placeholder"):
        value = placeholder.meta.get("val")
        if not isinstance(value, torch.Tensor):
            return None
        shape = [s if type(s) is int else getattr(s.node, "hint", None) for s in value.shape]
        if not all(isinstance(s, int) for s in shape):
            return None
        inputs.append(torch.empty(shape, dtype=value.dtype, device="meta"))
    seen: list[torch.dtype] = []

    class _OnMeta(fx.Interpreter):
        def get_attr(self, target, args, kwargs):  # constants as meta tensors too
            value = super().get_attr(target, args, kwargs)
            return value.to("meta") if isinstance(value, torch.Tensor) else value

        def run_node(self, n: fx.Node):
            result = super().run_node(n)
            if n is node and isinstance(result, torch.Tensor):
                seen.append(result.dtype)
                raise StopIteration  # the rest of the graph is not needed
            return result

    try:
        _OnMeta(ws.module, graph=ws.graph).run(*inputs)
    except StopIteration:
        pass
    except Exception:
        return None  # nothing learnt: G7's check then refuses
    return seen[0] if seen else None


def _ranks_known(ws: Workspace, *nodes: fx.Node) -> bool:
    """Whether every one of ``nodes`` is a tensor of one or more dimensions (a 0-dim tensor
    takes part in promotion like a Python number, so it would not decide the dtype)."""
    return all((value_shape(ws, n) or []) != [] for n in nodes)


def _axis_length(node: object, dim: object) -> int | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    if value is None or not isinstance(dim, int) or not -value.ndim <= dim < value.ndim:
        return None
    size = value.shape[dim]
    return size if type(size) is int else None  # a symbolic size is no number here


def _remove_no_ops(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G7: ``clone(x) = alias(x) = contiguous(x) = x`` (a memory format changes no value),
    ``copy(base, x) = x`` for a base of x's shape and dtype, ``x[a:b] = x`` for the full slice
    (start 0, end at least INT_MAX, step 1) and ``slice_scatter(base, x)`` over the whole base;
    G7's check runs on what the graph records (shapes, dtypes, the slice's range)."""
    x = found["x"]
    try:
        if node.target in _LAYOUT_ONLY:
            _, checks = ws.apply("G7", _LAYOUT_ONLY[node.target])
        elif node.target == aten.copy.default:
            _, checks = ws.apply("G7", "copy", source=_type(ws, x), base=_type(ws, found["base"]))
        else:
            scatter = node.target == aten.slice_scatter.default
            sliced = found["base"] if scatter else x
            _, checks = ws.apply(
                "G7",
                "slice_scatter" if scatter else "slice",
                source=_type(ws, x),
                base=_type(ws, sliced),
                start=found["start"],
                end=found["end"],
                step=1,
                length=_axis_length(sliced, found["dim"]),
            )
    except PreconditionError as error:
        ws.record.refused(node, "G7", error.condition, error.detail)
        return False
    ws.record.applied("G7", [node], (*checks, *found[GRAPH]))
    ws.replace(node, x)
    return True


def _full_end(end: object) -> bool:
    return end is None or (isinstance(end, int) and end >= INT_MAX)


_FULL = {"dim": Var("dim"), "start": Var("start", lambda s: s in (None, 0)), "step": 1}
_FULL_END = Var("end", _full_end)
_NODE = Var("x", lambda x: isinstance(x, fx.Node))


def _not_constant(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    if "copied" not in found:
        return None
    return ws.tensor(found["x"]) is None


remove_no_ops = driver(
    Rewrite(
        "G7",
        (
            Op(aten.clone.default, name="copied", self=_NODE, memory_format=Var("format")),
            Op(aten.alias.default, name="copied", self=_NODE),
            Op(aten.contiguous.default, name="copied", self=_NODE, memory_format=Var("format")),
            Op(aten.copy.default, name="onto", self=Var("base"), src=_NODE, non_blocking=Var("b")),
            Op(aten.slice.Tensor, self=_NODE, end=_FULL_END, **_FULL),
            Op(aten.slice_scatter.default, self=Var("base"), src=_NODE, end=_FULL_END, **_FULL),
        ),
        _remove_no_ops,
        (GraphCheck("the copied value is not a constant", _not_constant, refuses=False),),
    )
)


def _constant_pad(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """G7: ``aten.pad(x, p, "constant", v)`` is ``constant_pad_nd(x, p, v)`` (v = None: 0);
    reflect, replicate and circular are no match."""
    try:
        pad, checks = ws.apply(
            "G7", "pad", widths=list(found["pad"]), mode="constant", value=found["value"]
        )
    except PreconditionError as error:
        ws.record.refused(node, "G7", error.condition, error.detail)
        return False
    new = ws.call(aten.constant_pad_nd.default, (found["x"], list(pad.widths), pad.value), node)
    new.meta["val"] = node.meta.get("val")
    ws.record.applied("G7", [node], (*checks, *found[GRAPH]))
    ws.replace(node, new)
    return True


constant_pad = driver(
    Rewrite(
        "G7",
        (
            Op(
                aten.pad.default,
                self=Var("x"),
                pad=Var("pad"),
                mode="constant",
                value=Var("value", lambda v: v is None or number(v)),
            ),
        ),
        _constant_pad,
    )
)
