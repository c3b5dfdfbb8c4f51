#!/usr/bin/env bash
# Mutation testing: does every rule have a test that fails without it? Not part of the test
# command (it takes an hour or more on 2 cores). See TESTING.md for the last recorded run.
#
#   bash scripts/mutants.sh                 # every file below
#   bash scripts/mutants.sh machine driver  # some of them
#
# Each file runs in two stages. Stage 1 runs only the fast tests that sit beside the code (a
# mutant they catch costs one incremental build and a second); stage 2 runs the mutants stage 1
# missed against the heavier suites (the step model, the conformance suite on the in-memory
# backend, the simulation) with cargo-mutants' --iterate. The summary counts a mutant listed in
# scripts/mutants-equivalent.txt (the argument why it changes nothing is there) as equivalent,
# not missed.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
out="${MUTANTS_OUT:-target/mutants}"
mkdir -p "$out"
# Case counts for the property tests and the simulation, per mutant.
export ELECTION_SIM_CASES="${ELECTION_SIM_CASES:-100}" PROPTEST_CASES="${PROPTEST_CASES:-200}"

# cargo-mutants exits non-zero when it finds survivors; the summary below reports them.
mutate() {
  local name=$1
  shift
  cargo mutants --no-shuffle -j 1 -o "$out/$name" "$@" || true
}

# The tests that can see each file's rules: its unit tests first, then every suite that drives
# it. `--package` goes through `--cargo-arg`, so that the build phase already builds
# election-mem's tests (with `--cargo-test-arg` they were built inside the timed test phase,
# and the baseline timed out on a loaded machine); `--test-package election-mem` alone did not
# run them in cargo-mutants 27.1. The heavy stage's timeout is cargo-mutants' own, from the
# baseline's test time.
heavy=(--cargo-arg=--package=election-core --cargo-arg=--package=election-mem
  --cargo-arg=--tests)

run_file() {
  local name=$1 package=$2 file=$3 features=--all-features
  # The ZooKeeper backend's harness, without TLS and SASL (their C crypto build costs minutes
  # and none of these files' rules depends on them).
  if [ "$package" = election-zk ]; then features=--features=testing; fi
  if [ "$name" = driver ]; then
    # The driver has no unit tests of its own: only the candidates the suites run exercise it.
    mutate "$name" -p "$package" --file "$file" "$features" "${heavy[@]}"
    return
  fi
  # `--lib` for the build as well as the test (`--cargo-arg`): only the unit-test binary is
  # rebuilt per mutant, not every test target of the package.
  mutate "$name" -p "$package" --file "$file" "$features" --timeout 180 --cargo-arg=--lib
  if [ "$package" = election-core ]; then
    mutate "$name" --iterate -p "$package" --file "$file" "$features" "${heavy[@]}"
  else
    # The ZooKeeper backend's own suites, on real servers from the harness.
    mutate "$name" --iterate -p "$package" --file "$file" "$features" --cargo-test-arg=--tests
  fi
}

files=(machine driver config names connect liveness)
[ $# -gt 0 ] && files=("$@")
for f in "${files[@]}"; do
  case "$f" in
    machine) run_file machine election-core election-core/src/machine.rs ;;
    driver) run_file driver election-core election-core/src/driver.rs ;;
    config) run_file config election-core election-core/src/config.rs ;;
    names) run_file names election-zk election-zk/src/names.rs ;;
    connect) run_file connect election-zk election-zk/src/connect.rs ;;
    liveness) run_file liveness election-zk election-zk/src/liveness.rs ;;
    *) echo "unknown file: $f (one of: machine driver config names connect liveness)" >&2; exit 2 ;;
  esac
done

python3 - "$out" "${files[@]}" <<'PY'
import json, os, sys

out, names = sys.argv[1], sys.argv[2:]
equivalent = set()
with open("scripts/mutants-equivalent.txt") as f:
    for line in f:
        line = line.split("  #", 1)[0].strip()
        if line and not line.startswith("#"):
            equivalent.add(line)

print(f"{'file':<10} {'mutants':>7} {'caught':>6} {'missed':>6} {'equiv':>5} {'timeout':>7} {'unviable':>8} {'score':>6}")
for name in names:
    path = os.path.join(out, name, "mutants.out")
    outcome = {}
    if not os.path.isdir(path):
        print(f"{name:<10} not run")
        continue
    # Stage 1's results are in mutants.out.old once stage 2 (--iterate) ran; stage 2's
    # previously_caught.txt lumps stage 1's caught and unviable together, so read stage 1 first.
    for stage in (path + ".old", path):
        for kind in ("previously_caught", "caught", "missed", "timeout", "unviable"):
            if not os.path.exists(os.path.join(stage, f"{kind}.txt")):
                continue
            with open(os.path.join(stage, f"{kind}.txt")) as f:
                for line in f:
                    line = line.strip()
                    if line and not (kind == "previously_caught" and line in outcome):
                        outcome[line] = "caught" if kind == "previously_caught" else kind
    counts = {"caught": 0, "missed": 0, "equiv": 0, "timeout": 0, "unviable": 0}
    survivors = []
    for mutant, kind in sorted(outcome.items()):
        if kind == "missed" and mutant in equivalent:
            kind = "equiv"
        counts[kind] += 1
        if kind == "missed":
            survivors.append(mutant)
    viable = counts["caught"] + counts["missed"] + counts["timeout"]
    score = 100.0 * (counts["caught"] + counts["timeout"]) / viable if viable else 100.0
    print(f"{name:<10} {len(outcome):>7} {counts['caught']:>6} {counts['missed']:>6} "
          f"{counts['equiv']:>5} {counts['timeout']:>7} {counts['unviable']:>8} {score:>5.1f}%")
    for s in survivors:
        print(f"    missed: {s}")
PY
