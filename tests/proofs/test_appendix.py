"""The appendix renderer: order, LaTeX safety (ASCII, balanced), content, case summaries,
line lengths, atomic writes, and the PDF build."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from proofs import appendix
from proofs.appendix_latex import display
from proofs.appendix_markdown import MAX_LINE
from proofs.case_summary import CaseFamily, cases_document, grouped
from proofs.contract import (
    EXHAUSTIVE,
    GENERAL_IN_PART,
    Counterexample,
    Derivation,
    ProofFailure,
    ProofResult,
    Step,
)
from proofs.latex_text import latex_math, latex_text

NASTY = "σ² ≥ γ·β → μ₁ ≤ ε × 2 − 1 ≠ √x, ⊛ ∑ 50% & $5 #1 a_b ^ ~ {x} \\ ‘q’ … ⟨W⟩ ℝ α Α ₀ ⁻ 𝔽"


def _result(rule: str, kind: str = "theorem", **overrides: object) -> ProofResult:
    fields: dict[str, object] = {
        "rule": rule,
        "title": f"Title of {rule} with σ and {{braces}}",
        "statement": f"Statement of {rule}: {NASTY} and `code_span[σ]`",
        "preconditions": [f"condition A of {rule} (γ ≥ 0)", f"condition B of {rule}"],
        "steps": [
            Step("definition step", r"y_o = b_o + \langle W_o, x \rangle", kind="prose"),
            Step("identity with unicode in latex", r"\sigma^2 ≥ 0 → γ·β"),
            Step("grid case k=1 s=1", kind="case"),
            Step("grid case k=1 s=2", kind="case"),
            Step("grid case k=3 s=1", kind="case"),
            Step("conformance: et.x computes W·t", kind="check"),
        ],
        "scope": "general, plus an exhaustive check of 3 cases up to 3×3",
        "counterexamples": [
            Counterexample(f"condition A of {rule} (γ ≥ 0)", "γ = −1 flips the sign", "-1", "1"),
            Counterexample(f"condition B of {rule}", "it only names the module"),
        ],
        "reach": GENERAL_IN_PART,
        "reach_detail": "the per-channel identity",
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


def test_order_is_r_then_e_then_g_numerically_then_corollaries() -> None:
    order = [r.rule for r in appendix.ordered([*RESULTS, _result("G12"), _result("G2")])]
    assert order == [
        "R1",
        "R2",
        "R10",
        "E2",
        "E10",
        "G2",
        "G12",
        "C-ETDS",
        "C-ABPN",
        "C-ECBSR",
    ]


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
    assert latex_text(text) == expected


def test_latex_math_keeps_commands_apart_from_letters() -> None:
    assert latex_math("σx") == r"\sigma x"
    assert latex_math("x²") == "x^{2}"


def test_unknown_characters_become_ascii_not_errors() -> None:
    rendered = latex_text("𝔽 ☃")
    assert rendered.isascii()
    assert "U+2603" in rendered  # the snowman has no LaTeX spelling: it is named


def test_latex_document_is_ascii_balanced_and_uses_theorems() -> None:
    tex = appendix.render_latex(RESULTS, missing=["R99"])
    assert tex.isascii()
    assert _environments_balanced(tex)
    assert _braces_balanced(tex)
    assert tex.startswith(r"\documentclass")
    assert tex.rstrip().endswith(r"\end{document}")
    for package in ("amsmath", "amssymb", "amsthm"):
        assert rf"\usepackage{{{package}}}" in tex
    assert tex.count(r"\begin{statement}{Theorem ") == 5
    assert tex.count(r"\begin{statement}{Corollary ") == 3
    assert tex.count(r"\begin{proof}") == 8
    assert r"\item[(H1)] condition A of R1" in tex  # preconditions are the hypotheses
    assert "R99" in tex


def test_malformed_step_formula_is_shown_verbatim() -> None:
    assert (
        display(r"\frac{a}{b") == r"\begin{quote}\texttt{\textbackslash{}frac\{a\}\{b}\end{quote}"
    )
    broken = _result("R3", steps=[Step("unbalanced", r"\frac{a}{b"), Step("stray", r"a}b{")])
    tex = appendix.render_latex([broken])
    assert _environments_balanced(tex)
    assert _braces_balanced(tex)


def test_markdown_has_every_section_and_its_parts() -> None:
    md = appendix.render_markdown(RESULTS)
    for result in RESULTS:
        word = "Corollary" if result.kind == "corollary" else "Theorem"
        assert f"## {word} {result.rule}: {result.title}" in md
    assert md.count("**Reach: general in part: the per-channel identity.**") == len(RESULTS)
    assert "- (H1) condition A of R1 (γ ≥ 0)" in md
    assert "- (H1) γ = −1 flips the sign; the two sides differ:" in md
    assert "  -1 \\neq 1" in md  # the counterexample's two sides, displayed as math
    assert "- (H2) none known: it only names the module" in md
    assert "*Prose (not checked).* definition step" in md
    assert "*Sympy.* identity with unicode in latex" in md
    assert "*Computed.* conformance: et.x computes W·t" in md
    assert (
        "grid case k s: exhaustive over 3 cases (of 4 combinations): k ∈ {1, 3}; s ∈ {1, 2}." in md
    )
    # prose is not counted among the checked steps
    assert "1 identity, 3 exhaustive cases, 1 computed check checked; 1 step in prose" in md


def test_markdown_lines_stay_short_with_long_claims_and_formulas() -> None:
    long = _result(
        "R6",
        statement="word " * 120,
        steps=[Step("claim " * 80, " + ".join(f"x_{{{i}}}" for i in range(200)))],
    )
    md = appendix.render_markdown([long])
    assert max(len(line) for line in md.splitlines()) <= MAX_LINE


def test_a_precondition_without_any_entry_is_reported() -> None:
    bare = _result("R5", counterexamples=[])
    md = appendix.render_markdown([bare])
    assert md.count("no counterexample recorded.") == 2


def test_counterexample_for_an_unlisted_condition_is_still_shown() -> None:
    extra = Counterexample("a condition not in the list", "shown anyway", "1", "2")
    md = appendix.render_markdown([_result("R5", counterexamples=[extra])])
    assert "*a condition not in the list* shown anyway" in md


def test_failed_step_is_marked() -> None:
    failed = _result("R4", steps=[Step("bad step", "", verified=False)])
    assert "**Did not check.** bad step" in appendix.render_markdown([failed])
    assert r"\textbf{Did not check.} bad step" in appendix.render_latex([failed])


def test_case_families_are_summarised_where_they_first_appear() -> None:
    steps = [Step("definition", "y = x", kind="prose")]
    for k in (1, 3):
        steps += [Step(f"grid case k={k}", kind="case"), Step(f"gcd({k}, 1) blocks", kind="case")]
    steps += [Step("grid case k=5", kind="case"), Step("conformance: ok", kind="check")]
    items = grouped(steps)
    assert [type(item).__name__ for item in items] == ["Step", "CaseFamily", "CaseFamily", "Step"]
    grid, blocks = items[1], items[2]
    assert isinstance(grid, CaseFamily) and isinstance(blocks, CaseFamily)
    assert grid.summary() == "grid case k: exhaustive over 3 cases: k ∈ {1, 3, 5}"
    assert blocks.summary() == "gcd(n₁, n₂) blocks: exhaustive over 2 cases: n₁ ∈ {1, 3}; n₂ ∈ {1}"


def test_cases_go_to_the_json_document() -> None:
    document = cases_document(RESULTS)
    assert document["R1"] == [
        {
            "family": "grid case k s",
            "claim": f"grid case k={k} s={s}",
            "parameters": {"k": k, "s": s},
        }
        for k, s in (("1", "1"), ("1", "2"), ("3", "1"))
    ]


def test_equal_renders_what_sympy_checked_and_refuses_a_wrong_identity() -> None:
    import sympy as sp

    a, b = sp.symbols("a b")
    d = Derivation("R0", "t", "s", [])
    d.equal("square", (a + b) ** 2, a**2 + 2 * a * b + b**2)
    assert (
        d.result.steps[-1].latex
        == rf"{sp.latex((a + b) ** 2)} = {sp.latex(a**2 + 2 * a * b + b**2)}"
    )
    with pytest.raises(ProofFailure):
        d.equal("wrong", (a + b) ** 2, a**2 + b**2)


def test_reach_is_one_of_three_and_general_in_part_names_the_part() -> None:
    d = Derivation("R0", "t", "s", [])
    with pytest.raises(ValueError):
        d.reach("general-ish")
    with pytest.raises(ValueError):
        d.reach(GENERAL_IN_PART)
    d.reach(EXHAUSTIVE)
    assert d.result.reach == EXHAUSTIVE


def test_write_appendix_writes_every_file_atomically(tmp_path: Path) -> None:
    written = appendix.write_appendix(tmp_path / "out", RESULTS, pdf=False)
    names = ["appendix-cases.json", "appendix.md", "appendix.tex"]
    assert sorted(p.name for p in written) == names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
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


def require_pdflatex() -> None:
    """Skip without pdflatex locally; in CI (``CI=true``) a missing pdflatex is a failure."""
    if shutil.which("pdflatex") is not None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("pdflatex is missing in CI: .ci/run installs texlive-latex-base")
    pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base); CI runs this")


def test_nasty_unicode_compiles_with_pdflatex() -> None:
    require_pdflatex()
    compiled = appendix.compile_pdf(appendix.render_latex(RESULTS, missing=["R99"]))
    assert compiled.pdf.startswith(b"%PDF")
    assert compiled.pages >= 1


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "appendix"
OVERFULL_ALLOWANCE = 2
# 36 with the G theorems (issue 25); R16 and R17 (classifier heads) added two pages, R24 one
MAX_PAGES = 39


def test_committed_appendix_compiles_within_the_page_budget() -> None:
    """The committed ``appendix.tex`` (which ``tests/cli/test_prove.py`` shows is current)
    compiles without errors, with at most a small allowance of overfull boxes, to at most
    MAX_PAGES pages holding every theorem and corollary."""
    require_pdflatex()
    import proofs

    tex = (COMMITTED / "appendix.tex").read_text(encoding="ascii")
    for rule in proofs.discover():
        word = "Corollary" if rule.startswith("C-") else "Theorem"
        assert rf"\begin{{statement}}{{{word} {rule}}}" in tex
    compiled = appendix.compile_pdf(tex)
    assert compiled.pdf.startswith(b"%PDF")
    assert 1 <= compiled.pages <= MAX_PAGES
    assert len(compiled.overfull) <= OVERFULL_ALLOWANCE, compiled.overfull


def test_committed_markdown_renders_on_github_without_long_lines() -> None:
    md = (COMMITTED / "appendix.md").read_text(encoding="utf-8")
    assert max(len(line) for line in md.splitlines()) <= MAX_LINE
    assert md.count("$$") % 2 == 0
    assert "\\begin{statement}" not in md  # LaTeX-only environments stay in the .tex


def test_a_symbolic_counterexample_is_shown_with_numbers() -> None:
    import sympy as sp

    a, b = sp.symbols("a b")
    d = Derivation("R0", "t", "s", ["H"])
    d.counterexample("H", "a sum against a product", a + b, a * b)
    shown = d.result.counterexamples[-1]
    assert (shown.lhs, shown.rhs) == ("3", "2")  # a = 1, b = 2
    assert shown.description.endswith("evaluated at a = 1, b = 2")
    with pytest.raises(ProofFailure):
        d.counterexample("H", "equal sides", a + b, b + a)
