#!/usr/bin/env bash
# Chaos soak with exact accounting (tests/soak.rs), long version, release build:
#
#   scripts/soak.sh [MINUTES]        (default 30)
#
# Numbered samples from several connections and a Prometheus agent scraping node_exporter go
# through promrelay to VictoriaMetrics and a Prometheus receiver (each behind a fault proxy),
# while a chaos loop kills -9 and restarts the relay, stops and restarts storages, makes them
# slow or answer 500/429, fills a queue to its cap (queue_full: reject) and damages a block in a
# sealed chunk while the relay is down. At the end it prints, per storage, samples acknowledged,
# delivered, duplicated, refused, dropped by the cap, lost with corrupt blocks and unexplained
# (must be 0), the relay's RSS and open files over time, and its CPU per sample; it fails when
# any acknowledged sample is unexplained. PROMRELAY_SOAK_SEED=N replays a chaos sequence.
# scripts/test.sh runs the same test for 50 s in the debug build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

minutes="${1:-30}"
scripts/fetch-peers.sh
PROMRELAY_SOAK_SECONDS=$((minutes * 60)) \
    cargo test --locked --release --test soak -- --nocapture 2>&1 |
    grep -E '^(soak: |\| |  e\.g\.|refused pushes|relay counters|relay CPU|relay resources| +[0-9]+ +[0-9.]+ +[0-9]+$|chaos events|test result|thread .* panicked)'
