"""BatchNorm on the graph: R1 (conv → BN), R2 (BN → valid conv), or R6 + R1 for a lone BN
summed with a branch (RepVGG's identity branch). A BN normalising with batch statistics (train
mode, or no running statistics) is refused and named in the certificate."""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from et.compiler.certificate import Check
from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver
from et.compiler.workspace import Workspace
from et.contract import PreconditionError

aten = torch.ops.aten


#: the graph precondition of R1 and R2 on the normalisation
EVAL = "BatchNorm in eval mode with running statistics"


def _bn(*targets) -> dict[str, Var]:
    """Every argument but ``input`` of the batch-norm overloads ``targets``, bound by name."""
    names = {a.name for t in targets for a in t._schema.arguments if a.name != "input"}
    return {name: Var(name) for name in sorted(names)}


_TRAINING = (aten._native_batch_norm_legit.default, aten._native_batch_norm_legit.no_stats)
_NO_TRAINING = aten._native_batch_norm_legit_no_training.default


def _batch_statistics(ws: Workspace, node: fx.Node, found: dict) -> bool:
    return False  # never applied: the declared check refuses every match


#: a BN normalising with the batch's own statistics (train mode, or no running statistics)
train_mode = driver(
    Rewrite(
        "R1",
        (Op(_TRAINING, input=Var("x"), **_bn(*_TRAINING)),),
        _batch_statistics,
        (
            GraphCheck(
                EVAL,
                lambda ws, node, found: False,
                lambda *_: (
                    "the graph normalises with batch statistics (train mode or no running stats)"
                ),
            ),
        ),
    )
)


def _eval_statistics(ws: Workspace, node: fx.Node, found: dict) -> bool:
    stats = found["running_mean"] is not None and found["running_var"] is not None
    return not found["training"] and stats


def _each_once(ran: tuple[Check, ...], graph: tuple[str, ...]) -> tuple[Check, ...]:
    """The rule's transform checks less those whose text the graph checks list: the rule
    checks eval mode on the BatchNorm2d built here from the graph's own statistics (eval
    by construction), so the evidence is the graph's check, and the certificate lists it once."""
    return tuple(c for c in ran if c.precondition not in graph)


def _fuse_batch_norm(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R1 (conv → BN), R2 (BN → valid conv), or R6+R1 (a lone BN summed with a branch), for
    ``aten.batch_norm`` in eval mode or ``_native_batch_norm_legit_no_training(…)[0]``."""
    bn_node = found.get("bn", node)
    x, weight, bias = found["x"], found["weight"], found["bias"]
    mean, var, eps = found["running_mean"], found["running_var"], float(found["eps"])
    tensors = [ws.tensor(a) if a is not None else None for a in (weight, bias, mean, var)]
    if tensors[2] is None or tensors[3] is None:
        return False
    bn = nn.BatchNorm2d(tensors[2].numel(), eps=eps).to(tensors[2].dtype).eval()
    with torch.no_grad():
        bn.running_mean.copy_(tensors[2])
        bn.running_var.copy_(tensors[3])
        bn.weight.copy_(tensors[0] if tensors[0] is not None else torch.ones_like(tensors[2]))
        bn.bias.copy_(tensors[1] if tensors[1] is not None else torch.zeros_like(tensors[2]))
    checked = found[GRAPH]  # EVAL once: read from the arguments, or the no-training op itself
    site = ws.conv_site(x)
    if site is not None:
        if set(site.node.users) == {bn_node}:
            try:
                fused, ran = ws.apply("fuse_conv_bn", site.conv, bn)
            except PreconditionError as error:
                ws.record.refused(site.node, "R1", error.condition, error.detail)
            else:
                nodes, checks = [site.node, bn_node], (*_each_once(ran, checked), *checked, FAN_OUT)
                return replace_conv(ws, node, fused, site.input, "R1", nodes, checks)
        else:
            others = sorted(u.name for u in site.node.users if u is not bn_node)
            ws.record.refused(site.node, "R1", FAN_OUT, f"the conv also feeds {others}")
    users = list(node.users)
    if len(users) == 1:
        after = ws.conv_site(users[0])
        if after is not None and after.input is node and after.conv.padding == (0, 0):
            try:
                fused, ran = ws.apply("fuse_bn_conv", bn, after.conv)
            except PreconditionError as error:
                ws.record.refused(users[0], "R2", error.condition, error.detail)
            else:
                nodes, checks = [bn_node, users[0]], (*_each_once(ran, checked), *checked)
                return replace_conv(ws, users[0], fused, x, "R2", nodes, checks)
        if users[0].target in (aten.add.Tensor, aten.sub.Tensor):
            add = users[0]
            siblings = [ws.conv_site(a) for a in add.args if a is not node]
            groups = 1
            if siblings and siblings[0] is not None and siblings[0].input is x:
                groups = siblings[0].conv.groups
            conv, identity = ws.apply("identity_conv", bn.num_features, 1, groups)
            conv, fused = ws.apply("fuse_conv_bn", conv.to(bn.running_mean.dtype), bn)
            # R6 writes the BN's input as a conv, R1 folds the BN into it
            ws.record.applied("R1", [bn_node], (*_each_once(fused, checked), *checked))
            return replace_conv(ws, node, conv, x, "R6", [bn_node], identity)
    ws.record.refused(bn_node, "R1", "a conv feeds the BatchNorm (or a valid conv reads it)", "")
    return False


#: ``aten.batch_norm`` (eval mode, running statistics: else refused) and the no-training form
#: as export writes it, element 0 of its tuple
fuse_eval_batch_norm = driver(
    Rewrite(
        "R1",
        (
            Op(aten.batch_norm.default, input=Var("x"), **_bn(aten.batch_norm.default)),
            Op(
                operator.getitem,
                self=Op(_NO_TRAINING, name="bn", input=Var("x"), **_bn(_NO_TRAINING)),
                index=0,
            ),
        ),
        _fuse_batch_norm,
        (
            GraphCheck(
                EVAL,
                # the no-training op normalises with its running statistics by definition
                lambda ws, node, found: "bn" in found or _eval_statistics(ws, node, found),
                lambda *_: "the graph normalises with batch statistics",
            ),
        ),
    )
)
BN_STEPS = (train_mode, fuse_eval_batch_norm)


def fuse_batch_norm(ws: Workspace, node: fx.Node) -> bool:
    """Every BatchNorm step at ``node`` (for a caller that has one node)."""
    return any(step(ws, node) for step in BN_STEPS)
