"""Classifier heads on the ATen graph: R16 (BatchNorm → Linear) and R17 (Linears summed).

* R16: ``linear(BN(x))`` with a BatchNorm1d on ``(N, C)``, or
  ``linear(flat(pool(BN2d(x))))`` with ``pool`` a mean over all spatial positions, however it is
  spelled (:data:`~et.compiler.pooled_features.POOLED_MEANS`: ``mean`` over H and W,
  ``adaptive_avg_pool2d(·, 1)``, ``flatten(2).mean(-1)``, nested means, a sum divided by the
  map's own H·W), is ``linear'(x)`` / ``linear'(flat(pool(x)))`` with ``W' = W·diag(t)``,
  ``b' = b + W·(β − μ·t)``: the pool is a mean, which commutes with a per-channel affine map.
* R17: ``linear₁(x) ± α·linear₂(x)`` on one input is one Linear, and so is
  ``linear(x) · c`` or ``linear(x) / c`` for a constant c: RepViT's and DeiT's
  ``(head(x) + dist_head(x)) / 2`` becomes one Linear in two steps.

A BatchNorm normalising with batch statistics, a Linear whose value is also read elsewhere
(fan-out), a BatchNorm1d on ``(N, C, L)``, a sum divided by anything but H·W, ``squeeze()``
(which drops a batch of 1 too) and a sum of Linears reading different inputs are left, each
refusal naming the precondition in the certificate. The global *maximum* is R22's
(:mod:`et.compiler.max_pool_head`).
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

import torch
from torch import fx, nn

from et.compiler.helpers import FAN_OUT
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, match, number
from et.compiler.pooled_features import (
    CHAIN_STEPS,
    DIVISOR,
    POOLED_MAXIMA,
    POOLED_MEANS,
    divisor_detail,
    divisor_is_positions,
)
from et.compiler.workspace import Workspace, arguments
from et.contract import PreconditionError
from et.rules.fuse_bn_linear import FEATURE_AXIS, FIXED_STATISTICS, ISOLATED
from et.rules.merge_parallel_linears import ISOLATED as SUMMED_ISOLATED
from et.rules.merge_parallel_linears import SAME_INPUT

aten = torch.ops.aten
LINEAR = aten.linear.default
GLOBAL_MEAN = "the pool is a mean over all spatial positions (H and W)"


def _linear_forms(suffix: str = "", source: object = None) -> tuple[Op, ...]:
    """A Linear as ``forward`` is captured (``aten.linear``) or decomposed (``addmm`` of the
    bias with the transposed weight, ``mm`` without a bias); its input is ``source`` (a
    pattern) or binds ``x{suffix}``."""
    source = Var(f"x{suffix}") if source is None else source
    name, weight, bias = f"linear{suffix}", Var(f"w{suffix}"), Var(f"b{suffix}")
    transposed = Var(f"wt{suffix}")
    return (
        Op(LINEAR, name=name, input=source, weight=weight, bias=bias),
        Op(aten.addmm.default, name=name, self=bias, mat1=source, mat2=transposed),
        Op(aten.mm.default, name=name, self=source, mat2=transposed),
    )


def _constant(ws: Workspace, node: object) -> torch.Tensor | None:
    """The constant ``node`` holds, reading through a transpose of one (``t``, ``permute``)."""
    if isinstance(node, fx.Node) and node.target in (aten.t.default, aten.permute.default):
        if node.target == aten.permute.default and list(node.args[1]) != [1, 0]:
            return None
        inner = ws.tensor(node.args[0])
        return None if inner is None or inner.ndim != 2 else inner.T
    return ws.tensor(node)


def _read_linear(ws: Workspace, found: dict, suffix: str = "") -> nn.Linear | None:
    """The torch Linear a matched Linear form computes, when its weight and bias are
    constants (``addmm``'s bias one row, broadcast over the batch)."""
    if f"w{suffix}" in found:
        weight = _constant(ws, found[f"w{suffix}"])
    else:
        transposed = _constant(ws, found[f"wt{suffix}"])
        weight = None if transposed is None else transposed.T
    bias_node = found.get(f"b{suffix}")
    bias = _constant(ws, bias_node) if bias_node is not None else None
    if weight is None or weight.ndim != 2 or (bias_node is not None and bias is None):
        return None
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        return None
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def _emit_linear(ws: Workspace, linear: nn.Linear, source: fx.Node, before: fx.Node) -> fx.Node:
    weight = ws.constant(linear.weight, before)
    bias = ws.constant(linear.bias, before) if linear.bias is not None else None
    return ws.call(LINEAR, (source, weight, bias), before)


def _rank(node: object) -> int | None:
    value = getattr(node, "meta", {}).get("val") if isinstance(node, fx.Node) else None
    shape = getattr(value, "shape", None)
    return None if shape is None else len(shape)


def _batch_norm(node: object) -> tuple[fx.Node, dict[str, Any]] | None:
    """``(the BatchNorm call, its arguments)`` when ``node`` is a BatchNorm's output:
    ``aten.batch_norm`` or output 0 of a native one; None otherwise."""
    if not isinstance(node, fx.Node) or node.op != "call_function":
        return None
    if node.target == aten.batch_norm.default:
        values = arguments(node)
        return None if values is None else (node, values)
    if node.target is operator.getitem and node.args[1] == 0:
        call = node.args[0]
        native = (
            aten._native_batch_norm_legit_no_training.default,
            aten._native_batch_norm_legit.default,
            aten._native_batch_norm_legit.no_stats,
        )
        if getattr(call, "target", None) in native:
            values = arguments(call)
            if values is None:
                return None
            values = dict(values)
            values.setdefault("running_mean", None)
            values.setdefault("running_var", None)
            values["training"] = bool(values.get("training", False))  # no_stats: no stats
            return call, values
    return None


def _module_of(ws: Workspace, values: dict[str, Any], rank: int) -> nn.Module | str:
    """The torch BatchNorm the call computes, or why it is no fixed affine map."""
    mean, var = values["running_mean"], values["running_var"]
    if values["training"] or mean is None or var is None:
        return "the graph normalises with batch statistics (train mode or no running stats)"
    tensors = [ws.tensor(values[k]) for k in ("running_mean", "running_var")]
    gamma, beta = values["weight"], values["bias"]
    affine = [ws.tensor(v) if v is not None else None for v in (gamma, beta)]
    if any(t is None for t in tensors) or any(
        a is None and v is not None for a, v in zip(affine, (gamma, beta), strict=True)
    ):
        return ""
    kind = nn.BatchNorm1d if rank in (2, 3) else nn.BatchNorm2d
    bn = kind(tensors[0].numel(), eps=float(values["eps"]), dtype=tensors[0].dtype).eval()
    with torch.no_grad():
        bn.running_mean.copy_(tensors[0])
        bn.running_var.copy_(tensors[1])
        bn.weight.copy_(affine[0] if affine[0] is not None else torch.ones_like(tensors[0]))
        bn.bias.copy_(affine[1] if affine[1] is not None else torch.zeros_like(tensors[0]))
    return bn


def _bn_into_linear(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R16: ``linear(BN1d(x))`` → ``linear'(x)``; ``linear(flat(pool(BN2d(x))))`` →
    ``linear'(flat(pool(x)))`` with ``W' = W·diag(t)``, ``b' = b + W·(β − μ·t)``."""
    read = _batch_norm(found["normed"])
    linear = _read_linear(ws, found)
    if read is None or linear is None:
        return False
    bn_node, values = read
    pooled = "pool" in found
    chain = [found["normed"], *(found[k] for k in CHAIN_STEPS if k in found), node]
    # the BatchNorm's output has its input's shape; a node an earlier rewrite emitted has none
    x, rank = values["input"], _rank(found["normed"]) or _rank(values["input"])
    module = _module_of(ws, values, rank or 0)
    if isinstance(module, str):
        if module:
            ws.record.refused(node, "R16", FIXED_STATISTICS, module)
        return False
    if rank != (4 if pooled else 2):
        shape = "(N, C, H, W) and a global mean" if pooled else "(N, C)"
        ws.record.refused(
            node, "R16", FEATURE_AXIS, f"the BatchNorm reads rank {rank}, not {shape}"
        )
        return False
    for value, reader in itertools.pairwise(chain):
        if not ws.sole_user(value, reader):
            others = sorted(u.name for u in value.users if u is not reader)
            ws.record.refused(node, "R16", ISOLATED, f"{value.name} also feeds {others}")
            return False
    try:
        fused, checks = ws.apply(
            "fuse_bn_linear", module, linear, nn.AdaptiveAvgPool2d(1) if pooled else None
        )
    except PreconditionError as error:
        ws.record.refused(node, "R16", error.condition, error.detail)
        return False
    source = x
    if pooled:
        chain[1].replace_input_with(found["normed"], x)  # the pool reads x now
        source = chain[-2]
    new = _emit_linear(ws, fused, source, node)
    graph = ("the BatchNorm is a constant per-channel affine map", FAN_OUT)
    means = (GLOBAL_MEAN,) if pooled else ()
    ws.record.applied("R16", [bn_node, *chain[1:]], (*checks, *means, *found[GRAPH], *graph))
    ws.replace(node, new)
    ws.changed(found["normed"], bn_node)
    return True


R16 = Rewrite(
    "R16",
    (
        *(form for p in POOLED_MEANS for form in _linear_forms(source=p)),
        *_linear_forms(source=Var("normed")),
    ),
    _bn_into_linear,
    (GraphCheck(DIVISOR, divisor_is_positions, divisor_detail, rule="R16"),),
)
bn_into_linear = driver(R16)

#: the global maxima R22 reads (:mod:`et.compiler.max_pool_head`), not named here
_MAX_HEADS = tuple(form for p in POOLED_MAXIMA for form in _linear_forms(source=p))

#: ops between a BatchNorm2d and a Linear that a pool, its flattening or a rescaling is
#: written with; a chain of them that R16 does not read is named in the certificate
_FEATURE_OPS = frozenset(
    {
        aten.squeeze.default,
        aten.squeeze.dim,
        aten.squeeze.dims,
        aten.view.default,
        aten.reshape.default,
        aten.flatten.using_ints,
        aten.select.int,
        aten.mean.dim,
        aten.sum.dim_IntList,
        aten.amax.default,
        aten.div.Tensor,
        aten.mul.Tensor,
        aten.adaptive_avg_pool2d.default,
        aten.adaptive_max_pool2d.default,
        aten.avg_pool2d.default,
        aten.max_pool2d.default,
    }
)


def _unread_pool(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R16 could not fold a BatchNorm2d whose output reaches this Linear through ops it does
    not read as a global mean (or R22 as a global maximum) flattened to ``(N, C)``
    (``squeeze()``, which would also drop a batch of 1; a window smaller than the map): the
    BatchNorm stays, and its refusal names the chain (without this, the certificate would only
    say R1 found no conv)."""
    for pattern in (*R16.patterns, *_MAX_HEADS):
        bound = match(pattern, node)
        if bound is not None and _batch_norm(bound["normed"]) is not None:
            return False  # R16 or R22 read this chain: its refusals are its own
    chain, value = [], found["x"]
    while isinstance(value, fx.Node) and value.target in _FEATURE_OPS and len(chain) < 6:
        chain.append(value)
        value = value.args[0]
    if not chain or _batch_norm(value) is None or _rank(value) != 4:
        return False
    ops = " → ".join(str(getattr(n.target, "__name__", n.target)) for n in reversed(chain))
    detail = f"the BatchNorm2d reaches {node.name} through {ops}: no global mean read there"
    if any(n.target == aten.squeeze.default for n in chain):
        detail += (
            "; squeeze() without axes drops every axis of size 1, the batch axis too when "
            "N = 1, so the Linear's input is not (N, C) at every batch size"
        )
    ws.record.refused(value, "R16", FEATURE_AXIS, detail)
    return False


#: no rewrite: names why R16 left a BatchNorm2d in front of a classifier
unread_pool = driver(Rewrite("R16", _linear_forms(), _unread_pool))

#: the factor on the second operand of a sum: ``add(a, b, alpha) = a + α·b``, ``sub = a − α·b``
SIGN = {aten.add.Tensor: 1.0, aten.sub.Tensor: -1.0}


def _summed_linears(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R17: ``linear₁(x) ± α·linear₂(x)`` → one Linear; ``c·linear(x)``, ``linear(x)/c`` → one
    Linear (``n = 1``)."""
    if node.target in SIGN:
        names, scales = ("linear", "linear2"), [1.0, SIGN[node.target] * float(found["alpha"])]
        if found["x"] is not found["x2"]:
            first, second = found["linear"].name, found["linear2"].name
            detail = f"{first} reads {found['x']}, {second} reads {found['x2']}"
            ws.record.refused(node, "R17", SAME_INPUT, detail)
            return False
    else:
        names, c = ("linear",), float(found["c"])
        scales = [c if node.target == aten.mul.Tensor else (1.0 / c if c != 0 else float("inf"))]
    linears = [_read_linear(ws, found, name[len("linear") :]) for name in names]
    if any(m is None for m in linears):
        return False
    for name in names:
        if not ws.sole_user(found[name], node):
            others = sorted(u.name for u in found[name].users if u is not node)
            ws.record.refused(
                node, "R17", SUMMED_ISOLATED, f"{found[name].name} also feeds {others}"
            )
            return False
    try:
        merged, checks = ws.apply("merge_parallel_linears", linears, scales)
    except PreconditionError as error:
        ws.record.refused(node, "R17", error.condition, error.detail)
        return False
    new = _emit_linear(ws, merged, found["x"], node)
    graph = ("every Linear reads the same graph value", FAN_OUT)
    ws.record.applied("R17", [*(found[n] for n in names), node], (*checks, *graph))
    ws.replace(node, new)
    return True


R17 = Rewrite(
    "R17",
    (
        *(
            Op(op, self=a, other=b, alpha=Var("alpha", number))
            for op in SIGN
            for a, b in itertools.product(_linear_forms(), _linear_forms("2"))
        ),
        *(
            Op(op, self=a, other=Var("c", number))
            for op in (aten.mul.Tensor, aten.div.Tensor)
            for a in _linear_forms()
        ),
    ),
    _summed_linears,
)
summed_linears = driver(R17)

HEAD_PATTERNS = (bn_into_linear, summed_linears, unread_pool)
