//! The checked-in remote-write 2.0 types (`src/prompb/v2/io.prometheus.write.v2.rs`) are exactly
//! what prost-build generates from the vendored official schema (`proto/`), compiled by protox, so
//! no protoc is needed and the types cannot drift from the `.proto` unnoticed.
//!
//! `PROMRELAY_REGENERATE=1 cargo test --test prompb_v2_generated` rewrites the file instead.

use std::path::Path;

const GENERATED: &str = "src/prompb/v2/io.prometheus.write.v2.rs";

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["io/prometheus/write/v2/types.proto"], [root.join("proto")])
        .expect("the vendored schema compiles");
    let out = tempfile::tempdir().expect("a temporary directory");
    prost_build::Config::new()
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("prost-build generates the types");
    std::fs::read_to_string(out.path().join("io.prometheus.write.v2.rs"))
        .expect("prost-build wrote io.prometheus.write.v2.rs")
}

#[test]
fn checked_in_v2_types_match_the_vendored_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATED);
    let generated = generate();
    if std::env::var_os("PROMRELAY_REGENERATE").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{GENERATED} differs from what prost-build generates from proto/; \
         regenerate with PROMRELAY_REGENERATE=1 cargo test --test prompb_v2_generated"
    );
}
