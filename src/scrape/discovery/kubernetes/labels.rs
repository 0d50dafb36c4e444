//! What every role shares: the trimmed object metadata kept per object, the
//! `__meta_kubernetes_` label names, and the step from Prometheus' (group labels, target
//! labels) to promrelay's one-target [`TargetGroup`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::scrape::discovery::TargetGroup;

/// Prefix of every label this discovery sets.
pub(super) const PREFIX: &str = "__meta_kubernetes_";

/// A label set under construction.
pub(super) type Labels = BTreeMap<String, String>;

/// The metadata kept of any object: no managed fields, owner list or timestamps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) labels: Box<[(String, String)]>,
    pub(super) annotations: Box<[(String, String)]>,
}

impl Meta {
    pub(super) fn from_object(meta: &mut ObjectMeta) -> Meta {
        let pairs = |m: Option<BTreeMap<String, String>>| -> Box<[(String, String)]> {
            m.map(|m| m.into_iter().collect()).unwrap_or_default()
        };
        Meta {
            namespace: meta.namespace.take().unwrap_or_default(),
            name: meta.name.take().unwrap_or_default(),
            labels: pairs(meta.labels.take()),
            annotations: pairs(meta.annotations.take()),
        }
    }

    /// A Kubernetes label of the object.
    pub(super) fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// client-go's `MetaNamespaceKeyFunc`.
pub(super) fn key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// Sets `__meta_kubernetes_<name>`.
pub(super) fn set(labels: &mut Labels, name: &str, value: impl Into<String>) {
    labels.insert(format!("{PREFIX}{name}"), value.into());
}

/// Prometheus' `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub(super) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Prometheus' `addObjectMetaLabels`: `<role>_name`, then the object's labels and annotations.
pub(super) fn add_object_meta(labels: &mut Labels, meta: &Meta, role: &str) {
    set(labels, &format!("{role}_name"), meta.name.as_str());
    add_labels_and_annotations(labels, meta, role);
}

/// Prometheus' `addObjectAnnotationsAndLabels`: `<resource>_label_<name>`,
/// `<resource>_labelpresent_<name>`, and the same for annotations.
pub(super) fn add_labels_and_annotations(labels: &mut Labels, meta: &Meta, resource: &str) {
    for (kind, pairs) in [("label", &meta.labels), ("annotation", &meta.annotations)] {
        for (k, v) in pairs.iter() {
            let name = sanitize(k);
            set(labels, &format!("{resource}_{kind}_{name}"), v.as_str());
            set(labels, &format!("{resource}_{kind}present_{name}"), "true");
        }
    }
}

/// One target of a Prometheus group as promrelay's group of one: the group's labels, then the
/// target's on top (they win, as in Prometheus' `PopulateLabels`), `__address__` as the target.
/// The group's labels are shared by every target of the object ([`TargetGroup::common`]).
pub(super) fn one_target(source: &str, group: &Arc<Labels>, mut target: Labels) -> TargetGroup {
    let address = target.remove("__address__").unwrap_or_default();
    TargetGroup {
        source: source.to_owned(),
        targets: vec![address],
        labels: target,
        common: Some(Arc::clone(group)),
        file: None,
    }
}

/// Go's `net.JoinHostPort`: brackets around an IPv6 host.
pub(super) fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An object reference as endpoints keep it: kind, namespace, name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ObjectRef {
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
}

impl ObjectRef {
    pub(super) fn from_api(r: k8s_openapi::api::core::v1::ObjectReference) -> ObjectRef {
        ObjectRef {
            kind: r.kind.unwrap_or_default(),
            namespace: r.namespace.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_replaces_each_invalid_character_with_one_underscore() {
        assert_eq!(sanitize("app.kubernetes.io/name"), "app_kubernetes_io_name");
        assert_eq!(sanitize("ünï"), "_n_");
    }

    #[test]
    fn target_labels_win_over_group_labels() {
        let group = Arc::new(Labels::from([
            ("a".to_owned(), "group".to_owned()),
            ("b".to_owned(), "group".to_owned()),
        ]));
        let target = Labels::from([
            ("a".to_owned(), "target".to_owned()),
            ("__address__".to_owned(), "1.2.3.4:80".to_owned()),
        ]);
        let g = one_target("pod/ns/p", &group, target);
        assert_eq!(g.targets, ["1.2.3.4:80"]);
        let merged = g.merged_labels();
        assert_eq!(merged["a"], "target");
        assert_eq!(merged["b"], "group");
        assert!(!merged.contains_key("__address__"));
        assert!(
            g.common.as_ref().is_some_and(|c| Arc::ptr_eq(c, &group)),
            "the object's labels are shared, not copied"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("2001:db8::1", 80), "[2001:db8::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
