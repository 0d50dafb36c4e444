//! `role: endpointslice`: the `discovery.k8s.io/v1` `EndpointSlice` fields promrelay keeps
//! and the targets Prometheus' `buildEndpointSlice` makes (as `endpoints`, with the slice's
//! own labels; the backing service is the one named by `kubernetes.io/service-name`).

use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::Stores;
use super::endpoints::{SeenPods, add_node_metadata, matching_container};
use super::labels::{
    Labels, Meta, ObjectRef, add_object_meta, join_host_port, one_target, sanitize, set,
};
use super::pod::pod_labels;
use super::service::service_labels;
use crate::scrape::discovery::TargetGroup;

/// The label naming a slice's service.
pub(super) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What is kept of an `EndpointSlice`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SliceInfo {
    pub(super) meta: Meta,
    pub(super) address_type: String,
    pub(super) endpoints: Box<[SliceEndpoint]>,
    pub(super) ports: Box<[SlicePort]>,
}

/// One endpoint of a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SliceEndpoint {
    pub(super) addresses: Box<[String]>,
    pub(super) ready: Option<bool>,
    pub(super) serving: Option<bool>,
    pub(super) terminating: Option<bool>,
    pub(super) hostname: Option<String>,
    pub(super) node_name: Option<String>,
    pub(super) zone: Option<String>,
    pub(super) target: Option<ObjectRef>,
    pub(super) topology: Box<[(String, String)]>,
}

/// One port of a slice; every field is optional in the API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SlicePort {
    pub(super) name: Option<String>,
    pub(super) port: Option<i32>,
    pub(super) protocol: Option<String>,
    pub(super) app_protocol: Option<String>,
}

impl SliceInfo {
    pub(super) fn from_api(mut slice: EndpointSlice) -> SliceInfo {
        let meta = Meta::from_object(&mut slice.metadata);
        SliceInfo {
            meta,
            address_type: slice.address_type,
            endpoints: slice
                .endpoints
                .into_iter()
                .map(|e| {
                    let conditions = e.conditions.unwrap_or_default();
                    SliceEndpoint {
                        addresses: e.addresses.into(),
                        ready: conditions.ready,
                        serving: conditions.serving,
                        terminating: conditions.terminating,
                        hostname: e.hostname,
                        node_name: e.node_name,
                        zone: e.zone,
                        target: e.target_ref.map(ObjectRef::from_api),
                        topology: e
                            .deprecated_topology
                            .unwrap_or_default()
                            .into_iter()
                            .collect(),
                    }
                })
                .collect(),
            ports: slice
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| SlicePort {
                    name: p.name,
                    port: p.port,
                    protocol: p.protocol,
                    app_protocol: p.app_protocol,
                })
                .collect(),
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Prometheus' `buildEndpointSlice`.
pub(super) fn targets(slice: &SliceInfo, stores: &Stores, out: &mut Vec<TargetGroup>) {
    let mut group = Labels::new();
    set(&mut group, "namespace", slice.meta.namespace.as_str());
    set(
        &mut group,
        "endpointslice_address_type",
        slice.address_type.as_str(),
    );
    add_object_meta(&mut group, &slice.meta, "endpointslice");
    let svc = slice
        .meta
        .label(SERVICE_NAME_LABEL)
        .and_then(|name| stores.service(&slice.meta.namespace, name));
    if let Some(svc) = svc {
        service_labels(svc, &mut group);
        // A dual-stack service's slices of its secondary family are skipped, as Prometheus
        // does, so each endpoint is scraped once.
        let dual = matches!(
            svc.ip_family_policy.as_str(),
            "PreferDualStack" | "RequireDualStack"
        );
        if dual
            && svc
                .primary_ip_family
                .as_ref()
                .is_some_and(|primary| *primary != slice.address_type)
        {
            return;
        }
    }
    let group = Arc::new(group);
    let source = format!("endpointslice/{}/{}", slice.meta.namespace, slice.meta.name);

    let mut seen = SeenPods::default();
    for ep in slice.endpoints.iter() {
        for port in slice.ports.iter() {
            for addr in ep.addresses.iter() {
                let mut t = Labels::new();
                let address = match port.port {
                    Some(p) => join_host_port(addr, p),
                    None => addr.clone(),
                };
                t.insert("__address__".to_owned(), address);
                if let Some(v) = &port.name {
                    set(&mut t, "endpointslice_port_name", v.as_str());
                }
                if let Some(v) = &port.protocol {
                    set(&mut t, "endpointslice_port_protocol", v.as_str());
                }
                if let Some(v) = port.port {
                    set(&mut t, "endpointslice_port", v.to_string());
                }
                if let Some(v) = &port.app_protocol {
                    set(&mut t, "endpointslice_port_app_protocol", v.as_str());
                }
                if let Some(v) = ep.ready {
                    set(
                        &mut t,
                        "endpointslice_endpoint_conditions_ready",
                        bool_text(v),
                    );
                }
                if let Some(v) = ep.serving {
                    set(
                        &mut t,
                        "endpointslice_endpoint_conditions_serving",
                        bool_text(v),
                    );
                }
                if let Some(v) = ep.terminating {
                    set(
                        &mut t,
                        "endpointslice_endpoint_conditions_terminating",
                        bool_text(v),
                    );
                }
                if let Some(v) = &ep.hostname {
                    set(&mut t, "endpointslice_endpoint_hostname", v.as_str());
                }
                if let Some(r) = &ep.target {
                    set(&mut t, "endpointslice_address_target_kind", r.kind.as_str());
                    set(&mut t, "endpointslice_address_target_name", r.name.as_str());
                }
                if let Some(v) = &ep.node_name {
                    set(&mut t, "endpointslice_endpoint_node_name", v.as_str());
                }
                if let Some(v) = &ep.zone {
                    set(&mut t, "endpointslice_endpoint_zone", v.as_str());
                }
                for (k, v) in ep.topology.iter() {
                    let name = sanitize(k);
                    set(
                        &mut t,
                        &format!("endpointslice_endpoint_topology_{name}"),
                        v.as_str(),
                    );
                    set(
                        &mut t,
                        &format!("endpointslice_endpoint_topology_present_{name}"),
                        "true",
                    );
                }
                if stores.attach_node_metadata {
                    let node = match &ep.target {
                        Some(r) if r.kind == "Node" => Some(r.name.as_str()),
                        _ => ep.node_name.as_deref(),
                    };
                    add_node_metadata(stores, node, &mut t);
                }
                let pod = ep
                    .target
                    .as_ref()
                    .filter(|r| r.kind == "Pod")
                    .and_then(|r| stores.pod(&r.namespace, &r.name));
                if let Some(pod) = pod {
                    pod_labels(pod, &mut t);
                    if let Some(number) = port.port
                        && let Some((c, cport)) = matching_container(pod, number)
                    {
                        set(&mut t, "pod_container_name", c.name.as_str());
                        set(&mut t, "pod_container_image", c.image.as_str());
                        set(&mut t, "pod_container_port_name", cport.name.as_str());
                        set(&mut t, "pod_container_port_number", number.to_string());
                        // Prometheus reports the container port's protocol here.
                        set(
                            &mut t,
                            "pod_container_port_protocol",
                            cport.protocol.as_str(),
                        );
                        set(&mut t, "pod_container_init", bool_text(c.init));
                    }
                    seen.saw(pod, port.port);
                }
                out.push(one_target(&source, &group, t));
            }
        }
    }
    seen.unseen_ports(&source, &group, out);
}
