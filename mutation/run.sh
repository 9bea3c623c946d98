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
# mutated function in its own process. Tests that start a process (the etds command line:
# mutmut cannot see what a child process runs, and each costs seconds) are left out, the rest
# run fastest first (-x: the first failing test ends the mutant). SLOW_TEST_LIMIT=S also leaves
# out tests slower than S seconds; BUDGET=S runs, per mutant, only the fastest covering tests
# that fit in S seconds (see mutation_plugin.py).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${MUTATION_WORKDIR:-${TMPDIR:-/tmp}/etds-mutation}"
JOBS="${JOBS:-2}"
LABEL="${LABEL:-$(date -u +%Y%m%dT%H%M)}"
RESULTS="${RESULTS:-$REPO/mutation/results}"
MACHINE="${MACHINE:-$(hostname), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), load $(cut -d' ' -f1 /proc/loadavg) at start, $JOBS workers}"
# GROUP=rules|library|compiler: that group's modules and tests (report.py group; the first pass runs
# the groups at once, one worker each). Without GROUP: every module, the tests of every group.
if [[ -n "${GROUP:-}" ]]; then
  { read -r GROUP_MODULES; read -r GROUP_TESTS; } < <(cd "$REPO" && python3 mutation/report.py group "$GROUP")
  MUTATE="${MUTATE:-$GROUP_MODULES}"
  TESTS="${TESTS:-$GROUP_TESTS}"
fi
if [[ -z "${MUTATE:-}" ]]; then
  if [[ -n "${RECHECK:-}${RESUME:-}" ]]; then
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
  TESTS="$(cd "$REPO" && for g in rules library compiler; do python3 mutation/report.py group $g | tail -1; done | tr '\n' ' ')"
fi

if [[ -n "${RECHECK:-}${RESUME:-}" ]]; then
  [[ -d "$WORK/mutants" ]] || { echo "RECHECK/RESUME: no earlier run in $WORK" >&2; exit 2; }
  TESTS="$(sed -n '/^pytest_add_cli_args_test_selection =/,/^[a-z_]* =/p' "$WORK/setup.cfg" | grep '^    ' | tr -d ' ' | tr '\n' ' ')"
fi
if [[ -n "${RESUME:-}" ]]; then
  # RESUME=1 (same LABEL and MUTATION_WORKDIR): go on with the mutants a stopped run never
  # reached (e.g. with more workers), on its snapshot and its tests; the wall times add up
  EARLIER_SECONDS="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["seconds"])' "$RESULTS/$LABEL.json" 2>/dev/null || echo 0)"
elif [[ -n "${RECHECK:-}" ]]; then
  # the current tests, on the earlier run's snapshot of the code (mutmut copies tests/ into
  # mutants/)
  rm -rf "$WORK/tests" "$WORK/mutants/tests"
  cp -r "$REPO/tests" "$WORK/tests"
  cp -r "$REPO/tests" "$WORK/mutants/tests"
  # RECHECK_DROP="tests/x.py ...": test files of code the snapshot does not have (they fail to
  # import there, and one collection error stops mutmut)
  for t in ${RECHECK_DROP:-}; do rm -f "$WORK/$t" "$WORK/mutants/$t"; done
else
  rm -rf "$WORK"
  mkdir -p "$WORK"
  for path in et proofs reference_models etds tests pyproject.toml; do
    cp -r "$REPO/$path" "$WORK/$path"
  done
fi
find "$WORK" -name __pycache__ -prune -exec rm -rf {} +
if [[ -z "${RECHECK:-}${RESUME:-}" ]]; then
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
  # mutmut's wall-clock limit per mutant is (covering tests' time + this) × 5 seconds: a
  # mutant whose tests take 0.1 s may otherwise be cut at 5.5 s on a loaded machine
  echo "timeout_constant = ${TIMEOUT_CONSTANT:-1.0}"
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

# The plugin (mutation_plugin.py) follows mutmut's phases: during mutmut's stats run it lists the
# tests that fail unmutated and those that start a process (and skips them), and later leaves
# them out, runs the rest fastest first, and applies SLOW_TEST_LIMIT and BUDGET.
export ETDS_MUTATION_STATE="$WORK" ETDS_MUTATION_SLOW_LIMIT="${SLOW_TEST_LIMIT:-}" \
  ETDS_MUTATION_BUDGET="${BUDGET:-}"
[[ -n "${RESUME:-}" ]] || : > "$WORK/budget-cut.txt"

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
[[ -z "${END_BY:-}" ]] || TIME_LIMIT=$(( $(date -d "$END_BY" +%s) - start ))
mutmut_run() {
  local left=$(( ${TIME_LIMIT:-0} - ($(date +%s) - start) ))
  if [[ -z "${TIME_LIMIT:-}" ]]; then
    python3 -m mutmut run --max-children "$JOBS" "$@" || true
  elif (( left > 0 )); then
    timeout -s INT "$left" python3 -m mutmut run --max-children "$JOBS" "$@" || true
  fi
}
generate_mutants() {
  # a filter that matches nothing: mutmut generates the mutants and runs its stats, then stops
  [[ -n "${RESUME:-}" ]] || python3 -m mutmut run --max-children "$JOBS" "no-such-mutant" > /dev/null 2>&1 || true
}
if [[ -n "${RECHECK:-}" ]]; then
  mutmut_run "${NAMES[@]}"
else
  # mutmut runs the mutants with the least covering-test time first, so under a time limit the
  # functions every test reaches would be the ones left unchecked. PRIORITY="et.contract.* ..."
  # runs those mutants first; SAMPLE=N runs every N-th mutant of each module first (report.py
  # sample), so every module is scored on the same share of its mutants; then the rest.
  [[ -z "${PRIORITY:-}" || -n "${RESUME:-}" ]] || (set -f; mutmut_run $PRIORITY)
  if [[ -n "${SAMPLE:-}" && -z "${CHANGED_SINCE:-}" ]]; then
    generate_mutants
    mapfile -t CHOSEN < <(python3 "$REPO/mutation/report.py" sample --work "$WORK" --every "$SAMPLE" --unchecked $MUTATE)
    echo "sample: ${#CHOSEN[@]} mutant(s) to check"
    [[ ${#CHOSEN[@]} -eq 0 ]] || mutmut_run "${CHOSEN[@]}"
  fi
  if [[ -n "${CHANGED_SINCE:-}" ]]; then
    # CHANGED_SINCE="REV [MODULE=REV ...]": only the mutants of the functions whose code differs
    # from that revision's (the code changed after an earlier run's snapshot; with SAMPLE=N,
    # every N-th of each module's), then stop
    generate_mutants
    mapfile -t CHOSEN < <(python3 "$REPO/mutation/report.py" changed --work "$WORK" --every "${SAMPLE:-1}" $MUTATE --since $CHANGED_SINCE)
    echo "changed since $CHANGED_SINCE: ${#CHOSEN[@]} mutant(s) to check"
    [[ ${#CHOSEN[@]} -eq 0 ]] || mutmut_run "${CHOSEN[@]}"
  fi
  [[ -n "${SAMPLE_ONLY:-}${CHANGED_SINCE:-}" ]] || mutmut_run
fi
end=$(date +%s)
python3 - "${SLOW_TEST_LIMIT:-inf}" > slow-tests.txt <<'PY' || true
import json, sys
limit = float(sys.argv[1])
seconds = json.load(open("mutants/mutmut-stats.json"))["duration_by_test"]
print("\n".join(node for node, s in sorted(seconds.items()) if s > limit))
PY
[[ -s slow-tests.txt ]] || : > slow-tests.txt
python3 "$REPO/mutation/report.py" summarise --work "$WORK" --label "$LABEL" \
  --seconds $((end - start + ${EARLIER_SECONDS:-0})) --machine "$MACHINE" --modules "$MUTATE" --tests "$TESTS" \
  --deselected "$WORK/failing-tests.txt" --subprocess "$WORK/subprocess-tests.txt" \
  --slow "$WORK/slow-tests.txt" --budget "${BUDGET:-}" --sample "${SAMPLE:-}" --budget-cut "$WORK/budget-cut.txt" \
  --json "$RESULTS/$LABEL.json"
python3 "$REPO/mutation/report.py" combine
