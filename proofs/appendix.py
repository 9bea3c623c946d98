"""Write the appendix of theorems and proofs: Markdown, LaTeX (and its PDF), and the cases.

The content comes from :mod:`proofs.appendix_content`, the two formats from
:mod:`proofs.appendix_markdown` and :mod:`proofs.appendix_latex`, the exhaustive cases from
:mod:`proofs.case_summary`. Nothing here runs a proof: :mod:`etds.cli.prove` runs them and hands
the results over.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from et.atomic_file import atomic_path
from proofs.appendix_content import order_key, ordered, rule_order
from proofs.appendix_latex import render_latex
from proofs.appendix_markdown import render_markdown
from proofs.case_summary import cases_document
from proofs.contract import ProofResult

FILES = ("appendix.md", "appendix.tex", "appendix-cases.json")


class AppendixError(RuntimeError):
    """The appendix could not be produced (e.g. the LaTeX did not compile)."""


@dataclass(frozen=True)
class CompiledPdf:
    """A compiled appendix: the PDF and what pdflatex reported."""

    pdf: bytes
    log: str

    @property
    def pages(self) -> int:
        match = re.search(r"Output written on \S+ \((\d+) pages?", self.log)
        return int(match.group(1)) if match else 0

    @property
    def overfull(self) -> list[str]:
        """pdflatex's ``Overfull \\hbox``/``\\vbox`` warnings (text wider than the page)."""
        return re.findall(r"^Overfull .*$", self.log, flags=re.M)


def compile_pdf(tex: str, timeout: float = 120.0) -> CompiledPdf:
    """Compile ``tex`` with ``pdflatex`` (two passes for the contents)."""
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
        log = (Path(workdir) / "appendix.log").read_text(encoding="utf-8", errors="replace")
        return CompiledPdf((Path(workdir) / "appendix.pdf").read_bytes(), log)


def _cases_json(document: dict[str, object]) -> str:
    """JSON with one case per line (the list is long; one line each keeps it greppable)."""
    rules = []
    for rule, cases in document.items():
        lines = ",\n".join(f"  {json.dumps(case, ensure_ascii=False)}" for case in cases)  # type: ignore[attr-defined]
        rules.append(f"{json.dumps(rule)}: [\n{lines}\n ]" if lines else f"{json.dumps(rule)}: []")
    return "{\n " + ",\n ".join(rules) + "\n}"


def render_files(results: Sequence[ProofResult], missing: Sequence[str] = ()) -> dict[str, bytes]:
    """The bytes of ``appendix.md``, ``appendix.tex`` and ``appendix-cases.json``."""
    cases = _cases_json(cases_document(ordered(results)))
    return {
        "appendix.md": render_markdown(results, missing).encode("utf-8"),
        "appendix.tex": render_latex(results, missing).encode("ascii"),
        "appendix-cases.json": (cases + "\n").encode("utf-8"),
    }


def write_appendix(
    out_dir: Path,
    results: Sequence[ProofResult],
    *,
    missing: Sequence[str] = (),
    pdf: bool = True,
) -> list[Path]:
    """Write ``appendix.md``, ``appendix.tex``, ``appendix-cases.json`` (and ``appendix.pdf``
    when asked and ``pdflatex`` exists) into ``out_dir``; return the paths written.

    Everything is rendered (and compiled) first, then every file is written to a temporary
    name in ``out_dir`` before the first is moved into place
    (:func:`et.atomic_file.atomic_path`), so a failure leaves the old appendix
    untouched.
    """
    contents = render_files(results, missing)
    if pdf and shutil.which("pdflatex") is not None:
        contents["appendix.pdf"] = compile_pdf(contents["appendix.tex"].decode("ascii")).pdf
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as staged:
        for name, data in contents.items():
            staged.enter_context(atomic_path(out_dir / name)).write_bytes(data)
    return [out_dir / name for name in contents]


__all__ = [
    "FILES",
    "AppendixError",
    "CompiledPdf",
    "compile_pdf",
    "order_key",
    "ordered",
    "render_files",
    "render_latex",
    "render_markdown",
    "rule_order",
    "write_appendix",
]
