"""The appendix renderer: order, LaTeX safety (ASCII, balanced), content, atomic writes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from proofs import appendix
from proofs.contract import Counterexample, ProofResult, Step

NASTY = "σ² ≥ γ·β → μ₁ ≤ ε × 2 − 1 ≠ √x, ⊛ ∑ 50% & $5 #1 a_b ^ ~ {x} \\ ‘q’ … ⟨W⟩ ℝ α Α ₀ ⁻ 𝔽"


def _result(rule: str, kind: str = "theorem", **overrides: object) -> ProofResult:
    fields: dict[str, object] = {
        "rule": rule,
        "title": f"Title of {rule} with σ and {{braces}}",
        "statement": f"Statement of {rule}: {NASTY} and `code_span[σ]`",
        "preconditions": [f"condition A of {rule} (γ ≥ 0)", f"condition B of {rule}"],
        "steps": [
            Step("definition step", r"y_o = b_o + \langle W_o, x \rangle"),
            Step("identity with unicode in latex", r"\sigma^2 ≥ 0 → γ·β"),
            Step("grid case k=1 s=1"),
            Step("grid case k=1 s=2"),
            Step("grid case k=3 s=1"),
            Step("conformance: et.x computes W·t"),
        ],
        "scope": "general, plus an exhaustive check of 3 cases up to 3×3",
        "counterexamples": [
            Counterexample(f"condition A of {rule} (γ ≥ 0)", "γ = −1 flips the sign", "-x", "x")
        ],
        "kind": kind,
    }
    fields.update(overrides)
    return ProofResult(**fields)  # type: ignore[arg-type]


RESULTS = [
    _result("E2"),
    _result("C-ABPN", "corollary"),
    _result("R10"),
    _result("C-ETDS", "corollary"),
    _result("R2"),
    _result("C-ECBSR", "corollary"),
    _result("E10"),
    _result("R1"),
]


def _environments_balanced(tex: str) -> bool:
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", tex):
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def _braces_balanced(tex: str) -> bool:
    depth = 0
    for match in re.finditer(r"\\.|[{}]", tex, flags=re.S):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def test_order_is_r_then_e_numerically_then_corollaries() -> None:
    order = [r.rule for r in appendix.ordered(RESULTS)]
    assert order == ["R1", "R2", "R10", "E2", "E10", "C-ETDS", "C-ABPN", "C-ECBSR"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("σ", r"\ensuremath{\sigma}"),
        ("Σ", r"\ensuremath{\Sigma}"),
        ("≥", r"\ensuremath{\geq}"),
        ("→", r"\ensuremath{\to}"),
        ("·", r"\ensuremath{\cdot}"),
        ("²", r"\ensuremath{^{2}}"),
        ("μ₁", r"\ensuremath{\mu}\ensuremath{_{1}}"),
        ("a_b", r"a\_b"),
        ("50%", r"50\%"),
        ("{x}", r"\{x\}"),
        ("−1", "-1"),
        ("`w_0`", r"\texttt{w\_0}"),
    ],
)
def test_latex_text_maps_unicode_and_specials(text: str, expected: str) -> None:
    assert appendix.latex_text(text) == expected


def test_latex_math_keeps_commands_apart_from_letters() -> None:
    assert appendix.latex_math("σx") == r"\sigma x"
    assert appendix.latex_math("x²") == "x^{2}"


def test_unknown_characters_become_ascii_not_errors() -> None:
    rendered = appendix.latex_text("𝔽 ☃")
    assert rendered.isascii()
    assert "U+2603" in rendered  # the snowman has no LaTeX spelling: it is named


def test_latex_document_is_ascii_and_balanced() -> None:
    tex = appendix.render_latex(RESULTS, missing=["R99"])
    assert tex.isascii()
    assert _environments_balanced(tex)
    assert _braces_balanced(tex)
    assert tex.startswith(r"\documentclass")
    assert tex.rstrip().endswith(r"\end{document}")
    for package in ("amsmath", "amssymb", "amsthm"):
        assert rf"\usepackage{{{package}}}" in tex
    assert tex.count(r"\begin{theorem}") == 5
    assert tex.count(r"\begin{corollary}") == 3
    assert "R99" in tex


def test_malformed_step_formula_is_shown_verbatim() -> None:
    broken = _result("R3", steps=[Step("unbalanced", r"\frac{a}{b"), Step("stray", r"a}b{")])
    tex = appendix.render_latex([broken])
    assert _environments_balanced(tex)
    assert _braces_balanced(tex)
    assert r"\texttt{\textbackslash{}frac\{a\}\{b}" in tex


def test_markdown_has_every_section_and_its_parts() -> None:
    md = appendix.render_markdown(RESULTS)
    for result in RESULTS:
        word = "Corollary" if result.kind == "corollary" else "Theorem"
        assert f"## {word} {result.rule}: {result.title}" in md
        assert result.statement in md
    assert md.count("**Machine check (general, with an exhaustive cross-check).**") == len(RESULTS)
    assert "γ = −1 flips the sign; left side `-x` ≠ right side `x`" in md
    # the precondition without a counterexample is said to have none, not silently skipped
    assert md.count("*condition B of R1*: no counterexample recorded.") == 1
    # a family of formula-less steps is grouped into one item listing its cases
    assert "grid case: 3 cases, each verified: k=1 s=1; k=1 s=2; k=3 s=1 ✓" in md


def test_counterexample_for_an_unlisted_condition_is_still_shown() -> None:
    extra = Counterexample("a condition not in the list", "shown anyway", "1", "2")
    md = appendix.render_markdown([_result("R5", counterexamples=[extra])])
    assert "*a condition not in the list*: shown anyway" in md


def test_failed_step_is_marked() -> None:
    failed = _result("R4", steps=[Step("bad step", "", verified=False)])
    assert "bad step ✗ (did not check)" in appendix.render_markdown([failed])
    assert r"bad step \hfill $\times$ (did not check)" in appendix.render_latex([failed])


@pytest.mark.parametrize(
    ("scope", "kind"),
    [
        ("general (any geometry)", "general"),
        ("general, plus an exhaustive check of 4 cases", "general, with an exhaustive cross-check"),
        ("exhaustive over kernels up to 3×3", "exhaustive up to the stated bound"),
        ("", "not stated"),
        ("sampled", "as stated"),
    ],
)
def test_scope_is_classified_plainly(scope: str, kind: str) -> None:
    assert appendix.scope_kind(scope) == kind


def test_write_appendix_writes_both_files_atomically(tmp_path: Path) -> None:
    written = appendix.write_appendix(tmp_path / "out", RESULTS, pdf=False)
    assert sorted(p.name for p in written) == ["appendix.md", "appendix.tex"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["appendix.md", "appendix.tex"]
    assert (tmp_path / "out" / "appendix.tex").read_text(encoding="ascii").startswith("\\document")


def test_a_failed_pdf_build_leaves_the_old_appendix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "appendix.md").write_text("old", encoding="utf-8")

    def fail(tex: str, timeout: float = 0) -> bytes:
        raise appendix.AppendixError("pdflatex failed: ! Undefined control sequence.")

    monkeypatch.setattr(appendix, "compile_pdf", fail)
    monkeypatch.setattr(appendix.shutil, "which", lambda name: "/usr/bin/" + name)
    with pytest.raises(appendix.AppendixError):
        appendix.write_appendix(tmp_path, RESULTS, pdf=True)
    assert [p.name for p in tmp_path.iterdir()] == ["appendix.md"]
    assert (tmp_path / "appendix.md").read_text(encoding="utf-8") == "old"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_nasty_unicode_compiles_with_pdflatex() -> None:
    pdf = appendix.compile_pdf(appendix.render_latex(RESULTS, missing=["R99"]))
    assert pdf.startswith(b"%PDF")


def test_interleaved_step_families_are_grouped_where_they_first_appear() -> None:
    steps = [Step("definition", "y = x")]
    for k in (1, 3):
        steps += [Step(f"grid case k={k}"), Step(f"blocks of gcd({k}, 1)")]
    steps += [Step("grid case k=5"), Step("blocks of gcd(5, 1)"), Step("conformance: ok")]
    items = appendix.grouped_steps(steps)
    assert [(key, len(members)) for key, members in items] == [
        ("", 1),
        ("grid case", 3),
        ("blocks of gcd(#, #)", 3),
        ("", 1),
    ]
    assert items[-1][1][0].claim == "conformance: ok"
    text = appendix._case_list(*items[2])
    assert text.endswith("n ∈ {(1, 1); (3, 1); (5, 1)}")
