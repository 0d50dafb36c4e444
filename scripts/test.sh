#!/usr/bin/env bash
# The whole check, exactly as CI runs it (.ci/run calls this): fetch the real peers the
# end-to-end tests run against (and the Python OpenTelemetry client), then format, lints as
# errors, unused dependencies, every test target, the doc tests, and the docs themselves with
# warnings as errors.
# --locked: a Cargo.lock that does not match Cargo.toml fails here, not in the release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# cargo-machete finds dependencies no source file names. Installed here when missing, so a
# clean machine (and CI on a fresh clone) gets it; pinned so its verdicts do not change under us.
MACHETE_VERSION=0.9.2
if [[ "$(cargo machete --version 2>/dev/null)" != *"$MACHETE_VERSION"* ]]; then
    cargo install cargo-machete --locked --version "$MACHETE_VERSION"
fi

scripts/fetch-peers.sh
# The OpenTelemetry Python SDK the OTLP end-to-end test pushes with (a virtualenv in .peers/).
scripts/fetch-python-tools.sh
# Debian's Chromium, for the status page test in a headless browser (apt-get install when missing).
scripts/fetch-browser.sh
# The Kubernetes manifests against the schemas of a fixed Kubernetes version, unknown fields
# refused; kubernetes-validate ships the schemas, so no cluster and no network. (The alert rules'
# promtool checks and the dashboard's metric names are tests in tests/deploy_assets.rs.)
KUBERNETES_VERSION=1.33.0
.peers/python/bin/python -m kubernetes_validate --strict --quiet -k "$KUBERNETES_VERSION" \
    $(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo machete
cargo test --locked --all-targets
# --all-targets leaves the doc tests out; they run on their own.
cargo test --locked --doc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
