"""Render the appendix of theorems and proofs (Markdown and LaTeX) from :class:`ProofResult`\\ s.

One section per result: the theorems (rules R1, R2, …, then E1, E2, …) followed by the
corollaries (whole-model conversions), each with its statement, its preconditions, the
derivation steps, what the machine check covered (``result.scope``, said plainly), and for each
precondition the counterexample that shows it cannot be dropped.

The LaTeX output is plain ASCII (every non-ASCII character is mapped to a LaTeX command), so it
compiles with any standard TeX installation (``article`` + amsmath/amssymb/amsthm). Nothing here
runs a proof: :mod:`etds.cli.prove` runs them and hands the results over.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path

import sympy as sp

from et.atomic_file import atomic_path
from proofs.contract import Counterexample, ProofResult, Step

# Corollaries in the order the paper discusses the models; unknown ones follow alphabetically.
_COROLLARY_ORDER = ("C-ETDS", "C-ABPN", "C-ECBSR")
_THEOREM_PREFIX_ORDER = ("R", "E")


def rule_order(rule: str, corollary: bool = False) -> tuple[int, int, int, str]:
    """Sort key of a proof id: theorems R1…R15, then E1…E9 (numerically), then corollaries."""
    if corollary or rule.startswith("C-"):
        position = (
            _COROLLARY_ORDER.index(rule) if rule in _COROLLARY_ORDER else len(_COROLLARY_ORDER)
        )
        return (1, position, 0, rule)
    match = re.fullmatch(r"([A-Za-z]+)(\d+)", rule)
    if match is None:
        return (0, len(_THEOREM_PREFIX_ORDER), 0, rule)
    prefix, number = match.group(1).upper(), int(match.group(2))
    rank = (
        _THEOREM_PREFIX_ORDER.index(prefix)
        if prefix in _THEOREM_PREFIX_ORDER
        else len(_THEOREM_PREFIX_ORDER)
    )
    return (0, rank, number, rule)


def order_key(result: ProofResult) -> tuple[int, int, int, str]:
    return rule_order(result.rule, result.kind == "corollary")


def ordered(results: Iterable[ProofResult]) -> list[ProofResult]:
    return sorted(results, key=order_key)


def scope_kind(scope: str) -> str:
    """Classify a scope sentence: ``general``, ``general and exhaustive``, ``exhaustive``, …

    A proof's scope starts with "general" when sympy carried symbolic sizes/values, and
    mentions "exhaustive" when (also) every case of a finite grid was derived.
    """
    text = scope.strip().lower()
    if not text:
        return "not stated"
    general = text.startswith("general")
    exhaustive = "exhaustive" in text
    if general and exhaustive:
        return "general, with an exhaustive cross-check"
    if general:
        return "general"
    if exhaustive:
        return "exhaustive up to the stated bound"
    return "as stated"


def precondition_table(result: ProofResult) -> list[tuple[str, list[Counterexample]]]:
    """Each precondition with the counterexamples recorded for it (matched by exact text).

    Counterexamples naming a condition that is not among the preconditions are appended as
    their own rows, so nothing the proof recorded is hidden.
    """
    rows: list[tuple[str, list[Counterexample]]] = [
        (condition, [c for c in result.counterexamples if c.precondition == condition])
        for condition in result.preconditions
    ]
    listed = set(result.preconditions)
    extra: dict[str, list[Counterexample]] = {}
    for counterexample in result.counterexamples:
        if counterexample.precondition not in listed:
            extra.setdefault(counterexample.precondition, []).append(counterexample)
    rows.extend(extra.items())
    return rows


_GROUP_MIN = 3


_NUMBER = re.compile(r"\d+")


def _group_key(claim: str) -> str:
    """The family a formula-less step belongs to.

    ``"grid case k=(1, 1) s=2"`` → ``"grid case"`` (the words before the first parameter);
    a claim without ``=`` but with numbers → the claim with each number replaced by ``#``
    (``"W' is block diagonal with gcd(2, 1) blocks"`` → ``"… gcd(#, #) blocks"``).
    """
    if "=" in claim:
        head = claim.split("=", 1)[0]
        return head.rsplit(" ", 1)[0].rstrip(" ,:") if " " in head else ""
    return _NUMBER.sub("#", claim) if _NUMBER.search(claim) else ""


def grouped_steps(steps: Sequence[Step]) -> list[tuple[str, list[Step]]]:
    """Steps of one family ("grid case k=…") within a run of formula-less verified steps
    become one item, placed where the family first appears.

    Returns ``(family, steps)`` pairs; a family of ``""`` is a single ordinary step. Steps with
    a formula, and failed steps, end a run and are never grouped.
    """
    out: list[tuple[str, list[Step]]] = []
    run: dict[str, list[Step]] = {}

    def flush() -> None:
        for key, members in run.items():
            if len(members) >= _GROUP_MIN:
                out.append((key, members))
            else:
                out.extend(("", [member]) for member in members)
        run.clear()

    for step in steps:
        key = _group_key(step.claim) if step.verified and not step.latex else ""
        if not key:
            flush()
            out.append(("", [step]))
            continue
        run.setdefault(key, []).append(step)
    flush()
    return out


def _case_list(key: str, members: Sequence[Step]) -> str:
    if "#" in key and "=" not in members[0].claim:
        found = dict.fromkeys(", ".join(_NUMBER.findall(step.claim)) for step in members)
        values = "; ".join(f"({v})" if "," in v else v for v in found)
        template = key.replace("#", "n")
        return f"{len(members)} checks of the form “{template}”, each verified; n ∈ {{{values}}}"
    cases = "; ".join(step.claim[len(key) :].strip(" ,:") for step in members)
    return f"{key}: {len(members)} cases, each verified: {cases}"


_LEGEND = (
    f"A step marked ✓ held when the proof ran (sympy {sp.__version__}): an identity's difference "
    "simplified to 0, or a computed check (such as the float64 conformance of the code in `et/` "
    "or `reference_models/`) returned true; steps without a check are definitions. Every "
    "counterexample was checked to make the two sides really differ."
)


def _tally(passed: int, total: int) -> str:
    return f"All {total} steps held." if passed == total else f"{passed} of {total} steps held."


def _heading(result: ProofResult) -> str:
    word = "Corollary" if result.kind == "corollary" else "Theorem"
    return f"{word} {result.rule}"


# --------------------------------------------------------------------------------- Markdown


def render_markdown(results: Sequence[ProofResult], missing: Sequence[str] = ()) -> str:
    """The appendix as GitHub Markdown (math in ``$$ … $$``)."""
    items = ordered(results)
    theorems = sum(1 for r in items if r.kind != "corollary")
    lines = [
        "# Appendix: theorems and proofs",
        "",
        "Generated by `etds prove` from the sympy derivations in `proofs/`; do not edit by hand.",
        f"{theorems} theorems and {len(items) - theorems} corollaries. {_LEGEND}",
        "",
    ]
    if missing:
        lines += [f"Rules in the catalogue without a registered proof: {', '.join(missing)}.", ""]
    lines += ["## Contents", ""]
    lines += [f"- [{_heading(r)}: {r.title}](#{_anchor(r)})" for r in items]
    lines.append("")
    for result in items:
        lines += _markdown_section(result)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(result: ProofResult) -> str:
    # GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens.
    text = f"{_heading(result)}: {result.title}".lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _markdown_section(result: ProofResult) -> list[str]:
    lines = [f"## {_heading(result)}: {result.title}", "", f"**Statement.** {result.statement}", ""]
    lines += ["**Preconditions.**", ""]
    lines += [f"{i}. {c}" for i, c in enumerate(result.preconditions, 1)] or ["(none)"]
    lines += ["", "**Derivation.**", ""]
    for i, (key, members) in enumerate(grouped_steps(result.steps), 1):
        if key:
            lines.append(f"{i}. {_case_list(key, members)} ✓")
            continue
        step = members[0]
        mark = "✓" if step.verified else "✗ (did not check)"
        lines.append(f"{i}. {step.claim} {mark}")
        if step.latex:
            lines += ["", f"   $${step.latex}$$", ""]
    verified = sum(step.verified for step in result.steps)
    lines += [
        "",
        f"**Machine check ({scope_kind(result.scope)}).** {_tally(verified, len(result.steps))} "
        f"Scope: {result.scope or 'not stated'}",
        "",
        "**Dropped preconditions.**",
        "",
    ]
    for condition, counterexamples in precondition_table(result):
        if not counterexamples:
            lines.append(f"- *{condition}*: no counterexample recorded.")
        for c in counterexamples:
            lines.append(
                f"- *{condition}*: {c.description}; left side `{c.lhs}` ≠ right side `{c.rhs}`."
            )
    lines.append("")
    return lines


# ------------------------------------------------------------------------------------ LaTeX

_TEXT_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "^": r"\^{}",
    "~": r"\~{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}

# Symbols that are math in LaTeX; in text they are wrapped in \ensuremath.
_MATH_SYMBOLS = {
    "≥": r"\geq",
    "≤": r"\leq",
    "≠": r"\neq",
    "≈": r"\approx",
    "≡": r"\equiv",
    "→": r"\to",
    "←": r"\leftarrow",
    "↦": r"\mapsto",
    "⇒": r"\Rightarrow",
    "⇔": r"\Leftrightarrow",
    "↔": r"\leftrightarrow",
    "·": r"\cdot",
    "×": r"\times",
    "±": r"\pm",
    "∓": r"\mp",
    "÷": r"\div",
    "∈": r"\in",
    "∉": r"\notin",
    "⊂": r"\subset",
    "⊆": r"\subseteq",
    "∩": r"\cap",
    "∪": r"\cup",
    "∅": r"\emptyset",
    "∀": r"\forall",
    "∃": r"\exists",
    "¬": r"\neg",
    "∧": r"\wedge",
    "∨": r"\vee",
    "∞": r"\infty",
    "∑": r"\sum",
    "∏": r"\prod",
    "∫": r"\int",
    "∂": r"\partial",
    "∇": r"\nabla",
    "√": r"\surd",
    "⊛": r"\circledast",
    "⊗": r"\otimes",
    "⊕": r"\oplus",
    "⊙": r"\odot",
    "∘": r"\circ",
    "⌊": r"\lfloor",
    "⌋": r"\rfloor",
    "⌈": r"\lceil",
    "⌉": r"\rceil",
    "⟨": r"\langle",
    "⟩": r"\rangle",
    "ℝ": r"\mathbb{R}",
    "ℕ": r"\mathbb{N}",
    "ℤ": r"\mathbb{Z}",
    "⋯": r"\cdots",
    "∣": r"\mid",
    "∼": r"\sim",
    "≪": r"\ll",
    "≫": r"\gg",
    "⊤": r"\top",
    "⊥": r"\perp",
    "✓": r"\checkmark",
    "✗": r"\times",
    "≔": r"\coloneqq",
}

# Characters that have a text-mode spelling.
_TEXT_SYMBOLS = {
    "−": "-",
    "–": "--",
    "—": "---",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "′": "'",
    "″": "''",
    "…": r"\ldots{}",
    "\u00a0": "~",
    "°": r"\ensuremath{^\circ}",
    "§": r"\S{}",
}

_GREEK_CAPITALS_WITH_COMMANDS = frozenset(
    {"gamma", "delta", "theta", "lambda", "xi", "pi", "sigma", "upsilon", "phi", "psi", "omega"}
)


def _math_command(char: str) -> str | None:
    """LaTeX math spelling of ``char`` (``σ`` → ``\\sigma``, ``²`` → ``^{2}``), or None."""
    if char in _MATH_SYMBOLS:
        return _MATH_SYMBOLS[char]
    if char == "−":
        return "-"
    name = unicodedata.name(char, "")
    if name.startswith("GREEK"):
        letter = name.split()[-1].lower()
        if letter == "sigma" and "FINAL" in name:
            return r"\varsigma"
        if "SMALL" in name:
            return "o" if letter == "omicron" else rf"\{letter}"
        if letter in _GREEK_CAPITALS_WITH_COMMANDS:
            return rf"\{letter.capitalize()}"
        # Capital Alpha, Beta, … look like Latin letters.
        return unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or None
    decomposition = unicodedata.decomposition(char)
    for tag, script in (("<super>", "^"), ("<sub>", "_")):
        if decomposition.startswith(tag):
            base = chr(int(decomposition.split()[1], 16))
            inner = _math_command(base) if not base.isascii() else base
            if inner is not None:
                return f"{script}{{{inner}}}"
    return None


def _unicode_to_latex(char: str, *, math: bool) -> str:
    """An ASCII LaTeX spelling of one non-ASCII character (in math or text mode)."""
    if not math and char in _TEXT_SYMBOLS:
        return _TEXT_SYMBOLS[char]
    command = _math_command(char)
    if command is not None:
        if math:
            # "\\sigma" before a letter needs a space, "^{2}" does not.
            return f"{command} " if command.startswith("\\") and command[-1].isalpha() else command
        return rf"\ensuremath{{{command}}}"
    # Accented letters and compatibility forms (é, ﬁ) reduce to ASCII; anything else is named.
    plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    if plain:
        return plain
    code = f"U+{ord(char):04X}"
    return code if math else rf"\texttt{{[{code}]}}"


def latex_text(text: str) -> str:
    """Escape plain text for LaTeX text mode; ```code``` spans become ``\\texttt``."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            out.append(rf"\texttt{{{_escape_text(part[1:-1])}}}")
        else:
            out.append(_escape_text(part))
    return "".join(out)


def _escape_text(text: str) -> str:
    out = []
    for char in text:
        if char in _TEXT_SPECIALS:
            out.append(_TEXT_SPECIALS[char])
        elif char.isascii():
            out.append(char)
        else:
            out.append(_unicode_to_latex(char, math=False))
    return "".join(out)


def latex_math(source: str) -> str:
    """Make a proof's LaTeX formula ASCII (Unicode symbols → commands) for display math."""
    return "".join(c if c.isascii() else _unicode_to_latex(c, math=True) for c in source)


def _balanced(source: str) -> bool:
    depth = 0
    escaped = False
    for char in source:
        if escaped:
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    begins = re.findall(r"\\begin\{(\w+\*?)\}", source)
    ends = re.findall(r"\\end\{(\w+\*?)\}", source)
    left = len(re.findall(r"\\left\b", source))
    right = len(re.findall(r"\\right\b", source))
    return depth == 0 and begins == ends[::-1] and left == right


def _display(source: str) -> str:
    """A display-math block for a step's formula; unbalanced input is shown verbatim instead."""
    formula = latex_math(source).strip()
    if not _balanced(formula) or "$" in formula:
        # A malformed formula must not break the document: print its source instead.
        return rf"\begin{{quote}}\texttt{{{_escape_text(source)}}}\end{{quote}}"
    if "&" in formula and r"\begin" not in formula:
        formula = rf"\begin{{aligned}}{formula}\end{{aligned}}"
    return rf"\[ {formula} \]"


_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage{amsmath}
\usepackage{amssymb}
\usepackage{amsthm}
\theoremstyle{plain}
\newtheorem{theorem}{Theorem}
\newtheorem{corollary}{Corollary}
\newcommand{\coloneqq}{\mathrel{\mathop:}=}
\sloppy
\title{Appendix: theorems and proofs}
\author{Generated by \texttt{etds prove}}
\date{}
\begin{document}
\maketitle
"""


def render_latex(results: Sequence[ProofResult], missing: Sequence[str] = ()) -> str:
    """The appendix as a standalone LaTeX document (ASCII only)."""
    items = ordered(results)
    theorems = sum(1 for r in items if r.kind != "corollary")
    body = [
        _PREAMBLE,
        latex_text(
            "Generated by `etds prove` from the sympy derivations in `proofs/`; do not edit by "
            f"hand. {theorems} theorems and {len(items) - theorems} corollaries. {_LEGEND}"
        ),
        "",
    ]
    if missing:
        body += [
            latex_text(f"Rules in the catalogue without a registered proof: {', '.join(missing)}."),
            "",
        ]
    body.append(r"\tableofcontents")
    for result in items:
        body += _latex_section(result)
    body.append(r"\end{document}")
    text = "\n".join(body) + "\n"
    assert text.isascii(), "the LaTeX renderer left a non-ASCII character"
    return text


def _latex_section(result: ProofResult) -> list[str]:
    env = "corollary" if result.kind == "corollary" else "theorem"
    lines = [
        "",
        rf"\section*{{{latex_text(_heading(result))}: {latex_text(result.title)}}}",
        rf"\addcontentsline{{toc}}{{section}}{{{latex_text(_heading(result))}: "
        rf"{latex_text(result.title)}}}",
        rf"\begin{{{env}}}[{latex_text(result.rule)}]",
        latex_text(result.statement),
        r"\end{" + env + "}",
        "",
        r"\paragraph{Preconditions.}",
    ]
    if result.preconditions:
        lines.append(r"\begin{enumerate}")
        lines += [rf"\item {latex_text(c)}" for c in result.preconditions]
        lines.append(r"\end{enumerate}")
    else:
        lines.append("None.")
    lines.append(r"\begin{proof}")
    if result.steps:
        lines.append(r"\begin{enumerate}")
        for key, members in grouped_steps(result.steps):
            if key:
                lines.append(rf"\item {latex_text(_case_list(key, members))} \hfill $\checkmark$")
                continue
            step = members[0]
            mark = r"$\checkmark$" if step.verified else r"$\times$ (did not check)"
            lines.append(rf"\item {latex_text(step.claim)} \hfill {mark}")
            if step.latex:
                lines.append(_display(step.latex))
        lines.append(r"\end{enumerate}")
    verified = sum(step.verified for step in result.steps)
    lines += [
        rf"\textbf{{Machine check ({latex_text(scope_kind(result.scope))}).}} "
        + latex_text(
            f"{_tally(verified, len(result.steps))} Scope: {result.scope or 'not stated'}"
        ),
        r"\end{proof}",
        r"\paragraph{Dropped preconditions.}",
        r"\begin{itemize}",
    ]
    rows = precondition_table(result)
    for condition, counterexamples in rows:
        if not counterexamples:
            lines.append(rf"\item \emph{{{latex_text(condition)}}}: no counterexample recorded.")
        for c in counterexamples:
            lines.append(
                rf"\item \emph{{{latex_text(condition)}}}: {latex_text(c.description)}; "
                rf"left side \texttt{{{_escape_text(c.lhs)}}} "
                rf"$\neq$ right side \texttt{{{_escape_text(c.rhs)}}}."
            )
    if not rows:
        lines.append(r"\item None.")
    lines.append(r"\end{itemize}")
    return lines


# ------------------------------------------------------------------------------------ files


class AppendixError(RuntimeError):
    """The appendix could not be produced (e.g. the LaTeX did not compile)."""


def compile_pdf(tex: str, timeout: float = 120.0) -> bytes:
    """Compile ``tex`` with ``pdflatex`` (two passes for the contents) and return the PDF."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        raise AppendixError("pdflatex is not on PATH")
    with tempfile.TemporaryDirectory(prefix="etds-appendix-") as workdir:
        source = Path(workdir) / "appendix.tex"
        source.write_text(tex, encoding="utf-8")
        for _ in range(2):
            done = subprocess.run(
                [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "appendix.tex"],
                cwd=workdir,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                errors = [line for line in done.stdout.splitlines() if line.startswith("!")]
                raise AppendixError(
                    "pdflatex failed: " + ("; ".join(errors[:3]) or done.stdout[-400:])
                )
        return (Path(workdir) / "appendix.pdf").read_bytes()


def write_appendix(
    out_dir: Path,
    results: Sequence[ProofResult],
    *,
    missing: Sequence[str] = (),
    pdf: bool = True,
) -> list[Path]:
    """Write ``appendix.md``, ``appendix.tex`` (and ``appendix.pdf`` when asked and
    ``pdflatex`` exists) into ``out_dir``; return the paths written.

    Everything is rendered (and compiled) first, then every file is written to a temporary
    name in ``out_dir`` before the first is moved into place
    (:func:`et.atomic_file.atomic_path`), so a failure leaves the old appendix
    untouched.
    """
    contents: dict[str, bytes] = {
        "appendix.md": render_markdown(results, missing).encode("utf-8"),
        "appendix.tex": render_latex(results, missing).encode("ascii"),
    }
    if pdf and shutil.which("pdflatex") is not None:
        contents["appendix.pdf"] = compile_pdf(contents["appendix.tex"].decode("ascii"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as staged:
        for name, data in contents.items():
            staged.enter_context(atomic_path(out_dir / name)).write_bytes(data)
    return [out_dir / name for name in contents]
