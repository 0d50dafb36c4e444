//! `role: ingress`: the `networking.k8s.io/v1` `Ingress` fields promrelay keeps and the
//! targets Prometheus' `buildIngress` makes (one per rule and path, `https` when a TLS entry
//! covers the rule's host).

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::labels::{Labels, Meta, add_object_meta, one_target, set};
use crate::scrape::discovery::TargetGroup;

/// What is kept of an ingress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IngressInfo {
    pub(super) meta: Meta,
    pub(super) class_name: Option<String>,
    /// Every host of every TLS entry.
    pub(super) tls_hosts: Box<[String]>,
    pub(super) rules: Box<[Rule]>,
}

/// A rule's host and, when it has an `http` part, its paths.
type Rule = (String, Option<Box<[String]>>);

impl IngressInfo {
    pub(super) fn from_api(mut ingress: Ingress) -> IngressInfo {
        let meta = Meta::from_object(&mut ingress.metadata);
        let spec = ingress.spec.unwrap_or_default();
        IngressInfo {
            meta,
            class_name: spec.ingress_class_name,
            tls_hosts: spec
                .tls
                .unwrap_or_default()
                .into_iter()
                .flat_map(|t| t.hosts.unwrap_or_default())
                .collect(),
            rules: spec
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    let paths = r.http.map(|h| {
                        h.paths
                            .into_iter()
                            .map(|p| p.path.unwrap_or_default())
                            .collect()
                    });
                    (r.host.unwrap_or_default(), paths)
                })
                .collect(),
        }
    }
}

/// Prometheus' `matchesHostnamePattern`: equal, or `*.rest` matching one first label.
fn matches_host_pattern(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let host: Vec<&str> = host.split('.').collect();
    pattern.first() == Some(&"*") && pattern.len() == host.len() && pattern[1..] == host[1..]
}

/// Prometheus' `buildIngress`.
pub(super) fn targets(ingress: &IngressInfo, out: &mut Vec<TargetGroup>) {
    let mut group = Labels::new();
    set(&mut group, "namespace", ingress.meta.namespace.as_str());
    if let Some(class) = &ingress.class_name {
        set(&mut group, "ingress_class_name", class.as_str());
    }
    add_object_meta(&mut group, &ingress.meta, "ingress");
    let group = Arc::new(group);
    let source = format!("ingress/{}/{}", ingress.meta.namespace, ingress.meta.name);
    for (host, paths) in ingress.rules.iter() {
        let scheme = if ingress
            .tls_hosts
            .iter()
            .any(|pattern| matches_host_pattern(pattern, host))
        {
            "https"
        } else {
            "http"
        };
        let root = [String::from("/")];
        let paths: &[String] = match paths {
            None => &root,
            Some(paths) => paths,
        };
        for path in paths {
            let path = if path.is_empty() { "/" } else { path.as_str() };
            let mut t = Labels::new();
            t.insert("__address__".to_owned(), host.clone());
            set(&mut t, "ingress_scheme", scheme);
            set(&mut t, "ingress_host", host.as_str());
            set(&mut t, "ingress_path", path);
            out.push(one_target(&source, &group, t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches_host_pattern;

    #[test]
    fn wildcard_tls_host_covers_exactly_one_label() {
        assert!(matches_host_pattern("*.example.com", "a.example.com"));
        assert!(!matches_host_pattern("*.example.com", "a.b.example.com"));
        assert!(matches_host_pattern("example.com", "example.com"));
    }
}
