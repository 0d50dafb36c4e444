//! The object fixtures in `tests/fixtures/kubernetes/` (see its README for where their shapes
//! come from), and generated pods for load tests.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Every fixture file, in an order where referenced objects come first.
pub const FILES: [&str; 6] = [
    "nodes.json",
    "pods.json",
    "services.json",
    "endpoints.json",
    "endpointslices.json",
    "ingresses.json",
];

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubernetes")
}

/// The items of the `List` in fixture file `name`.
pub fn load(name: &str) -> Vec<Value> {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()));
    let list: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parse fixture {}: {e}", path.display()));
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("fixture {} has no items", path.display()))
        .clone()
}

/// The fixture pod named `name`.
pub fn pod(name: &str) -> Value {
    load("pods.json")
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no fixture pod {name}"))
}

/// Pod `i` of a large ReplicaSet-like fleet in namespace `load`: shaped as the fixture's ready
/// web pod (two containers, four ports, an init container, managedFields), with its own name,
/// IP, node and a `shard` label, so that any number of them can be added.
pub fn fleet_pod(template: &Value, i: u32) -> Value {
    let mut pod = template.clone();
    let meta = &mut pod["metadata"];
    meta["name"] = json!(format!("fleet-{i:06}"));
    meta["namespace"] = json!("load");
    meta["labels"]["shard"] = json!((i % 16).to_string());
    if let Some(map) = meta.as_object_mut() {
        map.remove("uid");
    }
    let ip = format!("10.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) & 255, i & 255);
    pod["status"]["podIP"] = json!(ip);
    pod["status"]["podIPs"] = json!([{"ip": ip}]);
    pod["spec"]["nodeName"] = json!(format!("node-{}", i % 50));
    pod
}
