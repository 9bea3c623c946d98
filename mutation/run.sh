#!/usr/bin/env bash
# Mutation testing of et/ and reference_models/conversions/ with mutmut 3, in a scratch copy.
#
#   mutation/run.sh                      # every module (report.py mutated_modules), 2 workers
#   LABEL=B MUTATE="et/rules/fuse_conv_bn.py et/domain.py" TESTS="tests/rules" JOBS=16 \
#     TIME_LIMIT=600 mutation/run.sh
#   RECHECK=1 LABEL=B2 MUTATION_WORKDIR=/tmp/etds-mut-B mutation/run.sh
#   RECHECK=1 SKIP_UNCHECKED=1 ...       # re-run the survivors only, not the unchecked
#
# Each run writes mutation/results/$LABEL.json (report.py summarise) and then rebuilds
# mutation/REPORT.md from every results/*.json (report.py combine).
# RECHECK=1 reuses the scratch copy of an earlier run (its snapshot of the code and its
# mutants): it copies the current tests/ in and re-runs only that run's surviving (and, unless
# SKIP_UNCHECKED, never checked) mutants, so new kill tests are checked against exactly the code
# the run mutated, in a fraction of the time.
#
# Why a scratch copy: mutmut 3 reads its settings from pyproject.toml [tool.mutmut] or, when
# that table is absent, from setup.cfg [mutmut], and writes a mutants/ tree beside them. The
# project's pyproject.toml has no such table, so this script writes a setup.cfg in the copy and
# leaves the working tree untouched.
#
# Per-mutant cost: mutmut runs, for each mutant, only the selected tests that reached the
# mutated function in its own process. The clean run below records every test's time and which
# tests start a process (the etds command line: mutmut cannot see what a child process runs,
# and each costs seconds); those are left out, and the rest run fastest first (-x: the first
# failing test ends the mutant). SLOW_TEST_LIMIT=S also leaves out tests slower than S seconds.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${MUTATION_WORKDIR:-${TMPDIR:-/tmp}/etds-mutation}"
JOBS="${JOBS:-2}"
LABEL="${LABEL:-$(date -u +%Y%m%dT%H%M)}"
RESULTS="${RESULTS:-$REPO/mutation/results}"
MACHINE="${MACHINE:-$(hostname), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), load $(cut -d' ' -f1 /proc/loadavg) at start, $JOBS workers}"
# GROUP=rules|library: that group's modules and tests (report.py group; the first pass runs
# both groups at once, one worker each). Without GROUP: every module, the tests of both groups.
if [[ -n "${GROUP:-}" ]]; then
  { read -r GROUP_MODULES; read -r GROUP_TESTS; } < <(cd "$REPO" && python3 mutation/report.py group "$GROUP")
  MUTATE="${MUTATE:-$GROUP_MODULES}"
  TESTS="${TESTS:-$GROUP_TESTS}"
fi
if [[ -z "${MUTATE:-}" ]]; then
  if [[ -n "${RECHECK:-}" ]]; then
    # the modules the earlier run mutated
    MUTATE="$(sed -n '/^only_mutate =/,/^[a-z_]* =/p' "$WORK/setup.cfg" | grep '^    .*\.py$' | tr -d ' ' | tr '\n' ' ')"
  else
    MUTATE="$(cd "$REPO" && python3 -c 'import sys; sys.path.insert(0, "mutation"); import report; print(" ".join(report.mutated_modules()))')"
  fi
fi
# Left out of every group: tests/proofs/test_appendix.py renders every proof (tens of seconds
# per mutant) and checks the rendering; the CLI, export, eval and training suites drive the code
# through other layers (and mostly through the command line, in a child process).
if [[ -z "${TESTS:-}" ]]; then
  TESTS="$(cd "$REPO" && for g in rules library; do python3 mutation/report.py group $g | tail -1; done | tr '\n' ' ')"
fi

if [[ -n "${RECHECK:-}" ]]; then
  [[ -d "$WORK/mutants" ]] || { echo "RECHECK: no earlier run in $WORK" >&2; exit 2; }
  TESTS="$(sed -n '/^pytest_add_cli_args_test_selection =/,/^[a-z_]* =/p' "$WORK/setup.cfg" | grep '^    ' | tr -d ' ' | tr '\n' ' ')"
  # the current tests, on the earlier run's snapshot of the code (mutmut copies tests/ into
  # mutants/)
  rm -rf "$WORK/tests" "$WORK/mutants/tests"
  cp -r "$REPO/tests" "$WORK/tests"
  cp -r "$REPO/tests" "$WORK/mutants/tests"
else
  rm -rf "$WORK"
  mkdir -p "$WORK"
  for path in et proofs reference_models etds tests pyproject.toml; do
    cp -r "$REPO/$path" "$WORK/$path"
  done
fi
find "$WORK" -name __pycache__ -prune -exec rm -rf {} +
if [[ -z "${RECHECK:-}" ]]; then
# a RECHECK keeps the earlier setup.cfg byte for byte: mutmut discards every cached verdict when
# its pytest arguments change
{
  echo "[mutmut]"
  echo "source_paths ="
  echo "    et/"
  echo "    reference_models/"
  echo "only_mutate ="
  for f in $MUTATE; do echo "    $f"; done
  echo "also_copy ="
  echo "    proofs/"
  echo "    etds/"
  echo "pytest_add_cli_args_test_selection ="
  for t in $TESTS; do echo "    $t"; done
  echo "timeout_multiplier = 5.0"
  echo "pytest_add_cli_args ="
  echo "    -p"
  echo "    mutation_plugin"
  # "-n 0": mutmut records which tests reach which function in its own process, so the
  # project's "-n auto" addopts must not hand the tests to xdist workers
  echo "    -n"
  echo "    0"
  echo "    -p"
  echo "    no:cacheprovider"
  # pytest's unraisable/thread-exception plugins run gc.collect() five times at the end of
  # every session: ~2 s per mutant with torch and sympy loaded, ten times a quick kill
  echo "    -p"
  echo "    no:unraisableexception"
  echo "    -p"
  echo "    no:threadexception"
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
export ETDS_SHARED="${ETDS_SHARED:-$(cd "$REPO/.." && pwd)/shared}"
# one intra-op thread per worker: the tensors are tiny and JOBS workers share the cores
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$WORK"

# The clean run: the selection once, unmutated, in parallel. mutmut stops when a selected test
# fails on the unmutated code; tests still being written by others may (and in a RECHECK, tests
# of behaviour added after the snapshot will), so what fails is deselected and listed in the
# report. It also records each test's time and the tests that start a process (see above).
rm -rf record && mkdir record
ETDS_MUTATION_RECORD="$WORK/record" python3 -m pytest -q -p mutation_plugin -p no:cacheprovider \
  -p no:unraisableexception -p no:threadexception -n "$JOBS" -rfE $TESTS > clean-run.log 2>&1 || true
grep -E '^(FAILED|ERROR) ' clean-run.log | sed -E 's/^(FAILED|ERROR) ([^ ]+).*/\2/' | sort -u > failing-tests.txt || true
sort -u record/subprocess-tests.txt 2>/dev/null > subprocess-tests.txt || true
# a test that starts a process was stopped there: it counts as such, not as failing
comm -23 failing-tests.txt subprocess-tests.txt > failing-only.txt && mv failing-only.txt failing-tests.txt
python3 - "${SLOW_TEST_LIMIT:-inf}" > slow-tests.txt <<'PY'
import json, sys
limit = float(sys.argv[1])
for node, seconds in sorted(json.load(open("record/durations.json")).items()):
    if seconds > limit:
        print(node)
PY
sort -u failing-tests.txt subprocess-tests.txt slow-tests.txt > deselected-tests.txt
export ETDS_MUTATION_DESELECT="$WORK/deselected-tests.txt" ETDS_MUTATION_ORDER="$WORK/record/durations.json"
echo "clean run: $(tail -1 clean-run.log); left out $(wc -l < failing-tests.txt) failing," \
  "$(wc -l < subprocess-tests.txt) subprocess, $(wc -l < slow-tests.txt) slow test(s)"

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
# TIME_LIMIT (seconds) or END_BY (a time of day, "09:03") stops the run early; mutmut records
# each result as it comes, and the report counts the rest as "unchecked"
if [[ -n "${END_BY:-}" ]]; then
  TIME_LIMIT=$(( $(date -d "$END_BY" +%s) - start ))
  (( TIME_LIMIT > 0 )) || { echo "END_BY $END_BY has passed" >&2; TIME_LIMIT=1; }
fi
if [[ -n "${TIME_LIMIT:-}" ]]; then
  timeout -s INT "$TIME_LIMIT" python3 -m mutmut run --max-children "$JOBS" "${NAMES[@]}" || true
else
  python3 -m mutmut run --max-children "$JOBS" "${NAMES[@]}" || true
fi
end=$(date +%s)
python3 "$REPO/mutation/report.py" summarise --work "$WORK" --label "$LABEL" \
  --seconds $((end - start)) --machine "$MACHINE" --modules "$MUTATE" --tests "$TESTS" \
  --deselected "$WORK/failing-tests.txt" --subprocess "$WORK/subprocess-tests.txt" \
  --slow "$WORK/slow-tests.txt" --json "$RESULTS/$LABEL.json"
python3 "$REPO/mutation/report.py" combine
