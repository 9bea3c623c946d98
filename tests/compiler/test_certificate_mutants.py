"""The certificate's JSON form: the fields a reader relies on (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import json
import math

import torch

from et.compiler import Application, Certificate, Unfolded
from et.compiler.certificate import CertificateBuilder, Check
from et.contract import get_rule


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


def test_a_canonicalisation_is_recorded_with_its_own_title_and_theorem() -> None:
    """A G-step: title and theorem from CANONICAL, no catalogue preconditions, the checked
    ones appended; node names from nodes (``.name``) or from text."""
    builder = CertificateBuilder()
    builder.applied("G7", [_Named(), "clone_2"], ("fan-out 1",))
    assert builder.applications == [
        Application(
            "G7",
            "no-op removed",
            ("pooled", "clone_2"),
            ("fan-out 1",),
            "copy/clone/contiguous/identity-slice(x) = x",
            (Check("G7", "fan-out 1", "graph", True),),
        )
    ]


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
