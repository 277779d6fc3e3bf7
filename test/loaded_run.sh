#!/usr/bin/env bash
# The tests that wait in real time (pytest marker "timing"), twice in a row beside two CPU-bound
# processes: a test whose outcome depends on how busy the machine is fails here first.
#
#   test/loaded_run.sh [PYTHON]     (default: python3; .ci/run passes its venv's python)
#
# The hogs (and a run cut short) are always stopped, whatever the outcome. About 20 s a run on
# two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}

started=()
stop_started() {
    if ((${#started[@]})); then
        kill "${started[@]}" 2>/dev/null || true
        wait "${started[@]}" 2>/dev/null || true
    fi
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in 1 2; do
    "$python" -c 'while True: pass' &
    started+=("$!")
done

# Four workers on top of the hogs: the tests mostly wait, so this is quicker than two, and the
# machine busier still. pytest runs in the background so that a signal stops it too.
for run in 1 2; do
    echo "== timing tests beside two CPU hogs, run $run of 2"
    "$python" -m pytest -q -m timing -p no:cacheprovider --numprocesses 4 &
    started+=("$!")
    wait "$!"
done
