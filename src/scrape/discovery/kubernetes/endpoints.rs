//! `role: endpoints`: the `Endpoints` fields promrelay keeps and the targets Prometheus'
//! `buildEndpoints` makes: one per address and port, with the backing service's and pod's
//! labels, plus one per container port of a backing pod that no endpoint port names. The pod
//! part is shared with `endpointslice`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};

use super::Stores;
use super::labels::{Labels, Meta, ObjectRef, add_object_meta, join_host_port, one_target, set};
use super::pod::{PodInfo, container_labels, pod_labels};
use super::service::service_labels;
use crate::scrape::discovery::TargetGroup;

/// What is kept of an `Endpoints` object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct EndpointsInfo {
    pub(super) meta: Meta,
    pub(super) subsets: Box<[Subset]>,
}

/// One subset: its ready and not-ready addresses share its ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Subset {
    pub(super) addresses: Box<[Address]>,
    pub(super) not_ready: Box<[Address]>,
    /// `(name, port, protocol)`.
    pub(super) ports: Box<[(String, i32, String)]>,
}

/// One endpoint address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Address {
    pub(super) ip: String,
    pub(super) hostname: String,
    pub(super) node_name: Option<String>,
    pub(super) target: Option<ObjectRef>,
}

impl Address {
    fn from_api(a: EndpointAddress) -> Address {
        Address {
            ip: a.ip,
            hostname: a.hostname.unwrap_or_default(),
            node_name: a.node_name,
            target: a.target_ref.map(ObjectRef::from_api),
        }
    }
}

impl EndpointsInfo {
    pub(super) fn from_api(mut eps: Endpoints) -> EndpointsInfo {
        let meta = Meta::from_object(&mut eps.metadata);
        let subsets = eps
            .subsets
            .unwrap_or_default()
            .into_iter()
            .map(|s| Subset {
                addresses: s
                    .addresses
                    .unwrap_or_default()
                    .into_iter()
                    .map(Address::from_api)
                    .collect(),
                not_ready: s
                    .not_ready_addresses
                    .unwrap_or_default()
                    .into_iter()
                    .map(Address::from_api)
                    .collect(),
                ports: s
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| {
                        (
                            p.name.unwrap_or_default(),
                            p.port,
                            p.protocol.unwrap_or_default(),
                        )
                    })
                    .collect(),
            })
            .collect();
        EndpointsInfo { meta, subsets }
    }
}

/// Pods an endpoints object points at, in the order first met, with the endpoint port numbers
/// that named them (Prometheus' `seenPods`).
#[derive(Default)]
pub(super) struct SeenPods<'a> {
    pods: Vec<(&'a PodInfo, Vec<i32>)>,
}

impl<'a> SeenPods<'a> {
    pub(super) fn saw(&mut self, pod: &'a PodInfo, port: Option<i32>) {
        let at = match self.pods.iter().position(|(p, _)| std::ptr::eq(*p, pod)) {
            Some(at) => at,
            None => {
                self.pods.push((pod, Vec::new()));
                self.pods.len() - 1
            }
        };
        if let Some(port) = port {
            self.pods[at].1.push(port);
        }
    }

    /// A target for every container port of the seen pods (with an IP) that no endpoint port
    /// named, with the group's labels.
    pub(super) fn unseen_ports(
        &self,
        source: &str,
        group: &Arc<Labels>,
        out: &mut Vec<TargetGroup>,
    ) {
        for (pod, seen) in &self.pods {
            if pod.ip.is_empty() {
                continue;
            }
            for c in pod.containers.iter() {
                for p in c.ports.iter() {
                    if seen.contains(&p.number) {
                        continue;
                    }
                    let mut t = Labels::new();
                    pod_labels(pod, &mut t);
                    t.insert("__address__".to_owned(), join_host_port(&pod.ip, p.number));
                    container_labels(c, Some(p), false, &mut t);
                    out.push(one_target(source, group, t));
                }
            }
        }
    }
}

/// The container port of `pod` an endpoint port number names: the last container (in
/// containers-then-init order) with a port of that number, and its first such port.
pub(super) fn matching_container(
    pod: &PodInfo,
    number: i32,
) -> Option<(&super::pod::ContainerInfo, &super::pod::PortInfo)> {
    pod.containers
        .iter()
        .rev()
        .find_map(|c| c.ports.iter().find(|p| p.number == number).map(|p| (c, p)))
}

/// Adds the node metadata of `node_name` when it is known.
pub(super) fn add_node_metadata(stores: &Stores, node_name: Option<&str>, t: &mut Labels) {
    if let Some(node) = node_name.and_then(|n| stores.node(n)) {
        node.add_metadata(t);
    }
}

/// Prometheus' `buildEndpoints`.
pub(super) fn targets(eps: &EndpointsInfo, stores: &Stores, out: &mut Vec<TargetGroup>) {
    let mut group = Labels::new();
    set(&mut group, "namespace", eps.meta.namespace.as_str());
    if let Some(svc) = stores.service(&eps.meta.namespace, &eps.meta.name) {
        service_labels(svc, &mut group);
    }
    add_object_meta(&mut group, &eps.meta, "endpoints");
    let group = Arc::new(group);
    let source = format!("endpoints/{}/{}", eps.meta.namespace, eps.meta.name);

    let mut seen = SeenPods::default();
    for subset in eps.subsets.iter() {
        for (port_name, port, protocol) in subset.ports.iter() {
            let addresses = subset
                .addresses
                .iter()
                .map(|a| (a, "true"))
                .chain(subset.not_ready.iter().map(|a| (a, "false")));
            for (addr, ready) in addresses {
                let mut t = Labels::new();
                t.insert("__address__".to_owned(), join_host_port(&addr.ip, port));
                set(&mut t, "endpoint_port_name", port_name.as_str());
                set(&mut t, "endpoint_port_protocol", protocol.as_str());
                set(&mut t, "endpoint_ready", ready);
                if let Some(r) = &addr.target {
                    set(&mut t, "endpoint_address_target_kind", r.kind.as_str());
                    set(&mut t, "endpoint_address_target_name", r.name.as_str());
                }
                if let Some(node) = &addr.node_name {
                    set(&mut t, "endpoint_node_name", node.as_str());
                }
                if !addr.hostname.is_empty() {
                    set(&mut t, "endpoint_hostname", addr.hostname.as_str());
                }
                if stores.attach_node_metadata {
                    let node = match (&addr.node_name, &addr.target) {
                        (Some(n), _) => Some(n.as_str()),
                        (None, Some(r)) if r.kind == "Node" => Some(r.name.as_str()),
                        _ => None,
                    };
                    add_node_metadata(stores, node, &mut t);
                }
                let pod = addr
                    .target
                    .as_ref()
                    .filter(|r| r.kind == "Pod")
                    .and_then(|r| stores.pod(&r.namespace, &r.name));
                if let Some(pod) = pod {
                    seen.saw(pod, Some(*port));
                    pod_labels(pod, &mut t);
                    if let Some((c, cport)) = matching_container(pod, *port) {
                        set(&mut t, "pod_container_name", c.name.as_str());
                        set(&mut t, "pod_container_image", c.image.as_str());
                        set(&mut t, "pod_container_port_name", cport.name.as_str());
                        set(&mut t, "pod_container_port_number", port.to_string());
                        // Prometheus reports the endpoint port's protocol here.
                        set(&mut t, "pod_container_port_protocol", protocol.as_str());
                        set(
                            &mut t,
                            "pod_container_init",
                            if c.init { "true" } else { "false" },
                        );
                    }
                }
                out.push(one_target(&source, &group, t));
            }
        }
    }
    seen.unseen_ports(&source, &group, out);
}
