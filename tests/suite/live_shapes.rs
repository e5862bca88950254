//! The drift comparison on objects written by hand the way real clusters return them
//! (tests/fixtures/live): nothing is drift until someone edits, every suppressed difference
//! has the cause the fixture names, and hand edits on those same objects are found.

use std::collections::BTreeMap;

use agentops::k8s::compare::{Cause, Comparison, Witness, compare};
use agentops::k8s::fields::{self, PathElem};
use serde_json::{Value, json};

use super::common::fixture;

/// (file name, git, live, expected suppressed counts by cause).
fn cases() -> Vec<(String, Value, Value, BTreeMap<String, usize>)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(fixture("live"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text.lines().next().unwrap_or_default();
        let counts = header
            .strip_prefix("# suppressed: ")
            .unwrap_or_else(|| panic!("{}: first line must be `# suppressed: ...`", path.display()));
        let expected: BTreeMap<String, usize> = counts
            .split_whitespace()
            .filter(|c| *c != "none")
            .map(|c| {
                let (cause, n) = c.split_once('=').unwrap();
                (cause.to_string(), n.parse().unwrap())
            })
            .collect();
        let mut docs = agentops::config::yaml::parse_values(&text).unwrap();
        assert_eq!(docs.len(), 2, "{}: git, then live", path.display());
        let live = docs.remove(1);
        let git = docs.remove(0);
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), git, live, expected));
    }
    assert!(out.len() >= 15, "every kind the fixtures cover: {}", out.len());
    out
}

fn witness() -> Witness {
    Witness::with(&[], &[])
}

fn counts(c: &Comparison) -> BTreeMap<String, usize> {
    c.counts().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect()
}

fn summaries(c: &Comparison) -> Vec<String> {
    c.changes.iter().map(|c| c.summary.clone()).collect()
}

fn case(name: &str) -> (Value, Value) {
    let (_, git, live, _) = cases().into_iter().find(|c| c.0 == name).unwrap();
    (git, live)
}

#[test]
fn objects_as_real_clusters_return_them_are_not_drift() {
    for (name, git, live, expected) in cases() {
        let c = compare(&git, &live, &witness());
        assert_eq!(summaries(&c), Vec::<String>::new(), "{name}: drift where there is none");
        assert_eq!(counts(&c), expected, "{name}: suppressed {:#?}", c.suppressed);
    }
}

/// Records an Update by `manager` the way the API server does: the fields that changed move
/// to it.
fn update(live: &mut Value, manager: &str, edit: impl FnOnce(&mut Value)) {
    let before = live.clone();
    edit(live);
    let kind = live["kind"].as_str().unwrap().to_string();
    let api_version = live["apiVersion"].as_str().unwrap().to_string();
    let changed = fields::changed_fields(&kind, &before, live);
    let mut managed = live["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    fields::record(&mut managed, manager, "Update", &api_version, None, "2026-12-01T09:00:00Z", &changed);
    live["metadata"]["managedFields"] = Value::Array(managed);
}

#[test]
fn a_default_moved_off_its_value_by_hand_is_drift() {
    let (git, mut live) = case("deployment-probes.yaml");
    update(&mut live, "kubectl-patch", |l| l["spec"]["strategy"] = json!({"type": "Recreate"}));
    let c = compare(&git, &live, &witness());
    assert_eq!(summaries(&c), ["~ spec.strategy.type: RollingUpdate → Recreate", "- spec.strategy.rollingUpdate"]);

    let (git, mut live) = case("deployment-probes.yaml");
    update(&mut live, "kubectl-edit", |l| {
        l["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = json!(30);
        l["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(5);
    });
    let c = compare(&git, &live, &witness());
    assert_eq!(
        summaries(&c),
        [
            "~ spec.template.spec.containers[name=api].readinessProbe.periodSeconds: 10 → 30",
            "~ spec.template.spec.terminationGracePeriodSeconds: 30 → 5"
        ]
    );
}

#[test]
fn a_sidecar_added_by_hand_is_one_change_owned_by_its_writer() {
    let (git, mut live) = case("deployment-probes.yaml");
    update(&mut live, "kubectl-edit", |l| {
        l["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({
            "name": "oauth2-proxy", "image": "quay.io/oauth2-proxy/oauth2-proxy:v7.4.0", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}));
    });
    let c = compare(&git, &live, &witness());
    assert_eq!(summaries(&c), ["+ container oauth2-proxy (image quay.io/oauth2-proxy/oauth2-proxy:v7.4.0)"]);
    let owner = fields::owner(live["metadata"]["managedFields"].as_array().unwrap(), &c.changes[0].elems).unwrap();
    assert_eq!(owner["manager"], "kubectl-edit");
}

#[test]
fn a_service_type_changed_by_hand_is_the_type_only() {
    let (git, mut live) = case("service-clusterip.yaml");
    update(&mut live, "kubectl-patch", |l| {
        l["spec"]["type"] = json!("NodePort");
        // what the API server adds for a NodePort: an allocated port, the traffic policy default
        l["spec"]["ports"][0]["nodePort"] = json!(31080);
        l["spec"]["ports"][1]["nodePort"] = json!(31090);
        l["spec"]["externalTrafficPolicy"] = json!("Cluster");
    });
    let c = compare(&git, &live, &witness());
    assert_eq!(summaries(&c), ["~ spec.type: ClusterIP → NodePort"]);
    assert_eq!(
        counts(&c),
        BTreeMap::from([("default".to_string(), 1), ("server-allocated".to_string(), 6)]),
        "{:#?}",
        c.suppressed
    );
}

#[test]
fn a_secret_value_changed_is_reported_by_hash() {
    let (git, mut live) = case("secret-empty-value.yaml");
    update(&mut live, "kubectl-edit", |l| l["data"]["smtp-user"] = json!("YWRtaW4="));
    let c = compare(&git, &live, &witness());
    assert_eq!(summaries(&c), ["~ secret key smtp-user changed"]);
    let text = format!("{:?}", c.changes);
    assert!(!text.contains("YWRtaW4=") && !text.contains("bm9yZXBseQ=="), "{text}");
}

#[test]
fn replicas_scaled_by_kubectl_are_drift_and_by_the_hpa_controller_are_not() {
    let (git, live) = case("deployment-probes.yaml");
    let scale = |manager: &str| {
        let mut l = live.clone();
        l["spec"]["replicas"] = json!(5);
        let mut managed = l["metadata"]["managedFields"].as_array().cloned().unwrap();
        fields::record(
            &mut managed,
            manager,
            "Update",
            "apps/v1",
            Some("scale"),
            "2026-12-01T09:00:00Z",
            &json!({"f:spec": {"f:replicas": {}}}),
        );
        l["metadata"]["managedFields"] = Value::Array(managed);
        compare(&git, &l, &witness())
    };
    assert_eq!(summaries(&scale("kubectl")), ["~ replicas 2 → 5"]);
    let by_hpa = scale("kube-controller-manager");
    assert_eq!(summaries(&by_hpa), Vec::<String>::new());
    assert_eq!(by_hpa.suppressed[0].cause, Cause::Hpa);
}

#[test]
fn removed_server_fields_and_edited_defaults_of_other_kinds() {
    // a StatefulSet's partition moved, a NetworkPolicy's protocol changed, a CronJob suspended
    let (git, mut live) = case("statefulset.yaml");
    update(&mut live, "kubectl-patch", |l| l["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2));
    assert_eq!(summaries(&compare(&git, &live, &witness())), ["~ spec.updateStrategy.rollingUpdate.partition: 0 → 2"]);
    let (git, mut live) = case("cronjob.yaml");
    update(&mut live, "kubectl-patch", |l| l["spec"]["suspend"] = json!(true));
    assert_eq!(summaries(&compare(&git, &live, &witness())), ["~ spec.suspend: false → true"]);
    let (git, mut live) = case("endpoints.yaml");
    update(&mut live, "kubectl-edit", |l| l["subsets"][0]["ports"][0]["protocol"] = json!("UDP"));
    let c = compare(&git, &live, &witness());
    assert_eq!(c.changes.len(), 1, "{:?}", summaries(&c));
    assert_eq!(c.changes[0].path, "subsets");
    // the live shapes of a 1.34 cluster: no maxUnavailable on a StatefulSet's rolling update
    let (git, mut live) = case("statefulset.yaml");
    fields::remove_at(
        &mut live,
        &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"].map(|f| PathElem::Field(f.into())),
    );
    assert_eq!(summaries(&compare(&git, &live, &Witness { minor: 34, ..witness() })), Vec::<String>::new());
    assert_eq!(compare(&git, &live, &witness()).changes.len(), 1, "1.35 defaults it");
}

#[test]
fn a_live_only_field_of_a_custom_resource_written_by_hand_is_drift() {
    let (git, mut live) = case("custom-resource-schema-default.yaml");
    update(&mut live, "kubectl-edit", |l| l["spec"]["redis"]["maxMemory"] = json!("2gb"));
    let c = compare(&git, &live, &witness());
    assert_eq!(summaries(&c), ["+ spec.redis.maxMemory: 2gb"]);
    assert_eq!(counts(&c), BTreeMap::from([("default".to_string(), 2)]));
}

/// The mock clusters' fixtures read as a real cluster returns its objects: the API server's
/// defaults are already there (the mock applies them when it loads a fixture, so a fixture
/// missing one would hide it from every test).
#[test]
fn cluster_fixtures_are_shaped_like_real_cluster_output() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for parent in ["examples/platform/clusters", "tests/fixtures/clusters"] {
        for e in std::fs::read_dir(root.join(parent)).unwrap() {
            dirs.push(e.unwrap().path());
        }
    }
    let mut checked = 0;
    let mut wrong = Vec::new();
    for dir in dirs {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for obj in agentops::config::yaml::parse_values(&text).unwrap() {
                let mut defaulted = obj.clone();
                agentops::k8s::defaults::apply(&mut defaulted);
                checked += 1;
                if defaulted != obj {
                    let changes = agentops::k8s::diff::diff(&obj, &defaulted);
                    wrong.push(format!(
                        "{} {}: {:?}",
                        path.display(),
                        agentops::k8s::ObjectRef::of(&obj),
                        changes.iter().map(|c| &c.summary).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "{checked}");
    assert!(wrong.is_empty(), "fixtures without the defaults a real cluster shows:\n{}", wrong.join("\n"));
}
