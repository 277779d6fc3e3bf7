#!/usr/bin/env bash
# The tests that wait in real time (pytest marker "timing"), twice in a row beside two CPU-bound
# processes: a test whose outcome depends on how busy the machine is fails here first.
#
#   test/loaded_run.sh [PYTHON]     (default: python3; .ci/run passes its venv's python)
#
# The hogs are always stopped, whatever the outcome. Takes well under a minute on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}

hogs=()
stop_hogs() {
    if ((${#hogs[@]})); then
        kill "${hogs[@]}" 2>/dev/null || true
        wait "${hogs[@]}" 2>/dev/null || true
    fi
}
trap stop_hogs EXIT
for _ in 1 2; do
    "$python" -c 'while True: pass' &
    hogs+=("$!")
done

# Four workers on top of the hogs: the tests mostly wait, so this is quicker than two, and the
# machine busier still.
for run in 1 2; do
    echo "== timing tests beside two CPU hogs, run $run of 2"
    "$python" -m pytest -q -m timing -p no:cacheprovider --numprocesses 4
done
