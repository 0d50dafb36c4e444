"""Pushes a fixed set of OTLP metrics to promrelay, as a real OpenTelemetry client does.

Run by tests/otlp_peers.rs with the virtualenv scripts/fetch-python-tools.sh makes:
    .peers/python/bin/python tests/otlp/push.py RELAY_URL

- The OpenTelemetry Python SDK with its OTLP/HTTP exporter (protobuf, gzip) sends counters,
  an up-down counter, gauges with units, an explicit-bucket histogram and an exponential
  histogram, all cumulative, from one resource (service.* attributes and one other).
- The SDK has no summary instrument, so the summary is built as a raw OTLP message with the
  official `opentelemetry-proto` bindings and posted as protobuf; one more gauge is posted as
  OTLP JSON (protobuf's own JSON mapping), so both body encodings come from real libraries.

Exits non-zero (with the reason) unless every export succeeded.
"""

import json
import os
import sys
import time
import urllib.request

for name in list(os.environ):
    if name.startswith("OTEL_"):
        del os.environ[name]

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

relay = sys.argv[1].rstrip("/")
RESOURCE = {
    "service.name": "shop-api",
    "service.namespace": "shop",
    "service.instance.id": "i-1",
    "deployment.environment": "e2e",
}

# --- the SDK -------------------------------------------------------------------------------
exporter = OTLPMetricExporter(
    endpoint=f"{relay}/opentelemetry/v1/metrics", compression=Compression.Gzip
)
results = []
sdk_export = exporter.export


def export(data, timeout_millis=10_000, **kwargs):
    result = sdk_export(data, timeout_millis=timeout_millis, **kwargs)
    results.append(result)
    return result


exporter.export = export
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
provider = MeterProvider(
    resource=Resource.create(RESOURCE),
    metric_readers=[reader],
    views=[
        View(instrument_name="app.duration", aggregation=ExplicitBucketHistogramAggregation([10.0, 100.0])),
        View(instrument_name="app.latency", aggregation=ExponentialBucketHistogramAggregation(max_size=20)),
    ],
)
meter = provider.get_meter("e2e.meter", "1.2.3")

requests = meter.create_counter("app.requests", unit="{request}", description="Requests served")
requests.add(5, {"http.method": "GET"})
requests.add(2, {"http.method": "GET"})
meter.create_counter("app.sent", unit="By").add(1024)
meter.create_up_down_counter("app.queue.size", unit="{item}").add(3)
meter.create_gauge("app.temperature", unit="Cel").set(21.5, {"room": "lab"})
meter.create_observable_gauge(
    "app.cpu.utilization", callbacks=[lambda _options: [Observation(0.25)]], unit="1"
)
duration = meter.create_histogram("app.duration", unit="ms")
for v in (5, 50, 500):
    duration.record(v)
latency = meter.create_histogram("app.latency", unit="s")
for v in (1.0, 2.0, 4.0):
    latency.record(v)

provider.force_flush()
provider.shutdown()
if not results or any(r != MetricExportResult.SUCCESS for r in results):
    sys.exit(f"the SDK's export did not succeed: {results}")

# --- raw OTLP messages: a summary (protobuf) and a gauge (JSON) ----------------------------
now_ns = time.time_ns()
resource = resource_pb2.Resource(
    attributes=[
        common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
        for k, v in RESOURCE.items()
    ]
)


def request_with(metric):
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource,
                scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metric])],
            )
        ]
    )


summary = metrics_pb2.Metric(
    name="app.rpc.duration",
    unit="s",
    summary=metrics_pb2.Summary(
        data_points=[
            metrics_pb2.SummaryDataPoint(
                time_unix_nano=now_ns,
                count=4,
                sum=2.0,
                quantile_values=[
                    metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.4),
                    metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=0.9),
                ],
            )
        ]
    ),
)
json_gauge = metrics_pb2.Metric(
    name="app.json.gauge",
    unit="m",
    gauge=metrics_pb2.Gauge(
        data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=now_ns, as_int=17)]
    ),
)


def post(body, content_type):
    req = urllib.request.Request(
        f"{relay}/api/v1/otlp/v1/metrics",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = resp.read()
        if resp.status != 200:
            sys.exit(f"{content_type}: answered {resp.status}: {answer!r}")
        return answer


answer = post(request_with(summary).SerializeToString(), "application/x-protobuf")
response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(answer)
if response.HasField("partial_success"):
    sys.exit(f"summary: partial success: {response}")
answer = post(json_format.MessageToJson(request_with(json_gauge)).encode(), "application/json")
if json.loads(answer) != {}:
    sys.exit(f"JSON gauge: answered {answer!r}")
