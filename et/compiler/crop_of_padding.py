"""R19 on the graph: the centre crop of a padded map is the map (:mod:`et.rules.crop_of_padding`).

    pad_v(y; l, r, t, b)[…, t:−b, l:−r] = y        (pad₀(y) + c)[…, t:−b, l:−r] = y + c

FMEN's residual-in-residual block can add its padded map's centre back to the valid 3×3 that
reads it (``conv(P) + P[:, :, 1:-1, 1:-1]``). Once the padding has become the 3×3's own (G1,
G4), the crop still reads the padded map, so nothing merges; written as y (or y + c for a ring
of c, a constant over the image), the sum is ``conv(y) + (y + c)``, which R18 merges. The crop is
one slice (one padded axis) or two nested slices (height and width, in either order), each at
step 1; a refusal (a crop that keeps part of the ring or cuts into y) is recorded on the crop.
"""

from __future__ import annotations

import torch
from torch import fx

from et.compiler.patterns import GRAPH, GraphCheck, Op, Rewrite, Var, driver, integer
from et.compiler.workspace import Workspace
from et.contract import PreconditionError

aten = torch.ops.aten

#: the spatial axes of NCHW, by the index a slice names
_AXES = {2: -2, 3: -1, -2: -2, -1: -1}


def _pad(name: str = "pad") -> Op:
    return Op(
        aten.constant_pad_nd.default, name=name, self=Var("y"), pad=Var("pads"), value=Var("v")
    )


def _slice(name: str, source: object) -> Op:
    return Op(
        aten.slice.Tensor,
        name=name,
        self=source,
        dim=Var(f"{name}.dim", lambda d: d in _AXES),
        start=Var(f"{name}.start", lambda s: s is None or integer(s)),
        end=Var(f"{name}.end", lambda e: e is None or integer(e)),
        step=Var(f"{name}.step", integer),
    )


_BASES = (_pad(), Op(aten.add.Tensor, name="ring", self=_pad(), other=Var("c")))
PATTERNS = tuple(_slice("outer", _slice("inner", base)) for base in _BASES) + tuple(
    _slice("outer", base) for base in _BASES
)


def _crops(found: dict) -> dict[int, tuple[int | None, int | None, int]] | None:
    """The crop per spatial axis, None where two slices cut one axis."""
    crops: dict[int, tuple[int | None, int | None, int]] = {}
    for name in ("outer", "inner"):
        if name not in found:
            continue
        axis = _AXES[found[f"{name}.dim"]]
        if axis in crops:
            return None
        crops[axis] = (found[f"{name}.start"], found[f"{name}.end"], found[f"{name}.step"])
    return crops


def _whole_crop(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    """A single slice is the whole crop: no slice of the other spatial axis reads it (that
    one is matched as the two-slice crop)."""
    if "inner" in found:
        return None
    axis = _AXES[found["outer.dim"]]
    return not any(
        user.target == aten.slice.Tensor
        and len(user.args) > 1
        and _AXES.get(user.args[1]) not in (None, axis)
        for user in node.users
    )


def _ring_constant(ws: Workspace, node: fx.Node, found: dict) -> bool | None:
    """The ring's constant is one value per channel (or one number): it commutes with a crop."""
    if "ring" not in found:
        return None
    c = found["c"]
    if isinstance(c, int | float) and not isinstance(c, bool):
        return True
    value = ws.tensor(c)
    return value is not None and value.ndim <= 4 and all(n == 1 for n in value.shape[-2:])


def _crop_of_padding(ws: Workspace, node: fx.Node, found: dict) -> bool:
    """R19: ``pad_v(y)[…, t:−b, l:−r] = y`` (and ``+ c`` for a ring of c)."""
    try:
        _, checks = ws.apply("R19", list(found["pads"]), _crops(found))
    except PreconditionError as error:
        ws.record.refused(node, "R19", error.condition, error.detail)
        return False
    result = found["y"]
    if "ring" in found:
        result = ws.call(aten.add.Tensor, (found["y"], found["c"]), node)
        result.meta["val"] = node.meta.get("val")
    nodes = [found["pad"], *(found[k] for k in ("ring", "inner") if k in found), node]
    ws.record.applied("R19", nodes, (*checks, *found[GRAPH]))
    ws.replace(node, result)
    return True


crop_of_padding = driver(
    Rewrite(
        "R19",
        PATTERNS,
        _crop_of_padding,
        (
            GraphCheck(
                "each slice cuts another spatial axis",
                lambda ws, node, found: _crops(found) is not None,
                refuses=False,
            ),
            GraphCheck(
                "the crop is read whole (not sliced again on the other axis)",
                _whole_crop,
                refuses=False,
            ),
            GraphCheck(
                "the ring's constant is the same over the image",
                _ring_constant,
                refuses=False,
            ),
        ),
    )
)
