//! `role: node`: the node fields promrelay keeps, the target Prometheus' `buildNode` makes (the
//! kubelet endpoint at the node's preferred address), and the node metadata
//! `attach_metadata.node` adds to pod and endpoint targets.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::labels::{Labels, Meta, add_object_meta, join_host_port, one_target, sanitize, set};
use crate::scrape::discovery::TargetGroup;

/// The address types Prometheus prefers, in order (`NodeLegacyHostIP` is `LegacyHostIP`).
const ADDRESS_PREFERENCE: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// What is kept of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct NodeInfo {
    pub(super) meta: Meta,
    pub(super) provider_id: String,
    /// `(type, status)` of each condition.
    pub(super) conditions: Box<[(String, String)]>,
    /// `(type, address)` in the order listed.
    pub(super) addresses: Box<[(String, String)]>,
    pub(super) kubelet_port: i32,
}

impl NodeInfo {
    pub(super) fn from_api(mut node: Node) -> NodeInfo {
        let meta = Meta::from_object(&mut node.metadata);
        let status = node.status.unwrap_or_default();
        NodeInfo {
            meta,
            provider_id: node.spec.and_then(|s| s.provider_id).unwrap_or_default(),
            conditions: status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.type_, c.status))
                .collect(),
            addresses: status
                .addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.type_, a.address))
                .collect(),
            kubelet_port: status
                .daemon_endpoints
                .and_then(|d| d.kubelet_endpoint)
                .map_or(0, |k| k.port),
        }
    }

    /// What `attach_metadata.node` adds: `node_name` and the node's labels and annotations.
    pub(super) fn add_metadata(&self, labels: &mut Labels) {
        add_object_meta(labels, &self.meta, "node");
    }

    fn first_address(&self, kind: &str) -> Option<&str> {
        self.addresses
            .iter()
            .find(|(t, _)| t == kind)
            .map(|(_, a)| a.as_str())
    }
}

/// Prometheus' `buildNode`: no target (and a warning) for a node without any address.
pub(super) fn targets(node: &NodeInfo, out: &mut Vec<TargetGroup>) {
    let Some(address) = ADDRESS_PREFERENCE
        .iter()
        .find_map(|kind| node.first_address(kind))
    else {
        tracing::warn!(node = %node.meta.name, "kubernetes_sd: no node address found");
        return;
    };
    let mut group = Labels::new();
    set(&mut group, "node_provider_id", node.provider_id.as_str());
    for (kind, status) in node.conditions.iter() {
        let name = sanitize(&kind.to_lowercase());
        set(
            &mut group,
            &format!("node_condition_{name}"),
            status.to_lowercase(),
        );
    }
    add_object_meta(&mut group, &node.meta, "node");

    let mut t = Labels::new();
    t.insert(
        "__address__".to_owned(),
        join_host_port(address, node.kubelet_port),
    );
    t.insert("instance".to_owned(), node.meta.name.clone());
    for (kind, _) in node.addresses.iter() {
        let name = format!("node_address_{}", sanitize(kind));
        if let Some(first) = node.first_address(kind) {
            set(&mut t, &name, first);
        }
    }
    let group = Arc::new(group);
    out.push(one_target(&format!("node/{}", node.meta.name), &group, t));
}
