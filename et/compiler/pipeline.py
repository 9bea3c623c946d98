"""``et.compile``: capture, fold constants, rewrite to a fixed point, verify, certify."""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import fx, nn

from et.compiler.branch_difference import merge_difference
from et.compiler.canonical import CANONICAL_PATTERNS
from et.compiler.capture import CaptureError, capture
from et.compiler.certificate import Certificate, CertificateBuilder
from et.compiler.crop_into_kernel import absorb_crop
from et.compiler.et_rewrites import ET_PATTERNS, append_clamp
from et.compiler.expand_squeeze_rewrites import EXPAND_SQUEEZE_PATTERNS
from et.compiler.fold_constants import fold_constants
from et.compiler.grouped_branches import GROUPED_PATTERNS
from et.compiler.head_rewrites import HEAD_PATTERNS
from et.compiler.layer_scale import LAYER_SCALE_PATTERNS
from et.compiler.linear_rewrites import LINEAR_PATTERNS
from et.compiler.max_pool_head import MAX_HEAD_PATTERNS
from et.compiler.sizes import exact_size, guard_input, guards_since, guards_so_far
from et.compiler.stacked_inputs import stack_inputs
from et.compiler.token_linear import TOKEN_PATTERNS
from et.compiler.transposed_conv import transposed_as_shuffle
from et.compiler.verify import (
    ProbeSizeError,
    VerificationError,
    measure,
    verification_sizes,
)
from et.compiler.workspace import CONV2D, CONVOLUTION, Workspace, arguments
from et.domain import IMAGE_UNIT, InputDomain, as_domain
from et.rules.global_average_pool import check_global_pool

#: rewrites run in this order at every node until none applies anywhere
PATTERNS = (
    *CANONICAL_PATTERNS,
    *LINEAR_PATTERNS,
    merge_difference,
    *GROUPED_PATTERNS,
    absorb_crop,
    transposed_as_shuffle,
    *ET_PATTERNS,
    *HEAD_PATTERNS,
    *MAX_HEAD_PATTERNS,
    *EXPAND_SQUEEZE_PATTERNS,
    *TOKEN_PATTERNS,
    *LAYER_SCALE_PATTERNS,
    stack_inputs,
)
MAX_REWRITES = 100_000


@dataclass
class Compiled:
    """The result of :func:`compile`: the folded module and its certificate."""

    module: nn.Module
    certificate: Certificate


#: every convolution call the capture can produce (transposed ones included)
CONV_CALLS = (CONV2D, CONVOLUTION, torch.ops.aten.conv_transpose2d.input)


def count_convs(module: fx.GraphModule) -> int:
    """Convolution calls (transposed ones included) in a captured or compiled graph."""
    return sum(1 for n in module.graph.nodes if n.target in CONV_CALLS)


def op_counts(module: fx.GraphModule) -> dict[str, int]:
    """How many times each op is called in ``module``'s graph."""
    names = Counter(
        getattr(n.target, "__name__", str(n.target))
        for n in module.graph.nodes
        if n.op == "call_function"
    )
    return dict(sorted(names.items()))


def widest_kernel(module: fx.GraphModule) -> int:
    """The largest dilated extent ``d·(k − 1) + 1`` of any conv kernel in ``module``."""
    widest = 1
    for node in module.graph.nodes:
        if node.target not in CONV_CALLS:
            continue
        values = arguments(node)
        if values is None:
            continue
        weight = values["weight"]
        if isinstance(weight, fx.Node) and isinstance(weight.meta.get("val"), torch.Tensor):
            sizes = weight.meta["val"].shape[2:]
        elif isinstance(weight, fx.Node) and weight.op == "get_attr":
            sizes = _attribute(module, str(weight.target)).shape[2:]
        else:
            continue
        dilation = values["dilation"]
        dilation = [dilation] * 2 if isinstance(dilation, int) else list(dilation) * 2
        for k, d in zip(sizes, dilation, strict=False):
            widest = max(widest, int(d) * (int(k) - 1) + 1)
    return widest


def _attribute(module: nn.Module, target: str) -> torch.Tensor:
    value = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def rewrite_to_fixed_point(ws: Workspace) -> None:
    """Apply :data:`PATTERNS` until no pattern matches any node."""
    for _ in range(MAX_REWRITES):
        changed = False
        for node in list(ws.graph.nodes):
            if getattr(node, "_erased", False):
                continue
            changed = any(pattern(ws, node) for pattern in PATTERNS) or changed
        # a pattern that gave up may have left an unused node reading a value: drop it, so
        # that no fan-out check counts it as a reader
        ws.graph.eliminate_dead_code()
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
    align: int = 4,
) -> Compiled:
    """Fold ``module`` into a plain network equal to it on ``domain``, with a certificate.

    ``module`` is copied (never changed) and captured with :func:`torch.export.export` on
    ``example_inputs``, with symbolic batch, height and width first (at the example's static
    shapes when that fails); parameter-only sub-graphs are evaluated; the rules of
    :mod:`et.rules` are matched on the graph until none applies. The module returned (cast to
    the dtype of ``module``'s parameters) holds for the input sizes the capture's guards admit
    (:mod:`et.compiler.sizes`; ``certificate.sizes``), refuses every other size with a
    :class:`~et.compiler.sizes.SizeError`, and is verified as returned
    (:mod:`et.compiler.verify`): in float64 to ``tolerance`` relative, and in its own dtype
    within 16 times the original's own rounding there, at the example's size, an odd size and
    a larger one; it raises :class:`VerificationError` if either differs.
    ``output_clamp=(low, high)`` makes the clamp of the first output part of the function (as
    the authors' inference forms do). Only the first output of a multi-output model is
    compiled. Ops no rule removes stay unchanged.
    ``align``: when the input is carried through a stack as extra channels (E4), each widened
    layer gets zero dummy channels (E8) up to a multiple of ``align`` (4, as the hand
    converters' default: vector units prefer such widths; 1: none).

    It runs on one intra-op thread (restored afterwards): every tensor it computes is small
    (kernels, and probes a few pixels larger than the example), where a thread pool's
    synchronisation costs more than it saves, and many times more on a loaded machine.
    """
    with _one_thread():
        options = (as_domain(domain), output_clamp, tolerance, align)
        return _compile(module, example_inputs, options)


@contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _compile(module, example_inputs, options) -> Compiled:
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
    failures: list[Exception] = []
    # symbolic sizes first: the result then holds wherever the capture's guards do; a static
    # capture holds at the example's size only
    for dynamic in (True, False):
        started = time.perf_counter()
        try:
            captured = capture(private, example64, dynamic=dynamic)
        except CaptureError as error:
            failures.append(error)
            continue
        captured_in = time.perf_counter() - started
        try:
            returned, certificate = _fold_and_verify(
                private, captured, options, (tuple(example[0].shape[1:]), dtype)
            )
        except VerificationError as error:
            failures.append(error)
            continue
        certificate.timings = {"capture": captured_in, **certificate.timings}
        return Compiled(returned, certificate)
    # the symbolic capture's failure first: a verification failure before a capture failure
    raise next((f for f in failures if isinstance(f, VerificationError)), failures[0])


def _returned(compiled: fx.GraphModule, dtype: torch.dtype, sizes) -> fx.GraphModule:
    """``compiled`` (float64) as the caller gets it: its constants and every float64 dtype
    argument in the graph cast to ``dtype`` (the capture ran a float64 copy of a ``dtype``
    model, so a ``dtype=x.dtype`` it recorded reads float64), and the input checked against
    ``sizes`` (:func:`et.compiler.sizes.guard_input`)."""
    module = copy.deepcopy(compiled).to(dtype)
    for node in module.graph.nodes:
        node.args = tuple(dtype if a is torch.float64 else a for a in node.args)
        node.kwargs = {k: dtype if v is torch.float64 else v for k, v in node.kwargs.items()}
    guard_input(module, sizes)
    module.recompile()
    return module


def _fold_and_verify(oracle, captured, options, example):
    """Rewrite ``captured`` to a fixed point and verify what will be returned against
    ``oracle`` (the float64 private copy of the user's module) at
    :func:`~et.compiler.verify.verification_sizes`; returns that module and its certificate
    with the wall time of each phase. ``options``: domain, output clamp, tolerance, align;
    ``example``: the example's ``(C, H, W)`` and the dtype the module is returned in."""
    started = time.perf_counter()
    domain, output_clamp, tolerance, align = options
    shape, dtype = example
    record = CertificateBuilder()
    guards = guards_so_far(captured.module)
    ws = Workspace(captured.module, domain, record, align)
    for window, size in captured.global_pools:
        # done while tracing, where the window is the input's own symbolic size (so it holds
        # at every size); G11's check runs here on the window and the image at the example
        _, checks = ws.run(check_global_pool, nn.AvgPool2d(window), size)
        record.applied("G11", [], (*checks, "the window is written as the input's own size"))
    convs_before = count_convs(ws.module)
    if output_clamp is not None:
        append_clamp(ws, output_clamp)
    fold_constants(ws)
    rewrite_to_fixed_point(ws)
    compiled = ws.finish()
    # a rewrite that decided a symbolic size by the example's value holds where that does
    later = guards_since(compiled, guards)
    sizes = exact_size(*shape[1:]) if later is None else captured.sizes.also(later)
    rewritten = time.perf_counter()
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
        sizes=sizes.text,
        dtype=str(dtype).removeprefix("torch."),
    )
    returned = _returned(compiled, dtype, sizes)
    checked = returned if dtype == torch.float64 else compiled
    shapes = verification_sizes(shape, sizes, widest_kernel(compiled))
    try:
        certificate.max_error = measure(
            oracle,
            checked,
            returned,
            shapes,
            domain,
            clamp=output_clamp,
            tolerance=tolerance,
            dtype=dtype,
        )
    except VerificationError:
        raise
    except ProbeSizeError as error:
        raise VerificationError(f"{error}, a size the capture admits") from error
    except Exception as error:  # a compiled module that cannot even run is a failure too
        raise VerificationError(f"the compiled module failed to run: {error}") from error
    certificate.verified_sizes = [list(s[1:]) for s in shapes]
    certificate.timings = {
        "rewrite": rewritten - started,
        "verify": time.perf_counter() - rewritten,
    }
    return returned, certificate
