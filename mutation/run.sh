#!/usr/bin/env bash
# Mutation testing of et/ with mutmut 3, in a scratch copy of the project.
#
#   mutation/run.sh                      # every rule module of et/, 2 workers
#   LABEL=B MUTATE="et/rules/fuse_conv_bn.py et/rules/fuse_bn_conv.py" JOBS=16 TIME_LIMIT=600 mutation/run.sh
#   RECHECK=1 LABEL=B2 MUTATION_WORKDIR=/tmp/etds-mut-B mutation/run.sh
#   RECHECK=1 SKIP_UNCHECKED=1 ...       # re-run the survivors only, not the unchecked
#
# Each run writes mutation/results/$LABEL.json (report.py summarise) and then rebuilds
# mutation/REPORT.md from every results/*.json (report.py combine: per module, the latest run).
# RECHECK=1 reuses the scratch copy of an earlier run (its et/ snapshot and mutants): it copies
# the current tests/ in and re-runs only that run's surviving mutants, so new kill tests are
# checked against exactly the code the run mutated, in a fraction of the time.
#
# Why a scratch copy: mutmut 3 reads its settings from pyproject.toml [tool.mutmut] or, when
# that table is absent, from setup.cfg [mutmut], and writes a mutants/ tree beside them. The
# project's pyproject.toml has no such table, so this script writes a setup.cfg in the copy and
# leaves the working tree untouched. Tests run with the Hypothesis profile "mutation"
# (hypothesis_mutation_profile.py) and only the suites that exercise the rules: tests/rules and
# tests/proofs.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${MUTATION_WORKDIR:-${TMPDIR:-/tmp}/etds-mutation}"
JOBS="${JOBS:-2}"
LABEL="${LABEL:-$(date -u +%Y%m%dT%H%M)}"
RESULTS="${RESULTS:-$REPO/mutation/results}"
MACHINE="${MACHINE:-$(nproc) cores, $JOBS workers}"
if [[ -z "${MUTATE:-}" ]]; then
  if [[ -n "${RECHECK:-}" ]]; then
    # the modules the earlier run mutated
    MUTATE="$(sed -n '/^only_mutate =/,/^[a-z_]* =/p' "$WORK/setup.cfg" | grep '^    et/' | tr -d ' ' | tr '\n' ' ')"
  else
    # the rule modules (R1–R15, E1–E9) and the shared helpers they are built from
    MUTATE="$(cd "$REPO" && python3 -c 'import sys; sys.path.insert(0, "mutation"); import report; print(" ".join(report.rule_modules()))')"
  fi
fi
# tests/proofs/test_appendix.py renders every proof (tens of seconds per mutant) and checks
# the rendering, not the rules: left out
TESTS="${TESTS:-tests/rules tests/proofs/test_proofs.py}"

if [[ -n "${RECHECK:-}" ]]; then
  [[ -d "$WORK/mutants" ]] || { echo "RECHECK: no earlier run in $WORK" >&2; exit 2; }
  # the current tests, on the earlier run's snapshot of et/ (mutmut copies tests/ into mutants/)
  rm -rf "$WORK/tests" "$WORK/mutants/tests"
  cp -r "$REPO/tests" "$WORK/tests"
  cp -r "$REPO/tests" "$WORK/mutants/tests"
else
  rm -rf "$WORK"
  mkdir -p "$WORK"
  for path in et proofs reference_models tests pyproject.toml; do
    cp -r "$REPO/$path" "$WORK/$path"
  done
fi
find "$WORK" -name __pycache__ -prune -exec rm -rf {} +
if [[ -z "${RECHECK:-}" ]]; then
# a RECHECK keeps the earlier setup.cfg byte for byte: mutmut discards every cached verdict when
# its pytest arguments change
{
  echo "[mutmut]"
  echo "source_paths = et/"
  echo "only_mutate ="
  for f in $MUTATE; do echo "    $f"; done
  echo "also_copy ="
  echo "    proofs/"
  echo "    reference_models/"
  echo "pytest_add_cli_args_test_selection ="
  for t in $TESTS; do echo "    $t"; done
  echo "timeout_multiplier = 5.0"
  echo "pytest_add_cli_args ="
  echo "    -p"
  echo "    hypothesis_mutation_profile"
  # "-n 0": mutmut records which tests reach which function in its own process, so the
  # project's "-n auto" addopts must not hand the tests to xdist workers
  echo "    -n"
  echo "    0"
  echo "    -p"
  echo "    no:cacheprovider"
} > "$WORK/setup.cfg"
# mutmut refuses to run when pyproject.toml holds [tool.mutmut]; the project's has none, but a
# later one would win over setup.cfg, so drop the table from the copy if it appears
python3 - "$WORK/pyproject.toml" <<'PY'
import re, sys, pathlib
p = pathlib.Path(sys.argv[1]); text = p.read_text()
p.write_text(re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text))
PY
fi

export PYTHONPATH="$REPO/mutation${PYTHONPATH:+:$PYTHONPATH}"
export ETDS_HYPOTHESIS_PROFILE=mutation
# one intra-op thread per worker: the tensors are tiny and JOBS workers share the cores
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$WORK"

# mutmut stops when a selected test fails on the unmutated code; tests still being written by
# others may (and in a RECHECK, tests of behaviour added to et/ after the snapshot will), so run
# the selection once (in parallel) and deselect what fails through the plugin
# (ETDS_MUTATION_DESELECT), listing it in the report
python3 -m pytest -q -p hypothesis_mutation_profile -p no:cacheprovider -n "$JOBS" -rf \
  $TESTS > clean-run.log 2>&1 || true
grep -E '^(FAILED|ERROR) ' clean-run.log | sed -E 's/^(FAILED|ERROR) ([^ ]+).*/\2/' | sort -u > failing-tests.txt || true
export ETDS_MUTATION_DESELECT="$WORK/failing-tests.txt"
echo "clean run: $(tail -1 clean-run.log); deselected $(wc -l < failing-tests.txt) failing test(s)"

NAMES=()
if [[ -n "${RECHECK:-}" ]]; then
  # the earlier run's surviving mutants and (unless SKIP_UNCHECKED is set) those it never
  # reached, by name
  mapfile -t NAMES < <(SKIP_UNCHECKED="${SKIP_UNCHECKED:-}" python3 - $MUTATE <<'PY'
import json, os, sys, pathlib
wanted = {0, 5, 33} | (set() if os.environ["SKIP_UNCHECKED"] else {None})
for module in sys.argv[1:]:
    meta = pathlib.Path("mutants") / f"{module}.meta"
    if meta.is_file():
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code in wanted:
                print(key)
PY
)
  echo "re-running ${#NAMES[@]} mutant(s)"
  mkdir -p verdicts-before-recheck
  find mutants -name '*.meta' -exec cp --parents {} verdicts-before-recheck/ \;
  [[ ${#NAMES[@]} -gt 0 ]] || NAMES=("no-such-mutant-left")
fi
start=$(date +%s)
# TIME_LIMIT (seconds) stops the run early; mutmut records each result as it comes, and the
# report counts the rest as "unchecked"
if [[ -n "${TIME_LIMIT:-}" ]]; then
  timeout -s INT "$TIME_LIMIT" python3 -m mutmut run --max-children "$JOBS" "${NAMES[@]}" || true
else
  python3 -m mutmut run --max-children "$JOBS" "${NAMES[@]}" || true
fi
end=$(date +%s)
python3 "$REPO/mutation/report.py" summarise --work "$WORK" --label "$LABEL" \
  --seconds $((end - start)) --machine "$MACHINE" --modules "$MUTATE" --tests "$TESTS" \
  --deselected "$WORK/failing-tests.txt" --json "$RESULTS/$LABEL.json"
python3 "$REPO/mutation/report.py" combine
