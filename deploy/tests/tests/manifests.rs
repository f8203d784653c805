//! The rendered manifests under `deploy/`: every overlay renders; every
//! Deployment is hardened, probed, sized and covered by a PDB, a Service and a
//! NetworkPolicy; the webhook and APIService objects are wired to real
//! Services; RBAC grants exactly what each binary's `kube-api-calls.yaml`
//! lists; the checked-in CRDs are the generated ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rstest::rstest;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tailor_deploy_tests::kustomize::{self, split_image, str_at};
use tailor_deploy_tests::rbac::{self, Permission};
use tailor_deploy_tests::repo_root;

const NAMESPACE: &str = "tailor-system";
const IMAGE: &str = "ghcr.io/tailor-autoscaling/tailor";
const ADMIN_PORT: i64 = 9090;

/// (component, crate directory, replicas, leader-elected).
const COMPONENTS: [(&str, &str, i64, bool); 5] = [
    ("recommender", "recommender", 1, true),
    ("updater", "updater", 1, true),
    ("admission-webhook", "admission-webhook", 2, false),
    ("metrics-adapter", "metrics-adapter", 2, false),
    ("expander", "expander", 2, false),
];

/// ConfigMaps the operator creates (docs/operations.md), not rendered.
const OPERATOR_CONFIGMAPS: [&str; 2] =
    ["tailor-expander-catalog", "tailor-requestheader-client-ca"];

/// Kinds without a namespace.
const CLUSTER_SCOPED: [&str; 6] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "APIService",
];

fn render(overlay: &str) -> Vec<Value> {
    kustomize::build(&repo_root().join("deploy/overlays").join(overlay))
        .unwrap_or_else(|e| panic!("overlay {overlay}: {e}"))
}

fn all() -> Vec<Value> {
    render("all")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| str_at(o, &["kind"]) == kind && str_at(o, &["metadata", "name"]) == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| str_at(o, &["kind"]) == kind)
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().unwrap();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn every_overlay_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(repo_root().join("deploy/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "all",
            "beside-upstream-vpa",
            "expander-aws",
            "metrics-adapter-only",
            "metrics-adapter-resource-metrics",
            "recommender-only",
            "vpa"
        ],
        "add the new overlay to the cases of `overlays_render`"
    );
}

#[rstest]
#[case("all", &["recommender", "updater", "admission-webhook", "metrics-adapter", "expander"], true)]
#[case("vpa", &["recommender", "updater", "admission-webhook"], true)]
#[case("recommender-only", &["recommender"], true)]
#[case("beside-upstream-vpa", &["recommender"], false)]
#[case("metrics-adapter-only", &["metrics-adapter"], false)]
#[case("metrics-adapter-resource-metrics", &["metrics-adapter"], false)]
#[case("expander-aws", &["expander"], false)]
fn overlays_render(#[case] overlay: &str, #[case] components: &[&str], #[case] crds: bool) {
    let objects = render(overlay);
    let mut deployments: Vec<&str> = of_kind(&objects, "Deployment")
        .map(|d| str_at(d, &["metadata", "name"]))
        .collect();
    deployments.sort_unstable();
    let mut want: Vec<String> = components.iter().map(|c| format!("tailor-{c}")).collect();
    want.sort();
    assert_eq!(deployments, want);
    assert_eq!(
        of_kind(&objects, "CustomResourceDefinition").count(),
        if crds { 2 } else { 0 },
        "{overlay}: CRDs"
    );
    find(&objects, "Namespace", NAMESPACE);
    // Every image is the one Tailor image, at the overlay's tag.
    for d in of_kind(&objects, "Deployment") {
        let image = str_at(&d["spec"]["template"]["spec"]["containers"][0], &["image"]);
        let (repo, tag, _) = split_image(image);
        assert_eq!(repo, IMAGE, "{overlay}");
        assert!(
            tag.is_some_and(|t| !t.is_empty()),
            "{overlay}: {image} has no tag"
        );
    }
}

#[test]
fn only_the_opt_in_overlay_takes_over_metrics_k8s_io() {
    // metrics.k8s.io belongs to metrics-server unless the user opts in: one
    // APIService can own it, and taking it over silently breaks `kubectl top`
    // where Prometheus does not scrape cAdvisor.
    let resource_metrics = |overlay: &str| {
        render(overlay)
            .iter()
            .filter(|o| str_at(o, &["kind"]) == "APIService")
            .filter(|o| str_at(o, &["spec", "group"]) == "metrics.k8s.io")
            .count()
    };
    assert_eq!(resource_metrics("metrics-adapter-resource-metrics"), 1);
    for overlay in ["all", "metrics-adapter-only"] {
        assert_eq!(resource_metrics(overlay), 0, "{overlay}");
    }
}

#[test]
fn beside_upstream_the_recommender_answers_only_to_its_own_name() {
    let objects = render("beside-upstream-vpa");
    let args = &find(&objects, "Deployment", "tailor-recommender")["spec"]["template"]["spec"]["containers"]
        [0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--recommender-name=tailor"), "{args:?}");
    assert!(!args.iter().any(|a| a.ends_with("=default")), "{args:?}");
}

#[test]
fn expander_aws_mode_is_leader_elected_with_an_iam_role() {
    let objects = render("expander-aws");
    let d = find(&objects, "Deployment", "tailor-expander");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0], "aws");
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("--cluster-name=")),
        "{}",
        c["args"]
    );
    let env: BTreeSet<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_at(e, &["name"]))
        .collect();
    assert!(
        env.contains("POD_NAME") && env.contains("POD_NAMESPACE"),
        "{env:?}"
    );
    // The base's volumes and ports stay (the patch merged, not replaced).
    assert_eq!(c["volumeMounts"].as_array().unwrap().len(), 2);
    let sa = find(&objects, "ServiceAccount", "tailor-expander");
    assert!(
        str_at(
            sa,
            &["metadata", "annotations", "eks.amazonaws.com/role-arn"]
        )
        .starts_with("arn:aws:iam::")
    );
    assert_eq!(
        str_at(sa, &["metadata", "labels", "app.kubernetes.io/name"]),
        "tailor-expander"
    );
    let granted = rbac::grants(&objects, NAMESPACE, "tailor-expander").unwrap();
    assert!(granted.contains(&Permission::new("coordination.k8s.io", "leases", "update")));
}

#[test]
fn namespaces_are_explicit_and_consistent() {
    for o in all() {
        let kind = str_at(&o, &["kind"]);
        let ns = str_at(&o, &["metadata", "namespace"]);
        if CLUSTER_SCOPED.contains(&kind) {
            assert_eq!(ns, "", "{} is cluster-scoped", kustomize::id(&o));
        } else if kind == "RoleBinding" && ns == "kube-system" {
            // The one exception: reading the front-proxy CA must be granted there.
            assert_eq!(
                str_at(&o, &["roleRef", "name"]),
                "extension-apiserver-authentication-reader"
            );
        } else {
            assert_eq!(ns, NAMESPACE, "{}", kustomize::id(&o));
        }
        for subject in o
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if str_at(subject, &["kind"]) == "ServiceAccount"
                && str_at(subject, &["name"]).starts_with("tailor-")
            {
                assert_eq!(str_at(subject, &["namespace"]), NAMESPACE);
            }
        }
    }
}

#[rstest]
fn deployments_are_hardened_probed_and_sized(#[values(0, 1, 2, 3, 4)] index: usize) {
    let (component, _, replicas, _) = COMPONENTS[index];
    let objects = all();
    let name = format!("tailor-{component}");
    let d = find(&objects, "Deployment", &name);
    assert_eq!(d["spec"]["replicas"], replicas, "{name}");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(str_at(pod, &["serviceAccountName"]), name);
    find(&objects, "ServiceAccount", &name);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
    assert_eq!(
        str_at(pod, &["securityContext", "seccompProfile", "type"]),
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{name}");
    let c = &containers[0];
    assert_eq!(c["command"][0], format!("/usr/local/bin/{name}"));
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{name}"
    );
    assert!(sc.get("privileged").is_none_or(|p| p == false));
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            str_at(&c[probe], &["httpGet", "path"]),
            path,
            "{name} {probe}"
        );
        assert_eq!(str_at(&c[probe], &["httpGet", "port"]), "admin", "{name}");
    }
    let admin = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap_or_else(|| panic!("{name}: no admin port"));
    assert_eq!(admin["containerPort"], ADMIN_PORT);
    for field in ["cpu", "memory"] {
        assert!(
            c["resources"]["requests"].get(field).is_some(),
            "{name} requests.{field}"
        );
    }
    assert!(
        c["resources"]["limits"].get("memory").is_some(),
        "{name} limits.memory"
    );
    // No CPU limit: throttling a webhook or an API server hurts more than it saves.
    assert!(c["resources"]["limits"].get("cpu").is_none(), "{name}");
}

#[rstest]
fn every_deployment_has_pdb_service_and_network_policy(#[values(0, 1, 2, 3, 4)] index: usize) {
    let (component, _, replicas, _) = COMPONENTS[index];
    let objects = all();
    let name = format!("tailor-{component}");
    let d = find(&objects, "Deployment", &name);
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    assert!(labels_match(
        &d["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    let port_names: BTreeSet<&str> = d["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_at(p, &["name"]))
        .collect();

    let pdb = find(&objects, "PodDisruptionBudget", &name);
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    if replicas > 1 {
        assert_eq!(
            pdb["spec"]["minAvailable"], 1,
            "{name}: one replica keeps serving"
        );
    } else {
        // A single replica must stay evictable, or node drains hang.
        assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{name}");
    }

    let svc = find(&objects, "Service", &name);
    assert!(labels_match(&svc["spec"]["selector"], pod_labels));
    for port in svc["spec"]["ports"].as_array().unwrap() {
        let target = str_at(port, &["targetPort"]);
        assert!(
            port_names.contains(target),
            "{name}: Service targets unknown port {target}"
        );
    }
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "admin"),
        "{name}: the ServiceMonitor scrapes the `admin` port"
    );
    assert_eq!(
        str_at(&svc["metadata"]["labels"], &["app.kubernetes.io/part-of"]),
        "tailor",
        "the ServiceMonitor selects part-of=tailor"
    );

    let np = find(&objects, "NetworkPolicy", &name);
    assert!(labels_match(
        &np["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
    let allowed: BTreeSet<&str> = np["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_array().unwrap())
        .map(|p| str_at(p, &["port"]))
        .collect();
    assert_eq!(
        allowed, port_names,
        "{name}: ingress allows exactly the named ports"
    );
}

#[test]
fn volumes_refer_to_rendered_or_documented_objects() {
    let objects = all();
    let certificate_secrets: BTreeSet<&str> = of_kind(&objects, "Certificate")
        .map(|c| str_at(c, &["spec", "secretName"]))
        .collect();
    for d in of_kind(&objects, "Deployment") {
        for volume in d["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(secret) = volume.get("secret") {
                let name = str_at(secret, &["secretName"]);
                assert!(
                    certificate_secrets.contains(name),
                    "secret {name} has no Certificate"
                );
            } else if let Some(cm) = volume.get("configMap") {
                let name = str_at(cm, &["name"]);
                assert!(
                    OPERATOR_CONFIGMAPS.contains(&name)
                        || of_kind(&objects, "ConfigMap")
                            .any(|c| str_at(c, &["metadata", "name"]) == name),
                    "configMap {name} is neither rendered nor documented"
                );
            } else {
                panic!("unexpected volume {volume}");
            }
        }
    }
    let ops = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    for name in OPERATOR_CONFIGMAPS {
        assert!(
            ops.contains(name),
            "docs/operations.md must say how to create {name}"
        );
    }
}

/// The Service and port that `service` (a webhook clientConfig or APIService
/// spec) points to exist.
fn assert_service_ref(objects: &[Value], service: &Value, what: &str) {
    assert_eq!(str_at(service, &["namespace"]), NAMESPACE, "{what}");
    let svc = find(objects, "Service", str_at(service, &["name"]));
    let port = service["port"].as_i64().unwrap_or(443);
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == port),
        "{what}: Service has no port {port}"
    );
}

#[test]
fn webhook_configuration_is_safe_and_wired() {
    let objects = all();
    let mwc = find(
        &objects,
        "MutatingWebhookConfiguration",
        "tailor-admission-webhook",
    );
    let webhooks = mwc["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 1);
    let w = &webhooks[0];
    assert_eq!(w["failurePolicy"], "Ignore");
    assert_eq!(w["sideEffects"], "None");
    assert!(w["timeoutSeconds"].as_i64().unwrap() <= 5);
    assert_eq!(w["admissionReviewVersions"], serde_json::json!(["v1"]));
    assert_eq!(
        w["rules"],
        serde_json::json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
            "resources": ["pods"], "scope": "Namespaced"}])
    );
    let excluded = &w["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
    assert_eq!(excluded["operator"], "NotIn");
    assert_eq!(
        excluded["values"],
        serde_json::json!(["kube-system", NAMESPACE])
    );
    assert_eq!(str_at(w, &["clientConfig", "service", "path"]), "/mutate");
    assert_service_ref(&objects, &w["clientConfig"]["service"], "webhook");
    assert_ca_injected(&objects, mwc);
}

/// cert-manager's CA injection names a rendered Certificate.
fn assert_ca_injected(objects: &[Value], object: &Value) {
    let from = str_at(
        object,
        &["metadata", "annotations", "cert-manager.io/inject-ca-from"],
    );
    let (ns, name) = from.split_once('/').unwrap();
    assert_eq!(ns, NAMESPACE);
    find(objects, "Certificate", name);
}

#[test]
fn api_services_cover_custom_and_external_metrics() {
    let objects = all();
    let mut names: Vec<&str> = of_kind(&objects, "APIService")
        .map(|a| str_at(a, &["metadata", "name"]))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "v1beta1.custom.metrics.k8s.io",
            "v1beta1.external.metrics.k8s.io",
            "v1beta2.custom.metrics.k8s.io"
        ]
    );
    for a in of_kind(&objects, "APIService") {
        let name = str_at(a, &["metadata", "name"]);
        assert_eq!(
            format!(
                "{}.{}",
                str_at(a, &["spec", "version"]),
                str_at(a, &["spec", "group"])
            ),
            name
        );
        assert!(
            a["spec"]
                .get("insecureSkipTLSVerify")
                .is_none_or(|v| v == false)
        );
        assert_eq!(
            str_at(a, &["spec", "service", "name"]),
            "tailor-metrics-adapter"
        );
        assert_service_ref(&objects, &a["spec"]["service"], name);
        assert_ca_injected(&objects, a);
    }
}

#[test]
fn metrics_adapter_has_the_aggregated_api_bindings() {
    let objects = all();
    let delegator = of_kind(&objects, "ClusterRoleBinding")
        .find(|b| str_at(b, &["roleRef", "name"]) == "system:auth-delegator")
        .expect("system:auth-delegator ClusterRoleBinding");
    let reader = of_kind(&objects, "RoleBinding")
        .find(|b| str_at(b, &["roleRef", "name"]) == "extension-apiserver-authentication-reader")
        .expect("extension-apiserver-authentication-reader RoleBinding");
    assert_eq!(str_at(reader, &["metadata", "namespace"]), "kube-system");
    for binding in [delegator, reader] {
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "tailor-metrics-adapter",
                "namespace": NAMESPACE}])
        );
    }
}

/// Grants allowed beyond a binary's own calls, each for a stated reason.
fn exceptions(component: &str) -> BTreeSet<Permission> {
    match component {
        // Every aggregated API server is bound to two built-in roles: the
        // extension-apiserver-authentication-reader Role (get/list/watch on the
        // front-proxy CA ConfigMap) and system:auth-delegator (TokenReview,
        // SubjectAccessReview), whether or not its flags use them.
        "metrics-adapter" => ["get", "list", "watch"]
            .iter()
            .map(|v| Permission::new("", "configmaps", v))
            .chain([
                Permission::new("authentication.k8s.io", "tokenreviews", "create"),
                Permission::new("authorization.k8s.io", "subjectaccessreviews", "create"),
            ])
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn calls_path(dir: &str) -> PathBuf {
    repo_root().join(dir).join("kube-api-calls.yaml")
}

#[rstest]
fn rbac_grants_exactly_the_calls_each_binary_makes(#[values(0, 1, 2, 3, 4)] index: usize) {
    let (component, dir, _, leader) = COMPONENTS[index];
    let objects = all();
    let account = format!("tailor-{component}");
    let granted = rbac::grants(&objects, NAMESPACE, &account).unwrap();
    let calls = rbac::load_calls(&calls_path(dir)).unwrap();
    let missing: Vec<String> = calls
        .difference(&granted)
        .map(ToString::to_string)
        .collect();
    assert!(
        missing.is_empty(),
        "{account} lacks {missing:?} (from {dir}/kube-api-calls.yaml)"
    );
    let allowed: BTreeSet<Permission> = calls.union(&exceptions(component)).cloned().collect();
    let extra: Vec<String> = granted
        .difference(&allowed)
        .map(ToString::to_string)
        .collect();
    assert!(
        extra.is_empty(),
        "{account} is granted more than it calls: {extra:?}"
    );
    let lease = Permission::new("coordination.k8s.io", "leases", "update");
    if leader {
        assert!(granted.contains(&lease), "{account} is leader-elected");
    }
}

#[test]
fn leases_are_granted_only_in_tailors_namespace() {
    for role in of_kind(&all(), "ClusterRole") {
        for rule in role["rules"].as_array().unwrap() {
            assert!(
                !rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == "leases"),
                "{}: a ClusterRole would grant leases in every namespace",
                str_at(role, &["metadata", "name"])
            );
        }
    }
}

#[test]
fn operations_guide_lists_every_call() {
    let ops = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    for (component, dir, _, _) in COMPONENTS {
        for call in rbac::load_calls(&calls_path(dir)).unwrap() {
            // The guide's RBAC table has one row per component and resource.
            let group = if call.group.is_empty() {
                "core"
            } else {
                &call.group
            };
            let row = format!("| {component} | {group} | {} |", call.resource);
            let line = ops
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("docs/operations.md has no row `{row} …`"));
            assert!(
                line.split('|')
                    .nth(4)
                    .unwrap()
                    .split(',')
                    .any(|v| v.trim() == call.verb),
                "docs/operations.md row `{row}` lacks verb {}",
                call.verb
            );
        }
    }
}

#[test]
fn checked_in_crds_are_the_generated_ones() {
    let path = repo_root().join("deploy/base/crds/crds.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    let generated = tailor_api::crd::crds_yaml().unwrap();
    assert!(
        on_disk.starts_with("# Generated by"),
        "keep crdgen's header"
    );
    assert!(
        on_disk.ends_with(&generated),
        "{} is stale: run `cargo run -q -p tailor-api --bin crdgen > {}`",
        path.display(),
        path.display()
    );
}

#[test]
fn crds_match_upstream_names() {
    let objects = all();
    for (name, kind) in [
        (
            "verticalpodautoscalers.autoscaling.k8s.io",
            "VerticalPodAutoscaler",
        ),
        (
            "verticalpodautoscalercheckpoints.autoscaling.k8s.io",
            "VerticalPodAutoscalerCheckpoint",
        ),
    ] {
        let crd = find(&objects, "CustomResourceDefinition", name);
        assert_eq!(crd["spec"]["group"], "autoscaling.k8s.io");
        assert_eq!(crd["spec"]["names"]["kind"], kind);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let v1 = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "v1")
            .unwrap();
        assert_eq!(
            (v1["served"].clone(), v1["storage"].clone()),
            (true.into(), true.into())
        );
    }
}

#[test]
fn sim_sweep_job_uses_the_tailor_image() {
    let text = std::fs::read_to_string(repo_root().join("deploy/sim-sweep/job.yaml")).unwrap();
    let images: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert!(!images.is_empty());
    for image in images {
        assert_eq!(split_image(image).0, IMAGE, "{image}");
    }
}

#[test]
fn dockerfile_builds_every_deployed_binary() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    for (component, _, _, _) in COMPONENTS {
        assert!(
            text.contains(&format!("tailor-{component}")),
            "Dockerfile lacks tailor-{component}"
        );
    }
    assert!(text.contains("tailor-sim"));
    assert!(text.contains("cargo build --release --locked"));
    assert!(text.contains("USER 65532:65532"));
}

/// The `groups:` block of docs/operations.md's alerts, parsed.
fn documented_alerts() -> Value {
    let ops = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let start = ops
        .find("```yaml\ngroups:")
        .expect("alerts block in docs/operations.md")
        + 8;
    let end = start + ops[start..].find("```").unwrap();
    serde_yaml::from_str(&ops[start..end]).unwrap()
}

#[test]
fn prometheus_rule_is_the_documented_alerts() {
    let objects = all();
    let rule = find(&objects, "PrometheusRule", "tailor");
    assert_eq!(rule["spec"], documented_alerts());
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| str_at(r, &["alert"]))
        .collect();
    assert!(alerts.len() >= 5, "{alerts:?}");
    // The webhook's name as the API server labels its admission metrics.
    let webhook = str_at(
        &find(
            &objects,
            "MutatingWebhookConfiguration",
            "tailor-admission-webhook",
        )["webhooks"][0],
        &["name"],
    );
    assert!(
        serde_json::to_string(&rule["spec"])
            .unwrap()
            .contains(webhook),
        "alerts must name the webhook {webhook}"
    );
}

#[test]
fn alerts_pass_promtool() {
    let dir = std::env::temp_dir().join(format!("tailor-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    std::fs::write(&file, serde_yaml::to_string(&documented_alerts()).unwrap()).unwrap();
    // promtool comes with Debian's prometheus package, which scripts/test installs.
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool not found: install Debian's prometheus package (scripts/test does)");
    assert!(
        out.status.success(),
        "promtool rejected the alerts:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
