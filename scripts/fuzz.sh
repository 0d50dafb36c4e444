#!/usr/bin/env bash
# Runs every cargo-fuzz target in turn for SECONDS_PER_TARGET (default 60) and prints, per target,
# the runs, the CPU seconds the fuzzer used, the coverage and corpus growth, and the crashes found.
# Run it under `nice` beside other work: the time limit is wall time, cpu_s says what it got.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz (installed here
# when missing). New inputs go into fuzz/corpus/<target>/ (checked in; minimise with
# `cargo +nightly fuzz cmin <target>` before committing). A crash leaves its input in
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ with the fix, so
# tests/fuzz_corpora.rs (run by scripts/test.sh) keeps it fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
shift || true
CARGO_FUZZ_VERSION=0.13.2
if [[ "$(cargo fuzz --version 2>/dev/null)" != *"$CARGO_FUZZ_VERSION"* ]]; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
rustup run nightly rustc --version >/dev/null 2>&1 || {
    echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
}

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    # The order of fuzz/entries.rs' ENTRIES (the replay test checks every one has a binary).
    mapfile -t targets < <(sed -n 's/^    ("\([a-z0-9_]*\)", .*/\1/p' fuzz/entries.rs)
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/fuzz}"
for t in "${targets[@]}"; do cargo +nightly fuzz build -O "$t"; done

logs="$(mktemp -d)"
printf '%-20s %12s %8s %10s %10s %10s %8s\n' target runs cpu_s cov_start cov_end new_units crashes
status=0
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    stamp="$logs/$t.stamp"
    touch "$stamp"
    # -timeout: an input taking longer than 10 s is a hang (the targets must never loop).
    /usr/bin/time -f 'cpu_seconds: %U %S' -o "$logs/$t.time" \
        cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 >"$log" 2>&1 || true
    # crash-, timeout-, oom- and leak- artifacts are failures; a slow-unit- one is not (a unit
    # over 10 s of wall time: a fuzzer paused with SIGSTOP leaves one), it is only listed.
    found=$(find "fuzz/artifacts/$t" -type f -newer "$stamp" ! -name 'slow-unit-*')
    slow=$(find "fuzz/artifacts/$t" -type f -newer "$stamp" -name 'slow-unit-*')
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    cov_start=$(grep -m1 'INITED' "$log" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    cov_end=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    cpu=$(awk '/^cpu_seconds:/ {printf "%.0f", $2 + $3}' "$logs/$t.time")
    crashes=$(grep -c . <<<"$found" || true)
    printf '%-20s %12s %8s %10s %10s %10s %8s\n' "$t" "${runs:-?}" "${cpu:-?}" "${cov_start:-?}" \
        "${cov_end:-?}" "${units:-?}" "$crashes"
    if [[ $crashes -gt 0 ]]; then
        status=1
        grep -m3 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /'
        head -3 <<<"$found" | sed 's/^/    artifact: /'
    fi
    if [[ -n $slow ]]; then
        head -3 <<<"$slow" | sed 's/^/    slow (not a failure; rerun it alone to see its time): /'
    fi
done
echo "logs: $logs"
exit $status
