#!/usr/bin/env bash
# Model-checks ring.pml, eventcount.pml, serve.pml and reserve.pml with spin (exhaustive, breadth-first; two at a time),
# then checks that spin finds the planted bug in every mutant, so a model that proves nothing would fail
# here too.
# Usage: Sources/CFlow/spin-models/check.sh [work dir]   (needs spin and a C compiler; ~1 min on 2 cores)
set -euo pipefail
models=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"

# verify MODEL "SPIN DEFINES" EXPECTED_ERRORS
verify() {
    local model=$1 defines=$2 expect=$3 name
    name="$model $defines"
    cp "$models/$model" .
    # shellcheck disable=SC2086
    spin $defines -a "$model" >/dev/null
    gcc -O2 -w -DSAFETY -DCOLLAPSE -DBFS -o pan pan.c
    local t0=$SECONDS
    ./pan >pan.out 2>&1 || true
    local errors states
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out)
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out)
    if [ "$expect" = 0 ]; then
        if [ "$errors" != 0 ] || grep -q "Search not completed\|max search depth too small\|out of memory" pan.out; then
            cat pan.out
            echo "FAIL: $name: spin found an error or did not finish"
            exit 1
        fi
        echo "ok   $name: $states states, no error ($((SECONDS - t0)) s)"
    else
        if [ "${errors:-0}" = 0 ]; then
            cat pan.out
            echo "FAIL: mutant $name: spin found nothing, so the model does not check what it claims"
            exit 1
        fi
        echo "ok   mutant $name: $(grep -m1 '^pan:1:' pan.out)"
    fi
}

# two groups at once (each in its own directory: spin and pan write their files there), one per core
eventcount_and_serve() {
    verify eventcount.pml "-DPER_PRODUCER=2" 0
    verify eventcount.pml "-DPER_PRODUCER=1 -DMUTANT_NO_RECHECK" 1
    verify eventcount.pml "-DPER_PRODUCER=1 -DMUTANT_REGISTER_IGNORES_EPOCH" 1
    verify serve.pml "-DPER_PRODUCER=2 -DJOBS_QUEUED=2" 0
    verify serve.pml "-DMUTANT_NO_JOB_RECHECK" 1
    verify serve.pml "-DMUTANT_NO_RING_NODE" 1
}
ring() {
    verify ring.pml "-DCAP=3 -DPER_PRODUCER=2" 0
    verify ring.pml "-DCAP=2 -DPER_PRODUCER=2" 0
    verify ring.pml "-DCAP=2 -DPER_PRODUCER=1 -DMUTANT_COMMIT_FIRST" 1
    verify ring.pml "-DCAP=2 -DPER_PRODUCER=1 -DMUTANT_STALE_CAS" 1
    verify ring.pml "-DCAP=2 -DPER_PRODUCER=1 -DMUTANT_NO_HELP" 1
    verify reserve.pml "-DPER_PRODUCER=2" 0
    verify reserve.pml "-DPER_PRODUCER=2 -DMUTANT_NO_NOTIFY" 1
    verify reserve.pml "-DPER_PRODUCER=2 -DMUTANT_NO_REFUSAL" 1
}
mkdir -p eventcount-serve ring
(cd eventcount-serve && eventcount_and_serve) >eventcount-serve.log 2>&1 &
first=$!
(cd ring && ring) >ring.log 2>&1 &
second=$!
status=0
wait $first || status=1
wait $second || status=1
cat eventcount-serve.log ring.log
exit $status
