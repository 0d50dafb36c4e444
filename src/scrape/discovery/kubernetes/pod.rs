//! `role: pod`: the pod fields promrelay keeps, and the targets Prometheus' `buildPod` makes
//! (one per container port; one per container without ports, at the pod IP alone).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

use super::labels::{Labels, Meta, add_object_meta, join_host_port, one_target, set};
use super::node::NodeInfo;
use crate::scrape::discovery::TargetGroup;

/// What is kept of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PodInfo {
    pub(super) meta: Meta,
    pub(super) uid: String,
    pub(super) ip: String,
    pub(super) host_ip: String,
    pub(super) node_name: String,
    pub(super) phase: String,
    /// The `Ready` condition's status in lower case, `unknown` without one.
    pub(super) ready: String,
    /// The controlling owner's kind and name.
    pub(super) controller: Option<(String, String)>,
    /// Containers first, then init containers.
    pub(super) containers: Box<[ContainerInfo]>,
    /// The labels every target of the pod shares ([`pod_labels`] and `namespace`), built once
    /// when the pod arrives and shared by the groups of every publication, instead of each
    /// publication (about one a second during a watch storm) building every pod's ~40 labels
    /// again while the last publication's are still alive.
    pub(super) common: Arc<Labels>,
}

/// What is kept of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ContainerInfo {
    pub(super) name: String,
    pub(super) image: String,
    /// From the container's status; empty when it has none yet.
    pub(super) id: String,
    pub(super) init: bool,
    pub(super) ports: Box<[PortInfo]>,
}

/// A container port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PortInfo {
    pub(super) name: String,
    pub(super) number: i32,
    pub(super) protocol: String,
}

impl PodInfo {
    pub(super) fn from_api(mut pod: Pod) -> PodInfo {
        let meta = Meta::from_object(&mut pod.metadata);
        let uid = pod.metadata.uid.take().unwrap_or_default();
        let controller = pod
            .metadata
            .owner_references
            .take()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.controller == Some(true))
            .map(|r| (r.kind, r.name));
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map_or_else(|| "unknown".to_owned(), |c| c.status.to_lowercase());
        let statuses = status.container_statuses.unwrap_or_default();
        let init_statuses = status.init_container_statuses.unwrap_or_default();
        let convert = |c: Container, init: bool, statuses: &[ContainerStatus]| ContainerInfo {
            id: statuses
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.container_id.clone())
                .unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            ports: c
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| PortInfo {
                    name: p.name.unwrap_or_default(),
                    number: p.container_port,
                    protocol: p.protocol.unwrap_or_default(),
                })
                .collect(),
            name: c.name,
            init,
        };
        let mut containers: Vec<ContainerInfo> = spec
            .containers
            .into_iter()
            .map(|c| convert(c, false, &statuses))
            .collect();
        containers.extend(
            spec.init_containers
                .unwrap_or_default()
                .into_iter()
                .map(|c| convert(c, true, &init_statuses)),
        );
        let mut pod = PodInfo {
            meta,
            uid,
            ip: status.pod_ip.unwrap_or_default(),
            host_ip: status.host_ip.unwrap_or_default(),
            node_name: spec.node_name.unwrap_or_default(),
            phase: status.phase.unwrap_or_default(),
            ready,
            controller,
            containers: containers.into(),
            common: Arc::default(),
        };
        let mut common = Labels::new();
        pod_labels(&pod, &mut common);
        set(&mut common, "namespace", pod.meta.namespace.as_str());
        pod.common = Arc::new(common);
        pod
    }

    /// Prometheus' group source: `pod/<namespace>/<name>`.
    pub(super) fn source(&self) -> String {
        format!("pod/{}/{}", self.meta.namespace, self.meta.name)
    }
}

/// Prometheus' `podLabels`: the labels a pod gives its own targets and endpoint targets.
pub(super) fn pod_labels(pod: &PodInfo, labels: &mut Labels) {
    set(labels, "pod_ip", pod.ip.as_str());
    set(labels, "pod_ready", pod.ready.as_str());
    set(labels, "pod_phase", pod.phase.as_str());
    set(labels, "pod_node_name", pod.node_name.as_str());
    set(labels, "pod_host_ip", pod.host_ip.as_str());
    set(labels, "pod_uid", pod.uid.as_str());
    add_object_meta(labels, &pod.meta, "pod");
    if let Some((kind, name)) = &pod.controller {
        if !kind.is_empty() {
            set(labels, "pod_controller_kind", kind.as_str());
        }
        if !name.is_empty() {
            set(labels, "pod_controller_name", name.as_str());
        }
    }
}

/// The container labels of one container port (`port` None: a container without ports).
pub(super) fn container_labels(
    c: &ContainerInfo,
    port: Option<&PortInfo>,
    with_id: bool,
    labels: &mut Labels,
) {
    set(labels, "pod_container_name", c.name.as_str());
    if with_id {
        set(labels, "pod_container_id", c.id.as_str());
    }
    set(labels, "pod_container_image", c.image.as_str());
    set(
        labels,
        "pod_container_init",
        if c.init { "true" } else { "false" },
    );
    if let Some(p) = port {
        set(labels, "pod_container_port_name", p.name.as_str());
        set(labels, "pod_container_port_number", p.number.to_string());
        set(labels, "pod_container_port_protocol", p.protocol.as_str());
    }
}

/// Prometheus' `buildPod`. With `attach_metadata.node`, `node` is the pod's node as known
/// (`Some(None)`: not known yet, so no targets, as in Prometheus); without it, `None`.
pub(super) fn targets(pod: &PodInfo, node: Option<Option<&NodeInfo>>, out: &mut Vec<TargetGroup>) {
    if pod.ip.is_empty() {
        return;
    }
    let group = match node {
        Some(None) => return,
        Some(Some(node)) => {
            let mut group = Labels::clone(&pod.common);
            node.add_metadata(&mut group);
            Arc::new(group)
        }
        None => Arc::clone(&pod.common),
    };
    let source = pod.source();
    for c in pod.containers.iter() {
        if c.ports.is_empty() {
            let mut t = Labels::new();
            t.insert("__address__".to_owned(), pod.ip.clone());
            container_labels(c, None, true, &mut t);
            out.push(one_target(&source, &group, t));
            continue;
        }
        for p in c.ports.iter() {
            let mut t = Labels::new();
            t.insert("__address__".to_owned(), join_host_port(&pod.ip, p.number));
            container_labels(c, Some(p), true, &mut t);
            out.push(one_target(&source, &group, t));
        }
    }
}
