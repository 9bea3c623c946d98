"""``etds prove``: run every sympy derivation and regenerate the appendix of theorems and proofs.

Runs each registered proof (rules R1–R15, E1–E9 and the whole-model corollaries), with a tqdm
progress bar on stderr, then writes ``DIR/appendix.md``, ``DIR/appendix.tex``,
``DIR/appendix-cases.json`` (and ``DIR/appendix.pdf`` when ``pdflatex`` is on PATH), each
atomically.

``--only ID …`` checks a selection. A selection is a partial appendix, so it is written only
where ``--out DIR`` says, and never into the committed ``docs/appendix`` (refused, exit 2):
``etds prove --only R1`` in the repository root checks R1 and writes nothing.

Failure policy: if any proof fails (a :class:`~proofs.contract.ProofFailure`, or any other
exception inside a proof), nothing is written (an appendix must never show a theorem whose proof
did not check, and the previous appendix stays as it was); every failure is printed on stderr
as ``RULE: proof failed at step 'STEP': DETAIL`` and the exit status is 1. Exit status 0 means
every selected proof checked and the files were written; 2 is bad input (an unknown ``--only``
id) as for every ``etds`` command.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

NAME = "prove"
HELP = "run the sympy derivations of every rule and regenerate the appendix of proofs"
DEFAULT_OUT = Path("docs/appendix")


@dataclass
class Outcome:
    """One proof's run: its result, or where it failed; ``seconds`` of wall time."""

    rule: str
    seconds: float
    result: object | None = None  # a ProofResult when the proof checked
    step: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None and bool(self.result.ok)  # type: ignore[attr-defined]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"where appendix.md/.tex/-cases.json(/.pdf) go (default: {DEFAULT_OUT}; with "
        "--only: nowhere unless given, and never the committed appendix)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (progress: stderr)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="ID",
        help="run and render only these proofs (e.g. R1 E2 C-ETDS)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run proofs in N fresh worker processes (default 1: in this process)",
    )
    parser.add_argument(
        "--no-pdf", action="store_true", help="do not build appendix.pdf even if pdflatex exists"
    )


def run_one(rule: str) -> Outcome:
    """Run the registered proof of ``rule``, turning any failure into an :class:`Outcome`."""
    import torch

    import proofs

    # The proofs run the code on tiny tensors: one thread is fastest, and on a shared machine
    # a pool of spinning threads per proof slows everything else down.
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        result = proofs.discover()[rule].run()
    except proofs.ProofFailure as failure:
        return Outcome(rule, time.perf_counter() - start, None, failure.step, failure.detail)
    except Exception as error:  # a crash inside a proof is a failed proof, not a CLI crash
        return Outcome(
            rule, time.perf_counter() - start, None, "(uncaught error)", f"{error!r}"[:500]
        )
    seconds = time.perf_counter() - start
    if not result.ok:
        bad = next(step for step in result.steps if not step.verified)
        return Outcome(rule, seconds, None, bad.claim, "step recorded as not verified")
    return Outcome(rule, seconds, result)


def run_proofs(rules: list[str], jobs: int = 1, progress: bool = True) -> list[Outcome]:
    """Run the proofs of ``rules`` (already discovered), in order, with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(rules), desc="proofs", unit="proof", file=sys.stderr, disable=not progress)
    outcomes: list[Outcome] = []
    try:
        if jobs <= 1:
            for rule in rules:
                bar.set_postfix_str(rule)
                outcomes.append(run_one(rule))
                bar.update()
        else:
            # spawn, not fork: forking a process whose torch thread pool already ran can
            # deadlock. Each worker imports the proofs afresh (run_one discovers them).
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                for outcome in pool.map(run_one, rules):
                    outcomes.append(outcome)
                    bar.update()
    finally:
        bar.close()
    return outcomes


def _check_writable_folder(out: Path, error: type[Exception]) -> None:
    """Refuse, before minutes of proving, an ``--out`` that can never become a writable folder,
    or one where an appendix file exists but is not a regular file (a folder, a FIFO, a device).
    """
    from proofs.appendix import FILES

    existing = Path(out).absolute()
    try:
        while not existing.exists():
            existing = existing.parent
    except OSError as failure:  # a name too long for the file system, among others
        raise error(f"--out {out}: {failure.strerror}") from None
    if not existing.is_dir():
        raise error(f"--out {out}: {existing} is not a folder")
    if existing == Path(out).absolute():
        for name in (*FILES, "appendix.pdf"):
            target = existing / name
            if (target.exists() or target.is_symlink()) and not target.is_file():
                raise error(f"--out {out}: {target} exists and is not a regular file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"--out {out}: {existing} is not writable")
    probe = existing / f".etds-prove-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError as failure:
        raise error(
            f"--out {out}: cannot create folders in {existing} ({failure.strerror})"
        ) from None
    probe.rmdir()


def run(args: argparse.Namespace) -> int:
    import et
    import proofs
    from etds.cli import CommandError
    from proofs.appendix import AppendixError, rule_order, write_appendix

    start = time.perf_counter()
    try:
        registry = proofs.discover()
    except Exception as error:  # a proof module that does not import is a failed proof set
        print(f"etds prove: a proof module failed to import: {error!r}", file=sys.stderr)
        return 1
    if args.only:
        unknown = [rule for rule in args.only if rule not in registry]
        if unknown:
            known = ", ".join(sorted(registry, key=rule_order))
            raise CommandError(f"no registered proof for {', '.join(unknown)} (known: {known})")
        selected = list(dict.fromkeys(args.only))
    else:
        selected = sorted(registry, key=rule_order)
    if args.jobs < 1:
        raise CommandError("--jobs must be at least 1")
    out = _output_folder(args, CommandError)
    if out is not None:
        _check_writable_folder(out, CommandError)
    outcomes = run_proofs(selected, jobs=args.jobs)
    failures = [o for o in outcomes if not o.ok]
    catalogue = [rule.id for rule in et.list_rules()]
    missing = [] if args.only else [rule for rule in catalogue if rule not in registry]
    for failure in failures:
        print(
            f"etds prove: {failure.rule}: proof failed at step '{failure.step}': {failure.detail}",
            file=sys.stderr,
        )
    written: list[Path] = []
    if not failures and out is not None:
        results = [o.result for o in outcomes]
        try:
            written = write_appendix(out, results, missing=missing, pdf=not args.no_pdf)  # type: ignore[arg-type]
        except (AppendixError, OSError) as error:
            raise CommandError(f"could not write the appendix: {error}", 1) from error
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps(_summary(outcomes, written, missing, elapsed), indent=2))
    elif not failures:
        corollaries = sum(1 for o in outcomes if o.result.kind == "corollary")  # type: ignore[union-attr]
        print(
            f"{len(outcomes) - corollaries} theorems and {corollaries} corollaries checked in "
            f"{elapsed:.1f} s; "
            + (
                f"wrote {', '.join(str(p) for p in written)}"
                if written
                else "wrote nothing (a selection is written only where --out says)"
            )
        )
        slowest = max(outcomes, key=lambda o: o.seconds, default=None)
        if slowest is not None:
            print(f"slowest proof: {slowest.rule} ({slowest.seconds:.1f} s)")
    if missing:
        print(f"etds prove: warning: rules without a proof: {', '.join(missing)}", file=sys.stderr)
    return 1 if failures else 0


def _output_folder(args: argparse.Namespace, error: type[Exception]) -> Path | None:
    """Where the appendix goes: ``--out``, else the default folder; with ``--only``, only an
    explicit ``--out`` that is not the committed appendix (``None``: write nothing)."""
    if not args.only:
        return args.out if args.out is not None else DEFAULT_OUT
    if args.out is None:
        return None
    committed = {
        (Path.cwd() / DEFAULT_OUT).resolve(),
        (Path(__file__).resolve().parents[2] / DEFAULT_OUT).resolve(),
    }
    try:
        chosen = args.out.resolve()
    except OSError as failure:
        raise error(f"--out {args.out}: {failure.strerror}") from None
    if chosen in committed:
        raise error(
            f"--out {args.out}: --only makes a partial appendix and {DEFAULT_OUT} holds the full "
            "one; choose another folder"
        )
    return args.out


def _summary(
    outcomes: list[Outcome], written: list[Path], missing: list[str], elapsed: float
) -> dict[str, object]:
    entries = []
    for o in outcomes:
        result = o.result
        entries.append(
            {
                "id": o.rule,
                "ok": o.ok,
                "seconds": o.seconds,
                "kind": getattr(result, "kind", None),
                "title": getattr(result, "title", None),
                "steps": len(result.steps) if result is not None else None,  # type: ignore[attr-defined]
                "scope": getattr(result, "scope", None),
                "counterexamples": (
                    len(result.counterexamples) if result is not None else None  # type: ignore[attr-defined]
                ),
                "failure": None if o.ok else {"step": o.step, "detail": o.detail},
            }
        )
    return {
        "ok": all(o.ok for o in outcomes),
        "proofs": entries,
        "missing": missing,
        "files": [str(p) for p in written],
        "seconds": elapsed,
    }
