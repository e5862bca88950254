//! What a cluster runs against what git says, for one object: the semantic diff of the
//! rendered object with the API server's defaults applied ([`super::defaults`]) against the
//! live one, each difference either reported or suppressed with its cause. Nothing is dropped
//! silently: a caller counts and can list every suppressed difference.
//!
//! The rules, in order:
//! 1. A field git does not set is compared with its default by value: `periodSeconds: 10`
//!    is not drift, a Deployment switched to Recreate by hand is.
//! 2. A field the server sets itself (a Service's clusterIP, a PVC's volumeName, the
//!    finalizers core controllers add) counts only when git sets it: `server-allocated`.
//! 3. Ownership is the second witness, for what the table does not cover (custom resources,
//!    fields it misses): a live-only field that no manager owns, or that only the syncing
//!    manager owns (Argo CD, whose client-side apply owns the defaults it was given back), is
//!    a `default`; one a known controller owns is `controller-owned`; any other owner
//!    (kubectl edit, patch, set, a dashboard, an unknown name) makes it drift. An object
//!    without managedFields gets the table only.
//! 4. Replicas a HorizontalPodAutoscaler manages are `hpa`, whoever wrote them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::defaults;
use super::diff::{self, Change, Op};
use super::fields::{self, PathElem};

/// Why a difference between git and a cluster is not drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The API server's default for a field git leaves out.
    Default,
    /// A value the server, its allocators or admission chose (clusterIP, nodePort, volumeName).
    ServerAllocated,
    /// Written by a known controller (cert-manager's CA injector, the ClusterRole aggregator).
    ControllerOwned,
    /// Replicas a HorizontalPodAutoscaler manages.
    Hpa,
    /// A `drift.ignore` rule of `.agentops.yaml`.
    IgnoreRule,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Default => "default",
            Cause::ServerAllocated => "server-allocated",
            Cause::ControllerOwned => "controller-owned",
            Cause::Hpa => "hpa",
            Cause::IgnoreRule => "ignore-rule",
        }
    }
}

/// Field managers of controllers that write objects a GitOps repo holds, as they appear in
/// managedFields. `.agentops.yaml` (`drift.controllers`) adds to them.
pub const CONTROLLERS: &[&str] = &[
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "cloud-controller-manager",
    "clusterrole-aggregation-controller",
    "cert-manager-cainjector",
    "cainjector",
    "vpa-recommender",
    "vpa-updater",
    "aws-load-balancer-controller",
];

/// Field managers that write what git says: Argo CD's application controller, for both its
/// client-side apply (operation Update) and its server-side apply (operation Apply).
/// `.agentops.yaml` (`drift.sync_managers`) adds to them.
pub const SYNC_MANAGERS: &[&str] = &["argocd-controller"];

/// What, beside the two objects, decides whether a difference is drift.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The cluster's Kubernetes minor version, for the defaults of that release.
    pub minor: u32,
    /// Known controllers' field managers ([`CONTROLLERS`] plus configured ones).
    pub controllers: Vec<String>,
    /// Field managers that sync git ([`SYNC_MANAGERS`] plus configured ones).
    pub sync_managers: Vec<String>,
    /// A HorizontalPodAutoscaler of the same Application scales this object.
    pub hpa_target: bool,
}

impl Witness {
    /// The built-in controller and sync manager lists, extended by `extra_*`.
    pub fn with(extra_controllers: &[String], extra_sync_managers: &[String]) -> Witness {
        Witness {
            controllers: CONTROLLERS.iter().map(|s| s.to_string()).chain(extra_controllers.iter().cloned()).collect(),
            sync_managers: SYNC_MANAGERS
                .iter()
                .map(|s| s.to_string())
                .chain(extra_sync_managers.iter().cloned())
                .collect(),
            hpa_target: false,
            minor: defaults::NEWEST_MINOR,
        }
    }
}

/// A difference that is not drift, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppressed {
    pub change: Change,
    pub cause: Cause,
    /// The field manager that owns the live value, when ownership decided.
    pub manager: Option<String>,
}

/// The differences of one object: drift, and what was suppressed with its cause.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub changes: Vec<Change>,
    pub suppressed: Vec<Suppressed>,
}

impl Comparison {
    /// Counts of suppressed differences by cause.
    pub fn counts(&self) -> BTreeMap<Cause, usize> {
        let mut out = BTreeMap::new();
        for s in &self.suppressed {
            *out.entry(s.cause).or_default() += 1;
        }
        out
    }

    /// Moves the changes `rule` matches to the suppressed ones with `cause`.
    pub fn suppress(&mut self, cause: Cause, rule: impl Fn(&Change) -> bool) {
        let (out, keep): (Vec<Change>, Vec<Change>) = std::mem::take(&mut self.changes).into_iter().partition(rule);
        self.changes = keep;
        self.suppressed.extend(out.into_iter().map(|change| Suppressed { change, cause, manager: None }));
    }
}

/// `desired` as the API server of the newest version the table knows would store it.
pub fn with_defaults(desired: &Value) -> Value {
    with_defaults_for(desired, defaults::NEWEST_MINOR)
}

/// `desired` as the API server of Kubernetes 1.`minor` would store it: with its defaults.
pub fn with_defaults_for(desired: &Value, minor: u32) -> Value {
    let mut d = desired.clone();
    defaults::apply_for(&mut d, minor);
    d
}

/// Compares what git renders for an object with what the cluster runs.
pub fn compare(desired: &Value, live: &Value, w: &Witness) -> Comparison {
    let changes = diff::diff_owned(with_defaults_for(desired, w.minor), live);
    let managed = live.pointer("/metadata/managedFields").and_then(Value::as_array).filter(|m| !m.is_empty());
    let mut out = Comparison::default();
    for change in changes {
        match classify(desired, live, &change, managed.map(Vec::as_slice), w) {
            Some((cause, manager)) => out.suppressed.push(Suppressed { change, cause, manager }),
            None => out.changes.push(change),
        }
    }
    out
}

/// The field names of a change's path, list items left out.
pub fn field_names(change: &Change) -> Vec<&str> {
    change
        .elems
        .iter()
        .filter_map(|e| match e {
            PathElem::Field(f) => Some(f.as_str()),
            _ => None,
        })
        .collect()
}

/// Whether git leaves this field out: it is absent, or an empty map or list, in the rendered
/// object (with defaults).
fn git_leaves_out(change: &Change) -> bool {
    match &change.from {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn classify(
    desired: &Value,
    live: &Value,
    change: &Change,
    managed: Option<&[Value]>,
    w: &Witness,
) -> Option<(Cause, Option<String>)> {
    let owner = managed.and_then(|m| fields::owner(m, &change.elems));
    let entry = |k: &str| owner.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or_default();
    let (manager, subresource) = (entry("manager").to_string(), entry("subresource"));
    if change.path == "spec.replicas" && change.op == Op::Change {
        let by_hpa = subresource == "scale" && w.controllers.contains(&manager);
        if w.hpa_target || by_hpa {
            return Some((Cause::Hpa, owner.map(|_| manager)));
        }
    }
    if change.op == Op::Remove {
        return None;
    }
    let known_controller = owner.is_some() && w.controllers.contains(&manager);
    if !git_leaves_out(change) {
        // git sets this field and the cluster holds another value: drift, unless a known
        // controller overwrites it (a CA bundle injected into what git leaves empty)
        return known_controller.then_some((Cause::ControllerOwned, Some(manager)));
    }
    let value = match &change.elems.last() {
        Some(PathElem::Value(v)) => Some(v),
        _ => change.to.as_ref(),
    };
    if all_server_set(desired, &mut field_names(change), value) {
        return Some((Cause::ServerAllocated, owner.map(|_| manager)));
    }
    let managed = managed?;
    match owner {
        None => Some((Cause::Default, None)),
        Some(_) if known_controller => Some((Cause::ControllerOwned, Some(manager))),
        Some(_) if w.sync_managers.contains(&manager) && only_syncers_own(managed, change, w) => {
            Some((Cause::Default, Some(manager)))
        }
        // filled in by the API server for the live object's own settings (a NodePort's
        // externalTrafficPolicy): the setting that caused it is the drift, reported itself
        Some(_) if defaults_of_live(live, change, w.minor) => Some((Cause::Default, Some(manager))),
        Some(_) => None,
    }
}

/// Whether the server sets the field at `path` with `value`; for a map git leaves out as a
/// whole (a Job's generated pod template labels), whether it sets every field inside it.
fn all_server_set<'a>(desired: &Value, path: &mut Vec<&'a str>, value: Option<&'a Value>) -> bool {
    if defaults::server_set(desired, path, value) {
        return true;
    }
    match value {
        Some(Value::Object(m)) if !m.is_empty() => m.iter().all(|(k, v)| {
            path.push(k.as_str());
            let all = all_server_set(desired, path, Some(v));
            path.pop();
            all
        }),
        _ => false,
    }
}

/// Whether the live value of a field git leaves out is what defaulting the live object
/// without it gives back.
fn defaults_of_live(live: &Value, change: &Change, minor: u32) -> bool {
    let Some(value) = &change.to else { return false };
    let mut without = live.clone();
    if !fields::remove_at(&mut without, &change.elems) {
        return false;
    }
    defaults::apply_for(&mut without, minor);
    fields::value_at(&without, &change.elems) == Some(value)
}

/// Whether every managedFields entry that owns the change's path (or an ancestor of it) is a
/// sync manager's: a field a person also wrote is theirs, not a default.
fn only_syncers_own(managed: &[Value], change: &Change, w: &Witness) -> bool {
    managed.iter().all(|e| {
        let m = e.get("manager").and_then(Value::as_str).unwrap_or_default();
        w.sync_managers.iter().any(|s| s == m) || fields::owner(std::slice::from_ref(e), &change.elems).is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn witness() -> Witness {
        Witness::with(&[], &[])
    }

    fn desired() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "readinessProbe": {"httpGet": {"port": 8080}}}]}}}})
    }

    /// The live object a cluster holds after Argo CD's client-side apply: every default,
    /// all of it owned by argocd-controller (operation Update).
    fn live() -> Value {
        let mut l = with_defaults(&desired());
        let owned = fields::changed_fields("Deployment", &json!({}), &l);
        l["metadata"]["managedFields"] = json!([{"manager": "argocd-controller", "operation": "Update", "apiVersion": "apps/v1",
            "time": "2026-11-27T09:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": owned}]);
        l["metadata"]["uid"] = json!("u");
        l
    }

    fn summaries(c: &Comparison) -> Vec<String> {
        c.changes.iter().map(|c| c.summary.clone()).collect()
    }

    #[test]
    fn defaults_by_value_are_not_drift() {
        let c = compare(&desired(), &live(), &witness());
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.suppressed, vec![], "defaults equal by value need no suppression");
    }

    #[test]
    fn a_default_moved_by_hand_is_drift() {
        let mut l = live();
        l["spec"]["strategy"] = json!({"type": "Recreate"});
        let c = compare(&desired(), &l, &witness());
        assert_eq!(
            summaries(&c),
            vec!["~ spec.strategy.type: RollingUpdate → Recreate", "- spec.strategy.rollingUpdate"]
        );
        let mut l = live();
        l["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = json!(30);
        let c = compare(&desired(), &l, &witness());
        assert_eq!(
            summaries(&c),
            vec!["~ spec.template.spec.containers[name=web].readinessProbe.periodSeconds: 10 → 30"]
        );
    }

    fn owned_by(l: &mut Value, manager: &str, operation: &str, tree: Value) {
        l["metadata"]["managedFields"].as_array_mut().unwrap().push(json!({"manager": manager, "operation": operation,
            "apiVersion": "apps/v1", "time": "2026-11-28T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": tree}));
    }

    #[test]
    fn a_live_only_field_owned_by_the_syncer_or_nobody_is_a_default() {
        // a field the table does not know, given back by the API server to Argo CD's update
        let mut l = live();
        l["spec"]["template"]["spec"]["containers"][0]["futureDefault"] = json!("on");
        let tree = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:futureDefault": {}}}}}}});
        l["metadata"]["managedFields"][0]["fieldsV1"] = {
            let mut t = l["metadata"]["managedFields"][0]["fieldsV1"].clone();
            fields::merge_trees(&mut t, &tree);
            t
        };
        let c = compare(&desired(), &l, &witness());
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.suppressed.len(), 1);
        assert_eq!(
            (c.suppressed[0].cause, c.suppressed[0].manager.as_deref()),
            (Cause::Default, Some("argocd-controller"))
        );

        // owned by nobody (a server-side applied object's defaults)
        let mut l = live();
        l["metadata"]["managedFields"] = json!([{"manager": "argocd-controller", "operation": "Apply", "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:selector": {}}}}]);
        l["spec"]["futureDefault"] = json!(true);
        let c = compare(&desired(), &l, &witness());
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.suppressed[0].cause, Cause::Default);
        assert_eq!(c.suppressed[0].manager, None);
    }

    #[test]
    fn a_live_only_field_owned_by_a_person_is_drift() {
        for manager in [
            "kubectl-edit",
            "kubectl-patch",
            "kubectl-set",
            "kubectl-client-side-apply",
            "kubectl",
            "helm",
            "Mozilla",
            "my-dashboard",
        ] {
            let mut l = live();
            l["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "proxy", "image": "proxy:1"}));
            owned_by(
                &mut l,
                manager,
                "Update",
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"proxy\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}),
            );
            let c = compare(&desired(), &l, &witness());
            assert_eq!(summaries(&c), vec!["+ container proxy (image proxy:1)"], "{manager}");
        }
    }

    #[test]
    fn a_field_the_syncer_and_a_person_own_is_drift() {
        let mut l = live();
        l["spec"]["paused"] = json!(true);
        let tree = json!({"f:spec": {"f:paused": {}}});
        let mut t = l["metadata"]["managedFields"][0]["fieldsV1"].clone();
        fields::merge_trees(&mut t, &tree);
        l["metadata"]["managedFields"][0]["fieldsV1"] = t;
        owned_by(&mut l, "kubectl-patch", "Update", tree);
        let c = compare(&desired(), &l, &witness());
        assert_eq!(summaries(&c), vec!["+ spec.paused: true"]);
    }

    #[test]
    fn a_live_only_field_owned_by_a_known_controller() {
        let mut l = live();
        l["metadata"]["annotations"] = json!({"example.com/injected": "x"});
        owned_by(
            &mut l,
            "cert-manager-cainjector",
            "Update",
            json!({"f:metadata": {"f:annotations": {"f:example.com/injected": {}}}}),
        );
        let c = compare(&desired(), &l, &witness());
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.suppressed[0].cause, Cause::ControllerOwned);
        // unknown to the built-in list until configured
        let mut l = live();
        l["metadata"]["annotations"] = json!({"example.com/injected": "x"});
        owned_by(
            &mut l,
            "acme-operator",
            "Update",
            json!({"f:metadata": {"f:annotations": {"f:example.com/injected": {}}}}),
        );
        assert_eq!(compare(&desired(), &l, &witness()).changes.len(), 1);
        let w = Witness::with(&["acme-operator".to_string()], &[]);
        assert_eq!(compare(&desired(), &l, &w).suppressed[0].cause, Cause::ControllerOwned);
    }

    #[test]
    fn without_managed_fields_only_the_table_decides() {
        let mut l = live();
        l["metadata"].as_object_mut().unwrap().remove("managedFields");
        l["spec"]["futureDefault"] = json!(true);
        let c = compare(&desired(), &l, &witness());
        assert_eq!(summaries(&c), vec!["+ spec.futureDefault: true"]);
        // still equal where the table covers it
        let c = compare(&desired(), &with_defaults(&desired()), &witness());
        assert_eq!(c, Comparison::default());
    }

    #[test]
    fn replicas_scaled_by_the_hpa_controller_or_for_an_hpa_target() {
        let mut l = live();
        l["spec"]["replicas"] = json!(6);
        let c = compare(&desired(), &l, &witness());
        assert_eq!(summaries(&c), vec!["~ replicas 1 → 6"], "argocd-controller owns it: a change nobody explains");
        // the scale write moves ownership of replicas to the HPA controller, as the API server does
        let mut scaled = l.clone();
        let mut managed: Vec<Value> = l["metadata"]["managedFields"].as_array().unwrap().clone();
        fields::record(
            &mut managed,
            "kube-controller-manager",
            "Update",
            "apps/v1",
            Some("scale"),
            "2026-11-28T10:00:00Z",
            &json!({"f:spec": {"f:replicas": {}}}),
        );
        scaled["metadata"]["managedFields"] = Value::Array(managed);
        let c = compare(&desired(), &scaled, &witness());
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.suppressed[0].cause, Cause::Hpa);
        // kubectl scale is a person
        let mut managed: Vec<Value> = l["metadata"]["managedFields"].as_array().unwrap().clone();
        fields::record(
            &mut managed,
            "kubectl",
            "Update",
            "apps/v1",
            Some("scale"),
            "2026-11-28T10:00:00Z",
            &json!({"f:spec": {"f:replicas": {}}}),
        );
        let mut by_hand = l.clone();
        by_hand["metadata"]["managedFields"] = Value::Array(managed);
        assert_eq!(summaries(&compare(&desired(), &by_hand, &witness())), vec!["~ replicas 1 → 6"]);
        // an HPA target: whoever wrote it
        let w = Witness { hpa_target: true, ..witness() };
        assert_eq!(compare(&desired(), &by_hand, &w).suppressed[0].cause, Cause::Hpa);
    }

    #[test]
    fn server_allocated_fields_count_only_when_git_sets_them() {
        let d = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        let mut l = with_defaults(&d);
        l["spec"]["clusterIP"] = json!("10.96.0.10");
        l["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
        l["spec"]["ipFamilies"] = json!(["IPv4"]);
        l["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        let c = compare(&d, &l, &witness());
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.counts(), BTreeMap::from([(Cause::ServerAllocated, 4)]));
        let mut pinned = d.clone();
        pinned["spec"]["clusterIP"] = json!("10.96.0.99");
        assert_eq!(summaries(&compare(&pinned, &l, &witness())), vec!["~ spec.clusterIP: 10.96.0.99 → 10.96.0.10"]);
    }

    #[test]
    fn removed_fields_are_always_drift() {
        let mut l = live();
        l["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("readinessProbe");
        let c = compare(&desired(), &l, &witness());
        assert_eq!(c.changes.len(), 1, "{:?}", summaries(&c));
        assert_eq!(c.changes[0].op, Op::Remove);
    }

    #[test]
    fn suppress_moves_changes_with_their_cause() {
        let mut l = live();
        l["spec"]["paused"] = json!(true);
        l["metadata"].as_object_mut().unwrap().remove("managedFields");
        let mut c = compare(&desired(), &l, &witness());
        c.suppress(Cause::IgnoreRule, |c| c.path == "spec.paused");
        assert_eq!(c.changes, vec![]);
        assert_eq!(c.counts(), BTreeMap::from([(Cause::IgnoreRule, 1)]));
    }
}
