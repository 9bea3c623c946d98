"""Plain text and formulas as ASCII LaTeX: every non-ASCII character becomes a LaTeX command.

:func:`latex_text` escapes prose for text mode (```code``` spans become ``\\texttt``),
:func:`latex_math` makes a formula ASCII for math mode, and :func:`balanced` tells whether a
formula's braces, environments and ``\\left``/``\\right`` pairs match, so that a malformed
formula can be shown verbatim instead of breaking the document.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

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
            out.append(rf"\texttt{{{escape_text(part[1:-1])}}}")
        else:
            out.append(escape_text(part))
    return "".join(out)


# Combining accents (x̃, x̄, x̂, ẋ) become math accents on the letter before them.
_ACCENTS = {"\u0303": "tilde", "\u0304": "bar", "\u0305": "bar", "\u0302": "hat", "\u0307": "dot"}
_ACCENTED = re.compile("([A-Za-z])([" + "".join(_ACCENTS) + "])")


def _accented(text: str, escape: Callable[[str], str], *, math: bool) -> str:
    """``escape`` the text between accented letters; each accented letter becomes a command."""
    parts = _ACCENTED.split(text)  # [plain, letter, accent, plain, letter, accent, …, plain]
    out = [escape(parts[0])]
    for i in range(1, len(parts), 3):
        command = rf"\{_ACCENTS[parts[i + 1]]}{{{parts[i]}}}"
        out += [command if math else rf"\ensuremath{{{command}}}", escape(parts[i + 2])]
    return "".join(out)


def escape_text(text: str) -> str:
    """Escape ``text`` for LaTeX text mode."""
    return _accented(text, _escape_plain, math=False)


def _escape_plain(text: str) -> str:
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
    return _accented(source, _math_plain, math=True)


def _math_plain(source: str) -> str:
    return "".join(c if c.isascii() else _unicode_to_latex(c, math=True) for c in source)


def balanced(source: str) -> bool:
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
