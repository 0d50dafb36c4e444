//! Writes the seed corpora under fuzz/corpus/ from the project's own example builders and test
//! data (`cargo run --manifest-path fuzz/Cargo.toml --bin seeds`). The seeds are checked in;
//! fuzzing adds to them (`scripts/fuzz.sh`, then `cargo fuzz cmin` keeps them small).

use std::fs;
use std::path::{Path, PathBuf};

use promrelay::otlp;
use promrelay::prompb::v2::example_request;
use promrelay::prompb::{compress, example_write_request};
use prost::Message;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let repo = root.join("..");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        fs::write(dir.join(name), bytes).expect("write seed");
    };

    // Remote-write 1.0 and 2.0 requests, raw (validation, conversion) and compressed.
    for (name, series, samples) in [("small", 2, 1), ("wide", 20, 3)] {
        let v1 = example_write_request(series, samples, 1_700_000_000_000).encode_to_vec();
        put("remote_write_v1", name, &v1);
        let mut limited = 4096u16.to_le_bytes().to_vec();
        limited.extend_from_slice(&compress(&v1));
        put("snappy", name, &limited);
        for (pick, coding) in [(0u8, "zstd"), (1u8, "gzip")] {
            let mut seed = vec![pick];
            seed.extend_from_slice(&4096u16.to_le_bytes());
            seed.extend_from_slice(&encode(coding, &v1));
            put("zstd_gzip", &format!("{name}-{coding}"), &seed);
        }
        for metadata in [false, true] {
            let v2 = example_request(series, samples, 1_700_000_000_000, metadata).encode_to_vec();
            let mut seed = 8192u16.to_le_bytes().to_vec();
            seed.extend_from_slice(&v2);
            put(
                "remote_write_v2",
                &format!("{name}-metadata-{metadata}"),
                &seed,
            );
        }
    }

    // OTLP: the JSON example below, and the same request as protobuf.
    put(
        "otlp_json",
        "gauge-sum-histogram.json",
        OTLP_JSON.as_bytes(),
    );
    let req =
        otlp::decode_request(OTLP_JSON.as_bytes(), otlp::Format::Json).expect("seed JSON decodes");
    put("otlp_protobuf", "gauge-sum-histogram", &req.encode_to_vec());

    // Expositions: node_exporter's, and every case of the OpenMetrics parser suite.
    let node =
        fs::read(repo.join("tests/fixtures/node_exporter.prom")).expect("node_exporter fixture");
    put("text_parser", "node_exporter", &node);
    put("openmetrics_parser", "node_exporter", &node);
    for case in sorted(&repo.join("../shared/testdata/openmetrics-parsers")) {
        let metrics = case.join("metrics");
        if let Ok(bytes) = fs::read(&metrics) {
            let name = case
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("case")
                .to_owned();
            put("openmetrics_parser", &name, &bytes);
            put("text_parser", &name, &bytes);
        }
    }

    // Configs.
    put("relabel", "rules.yml", RELABEL.as_bytes());
    put("relay_config", "storages.yml", RELAY.as_bytes());
    put("scrape_config", "prometheus.yml", SCRAPE.as_bytes());
    put("web_config", "web.yml", WEB.as_bytes());

    // Queue scripts: three blocks then damage in the second frame; many blocks over two chunks.
    let mut script = Vec::new();
    for payload in [&b"first block"[..], b"second block", b"third"] {
        script.push(payload.len() as u8);
        script.extend_from_slice(payload);
    }
    script.extend_from_slice(&[0xFF, 70, 0, 0x40]);
    put("queue_recovery", "three-blocks-one-damaged", &script);
    let mut many = Vec::new();
    for i in 0..40u8 {
        many.push(200);
        many.extend(std::iter::repeat_n(i, 200));
    }
    many.extend_from_slice(&[0xFF, 0x10, 0x20, 0x01, 0x00, 0x30, 0x80]);
    put("queue_recovery", "two-chunks", &many);

    // queue verify: a position and a chunk written by the queue itself.
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let q = promrelay::queue::Queue::open(dir.path(), Default::default()).expect("open queue");
        q.append(b"payload", 1).expect("append");
        q.close().expect("close");
    }
    let mut seed = Vec::new();
    for (pick, name) in [(1u8, "position"), (3u8, "0000000000000001.chunk")] {
        if let Ok(bytes) = fs::read(dir.path().join(name)) {
            seed.push(pick);
            seed.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            seed.extend_from_slice(&bytes);
        }
    }
    put("queue_verify", "one-block", &seed);
}

fn encode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match coding {
        "zstd" => zstd::encode_all(bytes, 3).expect("zstd encodes"),
        _ => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(bytes).expect("gzip encodes");
            enc.finish().expect("gzip finishes")
        }
    }
}

fn sorted(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

const OTLP_JSON: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}},{"key":"service.instance.id","value":{"stringValue":"i-1"}}]},"scopeMetrics":[{"scope":{"name":"seed"},"metrics":[{"name":"queue.depth","unit":"By","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"42","attributes":[{"key":"queue","value":{"stringValue":"a"}}]}]}},{"name":"requests","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":7.5}]}},{"name":"latency","unit":"ms","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"1700000000000000000","count":"3","sum":12,"bucketCounts":["1","1","1"],"explicitBounds":[1,10]}]}},{"name":"size","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"1700000000000000000","count":"2","scale":2,"zeroCount":"0","positive":{"offset":1,"bucketCounts":["1","1"]}}]}}]}]}]}"#;

const RELABEL: &str = r#"- source_labels: [__meta_kubernetes_pod_name, job]
  separator: ";"
  regex: '(web)-(\d+);(.*)'
  target_label: instance
  replacement: "${1}-$2.$3"
- action: labelmap
  regex: __meta_kubernetes_(.+)
- action: hashmod
  source_labels: [__address__]
  modulus: 3
  target_label: shard
- action: keep
  regex: "[a-z]+\\w*"
  source_labels: [job]
- action: lowercase
  source_labels: [job]
  target_label: job_lower
- action: labeldrop
  regex: "ü.*"
"#;

const RELAY: &str = r#"listen: 127.0.0.1:8429
queue_max_bytes: 2GiB
storages:
  - url: http://a:8428/api/v1/write
    concurrency: 2
    basic_auth:
      username: u
      password: p
  - multitenant_url: http://vminsert:8480/
    max_tenants: 10
"#;

const SCRAPE: &str = r#"global:
  scrape_interval: 15s
  external_labels:
    region: eu
scrape_configs:
  - job_name: node
    scrape_interval: 5s
    static_configs:
      - targets: ['localhost:9100']
        labels: {env: prod}
    relabel_configs:
      - source_labels: [__address__]
        target_label: instance
    metric_relabel_configs:
      - action: drop
        regex: go_.*
        source_labels: [__name__]
  - job_name: files
    file_sd_configs:
      - files: ['sd/*.json']
        refresh_interval: 1m
    basic_auth: {username: a, password: b}
    sample_limit: 1000
"#;

const WEB: &str = r#"basic_auth_users:
  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi
http_server_config:
  headers:
    X-Frame-Options: deny
"#;
