#!/usr/bin/env bash
# Run `molecule test` for each scenario:suite given: different scenarios at
# the same time (they have their own hosts and networks; most of a run is
# waiting on systemd, the store and timeouts, so two overlap well on two
# cores), the suites of one scenario one after the other (same host names).
# Each line is prefixed with its scenario; a summary with each run's result
# and duration ends the output. Exits non-zero when any run failed.
#
#   scripts/ci/molecule-matrix.sh default:bookworm s3:trixie
#   MOLECULE_JOBS=1 scripts/ci/molecule-matrix.sh ...   # one after the other
#   (extra environment, e.g. COUNTER_DRILLS=long, passes through;
#   MOLECULE_HOST_PREFIX=x names the hosts x-app1... instead of molecule-app1...,
#   so that two checkouts can run the same scenario at once)
set -uo pipefail

jobs=${MOLECULE_JOBS:-$#}  # at most this many scenarios at once
molecule=${MOLECULE:-molecule}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

run() {
    local scenario=${1%%:*} suite=${1##*:} start rc
    start=$(date +%s)
    echo "=== molecule test: scenario $scenario on Debian $suite"
    MOLECULE_SUITE=$suite "$molecule" test --scenario-name "$scenario" 2>&1 \
        | sed -u "s/^/[$scenario:$suite] /"
    rc=${PIPESTATUS[0]}
    echo "$1 rc=$rc $(( $(date +%s) - start ))s" > "$results/$scenario-$suite"
}

# One job per scenario, running its suites in turn.
scenarios=()
for spec in "$@"; do
    case " ${scenarios[*]} " in *" ${spec%%:*} "*) ;; *) scenarios+=("${spec%%:*}") ;; esac
done
running=0
for scenario in "${scenarios[@]}"; do
    (
        for spec in "$@"; do
            if [ "${spec%%:*}" = "$scenario" ]; then run "$spec"; fi
        done
    ) &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

failed=0
echo "=== molecule runs"
for spec in "$@"; do
    line=$(cat "$results/${spec%%:*}-${spec##*:}" 2>/dev/null || echo "$spec rc=? (no result)")
    echo "  $line"
    case "$line" in *" rc=0 "*) ;; *) failed=1 ;; esac
done
exit "$failed"
