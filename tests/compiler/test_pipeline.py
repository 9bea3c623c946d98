"""Small pipeline steps on hand-built graphs and tiny models: parameter-only sub-graphs
folded into constants (G9), the sole-consumer conv lookup, and what :func:`et.compile` checks
and records (kill tests of the mutation pass; ``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn

import et
from et.compiler import VerificationError
from et.compiler.capture import CaptureError
from et.compiler.fold_constants import fold_constants
from et.compiler.helpers import FAN_OUT, replace_conv, sole_conv
from et.compiler.pipeline import op_counts
from et.rules.evaluate_constant_subgraph import CONSTANT_INPUTS, DETERMINISTIC, HAS_SCHEMA
from et.rules.evaluate_constant_subgraph import RULE as G9
from tests.compiler.graphs import aten, call, workspace

C = {"c": torch.tensor([1.0, 2.0, 3.0])}


def test_a_parameter_only_chain_becomes_one_constant_where_it_was_read() -> None:
    """(c · 2) + 1 depends on the constant c only: it is evaluated once into a constant placed
    where the op was (after the input), the count of replaced nodes is returned, and G9 is
    recorded on the node that was replaced."""

    def build(g):
        x = g.placeholder("x")
        folded = call(g, aten.add.Tensor, call(g, aten.mul.Tensor, g.get_attr("c"), 2.0), 1.0)
        return call(g, aten.add.Tensor, x, folded)

    ws, out = workspace(build, C)
    replaced = out.args[1].name
    assert fold_constants(ws) == 1
    assert [n.op for n in ws.graph.nodes] == ["placeholder", "get_attr", "call_function", "output"]
    constant = out.args[1]
    assert constant.op == "get_attr" and constant.target == "et_const_0"
    assert torch.equal(ws.tensor(constant), torch.tensor([3.0, 5.0, 7.0]))
    (application,) = ws.record.applications
    assert (application.rule, application.nodes) == ("G9", (replaced,))
    # the graph fact the pass established, then every check G9's own code ran, each once
    assert [(c.precondition, c.checked) for c in application.checks] == [
        (str(CONSTANT_INPUTS), "graph"),
        *[(str(p), "transform") for p in G9.preconditions[:5]],
    ]


def test_each_folded_value_read_by_the_input_path_is_counted() -> None:
    def build(g):
        x = g.placeholder("x")
        a = call(g, aten.neg.default, g.get_attr("c"))
        b = call(g, aten.exp.default, g.get_attr("c"))
        return call(g, aten.add.Tensor, call(g, aten.mul.Tensor, x, a), b)

    ws, out = workspace(build, C)
    names = (out.args[0].args[1].name, out.args[1].name)
    assert fold_constants(ws) == 2
    assert ws.record.applications[0].nodes == names
    module = ws.finish()
    x = torch.tensor([0.5, -1.0, 2.0])
    assert torch.allclose(module(x), -x * C["c"] + C["c"].exp())


def test_nothing_to_fold_records_nothing() -> None:
    ws, _ = workspace(lambda g: call(g, aten.relu.default, g.placeholder("x")))
    assert fold_constants(ws) == 0
    assert ws.record.applications == []


def test_a_python_function_is_not_folded_and_the_certificate_says_why() -> None:
    """G9 reads an op's schema: a Python function has none (it may read or change anything),
    so it is left with the precondition that stopped it, whatever its name."""

    def doubled(t: torch.Tensor) -> torch.Tensor:
        return t * 2

    def build(g):
        return call(g, aten.add.Tensor, g.placeholder("x"), call(g, doubled, g.get_attr("c")))

    ws, out = workspace(build, C)
    assert fold_constants(ws) == 0
    (refusal,) = ws.record.unfolded({out.args[1].name})
    assert (refusal.rule, refusal.precondition) == ("G9", str(HAS_SCHEMA))


@pytest.mark.parametrize(
    ("op", "args"),
    [
        (aten.bernoulli.default, ()),
        (aten.bernoulli.p, (0.5,)),
        (aten.randn_like.default, ()),
        (aten.normal.Tensor_float, ()),
        (aten.dropout.default, (0.5, True)),
    ],
    ids=["bernoulli(p)", "bernoulli(c, 0.5)", "randn_like", "normal", "dropout in train"],
)
def test_a_random_op_on_a_parameter_is_not_folded(op, args) -> None:
    """``torch.bernoulli(p_param)`` or ``torch.randn_like(param)`` in ``forward`` draws anew at
    every call: refused by its ``nondeterministic_seeded`` tag, and what reads it stays too."""

    def build(g):
        noise = call(g, op, g.get_attr("p"), *args)
        return call(g, aten.add.Tensor, g.placeholder("x"), call(g, aten.neg.default, noise))

    ws, out = workspace(build, {"p": torch.full((3,), 0.5)})
    assert fold_constants(ws) == 0
    noise = out.args[1].args[0]
    assert noise.target is op
    (refusal,) = ws.record.unfolded({noise.name})
    assert (refusal.rule, refusal.precondition) == ("G9", str(DETERMINISTIC))
    assert ws.record.applications == []


def test_an_op_reading_the_input_is_not_evaluated() -> None:
    """The theorem's hypothesis: every tensor read is a constant (x + c is no constant)."""

    def build(g):
        return call(g, aten.add.Tensor, g.placeholder("x"), g.get_attr("c"))

    ws, _ = workspace(build, C)
    assert fold_constants(ws) == 0
    assert ws.record.applications == [] and ws.record.unfolded({"add"}) == []


class _Sampler:
    """A callable without ``__name__`` (named by its text in op counts)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t + 1

    def __str__(self) -> str:
        return self.text


def test_ops_after_a_random_one_are_still_folded() -> None:
    def build(g):
        x = g.placeholder("x")
        noisy = call(g, aten.add.Tensor, x, call(g, aten.randn.default, [3]))
        return call(g, aten.add.Tensor, noisy, call(g, aten.neg.default, g.get_attr("c")))

    ws, out = workspace(build, C)
    assert fold_constants(ws) == 1
    assert torch.equal(ws.tensor(out.args[1]), -C["c"])


def test_keyword_arguments_are_passed_when_folding() -> None:
    def build(g):
        c = g.get_attr("c")
        scaled = g.call_function(aten.add.Tensor, (c, c), {"alpha": 2.0})
        return call(g, aten.add.Tensor, g.placeholder("x"), scaled)

    ws, out = workspace(build, C)
    assert fold_constants(ws) == 1
    assert torch.equal(ws.tensor(out.args[1]), 3 * C["c"])


def test_a_tuple_valued_op_is_not_a_constant_but_its_items_are() -> None:
    """max over a dimension gives (values, indices): the tuple is no tensor and is not
    written as a constant; its first item, read by the input path, is."""

    def build(g):
        pair = call(g, aten.max.dim, g.get_attr("c"), 0, True)
        return call(g, aten.add.Tensor, g.placeholder("x"), call(g, operator.getitem, pair, 0))

    ws, out = workspace(build, C)
    assert fold_constants(ws) == 1
    assert torch.equal(ws.tensor(out.args[1]), torch.tensor([3.0]))


def test_sole_conv_needs_a_conv_read_by_that_user_only() -> None:
    weight = {"w": torch.ones(3, 3, 1, 1)}

    def conv(g):
        return call(g, aten.conv2d.default, g.placeholder("x"), g.get_attr("w"), None)

    def fan_out(g):
        y = conv(g)
        return call(g, aten.add.Tensor, y, call(g, aten.relu.default, y))

    ws, out = workspace(fan_out, weight)
    y, relu = out.args
    assert sole_conv(ws, y, relu) is None  # the conv also feeds the add
    assert sole_conv(ws, relu, out) is None  # not a conv
    ws, relu = workspace(lambda g: call(g, aten.relu.default, conv(g)), weight)
    site = sole_conv(ws, relu.args[0], relu)
    assert site.node is relu.args[0] and site.conv.out_channels == 3


def test_replace_conv_records_the_rule_on_the_nodes_with_the_checked_conditions() -> None:
    def build(g):
        return call(g, aten.relu.default, g.placeholder("x"))

    ws, relu = workspace(build)
    x = relu.args[0]
    assert replace_conv(ws, relu, nn.Conv2d(3, 3, 1), x, "G7", [relu], ("checked",)) is True
    (application,) = ws.record.applications
    assert (application.rule, application.nodes, application.preconditions) == (
        "G7",
        (relu.name,),
        ("checked",),
    )
    assert [n.target for n in ws.graph.nodes if n.op == "call_function"] == [aten.conv2d.default]


def test_compile_records_the_domain_and_the_output_clamp() -> None:
    """The certificate carries the declared domain and output clamp; float32 rounding is
    measured in float32 (a non-zero error for a real conv)."""
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 3, padding=1).double()
    compiled = et.compile(
        model,
        (torch.rand(1, 3, 5, 5, dtype=torch.float64),),
        domain=(0.25, 1.0),
        output_clamp=(0.0, 1.0),
    )
    certificate = compiled.certificate
    assert certificate.capture == "torch.export (eval mode, dynamic batch and spatial sizes)"
    assert certificate.domain == (0.25, 1.0)
    assert certificate.output_clamp == (0.0, 1.0)
    assert set(certificate.max_error) == {"float64", "float32"}
    assert 1e-9 < certificate.max_error["float32"] < 1e-5  # float32 rounding, ε ≈ 6e-8


def test_compile_returns_the_model_dtype() -> None:
    torch.manual_seed(0)
    compiled = et.compile(nn.Conv2d(3, 2, 1), (torch.rand(1, 3, 4, 4),))
    assert {t.dtype for t in compiled.module.state_dict().values()} == {torch.float32}


@pytest.mark.parametrize(
    "example", [(torch.rand(3, 4, 4),), (torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))]
)
def test_compile_takes_one_nchw_example(example) -> None:
    with pytest.raises(ValueError, match=r"^example_inputs must be one NCHW tensor, as a 1-tuple$"):
        et.compile(nn.Conv2d(3, 2, 1), example)


class BatchScale(nn.Module):
    """Scales each image by its mean, reshaped with the batch size: a static capture runs at
    the example's batch only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * x.mean(dim=(1, 2, 3)).reshape(x.shape[0], 1, 1, 1)


def test_compile_falls_back_to_a_dynamic_capture() -> None:
    torch.manual_seed(0)
    compiled = et.compile(BatchScale().double(), (torch.rand(1, 3, 4, 4, dtype=torch.float64),))
    assert "dynamic" in compiled.certificate.capture


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 3)),
        nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1)),
    ],
)
def test_rewrites_that_erase_later_nodes_reach_one_conv(model) -> None:
    """R2 erases the conv after the BN (a later node in the pass): the pass skips it and
    reaches one conv."""
    torch.manual_seed(0)
    model = model.double().eval()
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
    compiled = et.compile(model, (torch.rand(1, 3, 6, 6, dtype=torch.float64),))
    assert et.compiler.count_convs(compiled.module) == 1


def test_op_counts_counts_calls_by_name() -> None:
    """Calls only (no inputs, constants or output), by ``__name__``, else by their text."""

    def build(g):
        x = g.placeholder("x")
        y = call(g, aten.relu.default, call(g, aten.relu.default, x))
        return call(g, aten.add.Tensor, y, g.get_attr("c"))

    ws, out = workspace(build, C)
    sampler = _Sampler("plus one")
    with ws.graph.inserting_before(out):
        sampled = ws.graph.create_node("call_function", sampler, (out.args[1],), name="sampled")
    out.update_arg(1, sampled)
    assert op_counts(ws.module) == {"add.Tensor": 1, "plus one": 1, "relu.default": 2}


class Fork(nn.Module):
    """y = conv₁(x); conv₂(y) + conv₃(y): the sum merges first (R3), and only then does y
    feed one conv, so the merge with conv₁ needs a second pass."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2, self.c3 = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        return self.c2(y) + self.c3(y)


def test_rewrites_run_until_nothing_changes() -> None:
    torch.manual_seed(0)
    compiled = et.compile(Fork().double(), (torch.rand(1, 3, 6, 6, dtype=torch.float64),))
    assert et.compiler.count_convs(compiled.module) == 1


class WidthScaled(nn.Module):
    """Scales by the width as a Python number: a static capture bakes the example's width in
    (off by 1/5 at the other size), so only the dynamic capture is correct."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * x.shape[-1]


def test_a_static_capture_off_by_a_fifth_is_rejected_by_the_default_tolerance() -> None:
    torch.manual_seed(0)
    model = WidthScaled().double()
    compiled = et.compile(model, (torch.rand(1, 3, 5, 5, dtype=torch.float64),))
    assert "dynamic" in compiled.certificate.capture
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64)
    assert torch.allclose(compiled.module(x), model(x), rtol=1e-12, atol=0)


class BufferOnly(nn.Module):
    """No parameters, one float32 buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor([0.5, 2.0, 4.0]).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_a_model_without_parameters_compiles_to_float32() -> None:
    compiled = et.compile(BufferOnly(), (torch.rand(1, 3, 4, 4),))
    assert {t.dtype for t in compiled.module.state_dict().values()} == {torch.float32}


def test_compile_leaves_the_model_untouched() -> None:
    """The model is copied deeply: its sub-modules keep their dtype, values and mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3)).train()
    weight = model[0].weight.detach().clone()
    et.compile(model, (torch.rand(1, 3, 5, 5),))
    assert model[0].weight.dtype == torch.float32
    assert torch.equal(model[0].weight.detach(), weight)
    assert model.training and model[0].training


class DataDependent(nn.Module):
    """Runs eagerly, but branches on a value: no export can capture it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if bool(x.sum() > 0) else x


def test_a_module_no_capture_succeeds_on_raises_the_capture_error() -> None:
    with pytest.raises(CaptureError, match=r"^could not capture the module: eval/dynamic: "):
        et.compile(DataDependent(), (torch.rand(1, 3, 4, 4),))


class Noisy(nn.Module):
    """Adds fresh noise on every call: no compiled form can match it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)


def test_a_module_no_compiled_form_matches_raises_the_verification_error() -> None:
    with pytest.raises(VerificationError, match=r"^compiled module differs from the original"):
        et.compile(Noisy(), (torch.rand(1, 3, 4, 4),))


class Mixed(nn.Module):
    """c₃(c₂(y)) + tanh(y) with y = c₁(x): c₂ and c₃ (both 1×1) merge; c₁ feeds c₂ and the
    tanh, so it stays."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2, self.c3 = nn.Conv2d(4, 5, 1), nn.Conv2d(5, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        return self.c3(self.c2(y)) + torch.tanh(y)


def test_the_certificate_counts_convs_and_ops_and_lists_steps_and_refusals() -> None:
    torch.manual_seed(0)
    compiled = et.compile(Mixed().double(), (torch.rand(1, 3, 5, 5, dtype=torch.float64),))
    certificate = compiled.certificate
    assert (certificate.convs_before, certificate.convs_after) == (3, 2)
    assert certificate.ops_after == {"add.Tensor": 1, "conv2d.default": 2, "tanh.default": 1}
    (application,) = certificate.applications
    assert len(application.nodes) == 2
    assert any(u.precondition == FAN_OUT for u in certificate.unfolded)


def test_an_exact_compiled_form_passes_a_zero_tolerance() -> None:
    """The float64 check refuses an error *above* the tolerance: an exact result (a graph of
    the same ops) passes tolerance 0, with both dtypes measured."""
    compiled = et.compile(nn.Sequential(nn.ReLU()), (torch.rand(1, 3, 4, 4),), tolerance=0.0)
    errors = compiled.certificate.max_error
    assert (errors["float64"], errors["float32"], errors["original float32"]) == (0.0, 0.0, 0.0)


def test_the_widest_kernel_reads_a_keyword_dilation() -> None:
    """``widest_kernel`` reads the conv's weight and dilation by schema name (a keyword
    dilation counts), so the verification sizes cover the dilated extent."""
    from torch import fx

    from et.compiler.pipeline import widest_kernel

    root = torch.nn.Module()
    root.register_buffer("w", torch.zeros(2, 2, 3, 3))
    graph = fx.Graph()
    x = graph.placeholder("x")
    conv = graph.call_function(
        torch.ops.aten.conv2d.default, (x, graph.get_attr("w")), {"dilation": [3, 3]}
    )
    graph.output(conv)
    assert widest_kernel(fx.GraphModule(root, graph)) == 7
