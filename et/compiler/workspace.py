"""The graph being compiled: constants, convolution sites, rewriting and the record of steps.

A :class:`Workspace` wraps the captured :class:`torch.fx.GraphModule`. Constants (parameters,
buffers and folded values) are ``get_attr`` nodes; a convolution is matched on its ATen call
(``aten.conv2d`` / ``aten.convolution``) with its actual stride, padding, dilation and groups,
and is read into a plain ``nn.Conv2d`` only so that the rules in :mod:`et.rules` can transform
it. Every rewrite goes through :meth:`Workspace.replace`, which emits the new op, redirects the
users and removes what became dead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from et.compiler.certificate import CertificateBuilder, Check
from et.contract import get_rule, observe_preconditions
from et.conv_geometry import make_conv
from et.domain import InputDomain

aten = torch.ops.aten

CONV2D = aten.conv2d.default
CONVOLUTION = aten.convolution.default


_CHANNEL_PRESERVING = {
    aten.relu.default,
    aten.prelu.default,
    aten.leaky_relu.default,
    aten.clamp.default,
    aten.hardtanh.default,
    aten.add.Tensor,
    aten.sub.Tensor,
    aten.mul.Tensor,
    aten.constant_pad_nd.default,
}


@dataclass
class ConvSite:
    """A convolution call in the graph: its node, its input node and the conv it computes."""

    node: fx.Node
    input: fx.Node
    conv: nn.Conv2d


def arguments(node: Any) -> dict[str, Any] | None:
    """Every argument of the ATen call ``node`` by its schema name: positional ones, keyword
    ones and the schema's defaults for the rest. None for a node that is no ATen call or whose
    arguments do not bind (an unknown keyword, one given twice, a required one missing), so a
    matcher reading it never mistakes a keyword for its default."""
    schema = getattr(getattr(node, "target", None), "_schema", None)
    if not isinstance(node, fx.Node) or node.op != "call_function" or schema is None:
        return None
    params = schema.arguments
    positional = [p for p in params if not p.kwarg_only]
    if len(node.args) > len(positional):
        return None
    values = {p.name: v for p, v in zip(positional, node.args, strict=False)}
    for name, value in node.kwargs.items():
        if name in values or name not in {p.name for p in params}:
            return None
        values[name] = value
    for param in params:
        optional = isinstance(param.type, torch._C.OptionalType)
        if param.name not in values or (values[param.name] is None and not optional):
            # None given for an argument that cannot be None stands for its default
            if not param.has_default_value():
                return None
            values[param.name] = param.default_value
    return values


def _example_shape(value: torch.Tensor) -> tuple[int, ...] | None:
    """The captured shape with every symbolic size at its example value (its hint), or None
    when a size has none."""
    shape = []
    for size in value.shape:
        if isinstance(size, int):
            shape.append(size)
            continue
        hint = getattr(getattr(size, "node", None), "hint", None)
        if not isinstance(hint, int):
            return None
        shape.append(hint)
    return tuple(shape)


def unit_alpha(node: Any) -> bool:
    """Whether ``node`` is an ``add``/``sub`` whose ``alpha`` (the factor on the second
    operand) is 1, so that it computes the plain sum or difference (any other node: True)."""
    values = arguments(node)
    return values is None or values.get("alpha", 1) == 1


def aten_pair(value: Any) -> tuple[int, int]:
    """An ATen ``int[2]`` argument (an int, or a list of one or two ints) as a pair."""
    if isinstance(value, int):
        return (value, value)
    values = [int(v) for v in value]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


class Workspace:
    """The graph under compilation, its declared input domain and its certificate builder."""

    def __init__(
        self,
        module: fx.GraphModule,
        domain: InputDomain,
        record: CertificateBuilder,
        align: int = 4,
    ) -> None:
        self.module = module
        self.align = align  # widths of carried-channel layers are padded to multiples (E8)
        self.graph = module.graph
        self.domain = domain
        self.record = record
        self._constants = 0
        self._intervals: dict[fx.Node, tuple[float, float]] = {}
        self._convs: dict[fx.Node, nn.Conv2d | None] = {}

    # --- constants -------------------------------------------------------------------------
    def tensor(self, node: Any) -> torch.Tensor | None:
        """The constant tensor ``node`` holds, or None when it depends on the input."""
        if not isinstance(node, fx.Node) or node.op != "get_attr":
            return None
        value: Any = self.module
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return value.detach() if isinstance(value, torch.Tensor) else None

    def constant(self, value: torch.Tensor, before: fx.Node) -> fx.Node:
        """A new ``get_attr`` node holding ``value`` (a buffer), placed before ``before``."""
        name = f"et_const_{self._constants}"
        self._constants += 1
        self.module.register_buffer(name, value.detach().clone())
        with self.graph.inserting_before(before):
            return self.graph.get_attr(name)

    # --- convolutions ----------------------------------------------------------------------
    def conv_site(self, node: Any) -> ConvSite | None:
        """The convolution ``node`` computes, when it is a 2-D non-transposed conv with
        constant weight and bias."""
        if not isinstance(node, fx.Node) or node.op != "call_function":
            return None
        if node.target not in (CONV2D, CONVOLUTION):
            return None
        if node not in self._convs:
            self._convs[node] = self._read_conv(node)
        conv = self._convs[node]
        return None if conv is None else ConvSite(node, arguments(node)["input"], conv)

    def _read_conv(self, node: fx.Node) -> nn.Conv2d | None:
        # every argument by its schema name, keywords and defaults included; output_padding
        # only acts on a transposed conv, which is refused here
        values = arguments(node)
        if values is None or values.get("transposed", False):
            return None
        x, w, b = values["input"], values["weight"], values["bias"]
        weight = self.tensor(w)
        bias = self.tensor(b) if b is not None else None
        if weight is None or weight.ndim != 4 or (b is not None and bias is None):
            return None
        padding = values["padding"]
        if isinstance(padding, str) or not isinstance(x, fx.Node):
            return None
        return make_conv(
            weight,
            bias,
            stride=aten_pair(values["stride"]),
            padding=aten_pair(padding),
            dilation=aten_pair(values["dilation"]),
            groups=int(values["groups"]),
        )

    def emit_conv(self, conv: nn.Conv2d, source: fx.Node, before: fx.Node) -> fx.Node:
        """A new ``aten.conv2d`` call computing ``conv(source)``, placed before ``before``."""
        if conv.padding_mode != "zeros":
            raise ValueError("the compiler emits zero-padded convs only")
        weight = self.constant(conv.weight, before)
        bias = self.constant(conv.bias, before) if conv.bias is not None else None
        args = (
            source,
            weight,
            bias,
            list(conv.stride),
            list(conv.padding),
            list(conv.dilation),
            conv.groups,
        )
        with self.graph.inserting_before(before):
            return self.graph.call_function(CONV2D, args)

    def call(self, target: Any, args: Sequence[Any], before: fx.Node) -> fx.Node:
        """A new call of ``target(*args)`` placed before ``before``."""
        with self.graph.inserting_before(before):
            return self.graph.call_function(target, tuple(args))

    # --- running the rules -----------------------------------------------------------------
    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any):
        """``(function(*args, **kwargs), checks)``: the checks are the preconditions the rule
        code evaluated (all held); a refusal raises its PreconditionError as the code does."""
        with observe_preconditions() as seen:
            result = function(*args, **kwargs)
        return result, self.record.observed(seen)

    def apply(self, key: str, *args: Any, **kwargs: Any) -> tuple[Any, tuple[Check, ...]]:
        """The catalogue rule ``key``'s transform run on ``args``, with what it checked."""
        return self.run(get_rule(key).transform, *args, **kwargs)

    # --- rewriting -------------------------------------------------------------------------
    def replace(self, old: fx.Node, new: fx.Node) -> None:
        """Redirect every user of ``old`` to ``new`` and drop what became dead."""
        old.replace_all_uses_with(new)
        self.changed(old)

    def changed(self, *released: fx.Node) -> None:
        """Drop cached bounds and the nodes that became dead after an edit: each of
        ``released`` (a node that lost users) when nothing reads it any more, then its inputs
        in turn. Local, so a rewrite costs what it touches, not the size of the graph."""
        stack = list(released)
        while stack:
            node = stack.pop()
            if node._erased or node.users or node.op in ("placeholder", "output"):
                continue
            if node.is_impure():
                continue
            inputs = node.all_input_nodes
            self.graph.erase_node(node)
            stack.extend(inputs)
        self._intervals.clear()

    def sole_user(self, node: fx.Node, user: fx.Node) -> bool:
        """Whether ``user`` is the only consumer of ``node`` (the fan-out precondition)."""
        return set(node.users) == {user}

    def channels(self, node: Any) -> int | None:
        """The channel count of the NCHW value ``node`` (capture metadata, else derived)."""
        if not isinstance(node, fx.Node):
            return None
        value = node.meta.get("val")
        if value is not None and getattr(value, "ndim", 0) == 4:
            return int(value.shape[1]) if isinstance(value.shape[1], int) else None
        site = self.conv_site(node)
        if site is not None:
            return site.conv.out_channels
        values = arguments(node)
        if node.target == aten.slice.Tensor and values and values["dim"] in (1, -3):
            total = self.channels(values["self"])
            start, end = values["start"] or 0, values["end"]
            if total is None or values["step"] != 1:
                return None
            return min(total, total if end is None else end) - start
        first = node.args[0] if node.op == "call_function" and node.args else None
        if isinstance(first, fx.Node) and node.target in _CHANNEL_PRESERVING:
            return self.channels(first)
        return None

    # --- input-domain intervals ------------------------------------------------------------
    def interval(self, node: Any) -> tuple[float, float]:
        """A proven interval of every element of ``node`` for inputs in the domain
        (:mod:`et.compiler.intervals`); a Python number as an op converts it."""
        from et.compiler.interval_arith import UNBOUNDED, scalar
        from et.compiler.intervals import interval

        if not isinstance(node, fx.Node):
            return scalar(node) if isinstance(node, int | float) else UNBOUNDED
        # inputs first, iteratively: a deep graph must not exhaust Python's recursion limit
        stack = [node]
        while stack:
            top = stack[-1]
            if top in self._intervals:
                stack.pop()
                continue
            missing = [n for n in top.all_input_nodes if n not in self._intervals]
            if missing:
                stack.extend(missing)
                continue
            self._intervals[top] = interval(self, top)
            stack.pop()
        return self._intervals[node]

    def lower_bound(self, node: Any) -> float:
        """A proven lower bound on every element of ``node`` for inputs in the domain."""
        return self.interval(node)[0]

    def magnitude(self, node: fx.Node) -> float | None:
        """``max |node|`` on one probe input drawn from the declared domain at the captured
        shapes (a deterministic seed; the domain clipped to [−1, 1] around a finite end where
        it is unbounded), or None when the graph cannot be run here. A measurement, so only
        a reason to *refuse* a rewrite, never to apply one."""
        generator = torch.Generator().manual_seed(0)
        low, high = self.domain.low, self.domain.high
        low = low if math.isfinite(low) else (high - 2.0 if math.isfinite(high) else -1.0)
        high = high if math.isfinite(high) else low + 2.0
        inputs = []
        for placeholder in (n for n in self.graph.nodes if n.op == "placeholder"):
            value = placeholder.meta.get("val")
            shape = _example_shape(value) if isinstance(value, torch.Tensor) else None
            if shape is None:
                return None
            sample = torch.rand(shape, generator=generator, dtype=torch.float64)
            inputs.append((low + (high - low) * sample).to(value.dtype))
        seen: list[float] = []

        class _Probe(fx.Interpreter):
            def run_node(self, n: fx.Node) -> Any:
                result = super().run_node(n)
                if n is node and isinstance(result, torch.Tensor):
                    seen.append(float(result.abs().max()) if result.numel() else 0.0)
                    raise StopIteration  # the rest of the graph is not needed
                return result

        try:
            with torch.no_grad():
                _Probe(self.module, graph=self.graph).run(*inputs)
        except StopIteration:
            pass
        except Exception:
            return None  # any failure: nothing measured, and the caller refuses
        return seen[0] if seen else None

    def finish(self) -> fx.GraphModule:
        """Drop dead nodes and unused constants, regenerate the code, return the module."""
        self.graph.eliminate_dead_code()
        used = {str(n.target) for n in self.graph.nodes if n.op == "get_attr"}
        held = [
            *self.module.named_buffers(recurse=False),
            *self.module.named_parameters(recurse=False),
        ]
        for name, _ in held:
            # folded constants and the captured weights that no op reads any more
            if name.startswith(("et_const_", "lifted_")) and name not in used:
                delattr(self.module, name)
        self.graph.lint()
        self.module.recompile()
        return self.module


def value_shape(ws: Workspace, node: fx.Node) -> list[str] | None:
    """The shape of a graph value (a constant's, else the captured one; symbolic sizes as
    their names), or None when unknown."""
    value = ws.tensor(node)
    if value is None:
        value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return None if value is None else [str(s) for s in value.shape]


def same_shape(ws: Workspace, a: fx.Node, b: fx.Node) -> bool:
    sa, sb = value_shape(ws, a), value_shape(ws, b)
    return sa is not None and sa == sb


def value_dtype(ws: Workspace, node: object) -> torch.dtype | None:
    value = ws.tensor(node) if isinstance(node, fx.Node) else None
    if value is None:
        value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return value.dtype if isinstance(value, torch.Tensor) else None


def same_value_type(ws: Workspace, a: fx.Node, b: fx.Node) -> bool:
    """Equal shapes and dtypes: a copy onto ``a`` casts to ``a``'s dtype, and a sum with a
    constant broadcasts and promotes, so only then is the result ``b`` itself."""
    dtype = value_dtype(ws, a)
    return same_shape(ws, a, b) and dtype is not None and dtype == value_dtype(ws, b)
