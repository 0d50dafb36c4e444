//! Objects in, exact label sets out: the cases of Prometheus' `discovery/kubernetes/*_test.go`
//! ported (objects written as the API server sends them), plus the store's list/watch rules.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

/// Puts `object` (API JSON) into the store of its kind, as a synced watcher would.
fn put<K: Watched>(stores: &mut Stores, object: Value) {
    let k: K = serde_json::from_value(object).expect("object shaped as the API sends it");
    let key = object_key(&k);
    let store = K::store(stores);
    if store.watchers.is_empty() {
        store.add_watcher();
    }
    store.apply(StoreEvent::Apply(key, k.trim()), 0);
    store.watchers[0].synced = true;
}

impl Stores {
    /// [`Stores::groups`] with each group's labels in one map, to compare with [`expected`].
    fn flat_groups(&self, role: KubernetesRole) -> Vec<TargetGroup> {
        self.groups(role)
            .into_iter()
            .map(TargetGroup::flattened)
            .collect()
    }
}

/// The groups Prometheus' test expects: one per target, the group's labels under the
/// target's.
fn expected(source: &str, group: &[(&str, &str)], targets: &[&[(&str, &str)]]) -> Vec<TargetGroup> {
    let group: Arc<labels::Labels> = Arc::new(
        group
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    targets
        .iter()
        .map(|t| {
            let t = t
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            labels::one_target(source, &group, t).flattened()
        })
        .collect()
}

fn multi_port_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "testpod", "namespace": "default", "uid": "abc123",
            "labels": {"test/label": "testvalue"},
            "annotations": {"test/annotation": "testannotationvalue"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "testcontrollerkind",
                "name": "testcontrollername", "uid": "u1", "controller": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
        },
        "spec": {
            "nodeName": "testnode",
            "containers": [
                {"name": "testcontainer0", "image": "testcontainer0:latest", "ports": [
                    {"name": "testport0", "protocol": "TCP", "containerPort": 9000},
                    {"name": "testport1", "protocol": "UDP", "containerPort": 9001}]},
                {"name": "testcontainer1", "image": "testcontainer1:latest"}
            ]
        },
        "status": {
            "podIP": "1.2.3.4", "hostIP": "2.3.4.5", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "testcontainer0", "containerID": "docker://a1b2c3d4e5f6",
                 "image": "", "imageID": "", "ready": true, "restartCount": 0},
                {"name": "testcontainer1", "containerID": "containerd://6f5e4d3c2b1a",
                 "image": "", "imageID": "", "ready": true, "restartCount": 0}
            ]
        }
    })
}

const MULTI_PORT_POD_LABELS: &[(&str, &str)] = &[
    ("__meta_kubernetes_pod_name", "testpod"),
    ("__meta_kubernetes_namespace", "default"),
    ("__meta_kubernetes_pod_label_test_label", "testvalue"),
    ("__meta_kubernetes_pod_labelpresent_test_label", "true"),
    (
        "__meta_kubernetes_pod_annotation_test_annotation",
        "testannotationvalue",
    ),
    (
        "__meta_kubernetes_pod_annotationpresent_test_annotation",
        "true",
    ),
    ("__meta_kubernetes_pod_node_name", "testnode"),
    ("__meta_kubernetes_pod_ip", "1.2.3.4"),
    ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
    ("__meta_kubernetes_pod_ready", "true"),
    ("__meta_kubernetes_pod_phase", "Running"),
    ("__meta_kubernetes_pod_uid", "abc123"),
    (
        "__meta_kubernetes_pod_controller_kind",
        "testcontrollerkind",
    ),
    (
        "__meta_kubernetes_pod_controller_name",
        "testcontrollername",
    ),
];

#[test]
fn pod_gives_one_target_per_container_port_and_one_per_portless_container() {
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, multi_port_pod());
    assert_eq!(
        stores.flat_groups(KubernetesRole::Pod),
        expected(
            "pod/default/testpod",
            MULTI_PORT_POD_LABELS,
            &[
                &[
                    ("__address__", "1.2.3.4:9000"),
                    ("__meta_kubernetes_pod_container_name", "testcontainer0"),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "testcontainer0:latest"
                    ),
                    ("__meta_kubernetes_pod_container_port_name", "testport0"),
                    ("__meta_kubernetes_pod_container_port_number", "9000"),
                    ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                    ("__meta_kubernetes_pod_container_init", "false"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "docker://a1b2c3d4e5f6"
                    ),
                ],
                &[
                    ("__address__", "1.2.3.4:9001"),
                    ("__meta_kubernetes_pod_container_name", "testcontainer0"),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "testcontainer0:latest"
                    ),
                    ("__meta_kubernetes_pod_container_port_name", "testport1"),
                    ("__meta_kubernetes_pod_container_port_number", "9001"),
                    ("__meta_kubernetes_pod_container_port_protocol", "UDP"),
                    ("__meta_kubernetes_pod_container_init", "false"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "docker://a1b2c3d4e5f6"
                    ),
                ],
                &[
                    ("__address__", "1.2.3.4"),
                    ("__meta_kubernetes_pod_container_name", "testcontainer1"),
                    (
                        "__meta_kubernetes_pod_container_image",
                        "testcontainer1:latest"
                    ),
                    ("__meta_kubernetes_pod_container_init", "false"),
                    (
                        "__meta_kubernetes_pod_container_id",
                        "containerd://6f5e4d3c2b1a"
                    ),
                ],
            ],
        )
    );
}

#[test]
fn init_containers_are_targets_marked_init() {
    let mut pod = multi_port_pod();
    pod["spec"]["containers"] = json!([{"name": "main", "image": "m:1"}]);
    pod["spec"]["initContainers"] = json!([{"name": "setup", "image": "s:1", "ports": [{"containerPort": 1234, "protocol": "TCP"}]}]);
    pod["status"]["containerStatuses"] = json!([]);
    pod["status"]["initContainerStatuses"] = json!([{"name": "setup",
        "containerID": "containerd://init", "image": "", "imageID": "", "ready": false, "restartCount": 0}]);
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, pod);
    let groups = stores.flat_groups(KubernetesRole::Pod);
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1].targets, ["1.2.3.4:1234"]);
    assert_eq!(
        groups[1].labels["__meta_kubernetes_pod_container_init"],
        "true"
    );
    assert_eq!(
        groups[1].labels["__meta_kubernetes_pod_container_id"],
        "containerd://init"
    );
    assert_eq!(
        groups[1].labels["__meta_kubernetes_pod_container_port_name"],
        ""
    );
    assert_eq!(groups[0].labels["__meta_kubernetes_pod_container_id"], "");
}

#[test]
fn pod_without_ip_has_no_targets() {
    let mut pod = multi_port_pod();
    pod["status"]["podIP"] = json!("");
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, pod);
    assert!(stores.flat_groups(KubernetesRole::Pod).is_empty());
}

fn node(name: &str, address: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"test.annotation/foo": "bar"}},
        "spec": {"providerID": "aws:///de"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address},
                          {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "MemoryPressure", "status": "False"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
        }
    })
}

#[test]
fn node_target_is_the_kubelet_at_the_internal_ip() {
    let mut stores = Stores::default();
    put::<Node>(
        &mut stores,
        node("test", "1.2.3.4", json!({"test-label": "testvalue"})),
    );
    assert_eq!(
        stores.flat_groups(KubernetesRole::Node),
        expected(
            "node/test",
            &[
                ("__meta_kubernetes_node_name", "test"),
                ("__meta_kubernetes_node_provider_id", "aws:///de"),
                ("__meta_kubernetes_node_label_test_label", "testvalue"),
                ("__meta_kubernetes_node_labelpresent_test_label", "true"),
                (
                    "__meta_kubernetes_node_annotation_test_annotation_foo",
                    "bar"
                ),
                (
                    "__meta_kubernetes_node_annotationpresent_test_annotation_foo",
                    "true"
                ),
                ("__meta_kubernetes_node_condition_ready", "true"),
                ("__meta_kubernetes_node_condition_memorypressure", "false"),
            ],
            &[&[
                ("__address__", "1.2.3.4:10250"),
                ("instance", "test"),
                ("__meta_kubernetes_node_address_InternalIP", "1.2.3.4"),
                ("__meta_kubernetes_node_address_Hostname", "test"),
            ]],
        )
    );
}

#[test]
fn pod_with_node_metadata_waits_for_its_node_and_carries_its_labels() {
    let mut stores = Stores {
        attach_node_metadata: true,
        ..Stores::default()
    };
    put::<Pod>(&mut stores, multi_port_pod());
    assert!(
        stores.flat_groups(KubernetesRole::Pod).is_empty(),
        "no targets while the node is unknown, as in Prometheus"
    );
    put::<Node>(
        &mut stores,
        node("testnode", "9.9.9.9", json!({"l1": "v1"})),
    );
    let groups = stores.flat_groups(KubernetesRole::Pod);
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0].labels["__meta_kubernetes_node_name"], "testnode");
    assert_eq!(groups[0].labels["__meta_kubernetes_node_label_l1"], "v1");
    assert_eq!(
        groups[0].labels["__meta_kubernetes_node_labelpresent_l1"],
        "true"
    );
}

fn service(kind: &str, extra_spec: Value, status: Value) -> Value {
    let mut spec = json!({
        "type": kind,
        "ports": [{"name": "testport", "protocol": "TCP", "port": 30900, "targetPort": 30900}],
        "clusterIP": "10.0.0.1"
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "testservice", "namespace": "default",
                     "labels": {"test-label": "testvalue"},
                     "annotations": {"test-annotation": "testannotationvalue"}},
        "spec": spec,
        "status": status
    })
}

const SERVICE_LABELS: &[(&str, &str)] = &[
    ("__meta_kubernetes_service_name", "testservice"),
    ("__meta_kubernetes_namespace", "default"),
    ("__meta_kubernetes_service_label_test_label", "testvalue"),
    ("__meta_kubernetes_service_labelpresent_test_label", "true"),
    (
        "__meta_kubernetes_service_annotation_test_annotation",
        "testannotationvalue",
    ),
    (
        "__meta_kubernetes_service_annotationpresent_test_annotation",
        "true",
    ),
];

#[test]
fn service_targets_its_dns_name_per_port() {
    let mut stores = Stores::default();
    put::<Service>(&mut stores, service("ClusterIP", json!({}), json!({})));
    assert_eq!(
        stores.flat_groups(KubernetesRole::Service),
        expected(
            "svc/default/testservice",
            SERVICE_LABELS,
            &[&[
                ("__address__", "testservice.default.svc:30900"),
                ("__meta_kubernetes_service_type", "ClusterIP"),
                ("__meta_kubernetes_service_cluster_ip", "10.0.0.1"),
                ("__meta_kubernetes_service_port_name", "testport"),
                ("__meta_kubernetes_service_port_number", "30900"),
                ("__meta_kubernetes_service_port_protocol", "TCP"),
            ]],
        )
    );
}

#[test]
fn external_name_service_shows_the_name_not_a_cluster_ip() {
    let mut stores = Stores::default();
    put::<Service>(
        &mut stores,
        service(
            "ExternalName",
            json!({"externalName": "FooExternalName", "clusterIP": null}),
            json!({}),
        ),
    );
    let g = &stores.flat_groups(KubernetesRole::Service)[0];
    assert_eq!(
        g.labels["__meta_kubernetes_service_external_name"],
        "FooExternalName"
    );
    assert!(
        !g.labels
            .contains_key("__meta_kubernetes_service_cluster_ip")
    );
}

#[test]
fn load_balancer_service_shows_its_ingress_ips() {
    let mut stores = Stores::default();
    put::<Service>(
        &mut stores,
        service(
            "LoadBalancer",
            json!({"loadBalancerIP": "127.0.0.1"}),
            json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "x"}, {"ip": "5.6.7.8"}]}}),
        ),
    );
    let g = &stores.flat_groups(KubernetesRole::Service)[0];
    assert_eq!(
        g.labels["__meta_kubernetes_service_loadbalancer_ip"],
        "1.2.3.4,5.6.7.8"
    );
    assert_eq!(g.labels["__meta_kubernetes_service_cluster_ip"], "10.0.0.1");
}

fn two_container_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "testpod", "namespace": "default", "uid": "deadbeef"},
        "spec": {"nodeName": "testnode", "containers": [
            {"name": "c1", "image": "c1:latest", "ports": [{"name": "mainport", "containerPort": 9000, "protocol": "TCP"}]},
            {"name": "c2", "image": "c2:latest", "ports": [{"name": "sideport", "containerPort": 9001, "protocol": "TCP"}]}
        ]},
        "status": {"hostIP": "2.3.4.5", "podIP": "1.2.3.4"}
    })
}

const TWO_CONTAINER_POD_LABELS: &[(&str, &str)] = &[
    ("__meta_kubernetes_pod_name", "testpod"),
    ("__meta_kubernetes_pod_ip", "1.2.3.4"),
    ("__meta_kubernetes_pod_ready", "unknown"),
    ("__meta_kubernetes_pod_phase", ""),
    ("__meta_kubernetes_pod_node_name", "testnode"),
    ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
    ("__meta_kubernetes_pod_uid", "deadbeef"),
];

fn with(
    base: &[(&'static str, &'static str)],
    more: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn endpoints_backed_by_a_pod_carry_its_labels_and_add_its_unnamed_ports() {
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, two_container_pod());
    put::<Endpoints>(
        &mut stores,
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "testendpoints", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "4.3.2.1", "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
                "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}]
            }]
        }),
    );
    let first = with(
        TWO_CONTAINER_POD_LABELS,
        &[
            ("__address__", "4.3.2.1:9000"),
            ("__meta_kubernetes_endpoint_port_name", "testport"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", "true"),
            ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
            ("__meta_kubernetes_endpoint_address_target_name", "testpod"),
            ("__meta_kubernetes_pod_container_name", "c1"),
            ("__meta_kubernetes_pod_container_image", "c1:latest"),
            ("__meta_kubernetes_pod_container_port_name", "mainport"),
            ("__meta_kubernetes_pod_container_port_number", "9000"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ],
    );
    let second = with(
        TWO_CONTAINER_POD_LABELS,
        &[
            ("__address__", "1.2.3.4:9001"),
            ("__meta_kubernetes_pod_container_name", "c2"),
            ("__meta_kubernetes_pod_container_image", "c2:latest"),
            ("__meta_kubernetes_pod_container_port_name", "sideport"),
            ("__meta_kubernetes_pod_container_port_number", "9001"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ],
    );
    assert_eq!(
        stores.flat_groups(KubernetesRole::Endpoints),
        expected(
            "endpoints/default/testendpoints",
            &[
                ("__meta_kubernetes_endpoints_name", "testendpoints"),
                ("__meta_kubernetes_namespace", "default"),
            ],
            &[&first, &second],
        )
    );
}

#[test]
fn endpoints_port_protocol_is_the_endpoints_even_when_a_tcp_container_port_shares_its_number() {
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, two_container_pod());
    put::<Endpoints>(
        &mut stores,
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "dns", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "1.2.3.4", "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
                "ports": [{"name": "udp", "port": 9000, "protocol": "UDP"}]
            }]
        }),
    );
    let g = &stores.flat_groups(KubernetesRole::Endpoints)[0];
    assert_eq!(g.labels["__meta_kubernetes_endpoint_port_protocol"], "UDP");
    assert_eq!(
        g.labels["__meta_kubernetes_pod_container_port_protocol"],
        "UDP"
    );
}

#[test]
fn endpoints_carry_their_service_labels_and_not_ready_addresses() {
    let mut stores = Stores::default();
    put::<Service>(&mut stores, {
        let mut s = service("ClusterIP", json!({}), json!({}));
        s["metadata"]["name"] = json!("testendpoints");
        s
    });
    put::<Endpoints>(
        &mut stores,
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "testendpoints", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "1.2.3.4", "hostname": "testendpoint1", "nodeName": "foobar"}],
                "notReadyAddresses": [{"ip": "2.3.4.5"}],
                "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}]
            }]
        }),
    );
    let groups = stores.flat_groups(KubernetesRole::Endpoints);
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0].labels["__meta_kubernetes_service_name"],
        "testendpoints"
    );
    assert_eq!(
        groups[0].labels["__meta_kubernetes_service_label_test_label"],
        "testvalue"
    );
    assert_eq!(
        groups[0].labels["__meta_kubernetes_endpoint_hostname"],
        "testendpoint1"
    );
    assert_eq!(
        groups[0].labels["__meta_kubernetes_endpoint_node_name"],
        "foobar"
    );
    assert_eq!(groups[1].targets, ["2.3.4.5:9000"]);
    assert_eq!(
        groups[1].labels["__meta_kubernetes_endpoint_ready"],
        "false"
    );
    assert!(
        !groups[1]
            .labels
            .contains_key("__meta_kubernetes_endpoint_hostname")
    );
}

#[test]
fn endpointslice_backed_by_a_pod_carries_its_labels_and_adds_its_unnamed_ports() {
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, two_container_pod());
    put::<EndpointSlice>(
        &mut stores,
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "testendpoints", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["4.3.2.1"],
                "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"},
                "conditions": {"ready": false}}]
        }),
    );
    let first = with(
        TWO_CONTAINER_POD_LABELS,
        &[
            ("__address__", "4.3.2.1:9000"),
            ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
            (
                "__meta_kubernetes_endpointslice_address_target_name",
                "testpod",
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
                "false",
            ),
            ("__meta_kubernetes_endpointslice_port", "9000"),
            ("__meta_kubernetes_endpointslice_port_name", "testport"),
            ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_name", "c1"),
            ("__meta_kubernetes_pod_container_image", "c1:latest"),
            ("__meta_kubernetes_pod_container_port_name", "mainport"),
            ("__meta_kubernetes_pod_container_port_number", "9000"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ],
    );
    let second = with(
        TWO_CONTAINER_POD_LABELS,
        &[
            ("__address__", "1.2.3.4:9001"),
            ("__meta_kubernetes_pod_container_name", "c2"),
            ("__meta_kubernetes_pod_container_image", "c2:latest"),
            ("__meta_kubernetes_pod_container_port_name", "sideport"),
            ("__meta_kubernetes_pod_container_port_number", "9001"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ],
    );
    assert_eq!(
        stores.flat_groups(KubernetesRole::EndpointSlice),
        expected(
            "endpointslice/default/testendpoints",
            &[
                ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
                ("__meta_kubernetes_endpointslice_name", "testendpoints"),
                ("__meta_kubernetes_namespace", "default"),
            ],
            &[&first, &second],
        )
    );
}

#[test]
fn endpointslice_of_a_dual_stack_service_keeps_only_its_primary_family() {
    let mut stores = Stores::default();
    let mut svc = service(
        "ClusterIP",
        json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        json!({}),
    );
    svc["metadata"]["name"] = json!("web");
    put::<Service>(&mut stores, svc);
    let slice = |name: &str, family: &str, address: &str| {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": family,
            "ports": [{"port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address], "zone": "z1", "hostname": "h",
                           "deprecatedTopology": {"topology.kubernetes.io/region": "r"}}]
        })
    };
    put::<EndpointSlice>(&mut stores, slice("web-v4", "IPv4", "10.0.0.5"));
    put::<EndpointSlice>(&mut stores, slice("web-v6", "IPv6", "fd00::5"));
    let groups = stores.flat_groups(KubernetesRole::EndpointSlice);
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    assert_eq!(g.targets, ["10.0.0.5:80"]);
    assert_eq!(g.labels["__meta_kubernetes_service_name"], "web");
    assert_eq!(
        g.labels["__meta_kubernetes_endpointslice_endpoint_zone"],
        "z1"
    );
    assert_eq!(
        g.labels["__meta_kubernetes_endpointslice_endpoint_hostname"],
        "h"
    );
    assert_eq!(
        g.labels["__meta_kubernetes_endpointslice_endpoint_topology_topology_kubernetes_io_region"],
        "r"
    );
    assert_eq!(
        g.labels["__meta_kubernetes_endpointslice_endpoint_topology_present_topology_kubernetes_io_region"],
        "true"
    );
    assert!(
        !g.labels
            .contains_key("__meta_kubernetes_endpointslice_port_name")
    );
}

#[test]
fn ingress_gives_one_target_per_rule_and_path_https_when_tls_covers_the_host() {
    let mut stores = Stores::default();
    put::<Ingress>(
        &mut stores,
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "testingress", "namespace": "default",
                         "labels": {"test/label": "testvalue"}},
            "spec": {
                "ingressClassName": "testclass",
                "tls": [{"hosts": ["*.example.com"]}],
                "rules": [
                    {"host": "example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {}},
                        {"path": "/foo", "pathType": "Prefix", "backend": {}}]}},
                    {"host": "test.example.com", "http": {"paths": [
                        {"pathType": "ImplementationSpecific", "backend": {}}]}},
                    {"host": "nohttp.example.com"}
                ]
            }
        }),
    );
    let group = [
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_ingress_name", "testingress"),
        ("__meta_kubernetes_ingress_label_test_label", "testvalue"),
        ("__meta_kubernetes_ingress_labelpresent_test_label", "true"),
        ("__meta_kubernetes_ingress_class_name", "testclass"),
    ];
    let target = |host, scheme, path| {
        vec![
            ("__address__", host),
            ("__meta_kubernetes_ingress_scheme", scheme),
            ("__meta_kubernetes_ingress_host", host),
            ("__meta_kubernetes_ingress_path", path),
        ]
    };
    assert_eq!(
        stores.flat_groups(KubernetesRole::Ingress),
        expected(
            "ingress/default/testingress",
            &group,
            &[
                &target("example.com", "http", "/"),
                &target("example.com", "http", "/foo"),
                &target("test.example.com", "https", "/"),
                &target("nohttp.example.com", "https", "/"),
            ],
        )
    );
}

#[test]
fn relist_replaces_the_watchers_objects_so_deleted_ones_vanish() {
    let mut store: Store<u32> = Store::default();
    let w = store.add_watcher();
    store.apply(StoreEvent::Init, w);
    store.apply(StoreEvent::InitApply("a".into(), 1), w);
    assert!(
        !store.synced(),
        "not synced before the first list completes"
    );
    store.apply(StoreEvent::InitDone, w);
    store.apply(StoreEvent::Apply("b".into(), 2), w);
    assert_eq!(store.values().copied().collect::<Vec<_>>(), [1, 2]);
    // A re-list after 410 Gone: "a" was deleted meanwhile.
    store.apply(StoreEvent::Init, w);
    store.apply(StoreEvent::InitApply("b".into(), 3), w);
    assert_eq!(
        store.values().copied().collect::<Vec<_>>(),
        [1, 2],
        "kept until the list completes"
    );
    store.apply(StoreEvent::InitDone, w);
    assert_eq!(store.values().copied().collect::<Vec<_>>(), [3]);
}

#[test]
fn trimmed_pod_keeps_no_managed_fields() {
    let k: Pod = serde_json::from_value(multi_port_pod()).expect("pod");
    let info = k.trim();
    let shown = format!("{info:?}");
    assert!(!shown.contains("kubectl"), "{shown}");
}

/// Heap bytes a trimmed value owns (string and slice capacities), for the memory bound below.
trait HeapBytes {
    fn heap_bytes(&self) -> usize;
}

impl HeapBytes for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<T: HeapBytes> HeapBytes for Box<[T]> {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&**self) + self.iter().map(HeapBytes::heap_bytes).sum::<usize>()
    }
}

impl<A: HeapBytes, B: HeapBytes> HeapBytes for (A, B) {
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.1.heap_bytes()
    }
}

impl<T: HeapBytes> HeapBytes for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, HeapBytes::heap_bytes)
    }
}

impl HeapBytes for labels::Meta {
    fn heap_bytes(&self) -> usize {
        self.namespace.heap_bytes()
            + self.name.heap_bytes()
            + self.labels.heap_bytes()
            + self.annotations.heap_bytes()
    }
}

impl HeapBytes for pod::PortInfo {
    fn heap_bytes(&self) -> usize {
        self.name.heap_bytes() + self.protocol.heap_bytes()
    }
}

impl HeapBytes for pod::ContainerInfo {
    fn heap_bytes(&self) -> usize {
        self.name.heap_bytes()
            + self.image.heap_bytes()
            + self.id.heap_bytes()
            + self.ports.heap_bytes()
    }
}

impl HeapBytes for PodInfo {
    fn heap_bytes(&self) -> usize {
        self.meta.heap_bytes()
            + self.uid.heap_bytes()
            + self.ip.heap_bytes()
            + self.host_ip.heap_bytes()
            + self.node_name.heap_bytes()
            + self.phase.heap_bytes()
            + self.ready.heap_bytes()
            + self.controller.heap_bytes()
            + self.containers.heap_bytes()
    }
}

/// The fixture cluster's ready web pod (two containers, an init container, managedFields,
/// a kubectl last-applied annotation), as the fake API server serves it.
fn fixture_web_pod() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubernetes/pods.json");
    let text = std::fs::read_to_string(&path).expect("the fixture pods are in the repository");
    let list: Value = serde_json::from_str(&text).expect("fixture pods are JSON");
    list["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|p| p["metadata"]["name"] == "web-7d4b9c8f6-x2x9k")
        })
        .cloned()
        .expect("the fixture's web pod")
}

#[test]
fn publications_share_a_pods_labels_instead_of_rebuilding_them() {
    let mut stores = Stores::default();
    put::<Pod>(&mut stores, fixture_web_pod());
    let first = stores.groups(KubernetesRole::Pod);
    let second = stores.groups(KubernetesRole::Pod);
    assert!(first.len() > 1, "the fixture pod has several targets");
    let common = |g: &TargetGroup| Arc::clone(g.common.as_ref().expect("pod groups share labels"));
    let shared = common(&first[0]);
    assert_eq!(
        shared
            .get("__meta_kubernetes_namespace")
            .map(String::as_str),
        Some("default")
    );
    for (a, b) in first.iter().zip(&second) {
        assert!(
            Arc::ptr_eq(&common(a), &shared),
            "one map for all the pod's targets"
        );
        assert!(
            Arc::ptr_eq(&common(b), &shared),
            "and for every publication"
        );
    }
}

#[test]
fn a_thousand_pods_keep_a_fraction_of_their_objects_in_memory() {
    const PODS: usize = 1000;
    let template = fixture_web_pod();
    let object_bytes = serde_json::to_string(&template).expect("JSON").len();
    let mut stores = Stores::default();
    for i in 0..PODS {
        let mut p = template.clone();
        p["metadata"]["name"] = json!(format!("fleet-{i:06}"));
        p["status"]["podIP"] = json!(format!("10.64.{}.{}", i / 256, i % 256));
        put::<Pod>(&mut stores, p);
    }
    // Per pod: the trimmed struct, its key in the store, and the B-tree entry (about the size
    // of key plus value, rounded up for node slack).
    let entry = std::mem::size_of::<String>() + std::mem::size_of::<PodInfo>();
    let kept: usize = stores.pods.watchers[0]
        .objects
        .iter()
        .map(|(k, p)| k.heap_bytes() + p.heap_bytes() + entry * 3 / 2)
        .sum();
    let per_pod = kept / PODS;
    let groups = stores.flat_groups(KubernetesRole::Pod);
    let published: usize = groups
        .iter()
        .map(|g| {
            std::mem::size_of::<TargetGroup>()
                + g.source.capacity()
                + g.targets.iter().map(|t| t.capacity() + 24).sum::<usize>()
                + g.labels
                    .iter()
                    .map(|(k, v)| k.capacity() + v.capacity() + 3 * 24)
                    .sum::<usize>()
        })
        .sum();
    println!(
        "{PODS} pods: {per_pod} bytes kept per pod (the object is {object_bytes} bytes of JSON); \
         {} targets published, {} bytes of groups per pod",
        groups.len(),
        published / PODS
    );
    assert!(
        per_pod * 2 < object_bytes,
        "a pod keeps {per_pod} bytes, more than half its {object_bytes}-byte object"
    );
}
