#!/usr/bin/env bash
# Makes the Python virtualenv the OTLP end-to-end test runs a real OpenTelemetry client from:
# the OpenTelemetry Python SDK with its OTLP/HTTP exporter, and the `opentelemetry-proto`
# package (the summary case: the SDK has no summary instrument, so that one is sent as a raw
# OTLP message built with the official Python bindings). Also `kubernetes-validate`, which
# checks deploy/kubernetes/ offline against the Kubernetes JSON schemas it ships. Installed from
# PyPI, pinned.
#
# The virtualenv is .peers/python (git-ignored, like the other peers; a fresh clone gets it
# from here, called by scripts/test.sh next to scripts/fetch-peers.sh). Idempotent: a second run
# only checks that the pinned versions import. Safe from any cwd and against concurrent runs.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.peers/python"
OTEL_VERSION=1.45.2
KUBERNETES_VALIDATE_VERSION=1.34.1
pins=(
    "opentelemetry-api==$OTEL_VERSION"
    "opentelemetry-sdk==$OTEL_VERSION"
    "opentelemetry-exporter-otlp-proto-http==$OTEL_VERSION"
    "opentelemetry-proto==$OTEL_VERSION"
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
)
expected="$OTEL_VERSION $KUBERNETES_VALIDATE_VERSION"
# Named after the pins, so adding one installs it into an existing virtualenv.
stamp="$venv/.complete-$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-16)"

say() { printf 'fetch-python-tools: %s\n' "$*" >&2; }

mkdir -p "$repo_root/.peers"
exec 9>"$repo_root/.peers/.python.lock"
flock 9

check() {
    "$venv/bin/python" - <<'PY'
import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter
import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2
import kubernetes_validate
from importlib.metadata import version
print(version("opentelemetry-sdk"), version("kubernetes-validate"))
PY
}

if [[ -f $stamp ]] && [[ "$(check 2>/dev/null)" == "$expected" ]]; then
    exit 0
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    say "python3 venv support is missing: apt-get install python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv
fi
if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # Installing into the existing virtualenv leaves it usable meanwhile by other checkouts
    # sharing .peers/.
    say "installing the pinned packages into $venv"
else
    say "creating $venv with OpenTelemetry $OTEL_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
[[ "$(check)" == "$expected" ]] || { say "error: the virtualenv does not import the pinned packages"; exit 1; }
touch "$stamp"
say "ready: $venv"
