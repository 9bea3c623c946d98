"""Small shared steps of the rewrite patterns: find a conv that feeds only one node, and
replace a node by a new conv while recording the rule application."""

from __future__ import annotations

from torch import fx, nn

from et.compiler.workspace import ConvSite, Workspace

#: the graph-level precondition every fold checks: nothing else reads the folded value
FAN_OUT = "the folded node's output feeds nothing else (fan-out 1)"


def sole_conv(ws: Workspace, node: object, user: fx.Node) -> ConvSite | None:
    """The conv site ``node`` when it is a conv whose only consumer is ``user``."""
    site = ws.conv_site(node)
    return site if site is not None and ws.sole_user(site.node, user) else None


def replace_conv(
    ws: Workspace,
    old: fx.Node,
    conv: nn.Conv2d,
    source: fx.Node,
    rule: str,
    nodes: list,
    checked: tuple[str, ...] = (),
) -> bool:
    """Emit ``conv(source)`` in place of ``old`` and record ``rule`` on ``nodes``."""
    new = ws.emit_conv(conv, source, old)
    ws.record.applied(rule, nodes, checked)
    ws.replace(old, new)
    return True
