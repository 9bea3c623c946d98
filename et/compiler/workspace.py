"""The graph being compiled: constants, convolution sites, rewriting and the record of steps.

A :class:`Workspace` wraps the captured :class:`torch.fx.GraphModule`. Constants (parameters,
buffers and folded values) are ``get_attr`` nodes; a convolution is matched on its ATen call
(``aten.conv2d`` / ``aten.convolution``) with its actual stride, padding, dilation and groups,
and is read into a plain ``nn.Conv2d`` only so that the rules in :mod:`et.rules` can transform
it. Every rewrite goes through :meth:`Workspace.replace`, which emits the new op, redirects the
users and removes what became dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from et.compiler.certificate import CertificateBuilder
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
        return None if conv is None else ConvSite(node, node.args[0], conv)

    def _read_conv(self, node: fx.Node) -> nn.Conv2d | None:
        args = list(node.args) + [None] * 9
        if node.target == CONV2D:
            x, w, b = args[0], args[1], args[2]
            stride, padding = args[3] or 1, args[4] or 0
            dilation, groups = args[5] or 1, args[6] or 1
        elif node.target == CONVOLUTION:
            x, w, b, stride, padding, dilation, transposed, _, groups = args[:9]
            if transposed:
                return None
        else:
            return None
        if node.kwargs:
            return None  # export passes conv arguments positionally; anything else is foreign
        weight = self.tensor(w)
        bias = self.tensor(b) if b is not None else None
        if weight is None or weight.ndim != 4 or (b is not None and bias is None):
            return None
        if isinstance(padding, str) or not isinstance(x, fx.Node):
            return None
        return make_conv(
            weight,
            bias,
            stride=aten_pair(stride),
            padding=aten_pair(padding),
            dilation=aten_pair(dilation),
            groups=int(groups),
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
        if node.target == aten.slice.Tensor and node.args[1] in (1, -3):
            total = self.channels(node.args[0])
            args = list(node.args) + [None] * 3
            start, end = args[2] or 0, args[3]
            if total is None or (args[4] or 1) != 1:
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
