"""Does a new test kill these mutants? Runs one test file of the working tree against each
mutant of an earlier run (its scratch copy), the way mutmut does, before a full re-check.

    python3 mutation/try_kill.py /tmp/etds-mut-rules tests/rules/test_x_mutants.py \
        et.rules.x.x_f__mutmut_3 et.rules.x.x_f__mutmut_7
    python3 mutation/try_kill.py /tmp/etds-mut-rules tests/rules/test_x_mutants.py \
        --survivors et/rules/x.py

Prints ``killed``/``SURVIVED`` per mutant; the file must also pass on the unmutated code
(checked first). The file is copied into the scratch copy's ``mutants/`` tree (a re-check
replaces that tree's tests anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def survivors(work: Path, module: str) -> list[str]:
    """The mutants of ``module`` the run left alive (survived or no covering test)."""
    meta = json.loads((work / "mutants" / f"{module}.meta").read_text())
    return [key for key, code in meta["exit_code_by_key"].items() if code in (0, 5, 33)]


def run(work: Path, test: str, mutant: str) -> int:
    env = {
        **os.environ,
        "MUTANT_UNDER_TEST": mutant,
        "PYTHONPATH": str(HERE),
        "ETDS_HYPOTHESIS_PROFILE": "mutation",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "mutation_plugin"]
    command += ["-p", "no:cacheprovider", "-p", "no:unraisableexception", test]
    done = subprocess.run(command, cwd=work / "mutants", env=env, capture_output=True, text=True)
    return done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the run's MUTATION_WORKDIR")
    parser.add_argument("test", help="a test file of the working tree, relative to the root")
    parser.add_argument("mutants", nargs="*", help="mutant names")
    parser.add_argument("--survivors", metavar="MODULE", help="every survivor of MODULE")
    args = parser.parse_args()
    target = args.work / "mutants" / args.test
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / args.test, target)
    names = list(args.mutants) + (survivors(args.work, args.survivors) if args.survivors else [])
    if run(args.work, args.test, "") != 0:
        sys.exit(f"{args.test} fails on the unmutated code")
    for name in names:
        print(("killed  " if run(args.work, args.test, name) else "SURVIVED") + f" {name}")


if __name__ == "__main__":
    main()
