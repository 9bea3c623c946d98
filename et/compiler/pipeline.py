"""``et.compile``: capture, fold constants, rewrite to a fixed point, verify, certify."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from et.compiler.canonical import CANONICAL_PATTERNS
from et.compiler.capture import CaptureError, capture
from et.compiler.certificate import Certificate, CertificateBuilder
from et.compiler.et_rewrites import ET_PATTERNS, append_clamp
from et.compiler.fold_constants import fold_constants
from et.compiler.linear_rewrites import LINEAR_PATTERNS
from et.compiler.verify import VerificationError, measure
from et.compiler.workspace import CONV2D, CONVOLUTION, Workspace
from et.domain import IMAGE_UNIT, InputDomain, as_domain

#: rewrites run in this order at every node until none applies anywhere
PATTERNS = (*CANONICAL_PATTERNS, *LINEAR_PATTERNS, *ET_PATTERNS)
MAX_REWRITES = 100_000


@dataclass
class Compiled:
    """The result of :func:`compile`: the folded module and its certificate."""

    module: nn.Module
    certificate: Certificate


def count_convs(module: fx.GraphModule) -> int:
    """Convolution calls in a captured or compiled graph."""
    return sum(1 for n in module.graph.nodes if n.target in (CONV2D, CONVOLUTION))


def op_counts(module: fx.GraphModule) -> dict[str, int]:
    """How many times each op is called in ``module``'s graph."""
    names = Counter(
        getattr(n.target, "__name__", str(n.target))
        for n in module.graph.nodes
        if n.op == "call_function"
    )
    return dict(sorted(names.items()))


def rewrite_to_fixed_point(ws: Workspace) -> None:
    """Apply :data:`PATTERNS` until no pattern matches any node."""
    for _ in range(MAX_REWRITES):
        changed = False
        for node in list(ws.graph.nodes):
            if getattr(node, "_erased", False):
                continue
            changed = any(pattern(ws, node) for pattern in PATTERNS) or changed
        if not changed:
            return
    raise RuntimeError("the rewrites did not reach a fixed point")  # pragma: no cover


def compile(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    *,
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT,
    output_clamp: tuple[float, float] | None = None,
    tolerance: float = 1e-9,
) -> Compiled:
    """Fold ``module`` into a plain network equal to it on ``domain``, with a certificate.

    ``module`` is copied (never changed) and captured with :func:`torch.export.export` on
    ``example_inputs``; parameter-only sub-graphs are evaluated; the rules of :mod:`et.rules`
    are matched on the graph until none applies; the result is checked against ``module`` in
    float64 (relative ``tolerance``) and float32 on :func:`et.testing.probe_inputs` and raises
    :class:`VerificationError` if it differs. ``output_clamp=(low, high)`` makes the clamp of
    the first output part of the function (as the authors' inference forms do). Only the
    first output of a multi-output model is compiled. Ops no rule removes stay unchanged.
    """
    domain = as_domain(domain)
    example = tuple(torch.as_tensor(x) for x in example_inputs)
    if len(example) != 1 or example[0].ndim != 4:
        raise ValueError("example_inputs must be one NCHW tensor, as a 1-tuple")
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    private = copy.deepcopy(module).to(torch.float64).eval()
    example64 = tuple(x.to(torch.float64) for x in example)
    with torch.no_grad():
        # one real call first: a forward that writes weight.data or calls self.eval() has then
        # done so, and the capture reads the parameters it really uses
        private(*example64)
    private.eval()
    failure: Exception | None = None
    for dynamic in (False, True):
        try:
            captured = capture(private, example64, dynamic=dynamic)
        except CaptureError as error:
            failure = error
            continue
        try:
            compiled, certificate = _fold_and_verify(
                module, captured, domain, output_clamp, tolerance, tuple(example[0].shape[1:])
            )
        except VerificationError as error:
            failure = error
            continue
        return Compiled(compiled.to(dtype), certificate)
    assert failure is not None
    raise failure


def _fold_and_verify(module, captured, domain, output_clamp, tolerance, shape):
    """Rewrite ``captured`` to a fixed point and verify it against ``module`` (two sizes)."""
    record = CertificateBuilder()
    ws = Workspace(captured.module, domain, record)
    convs_before = count_convs(ws.module)
    if output_clamp is not None:
        append_clamp(ws, output_clamp)
    fold_constants(ws)
    rewrite_to_fixed_point(ws)
    compiled = ws.finish()
    alive = {n.name for n in compiled.graph.nodes}
    certificate = Certificate(
        capture=captured.method,
        domain=(domain.low, domain.high),
        applications=record.applications,
        unfolded=record.unfolded(alive),
        convs_before=convs_before,
        convs_after=count_convs(compiled),
        ops_after=op_counts(compiled),
        output_clamp=output_clamp,
    )
    try:
        certificate.max_error = measure(
            module,
            compiled,
            shape,
            domain,
            clamp=output_clamp,
            tolerance=tolerance,
        )
    except VerificationError:
        raise
    except Exception as error:  # a compiled module that cannot even run is a failure too
        raise VerificationError(f"the compiled module failed to run: {error}") from error
    return compiled, certificate
