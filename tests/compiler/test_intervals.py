"""Sound intervals: every value torch computes lies inside the interval the compiler proves.

Hypothesis properties, one per op family, draw the op's arguments (keywords included: alpha
signs, clamp limits, slopes, pad values, divisor overrides, weights of both signs …), a domain
and inputs inside it (its ends included), in float32 and float64; they evaluate every node of the
tiny graph and check it against ``ws.interval``. Then the issue's regressions (each fails on the
bound-ignoring code they replace), exhaustive checks of the pooling-window claims, the rounding
helpers, and the former op-by-op kill tests of the mutation pass.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import fx, nn

import et
from et.compiler.certificate import CertificateBuilder
from et.compiler.interval_arith import down, up
from et.compiler.intervals import LEMMAS
from et.compiler.workspace import Workspace
from et.domain import InputDomain
from tests.compiler.graphs import call, evaluate, workspace

aten = torch.ops.aten
F32 = st.floats(-4.0, 4.0, width=32)
SCALARS = st.one_of(F32, st.integers(-3, 3), st.sampled_from([0.1, -0.1, 1e-3, 0.5]))
DTYPES = st.sampled_from([torch.float32, torch.float64])
SHAPE = (2, 4, 6, 6)
MAX_WITH_INDICES = aten.max_pool2d_with_indices.default


class Builder:
    """A graph on one input ``x`` of ``SHAPE`` with constants in ``dtype``; ``data`` draws."""

    def __init__(self, data, dtype: torch.dtype) -> None:
        self.data, self.dtype = data, dtype
        self.root, self.graph = nn.Module(), fx.Graph()
        self.x = self.graph.placeholder("x")
        self.x.meta["val"] = torch.empty(SHAPE, dtype=dtype)
        self.count = 0

    def draw(self, strategy):
        return self.data.draw(strategy)

    def constant(self, shape) -> fx.Node:
        seed = self.draw(st.integers(0, 2**16))
        values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2
        name = f"c{self.count}"
        self.count += 1
        self.root.register_buffer(name, values.to(self.dtype))
        return self.graph.get_attr(name)

    def call(self, target, *args, optional=()) -> fx.Node:
        """``target(*args, *optional)``, the optional ones as keywords when drawn so."""
        schema = [a.name for a in target._schema.arguments]
        if optional and self.draw(st.booleans()):
            names = schema[len(args) : len(args) + len(optional)]
            return self.graph.call_function(target, args, dict(zip(names, optional, strict=True)))
        return self.graph.call_function(target, (*args, *optional))

    def source(self) -> fx.Node:
        """x, or x moved to intervals of other signs and widths."""
        kind = self.draw(st.sampled_from(["x", "shift", "scale", "relu", "neg"]))
        if kind == "x":
            return self.x
        if kind == "neg":
            return self.call(aten.neg.default, self.x)
        if kind == "relu":
            shifted = self.call(aten.sub.Tensor, self.x, self.draw(F32))
            return self.call(aten.relu.default, shifted)
        op = aten.add.Tensor if kind == "shift" else aten.mul.Tensor
        return self.call(op, self.x, self.draw(F32))

    def operand(self):
        kind = self.draw(st.sampled_from(["node", "scalar", "channel", "full", "0-dim"]))
        if kind == "node":
            return self.source()
        if kind == "scalar":
            return self.draw(SCALARS)
        if kind == "0-dim":  # float64, converted to a float32 x's dtype by type promotion
            name = f"c{self.count}"
            self.count += 1
            value = torch.tensor(self.draw(st.floats(-4, 4)), dtype=torch.float64)
            self.root.register_buffer(name, value)
            return self.graph.get_attr(name)
        return self.constant((1, SHAPE[1], 1, 1) if kind == "channel" else SHAPE)


def _values(module: fx.GraphModule, x: torch.Tensor) -> dict[fx.Node, object]:
    seen: dict[fx.Node, object] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            seen[n] = super().run_node(n)
            return seen[n]

    with torch.no_grad():
        Recorder(module).run(x)
    return seen


def check(builder: Builder, out: fx.Node) -> Workspace:
    """Evaluate the graph on inputs drawn in a drawn domain; every value inside its interval."""
    builder.graph.output(out)
    low = builder.draw(F32)
    width = builder.draw(st.one_of(st.just(0.0), st.floats(0.0, 4.0)))  # 0: every x at a corner
    high = float(np.float32(low + width))  # float32, ≥ low
    domain = InputDomain(low, high)
    ws = Workspace(fx.GraphModule(builder.root, builder.graph), domain, CertificateBuilder())
    seed = builder.draw(st.integers(0, 2**16))
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = low + (high - low) * x
    ends = torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed + 1))
    x = torch.where(ends < 0.4, low, torch.where(ends > 0.6, high, x))
    x = x.clamp(low, high).to(builder.dtype)
    try:
        values = _values(ws.module, x)
    except (RuntimeError, ValueError, IndexError):
        assume(False)  # arguments torch refuses: nothing to bound
    for node, value in values.items():
        pieces = value if isinstance(value, list | tuple) else [value]
        if node.target == aten.max_pool2d_with_indices.default:
            pieces = pieces[:1]  # the interval is the values'; the indices are output 1
        lo, hi = ws.interval(node)
        for piece in pieces:
            if isinstance(piece, torch.Tensor) and piece.is_floating_point():
                assert not bool((piece < lo).any()), (node.format_node(), lo, piece.min())
                assert not bool((piece > hi).any()), (node.format_node(), hi, piece.max())
    return ws


# --- Hypothesis properties, one per op family -----------------------------------------------
SUMS = [
    aten.add.Tensor,
    aten.sub.Tensor,
    aten.rsub.Tensor,
    aten.add.Scalar,
    aten.sub.Scalar,
    aten.rsub.Scalar,
]


@given(st.data(), DTYPES, st.sampled_from(SUMS), st.one_of(st.none(), SCALARS))
def test_sums_with_alpha(data, dtype, op, alpha) -> None:
    b = Builder(data, dtype)
    first = b.source()
    second = b.operand() if op._overloadname == "Tensor" else b.draw(SCALARS)
    if op == aten.rsub.Tensor and not isinstance(second, fx.Node):
        second = b.constant(SHAPE)  # rsub.Tensor takes a tensor only
    if alpha is None:
        check(b, b.call(op, first, second))
    else:
        check(b, b.call(op, first, second, optional=(alpha,)))


@given(st.data(), DTYPES, st.sampled_from(["mul", "mul_scalar", "div", "div_scalar"]))
def test_products_and_quotients(data, dtype, name) -> None:
    b = Builder(data, dtype)
    op = {
        "mul": aten.mul.Tensor,
        "mul_scalar": aten.mul.Scalar,
        "div": aten.div.Tensor,
        "div_scalar": aten.div.Scalar,
    }[name]
    other = b.operand() if name in ("mul", "div") else b.draw(SCALARS)
    check(b, b.call(op, b.source(), other))


@given(st.data(), DTYPES)
def test_rectifiers_and_clamps(data, dtype) -> None:
    b = Builder(data, dtype)
    x = b.source()
    limit = st.one_of(st.none(), SCALARS)
    kind = b.draw(st.sampled_from(["relu", "leaky", "prelu", "clamp", "tensor", "min", "max"]))
    if kind == "relu":
        out = b.call(aten.relu.default, x)
    elif kind == "leaky":
        out = b.call(aten.leaky_relu.default, x, optional=(b.draw(SCALARS),))
    elif kind == "prelu":
        out = b.call(aten.prelu.default, x, b.constant((SHAPE[1],)))
    elif kind == "clamp":
        op = b.draw(st.sampled_from([aten.clamp.default, aten.hardtanh.default]))
        out = b.call(op, x, optional=(b.draw(limit), b.draw(limit)))
    elif kind == "tensor":
        limits = [b.operand() if b.draw(st.booleans()) else None for _ in range(2)]
        limits = [v if v is None or isinstance(v, fx.Node) else b.constant((1,)) for v in limits]
        out = b.call(aten.clamp.Tensor, x, optional=tuple(limits))
    else:
        op = aten.clamp_min if kind == "min" else aten.clamp_max
        if b.draw(st.booleans()):
            out = b.call(op.default, x, b.draw(SCALARS))
        else:
            out = b.call(op.Tensor, x, b.constant((1, SHAPE[1], 1, 1)))
    check(b, out)


@given(st.data(), DTYPES, st.sampled_from(["exp", "sigmoid", "tanh", "abs", "neg"]))
def test_monotone_and_sign_maps(data, dtype, name) -> None:
    b = Builder(data, dtype)
    scaled = b.call(aten.mul.Tensor, b.source(), b.draw(st.sampled_from([1, 10, 30, -30])))
    check(b, b.call(getattr(aten, name).default, scaled))


@given(st.data(), DTYPES)
def test_copies_pads_and_concatenations(data, dtype) -> None:
    b = Builder(data, dtype)
    x = b.source()
    kind = b.draw(st.sampled_from(["pad", "pad_mode", "cat", "scatter", "split", "shape"]))
    pads = b.draw(
        st.lists(st.integers(-2, 2), min_size=2, max_size=4).filter(lambda p: len(p) != 3)
    )
    if kind == "pad":
        out = b.call(aten.constant_pad_nd.default, x, pads, optional=(b.draw(SCALARS),))
    elif kind == "pad_mode":
        mode = b.draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        value = b.draw(st.one_of(st.none(), SCALARS)) if mode == "constant" else None
        out = b.call(aten.pad.default, x, [abs(p) for p in pads], optional=(mode, value))
    elif kind == "cat":
        out = b.call(aten.cat.default, [x, b.constant((2, 1, 6, 6)), b.source()], 1)
    elif kind == "scatter":
        start = b.draw(st.integers(0, 4))
        src = b.constant((2, 4, 6, 2))
        out = b.call(aten.slice_scatter.default, x, src, 3, start, start + 2)
    elif kind == "split":
        pieces = b.call(aten.split.Tensor, x, b.draw(st.integers(1, 4)), 1)
        out = b.graph.call_function(operator.getitem, (pieces, 0))
    else:
        op, args = b.draw(
            st.sampled_from(
                [
                    (aten.pixel_shuffle.default, (2,)),
                    (aten.slice.Tensor, (2, 1, 5, 2)),
                    (aten.permute.default, ([0, 2, 3, 1],)),
                    (aten.repeat.default, ([1, 2, 1, 1],)),
                    (aten.upsample_nearest2d.vec, (None, [2.0, 3.0])),
                    (aten.reflection_pad2d.default, ([1, 2, 0, 1],)),
                ]
            )
        )
        out = b.call(op, x, *args)
    check(b, out)


@given(st.data(), DTYPES)
def test_pools_means_and_bilinear(data, dtype) -> None:
    b = Builder(data, dtype)
    x = b.source()
    kind = b.draw(st.sampled_from(["avg", "max", "adaptive", "mean", "bilinear"]))
    kernel = b.draw(st.integers(1, 3))
    padding = b.draw(st.integers(0, kernel // 2))
    stride, ceil = b.draw(st.integers(1, 3)), b.draw(st.booleans())
    if kind == "avg":
        divisor = b.draw(st.one_of(st.none(), st.integers(-5, 5).filter(bool)))
        optional = ([padding, padding], ceil, b.draw(st.booleans()), divisor)
        out = b.call(
            aten.avg_pool2d.default, x, [kernel, kernel], [stride, stride], optional=optional
        )
    elif kind == "max":
        dilation = b.draw(st.integers(1, 2))
        padding = b.draw(st.integers(0, (dilation * (kernel - 1) + 1) // 2))
        op = b.draw(
            st.sampled_from([aten.max_pool2d.default, aten.max_pool2d_with_indices.default])
        )
        optional = ([padding] * 2, [dilation] * 2, ceil)
        out = b.call(op, x, [kernel] * 2, [stride] * 2, optional=optional)
        if op == MAX_WITH_INDICES:
            out = b.graph.call_function(operator.getitem, (out, 0))
    elif kind == "adaptive":
        out = b.call(aten.adaptive_avg_pool2d.default, x, b.draw(st.sampled_from([[1, 1], [4, 5]])))
    elif kind == "mean":
        dims = b.draw(st.sampled_from([[2, 3], [1], [-1]]))
        out = b.call(aten.mean.dim, x, dims, optional=(b.draw(st.booleans()),))
    else:
        corners = b.draw(st.booleans())
        out = b.call(aten.upsample_bilinear2d.vec, x, None, corners, [1.5, 2.0])
    check(b, out)


@given(st.data(), DTYPES, st.sampled_from(["mixed", "non-negative", "non-positive", "sparse"]))
def test_convolutions_with_signed_weights(data, dtype, signs) -> None:
    b = Builder(data, dtype)
    x = b.source()
    groups, kernel = b.draw(st.sampled_from([1, 2, 4])), b.draw(st.integers(1, 3))
    outputs = 1 if groups == 1 and b.draw(st.booleans()) else 4  # 1: its bound is the node's
    weight = b.constant((outputs, 4 // groups, kernel, kernel))
    values = b.root.get_buffer(weight.target)
    if signs == "non-negative":
        values.abs_()
    elif signs == "non-positive":
        values.abs_().neg_()
    elif signs == "sparse":
        values.mul_((values.abs() > 1.5).to(values.dtype))
    bias = b.constant((outputs,)) if b.draw(st.booleans()) else None
    if bias is not None and signs != "mixed":
        b.root.get_buffer(bias.target).abs_()
    geometry = [[b.draw(st.integers(1, 2))] * 2, [b.draw(st.integers(0, 2))] * 2, [1, 1]]
    if b.draw(st.booleans()):
        out = b.call(aten.conv2d.default, x, weight, bias, *geometry, groups)
    else:
        out = b.call(aten.convolution.default, x, weight, bias, *geometry, False, [0, 0], groups)
    check(b, out)


FAMILIES = [
    lambda b, x: b.call(aten.relu.default, x),
    lambda b, x: b.call(aten.add.Tensor, x, b.operand(), optional=(b.draw(SCALARS),)),
    lambda b, x: b.call(aten.mul.Tensor, x, b.operand()),
    lambda b, x: b.call(aten.sigmoid.default, x),
    lambda b, x: b.call(aten.clamp.default, x, b.draw(SCALARS), b.draw(SCALARS)),
    lambda b, x: b.call(aten.constant_pad_nd.default, x, [1, 1, 1, 1], b.draw(SCALARS)),
    lambda b, x: b.call(aten.avg_pool2d.default, x, [3, 3], [1, 1], [1, 1]),
    lambda b, x: b.call(aten.conv2d.default, x, b.constant((4, 4, 3, 3)), None, [1, 1], [1, 1]),
]


@given(st.data(), DTYPES, st.lists(st.integers(0, len(FAMILIES) - 1), min_size=2, max_size=5))
def test_chains_of_ops(data, dtype, chain) -> None:
    b = Builder(data, dtype)
    node = b.source()
    for index in chain:
        node = FAMILIES[index](b, node)
    check(b, node)


# --- the regressions: each fails on the code that ignored the argument ----------------
DOMAIN = InputDomain(0.25, 1.0)


def bound(build, constants=None, domain: InputDomain = DOMAIN) -> float:
    ws, node = workspace(build, constants, domain)
    return ws.lower_bound(node)


def _lowest(build, x: torch.Tensor, constants=None, domain: InputDomain = DOMAIN):
    """(the proven lower bound, the least value torch computes on ``x``)."""
    ws, node = workspace(build, constants, domain)
    return ws.lower_bound(node), float(evaluate(ws, x).min())


def test_add_with_alpha_subtracts() -> None:
    """add(q, p, alpha=−1) = q − p: with q = p = relu(x) it is 0, not ≥ 0.25 + 0.25."""

    def build(g):
        q = call(g, aten.relu.default, g.placeholder("x"))
        return g.call_function(aten.add.Tensor, (q, q), {"alpha": -1})

    low, value = _lowest(build, torch.full((1, 1, 2, 2), 0.5))
    assert value == 0.0
    assert low <= value


def test_sigmoid_is_below_one() -> None:
    """sigmoid(x + 5) − 1 < 0 (sigmoid < 1), not ≥ max(lb(x + 5), 0) − 1 = 4.25."""

    def build(g):
        shifted = call(g, aten.add.Tensor, g.placeholder("x"), 5.0)
        return call(g, aten.add.Tensor, call(g, aten.sigmoid.default, shifted), -1.0)

    low, value = _lowest(build, torch.full((1, 1, 2, 2), 0.25))
    assert value < 0
    assert low <= value


def test_avg_pool_with_a_negative_divisor_override_flips_the_sign() -> None:
    def build(g):
        x = g.placeholder("x")
        return call(g, aten.avg_pool2d.default, x, [2, 2], [2, 2], [0, 0], False, True, -3)

    low, value = _lowest(build, torch.full((1, 1, 2, 2), 0.5))
    assert value == pytest.approx(-2.0 / 3.0)
    assert low <= value


def test_max_pool_indices_are_not_values() -> None:
    """Output 1 of max_pool2d_with_indices is an index (0 here), not an element of x."""

    def build(g):
        pooled = call(g, aten.max_pool2d_with_indices.default, g.placeholder("x"), [2, 2])
        return call(g, operator.getitem, pooled, 1)

    low, value = _lowest(build, torch.full((1, 1, 2, 2), 0.5))
    assert value == 0
    assert low <= value


def test_a_dilated_padded_max_pool_window_can_be_all_padding() -> None:
    """Taps at −1 and +1 of a 1 × 1 input: both padding, so the max is −∞."""

    def build(g):
        x = g.placeholder("x")
        return call(g, aten.max_pool2d.default, x, [2, 2], [1, 1], [1, 1], [2, 2], False)

    low, value = _lowest(build, torch.full((1, 1, 1, 1), 0.5))
    assert value == -math.inf
    assert low == -math.inf


def test_one_rounding_is_taken_outward() -> None:
    """In float32 1 + 2⁻²⁵ rounds to 1: a bound of the exact sum would be above the value."""
    low, value = _lowest(
        lambda g: call(g, aten.add.Tensor, g.placeholder("x"), 2.0**-25),
        torch.ones(1, 1, 1, 1),
        domain=InputDomain(1.0, 1.0),
    )
    assert value == 1.0
    assert low <= value


def test_a_conv_sum_rounds_below_its_exact_value() -> None:
    """Eight taps of 2⁻²⁵ and one of 1 on x = 1: exactly 1 + 2⁻²², but in float32 the result
    depends on the kernel's order (1 first: every 2⁻²⁵ rounds away, giving 1; the small ones
    first: exact). Lemma S's slack keeps the bound below the sum in every order, whichever
    order this machine's kernel took."""
    weight = torch.tensor([2.0**-25] * 8 + [1.0]).reshape(1, 1, 1, 9)

    def build(g):
        return call(g, aten.conv2d.default, g.placeholder("x"), g.get_attr("w"), None)

    low, value = _lowest(build, torch.ones(1, 1, 1, 9), {"w": weight}, InputDomain(1.0, 1.0))
    assert 1.0 <= value <= 1.0 + 2.0**-22
    assert low <= 1.0  # below the order that rounds most
    assert low <= value


A, M, B = 0.4001, 0.40015, 0.4002


class CarriedTent(nn.Module):
    """tail(relu(head(u))) + skip(u): E4 would carry u through the ReLU. u = 10⁴·(2·relu(x − M)
    − relu(x − A) − relu(x − B)) is 0 outside (A, B) and −0.5 at x = M."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.head, self.tail, self.skip = (
            nn.Conv2d(1, 4, 3, padding=1),
            nn.Conv2d(4, 1, 3, padding=1),
            nn.Conv2d(1, 1, 3, padding=1),
        )
        for conv in (self.head, self.tail, self.skip):
            for parameter in conv.parameters():
                parameter.data = torch.randn(parameter.shape, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu
        u = torch.add(2 * r(x - M), r(x - A) + r(x - B), alpha=-1) * 1e4
        return self.tail(r(self.head(u))) + self.skip(u)


def test_a_carried_input_negative_on_a_tiny_interval_is_not_carried() -> None:
    model = CarriedTent().double().eval()
    compiled = et.compile(model, (torch.rand(1, 1, 8, 8, dtype=torch.float64),))
    certificate = compiled.certificate
    assert "E4" not in [a.rule for a in certificate.applications]
    claims = [p for a in certificate.applications for p in a.preconditions]
    assert not any(p.startswith("the carried input is ≥") for p in claims)
    refusal = [u for u in certificate.unfolded if u.rule == "E4"]
    assert refusal and refusal[0].precondition == "the carried input is ≥ 0 on the declared domain"
    x = torch.full((1, 1, 8, 8), M, dtype=torch.float64)
    with torch.no_grad():
        assert float(model(x).abs().max()) > 0.1  # u = −0.5 there: the ReLU would matter
        torch.testing.assert_close(compiled.module(x), model(x), rtol=1e-9, atol=1e-9)


# --- exhaustive checks of the pooling-window claims -------------------------------------------
def _pool_cases():
    for size in range(1, 7):
        for kernel in range(1, 5):
            for stride in range(1, 5):
                for padding in range(kernel // 2 + 1):
                    for ceil in (False, True):
                        yield size, kernel, stride, padding, ceil


def test_every_dilation_one_window_holds_an_input_element() -> None:
    """Exhaustive over sizes 1–6, kernels 1–4, strides 1–4, every allowed padding, both
    ceil_modes (the premise of the max_pool2d and avg_pool2d lemmas): a max pool of zeros is
    never −∞, and with divisor_override 1 an avg pool of ones counts 1 ≤ |S| ≤ K elements,
    K of them when unpadded without ceil_mode."""
    for size, kernel, stride, padding, ceil in _pool_cases():
        x = torch.ones(1, 1, size, size, dtype=torch.float64)
        args = ([kernel] * 2, [stride] * 2, [padding] * 2)
        try:
            maxed = aten.max_pool2d.default(x - 1, *args, [1, 1], ceil)
        except RuntimeError:
            continue  # an output size below 1: torch refuses the arguments
        assert bool(torch.isfinite(maxed).all())
        counts = aten.avg_pool2d.default(x, *args, ceil, True, 1)
        assert counts.min() >= 1
        assert counts.max() <= kernel * kernel
        if padding == 0 and not ceil:
            assert bool((counts == kernel * kernel).all())
        means = aten.avg_pool2d.default(x, *args, ceil, False, None)
        assert bool((means == 1).all())  # no window is empty (an empty one would give 0)


# --- the rounding helpers (Lemma F) -----------------------------------------------------------
def _is_float32(value: float) -> bool:
    return math.isinf(value) or float(np.float32(value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(0, 1e-3))
def test_down_and_up_are_float32_numbers_around_the_value(q: float, step: float) -> None:
    lo, hi = down(q), up(q)
    assert _is_float32(lo) and _is_float32(hi)
    assert lo <= q <= hi
    assert hi - lo <= 2 * abs(q) * 2.0**-23 + 2.0**-148 or math.isinf(hi - lo)
    with np.errstate(over="ignore"):
        for r in (q, q + step * abs(q)):  # any r ≥ q, rounded to float32 or float64
            assert float(np.float32(r)) >= lo
            assert r >= lo


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_down_and_up_fix_float32_numbers(q: float) -> None:
    assert down(q) == q == up(q)


def test_down_and_up_beyond_float32() -> None:
    biggest = float(np.finfo(np.float32).max)
    assert down(3.5e38) == biggest and up(3.5e38) == math.inf
    assert up(-3.5e38) == -biggest and down(-3.5e38) == -math.inf
    assert down(-biggest) == -biggest
    assert down(1e-50) == 0.0 and up(-1e-50) == 0.0  # below the subnormals: 0 is a float32
    assert down(0.1) < 0.1 < up(0.1)


# --- op by op (the former kill tests of the mutation pass, on the domain [0.25, 1]) -----------
# A bound of 0.25 tells a propagated bound from a fixed 0.


def interval_of(build, constants=None) -> tuple[float, float]:
    ws, node = workspace(build, constants, DOMAIN)
    return ws.interval(node)


def test_constants_and_the_input() -> None:
    values = torch.tensor([[0.5, -2.0], [3.0, 1.0]])
    assert interval_of(lambda g: g.get_attr("c"), {"c": values}) == (-2.0, 3.0)
    unbounded = (-math.inf, math.inf)
    assert interval_of(lambda g: g.get_attr("c"), {"c": torch.zeros(0)}) == unbounded
    assert interval_of(lambda g: g.get_attr("c"), {"c": torch.tensor([1.0, math.nan])}) == unbounded
    assert interval_of(lambda g: g.placeholder("x")) == (0.25, 1.0)
    big = torch.tensor([2**53 + 1, -(2**60) - 1])  # no double holds them: rounded out
    lo, hi = interval_of(lambda g: g.get_attr("c"), {"c": big})
    assert lo <= -(2**60) - 1 and hi >= 2**53 + 1  # exact integer comparisons
    assert interval_of(lambda g: g.get_attr("c"), {"c": torch.tensor([True])}) == (1.0, 1.0)
    complex_ = {"c": torch.tensor([1 + 2j])}
    assert interval_of(lambda g: g.get_attr("c"), complex_) == unbounded
    module = {"m": torch.nn.ReLU()}
    assert interval_of(lambda g: g.call_module("m", (g.placeholder("x"),)), module) == unbounded


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


@pytest.mark.parametrize(
    ("op", "low", "high"),
    [
        (aten.relu.default, 0.25, 1.0),
        (aten.abs.default, 0.25, 1.0),
        (aten.neg.default, -1.0, -0.25),
        (aten.sigmoid.default, _sigmoid(0.25), _sigmoid(1.0)),
        (aten.exp.default, math.exp(0.25), math.e),
        (aten.tanh.default, math.tanh(0.25), math.tanh(1.0)),
    ],
)
def test_unary_maps(op, low: float, high: float) -> None:
    """Exact maps give the image; exp/sigmoid/tanh their image widened by 2⁻¹⁶ at most."""
    lo, hi = interval_of(lambda g: call(g, op, g.placeholder("x")))
    assert lo <= low <= lo + 2.0**-15 * abs(low)
    assert hi - 2.0**-15 * abs(high) <= high <= hi


def test_ops_without_a_lemma_give_no_bound() -> None:
    unbounded = (-math.inf, math.inf)
    assert interval_of(lambda g: call(g, aten.gelu.default, g.placeholder("x"))) == unbounded
    div_floor = lambda g: g.call_function(  # noqa: E731
        aten.div.Tensor_mode, (g.placeholder("x"), 2.0), {"rounding_mode": "floor"}
    )
    assert interval_of(div_floor) == unbounded


def test_an_unknown_keyword_or_a_missing_argument_gives_no_bound() -> None:
    unbounded = (-math.inf, math.inf)
    odd = lambda g: g.call_function(aten.relu.default, (g.placeholder("x"),), {"beta": 2})  # noqa: E731
    assert interval_of(odd) == unbounded
    twice = lambda g: g.call_function(  # noqa: E731
        aten.add.Tensor, (g.placeholder("x"), 1.0, 2), {"alpha": 2}
    )
    assert interval_of(twice) == unbounded
    assert interval_of(lambda g: call(g, aten.clone.default)) == unbounded
    assert interval_of(lambda g: call(g, aten.relu.default)) == unbounded


def test_alpha_as_keyword_and_positional_agree() -> None:
    keyword = lambda g: g.call_function(  # noqa: E731
        aten.sub.Tensor, (g.placeholder("x"), 0.5), {"alpha": -2}
    )
    positional = lambda g: call(g, aten.sub.Tensor, g.placeholder("x"), 0.5, -2)  # noqa: E731
    assert interval_of(keyword) == interval_of(positional) == (1.25, 2.0)
    rsub = lambda g: call(g, aten.rsub.Scalar, g.placeholder("x"), 1.0, 2)  # noqa: E731
    assert interval_of(rsub) == (-1.0, 0.5)  # 1 − 2x
    symbolic = lambda g: call(g, aten.add.Tensor, g.placeholder("x"), 1.0, "alpha")  # noqa: E731
    assert interval_of(symbolic) == (-math.inf, math.inf)


def test_a_non_float_value_has_no_bound() -> None:
    def build(g):
        node = call(g, aten.relu.default, g.placeholder("x"))
        node.meta["val"] = torch.empty(1, dtype=torch.float16)  # rounds coarser than float32
        return node

    assert interval_of(build) == (-math.inf, math.inf)


def test_rectifier_of_a_negative_input_is_zero() -> None:
    def build(g):
        return call(g, aten.relu.default, call(g, aten.neg.default, g.placeholder("x")))

    assert interval_of(build) == (0.0, 0.0)


def test_clamps_are_their_corners() -> None:
    x = "x"
    assert interval_of(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.5, 0.75)) == (
        0.5,
        0.75,
    )
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.5)) == 0.5
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), None, 0.75)) == 0.25
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.125, 0.75)) == 0.25
    assert bound(lambda g: call(g, aten.clamp_min.default, g.placeholder(x), 0.75)) == 0.75
    assert bound(lambda g: call(g, aten.hardtanh.default, g.placeholder(x), 0.5, 2.0)) == 0.5
    assert interval_of(lambda g: call(g, aten.hardtanh.default, g.placeholder(x))) == (0.25, 1.0)
    assert interval_of(lambda g: call(g, aten.clamp.default, g.placeholder(x))) == (0.25, 1.0)
    # min > max: every element becomes max
    assert interval_of(lambda g: call(g, aten.clamp.default, g.placeholder(x), 2.0, -1.0)) == (
        -1.0,
        -1.0,
    )
    low = down(0.1)  # a float32 clamp writes float32(0.1), which may lie below 0.1
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.1)) == 0.25
    assert bound(lambda g: call(g, aten.clamp.default, g.placeholder(x), 0.1, 0.1)) == low


def test_copies_keep_the_bound_and_getitem_only_of_known_tuples() -> None:
    assert bound(lambda g: call(g, aten.pixel_shuffle.default, g.placeholder("x"), 2)) == 0.25
    assert bound(lambda g: call(g, operator.getitem, g.placeholder("x"), 0)) == -math.inf

    def piece(g):
        return call(g, operator.getitem, call(g, aten.split.Tensor, g.placeholder("x"), 1), 1)

    assert bound(piece) == 0.25


def test_leaky_rectifiers_of_either_sign() -> None:
    def leaky(source, slope=0.125):
        return lambda g: call(g, aten.leaky_relu.default, source(g), slope)

    assert interval_of(leaky(lambda g: g.placeholder("x"))) == (0.25, 1.0)
    relu_of_neg = leaky(
        lambda g: call(g, aten.relu.default, call(g, aten.neg.default, g.placeholder("x")))
    )
    assert interval_of(relu_of_neg) == (0.0, 0.0)
    negative = leaky(lambda g: call(g, aten.neg.default, g.placeholder("x")))
    assert interval_of(negative) == (-0.125, -0.03125)
    flipped = leaky(lambda g: call(g, aten.neg.default, g.placeholder("x")), -2.0)
    assert interval_of(flipped) == (0.5, 2.0)


def test_prelu_of_a_signed_input() -> None:
    def build(g):
        shifted = call(g, aten.add.Tensor, g.placeholder("x"), -0.5)  # [−0.25, 0.5]
        return call(g, aten.prelu.default, shifted, g.get_attr("a"))

    assert interval_of(build, {"a": torch.tensor([0.25, -2.0])}) == (-0.0625, 0.5)


def test_constant_padding_adds_its_value() -> None:
    x = "x"
    pads = [1, 1, 1, 1]
    assert bound(lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), pads)) == 0.0
    built = lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), pads, -0.5)  # noqa: E731
    assert bound(built) == -0.5
    built = lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), pads, 0.5)  # noqa: E731
    assert bound(built) == 0.25
    crop = lambda g: call(g, aten.constant_pad_nd.default, g.placeholder(x), [-1, 0], -9.0)  # noqa: E731
    assert bound(crop) == 0.25  # a crop writes no value
    built = lambda g: call(g, aten.pad.default, g.placeholder(x), pads, "constant", -0.5)  # noqa: E731
    assert bound(built) == -0.5
    built = lambda g: call(g, aten.pad.default, g.placeholder(x), pads, "reflect")  # noqa: E731
    assert bound(built) == 0.25


def test_sums_products_and_concatenations() -> None:
    def two(op, second):
        return lambda g: call(g, op, g.placeholder("x"), second(g))

    constant = {"c": torch.full((1, 3, 1, 1), 0.5)}
    assert interval_of(two(aten.add.Tensor, lambda g: g.get_attr("c")), constant) == (0.75, 1.5)
    assert bound(two(aten.add.Tensor, lambda g: 2.0)) == 2.25
    assert interval_of(two(aten.mul.Tensor, lambda g: g.get_attr("c")), constant) == (0.125, 0.5)
    assert interval_of(two(aten.sub.Tensor, lambda g: g.get_attr("c")), constant) == (-0.25, 0.5)
    assert interval_of(two(aten.div.Tensor, lambda g: 0.5)) == (0.5, 2.0)
    assert interval_of(two(aten.div.Tensor, lambda g: g.placeholder("y"))) == (0.25, 4.0)
    mixed = {"c": torch.tensor([-1.0, 1.0])}
    assert bound(two(aten.div.Tensor, lambda g: g.get_attr("c")), mixed) == -math.inf  # 0 ∈ c
    negative = {"c": torch.full((1, 3, 1, 1), -0.5)}
    assert interval_of(two(aten.mul.Tensor, lambda g: g.get_attr("c")), negative) == (-0.5, -0.125)
    cat = lambda g: call(g, aten.cat.default, [g.placeholder("x"), g.get_attr("c")], 1)  # noqa: E731
    assert bound(cat, constant) == 0.25
    assert bound(cat, {"c": torch.full((1, 3, 1, 1), 0.1)}) == pytest.approx(0.1)
    assert interval_of(cat, {"c": torch.zeros(0)}) == (0.25, 1.0)  # an empty piece adds nothing


@pytest.mark.parametrize(
    ("weight", "bias", "low", "high"),
    [
        (torch.tensor([[[[0.0, 1.0]]]]), None, 0.25, 1.0),  # zeros count as non-negative
        (torch.tensor([[[[0.5, 1.0]]]]), torch.tensor([0.0]), 0.375, 1.5),
        (torch.tensor([[[[0.5, 1.0]]]]), torch.tensor([-0.5]), -0.125, 1.0),
        (torch.tensor([[[[-0.5, 1.0]]]]), None, -0.25, 0.875),
    ],
)
def test_a_conv_splits_its_weights_by_sign(weight, bias, low: float, high: float) -> None:
    """Lower corner: x = 0.25 under positive taps, 1 under negative ones; within Lemma S's
    slack (n + 3)·2⁻²³·T, T = Σ|w|·1 + |b|."""
    constants = {"w": weight} | ({"b": bias} if bias is not None else {})

    def build(g):
        b = g.get_attr("b") if bias is not None else None
        return call(g, aten.conv2d.default, g.placeholder("x"), g.get_attr("w"), b)

    lo, hi = interval_of(build, constants)
    slack = 5 * 2.0**-23 * 2.0
    assert low - slack <= lo <= low
    assert high <= hi <= high + slack


def test_a_padded_conv_reads_zeros_too() -> None:
    def build(g):
        x = g.placeholder("x")
        return call(g, aten.conv2d.default, x, g.get_attr("w"), None, [1, 1], [1, 1])

    lo, hi = interval_of(build, {"w": torch.ones(1, 1, 3, 3)})
    assert lo == 0.0  # the sign lemma: every term ≥ 0
    assert 9.0 <= hi <= 9.0 + 12 * 2.0**-23 * 9 + 2.0**-19  # one float32 ulp of 9: up()


def test_a_conv_of_a_negative_input_is_bounded_by_the_corner() -> None:
    def build(g):
        x = call(g, aten.neg.default, g.placeholder("x"))
        return call(g, aten.conv2d.default, x, g.get_attr("w"), None)

    lo, hi = interval_of(build, {"w": torch.ones(1, 1, 1, 2)})
    assert -2.0 - 5 * 2.0**-23 * 2 <= lo <= -2.0
    assert hi == 0.0 or -0.5 <= hi <= 0.0  # every term ≤ 0: the sign lemma


def test_a_product_of_non_negative_factors_bounded_by_exactly_zero() -> None:
    """0 is non-negative: a product with a factor in [0, 0] is exactly 0."""

    def zero(x):
        return call(x.graph, aten.relu.default, call(x.graph, aten.neg.default, x))

    def product(first, second):
        def build(g):
            x = g.placeholder("x")
            return call(g, aten.mul.Tensor, first(x), second(x))

        return build

    def same(x):
        return x

    assert interval_of(product(zero, same)) == (0.0, 0.0)
    assert interval_of(product(same, zero)) == (0.0, 0.0)
    assert interval_of(product(zero, zero)) == (0.0, 0.0)


def test_a_non_negative_conv_of_an_input_bounded_by_exactly_zero_is_zero() -> None:
    def build(g):
        zero = call(g, aten.relu.default, call(g, aten.neg.default, g.placeholder("x")))
        return call(g, aten.conv2d.default, zero, g.get_attr("w"), None)

    assert interval_of(build, {"w": torch.ones(1, 1, 1, 2)}) == (0.0, 0.0)


def test_pools_means_and_upsampling() -> None:
    x = "x"
    avg = lambda g: call(g, aten.avg_pool2d.default, g.placeholder(x), [2, 2])  # noqa: E731
    lo, hi = interval_of(avg)
    assert 0.25 - 2.0**-20 <= lo <= 0.25 and 1.0 <= hi <= 1.0 + 2.0**-20
    padded = lambda g: call(g, aten.avg_pool2d.default, g.placeholder(x), [3, 3], [1, 1], [1, 1])  # noqa: E731
    assert bound(padded) == 0.0  # zeros counted in the divisor
    override = lambda g: g.call_function(  # noqa: E731
        aten.avg_pool2d.default, (g.placeholder(x), [2, 2]), {"divisor_override": 2}
    )
    lo, hi = interval_of(override)
    assert 0.5 - 2.0**-18 <= lo <= 0.5 and 2.0 <= hi <= 2.0 + 2.0**-18  # 4 terms / 2
    dilated = lambda g: call(  # noqa: E731
        g, aten.max_pool2d.default, g.placeholder(x), [2, 2], [1, 1], [1, 1], [2, 2]
    )
    assert interval_of(dilated) == (-math.inf, 1.0)
    plain = lambda g: call(g, aten.max_pool2d.default, g.placeholder(x), [3, 3], [1, 1], [1, 1])  # noqa: E731
    assert interval_of(plain) == (0.25, 1.0)
    mean = lambda g: call(g, aten.mean.dim, g.placeholder(x), [2, 3])  # noqa: E731
    assert interval_of(mean) == (0.0, math.inf)  # no captured shape: the sign lemma only
    cast = lambda g: g.call_function(  # noqa: E731
        aten.mean.dim, (g.placeholder(x), [2, 3]), {"dtype": torch.float16}
    )
    assert interval_of(cast) == (-math.inf, math.inf)


@pytest.mark.parametrize(
    ("op", "args", "optional"),
    [
        (aten.add.Tensor, (0.5,), (-2,)),
        (aten.rsub.Scalar, (0.5,), (3,)),
        (aten.leaky_relu.default, (), (-0.5,)),
        (aten.hardtanh.default, (), (0.5, 0.75)),
        (aten.clamp.default, (), (None, 0.5)),
        (aten.constant_pad_nd.default, ([1, 1],), (-3.0,)),
        (aten.pad.default, ([1, 1],), ("constant", -3.0)),
        (aten.avg_pool2d.default, ([2, 2],), ([1, 1], [1, 1], True, False, -3)),
        (aten.max_pool2d.default, ([2, 2],), ([1, 1], [1, 1], [1, 1], True)),
    ],
)
def test_keywords_give_the_positional_interval(op, args, optional) -> None:
    """Arguments are bound by schema name: passed by keyword they give the same interval."""
    names = [a.name for a in op._schema.arguments][1 + len(args) : 1 + len(args) + len(optional)]
    positional = interval_of(lambda g: call(g, op, g.placeholder("x"), *args, *optional))
    keywords = interval_of(
        lambda g: g.call_function(
            op, (g.placeholder("x"), *args), dict(zip(names, optional, strict=True))
        )
    )
    assert keywords == positional
    assert positional != (-math.inf, math.inf)


def test_a_float64_limit_is_converted_to_float32() -> None:
    """clamp(x, min=c) with c a 0-dim float64 tensor and x float32 writes float32(0.7), which
    lies below 0.7: the limit's interval is rounded out before it is used."""

    def build(g):
        return g.call_function(aten.clamp.Tensor, (g.placeholder("x"),), {"min": g.get_attr("c")})

    constants = {"c": torch.tensor(0.7, dtype=torch.float64)}
    low, value = _lowest(build, torch.full((1, 1, 2, 2), 0.5), constants)
    assert value < 0.7
    assert low <= value


def test_every_lemma_names_its_ops_arguments() -> None:
    """A lemma applies only to the argument list it was proved for: each op's schema, in
    order (a lemma whose names drifted from the schema would silently never apply)."""
    for op, (names, _) in LEMMAS.items():
        assert tuple(a.name for a in op._schema.arguments) == names, op
