//! `role: service`: the service fields promrelay keeps, the targets Prometheus'
//! `buildService` makes (one per port, at `<name>.<namespace>.svc:<port>`), and the service
//! labels endpoint targets carry.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

use super::labels::{Labels, Meta, add_object_meta, join_host_port, one_target, set};
use crate::scrape::discovery::TargetGroup;

/// What is kept of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ServiceInfo {
    pub(super) meta: Meta,
    /// `(name, port, protocol)` of each port.
    pub(super) ports: Box<[(String, i32, String)]>,
    pub(super) kind: String,
    pub(super) cluster_ip: String,
    pub(super) external_name: String,
    /// Prometheus' `loadBalancerIPs`: the ingress IPs joined by `,`, else `spec.loadBalancerIP`.
    pub(super) load_balancer_ip: String,
    pub(super) ip_family_policy: String,
    /// The primary IP family (`IPv4`, `IPv6`), if listed.
    pub(super) primary_ip_family: Option<String>,
}

impl ServiceInfo {
    pub(super) fn from_api(mut svc: Service) -> ServiceInfo {
        let meta = Meta::from_object(&mut svc.metadata);
        let spec = svc.spec.unwrap_or_default();
        let ingress_ips: Vec<String> = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip.filter(|ip| !ip.is_empty()))
            .collect();
        let load_balancer_ip = if ingress_ips.is_empty() {
            spec.load_balancer_ip.clone().unwrap_or_default()
        } else {
            ingress_ips.join(",")
        };
        ServiceInfo {
            meta,
            ports: spec
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
            kind: spec.type_.unwrap_or_default(),
            cluster_ip: spec.cluster_ip.unwrap_or_default(),
            external_name: spec.external_name.unwrap_or_default(),
            load_balancer_ip,
            ip_family_policy: spec.ip_family_policy.unwrap_or_default(),
            primary_ip_family: spec.ip_families.and_then(|f| f.into_iter().next()),
        }
    }
}

/// Prometheus' `serviceLabels`: namespace, `service_name`, labels and annotations.
pub(super) fn service_labels(svc: &ServiceInfo, labels: &mut Labels) {
    set(labels, "namespace", svc.meta.namespace.as_str());
    add_object_meta(labels, &svc.meta, "service");
}

/// Prometheus' `buildService`.
pub(super) fn targets(svc: &ServiceInfo, out: &mut Vec<TargetGroup>) {
    let mut group = Labels::new();
    service_labels(svc, &mut group);
    let group = Arc::new(group);
    let source = format!("svc/{}/{}", svc.meta.namespace, svc.meta.name);
    let host = format!("{}.{}.svc", svc.meta.name, svc.meta.namespace);
    for (name, port, protocol) in svc.ports.iter() {
        let mut t = Labels::new();
        t.insert("__address__".to_owned(), join_host_port(&host, port));
        set(&mut t, "service_port_name", name.as_str());
        set(&mut t, "service_port_number", port.to_string());
        set(&mut t, "service_port_protocol", protocol.as_str());
        set(&mut t, "service_type", svc.kind.as_str());
        if svc.kind == "ExternalName" {
            set(&mut t, "service_external_name", svc.external_name.as_str());
        } else {
            set(&mut t, "service_cluster_ip", svc.cluster_ip.as_str());
        }
        if svc.kind == "LoadBalancer" {
            set(
                &mut t,
                "service_loadbalancer_ip",
                svc.load_balancer_ip.as_str(),
            );
        }
        out.push(one_target(&source, &group, t));
    }
}
