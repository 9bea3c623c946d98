"""Two convs on different inputs, summed, as one conv on the stacked inputs (E6's identity).

    conv(u; W_a, b_a) + conv(v; W_b, b_b) = conv([u; v]; [W_a, W_b], b_a + b_b)

(a conv is, per tap, a matrix on the channel axis, so a block row ``[W_a, W_b]`` applied to the
stacked channels ``[u; v]`` is ``W_a u + W_b v``; the biases add). This is E6's theorem without
the PixelShuffle around it. Kernels of different sizes are brought to the larger one first (R4,
whose own check requires the centred paddings that keep the outputs aligned).

Where it matters: SESR's tail ``conv_last(y + f) + tile(x)`` after E3 wrote the tiled image as
its 1×1 anchor conv, which E4 cannot carry through the long residual: without this step the
compiled net would hold one conv more than the authors' deploy form; with it, the anchor is
columns of the last conv reading ``[y + f; x]``.

A last resort, so that it never takes a sum another rewrite would fold better (stacking gives
the convs a new input, which blocks R8, E4 and E5 on them): it waits at a sum until a whole pass
of every rewrite left the graph as it was (it asks for that one more pass), and it leaves a sum
at which another rule was refused, so that refusal keeps naming why the sum stayed (E4 on a
signed input: the certificate says the input is not ≥ 0).

Left, each refusal named in the certificate: a conv whose output feeds anything else (fan-out),
grouped convs and differing strides, paddings or dilations (E6's checks), and inputs of
different spatial sizes (a stride-2 conv gives the same output size for two input sizes; their
channels cannot be stacked). Not matched at all: two convs reading the same input (R3's sum).
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

import torch
from torch import fx

from et.compiler.helpers import FAN_OUT, replace_conv
from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, conv, driver, is_conv
from et.compiler.unmerged_joins import SAME_VALUE
from et.compiler.workspace import Workspace
from et.contract import PreconditionError

aten = torch.ops.aten
SAME_SIZE = "the two inputs have the same spatial size (their channels can be stacked)"
DIFFERENT_INPUTS = "the two convs read different values (the same input is R3's sum)"


def _spatial(node: object) -> tuple[str, ...] | None:
    """The captured height and width of ``node``, written out (symbolic sizes by their
    expression, so equal texts are the same size for every input), or None."""
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 4:
        return None
    return tuple(str(size) for size in shape[2:])


def _same_size(ws: Workspace, node: fx.Node, found: dict) -> bool:
    a, b = _spatial(found["a.input"]), _spatial(found["b.input"])
    return a is not None and a == b


def _sizes(ws: Workspace, node: fx.Node, found: dict) -> str:
    return f"{_spatial(found['a.input'])} and {_spatial(found['b.input'])}"


#: per workspace, the graph (its node names) as it was at each sum's last visit
_SEEN: WeakKeyDictionary[Workspace, dict[str, tuple[str, ...]]] = WeakKeyDictionary()
#: refusals of this step's own rules, which must not hold it back
_OWN = ("E6", "R4")


def _settled(ws: Workspace, node: fx.Node) -> bool:
    """Whether the graph is as it was at the last visit of ``node``: a whole pass of every
    rewrite changed nothing (each rewrite emits new nodes or erases some, so the names say)."""
    state = tuple(n.name for n in ws.graph.nodes)
    seen = _SEEN.setdefault(ws, {})
    settled = seen.get(node.name) == state
    seen[node.name] = state
    return settled


def _refused_by_others(ws: Workspace, node: fx.Node) -> bool:
    # "the branches read different values" only names why R3 could not merge: it is what
    # this step handles, not a refusal to keep
    return any(
        u.rule not in _OWN and u.precondition != SAME_VALUE for u in ws.record.unfolded({node.name})
    )


def _fan_out(name: str) -> GraphCheck:
    def others(ws: Workspace, node: fx.Node, found: dict) -> str:
        users = sorted(u.name for u in found[name].users if u is not node)
        return f"{found[name].name} also feeds {users}"

    return GraphCheck(
        FAN_OUT, lambda ws, node, found: ws.sole_user(found[name], node), others, at=name
    )


def _stack_inputs(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """E6 (R4 first when the kernels differ): ``conv_a(u) + conv_b(v)`` → ``conv([u; v])``."""
    if _refused_by_others(ws, node):
        return False
    if not _settled(ws, node):
        return True  # not yet: one more pass, in which every other rewrite has its chance
    sites = [ws.conv_site(found[name]) for name in ("a", "b")]
    convs = [site.conv for site in sites]
    steps = []
    try:
        size = tuple(max(p, q) for p, q in zip(*(c.kernel_size for c in convs), strict=True))
        for index in (0, 1):
            if convs[index].kernel_size != size:
                convs[index], ran = ws.apply("embed_kernel", convs[index], size)
                steps.append(("R4", sites[index].node, ran))
        merged, checks = ws.apply("merge_summed_convs", *convs)
    except PreconditionError as error:
        ws.record.refused(node, error.rule, error.condition, error.detail)
        return False
    for rule, changed, ran in steps:  # nothing is recorded before every check passed
        ws.record.applied(rule, [changed], ran)
    stacked = ws.call(aten.cat.default, ([sites[0].input, sites[1].input], 1), node)
    nodes = [sites[0].node, sites[1].node, node]
    graph = (*found[GRAPH], "a plain sum of the two convs (alpha = 1)")
    return replace_conv(ws, node, merged, stacked, "E6", nodes, (*checks, *graph))


STACK_INPUTS = Rewrite(
    "E6",
    (Op(aten.add.Tensor, self=conv("a"), other=conv("b")),),
    _stack_inputs,
    (
        is_conv("a"),
        is_conv("b"),
        GraphCheck(
            DIFFERENT_INPUTS,
            lambda ws, node, found: found["a.input"] is not found["b.input"],
            refuses=False,  # the same input: R3 merges that sum, nothing to name here
        ),
        _fan_out("a"),
        _fan_out("b"),
        GraphCheck(SAME_SIZE, _same_size, _sizes),
    ),
)
stack_inputs = driver(STACK_INPUTS)
