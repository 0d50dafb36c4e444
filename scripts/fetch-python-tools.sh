#!/usr/bin/env bash
# Makes the Python virtualenv the OTLP end-to-end test runs a real OpenTelemetry client from:
# the OpenTelemetry Python SDK with its OTLP/HTTP exporter, and the `opentelemetry-proto`
# package (the summary case: the SDK has no summary instrument, so that one is sent as a raw
# OTLP message built with the official Python bindings). Installed from PyPI, pinned.
#
# The virtualenv is .peers/python (git-ignored, like the other peers; a fresh clone gets it
# from here, called by scripts/test.sh next to scripts/fetch-peers.sh). Idempotent: a second run
# only checks that the pinned versions import. Safe from any cwd and against concurrent runs.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.peers/python"
OTEL_VERSION=1.45.2
pins=(
    "opentelemetry-api==$OTEL_VERSION"
    "opentelemetry-sdk==$OTEL_VERSION"
    "opentelemetry-exporter-otlp-proto-http==$OTEL_VERSION"
    "opentelemetry-proto==$OTEL_VERSION"
)
stamp="$venv/.complete-$OTEL_VERSION"

say() { printf 'fetch-python-tools: %s\n' "$*" >&2; }

mkdir -p "$repo_root/.peers"
exec 9>"$repo_root/.peers/.python.lock"
flock 9

check() {
    "$venv/bin/python" - <<'PY'
import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter
import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2
from importlib.metadata import version
print(version("opentelemetry-sdk"))
PY
}

if [[ -f $stamp ]] && [[ "$(check 2>/dev/null)" == "$OTEL_VERSION" ]]; then
    exit 0
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    say "python3 venv support is missing: apt-get install python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv
fi
say "creating $venv with OpenTelemetry $OTEL_VERSION"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
[[ "$(check)" == "$OTEL_VERSION" ]] || { say "error: the virtualenv does not import the pinned packages"; exit 1; }
touch "$stamp"
say "ready: $venv"
