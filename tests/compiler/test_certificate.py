"""The certificate claims what ran: each application lists the preconditions evaluated at its
site, where (graph or the rule's own transform) and with what outcome, never the catalogue's
list; G6 is recorded where it applies (issue 25)."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import et
import proofs
from et.compiler import Application, Certificate, Unfolded
from et.compiler.certificate import CertificateBuilder, Check
from et.contract import PreconditionError, get_rule, observe_preconditions
from et.rules import clip_as_relu as e2
from et.rules import global_average_pool as g11
from et.rules import merge_dual_stream as e5


def test_observed_preconditions_are_the_evaluated_ones_with_their_outcome() -> None:
    """Nested observers each see every evaluation inside them; a refusal is seen as False."""
    with observe_preconditions() as outer:
        e2.BOUND.require(True, "")
        with observe_preconditions() as inner, pytest.raises(PreconditionError):
            e2.IS_CONV.require(False, "not a conv")
        e2.BOUND.require(True, "")
    assert inner == [(e2.IS_CONV, False)]
    assert outer == [(e2.BOUND, True), (e2.IS_CONV, False), (e2.BOUND, True)]
    e2.BOUND.require(True, "")  # outside any block: nobody records it
    assert len(outer) == 3


def test_observed_checks_are_transform_checks_each_once() -> None:
    checks = CertificateBuilder.observed([(e2.BOUND, True), (e2.IS_CONV, True), (e2.BOUND, True)])
    assert checks == (
        Check("E2", str(e2.BOUND), "transform", True),
        Check("E2", str(e2.IS_CONV), "transform", True),
    )


def test_the_json_writes_each_check_with_where_it_ran_and_its_outcome() -> None:
    builder = CertificateBuilder()
    ran = Check("E2", str(e2.BOUND), "transform", True)
    builder.applied("E2", ["conv", "clamp"], (ran, "fan-out 1"))
    certificate = et.compiler.Certificate("export", (0.0, 1.0), builder.applications)
    (application,) = json.loads(certificate.to_json())["applications"]
    assert application["preconditions"] == [str(e2.BOUND), "fan-out 1"]
    assert application["checks"] == [
        {"rule": "E2", "precondition": str(e2.BOUND), "checked": "transform", "holds": True},
        {"rule": "E2", "precondition": "fan-out 1", "checked": "graph", "holds": True},
    ]


class Streams(nn.Module):
    """``relu(conv₁(x))`` and ``relu(conv₂(x))`` read the same input, then meet in a product."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(6, 6, 3, padding=1, groups=groups)
        self.second = nn.Conv2d(6, 6, 3, padding=1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.first(x)) * torch.relu(self.second(x))


def _compile(model: nn.Module, channels: int = 6) -> et.compiler.Compiled:
    torch.manual_seed(0)
    return et.compile(model.eval(), (torch.rand(1, channels, 6, 6),))


def test_two_relu_streams_cite_e5_with_the_checks_its_transform_ran() -> None:
    torch.manual_seed(1)
    compiled = _compile(Streams(groups=1))
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "E5"]
    ran = {c.precondition for c in applied.checks if c.checked == "transform" and c.holds}
    # merge_dual_stream_first checks geometry, groups and channels; merge_activations the ReLUs
    assert {str(e5.SHARED_GEOMETRY), str(e5.SINGLE_GROUP), str(e5.CHANNELS)} <= ran
    assert str(e5.SAME_ACTIVATION) in ran
    assert all(c.rule == "E5" for c in applied.checks)


def test_grouped_relu_streams_are_stacked_by_r11_and_their_relus_by_g6() -> None:
    """E5 needs groups = 1: grouped streams are stacked by R11 (dense), and the one ReLU on the
    stacked channels read back as slices is G6, recorded on both ReLUs."""
    torch.manual_seed(2)
    compiled = _compile(Streams(groups=3))
    used = compiled.certificate.rules_used()
    assert "E5" not in used
    assert used.get("R11") == 1 and used.get("G6") == 1
    (g6,) = [a for a in compiled.certificate.applications if a.rule == "G6"]
    assert len(g6.nodes) == 2


def test_e2_claims_no_catalogue_precondition_that_was_not_evaluated() -> None:
    class Clipped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.clamp(self.conv(x), 0.0, 1.0)

    torch.manual_seed(3)
    compiled = _compile(Clipped(), channels=3)
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "E2"]
    assert str(e2.ISOLATED) not in applied.preconditions  # a graph fact, checked as fan-out
    assert str(e2.BOUND) in applied.preconditions


# The certificate's JSON form: the fields a reader relies on (kill tests of the mutation pass;
# ``mutation/survivors.txt`` names each one).


def _certificate() -> Certificate:
    return Certificate(
        capture="torch.export (eval mode, static shapes)",
        domain=(0.0, math.inf),
        applications=[
            Application("R3", "merge", ("a", "b", "add"), ("fan-out 1",), "a + b = c"),
            Application("R3", "merge", ("c", "d", "add_1"), (), "a + b = c"),
            Application("G1", "pad", ("pad",), (), "p + q"),
        ],
        unfolded=[Unfolded("relu", "aten.relu.default", "E4", "x ≥ 0", "")],
        max_error={"float64": 0.0, "float32": 1e-7},
        convs_before=3,
        convs_after=1,
    )


def test_json_counts_each_rule_under_rules_used() -> None:
    data = json.loads(_certificate().to_json())
    assert data["rules_used"] == {"R3": 2, "G1": 1}
    assert data["domain"] == [0.0, math.inf]
    assert data["unfolded"][0]["rule"] == "E4"


def test_json_is_indented_by_two_spaces_per_level() -> None:
    lines = _certificate().to_json().splitlines()
    assert lines[0] == "{"
    assert lines[1] == '  "capture": "torch.export (eval mode, static shapes)",'
    nested = next(line for line in lines if '"rule": "R3"' in line)
    assert nested.startswith('      "rule"')  # object → list → object: three levels


def test_json_writes_a_value_json_cannot_encode_as_its_text() -> None:
    # e.g. a tensor left in max_error by a caller: written as its str, never an exception
    certificate = _certificate()
    certificate.max_error = {"float64": torch.tensor(0.5)}
    data = json.loads(certificate.to_json())
    assert data["max_error"]["float64"] == str(torch.tensor(0.5))


class _Named:
    """A refused thing that is no graph node: it has a name but no target."""

    name = "pooled"

    def __str__(self) -> str:
        return "a pooling stage"


def test_a_refusal_of_something_without_a_target_names_it_by_its_text() -> None:
    builder = CertificateBuilder()
    builder.refused(_Named(), "R3", "fan-out 1", "read twice")
    assert builder.unfolded({"pooled"}) == [
        Unfolded("pooled", "a pooling stage", "R3", "fan-out 1", "read twice")
    ]


def test_json_writes_an_infinite_bound_as_infinity() -> None:
    text = _certificate().to_json()
    assert '"domain": [\n    0.0,\n    Infinity\n  ]' in text


def test_a_graph_rule_is_recorded_with_its_catalogue_title_and_theorem() -> None:
    """A G-step is a catalogue rule like any other: title and theorem from the registry, the
    checked preconditions appended; node names from nodes (``.name``) or from text."""
    rule = get_rule("G7")
    builder = CertificateBuilder()
    builder.applied("G7", [_Named(), "clone_2"], ("fan-out 1",))
    assert builder.applications == [
        Application(
            "G7",
            rule.title,
            ("pooled", "clone_2"),
            ("fan-out 1",),
            rule.statement,
            (Check("G7", "fan-out 1", "graph", True),),
        )
    ]
    assert (rule.title, rule.name) == ("No-op removed", "remove_no_op")


def test_an_id_that_is_no_catalogue_rule_cannot_be_recorded() -> None:
    """No string table of theorems stands in for a rule: an unknown id (the former "G10", an
    output clamp, which is the caller's specification) is refused."""
    builder = CertificateBuilder()
    with pytest.raises(KeyError, match="unknown rule 'G10'"):
        builder.applied("G10", ["clamp"])
    assert builder.applications == []


def test_a_catalogue_rule_is_recorded_with_the_checks_that_ran_only() -> None:
    """Title and theorem from the catalogue; the preconditions are the ones evaluated at the
    site (a transform check as passed, a graph text as a graph check), never the catalogue's
    list; a check passed twice is recorded once."""
    rule = get_rule("R1")
    ran = Check("R1", str(rule.preconditions[0]), "transform", True)
    builder = CertificateBuilder()
    builder.applied("R1", [_Named()], (ran, "checked on the graph", ran))
    (application,) = builder.applications
    assert application == Application(
        "R1",
        rule.title,
        ("pooled",),
        (str(rule.preconditions[0]), "checked on the graph"),
        rule.statement,
        (ran, Check("R1", "checked on the graph", "graph", True)),
    )


def test_an_application_clears_the_refusals_of_its_nodes_only() -> None:
    """A rewrite of a node clears every earlier refusal of that node (under any rule) and
    leaves the refusals of other nodes."""
    builder = CertificateBuilder()
    builder.refused(_Named(), "R3", "fan-out 1")
    builder.refused(_Named(), "E4", "x ≥ 0")
    other = _Named()
    other.name = "R3"  # a node whose name equals a rule id: still another node
    builder.refused(other, "G1", "zero padding")
    builder.applied("G1", [_Named()])
    assert [(u.node, u.rule) for u in builder.unfolded({"pooled", "R3"})] == [("R3", "G1")]


# --- every id the compiler can record is a proved catalogue rule ---------------------------

_ID = re.compile(r"[REG]\d+")
COMPILER = Path(et.compiler.__file__).parent


def _compiler_rule_keys() -> tuple[set[str], set[str]]:
    """``(ids, names)``: every string literal in ``et/compiler/*.py`` that is a rule id (the
    ids passed to ``record.applied`` / ``refused``, ``Rewrite``, ``replace_conv``, checks...),
    and the first argument of every ``.apply("…")`` call (rules run by id or name)."""
    ids, names = set(), set()
    for path in sorted(COMPILER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            literal = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if literal and _ID.fullmatch(node.value):
                ids.add(node.value)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "apply"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value)
    return ids, names


def test_every_rule_id_the_compiler_can_record_is_a_registered_rule_with_a_proof() -> None:
    """So that no unproved id comes back: each id written in the compiler's code, each rule it
    runs by name, and each registered rewrite's rule is a catalogue rule whose proof module is
    the registered proof of that id (every registered proof is run by tests/proofs)."""
    from et.compiler.patterns import REGISTRY

    registered = proofs.discover()
    ids, names = _compiler_rule_keys()
    ids |= {rewrite.rule for rewrite in REGISTRY}
    assert {"G2", "G7", "G9", "G11", "G15", "G16"} <= ids  # the scan sees the graph rules
    assert "G10" not in ids  # the output clamp is no rule
    for key in sorted(ids | names):
        rule = get_rule(key)
        assert rule.id in registered, f"{key}: no registered proof"
        assert registered[rule.id].module == rule.proof, (key, rule.proof)


@pytest.mark.parametrize("rule_id", ["G1", "G2", "G7", "G9", "G11", "G15", "G16"])
def test_the_proof_of_each_graph_rule_the_compiler_records_passes(rule_id: str) -> None:
    """The ids that used to be a string table (and the two new ones) are proved: their proofs
    run and every step checks (the other rules' proofs run in tests/proofs)."""
    result = proofs.discover()[rule_id].run()
    assert result.ok and result.rule == rule_id


class _WholeImagePool(nn.Module):
    """``avg_pool2d(conv(x), x.shape[2:])``: the window written as the input's own size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(self.conv(x), list(x.shape[2:]))


def test_a_pool_over_the_input_size_traced_as_the_mean_lists_g11_checks_that_ran() -> None:
    """The mean is taken while tracing; G11's own check then runs on the window and the image
    at the example (transform checks), beside the trace's symbolic fact (graph check)."""
    torch.manual_seed(4)
    compiled = et.compile(_WholeImagePool().double().eval(), (torch.rand(1, 3, 6, 5),))
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "G11"]
    ran = [c.precondition for c in applied.checks if c.checked == "transform" and c.holds]
    assert {g11.WINDOW_IS_IMAGE, g11.NO_PADDING, g11.DIVISOR} <= set(ran)
    graph = [c.precondition for c in applied.checks if c.checked == "graph"]
    assert graph == ["the window is written as the input's own size"]
