#!/usr/bin/env bash
# The whole check, exactly as CI runs it (.ci/run calls this): fetch the real peers the
# end-to-end tests run against, then format, lints as errors, and every test target.
# --locked: a Cargo.lock that does not match Cargo.toml fails here, not in the release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-peers.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
