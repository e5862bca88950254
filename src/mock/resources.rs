//! The resource table of the mock API server: the built-in kinds it serves (one table, in the
//! shape of discovery) plus the custom resources that CustomResourceDefinitions in the store
//! declare. Routing, discovery, OpenAPI and fixture checks all read this one table.

use serde_json::{Value, json};

const RW: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Where a scale subresource reads and writes replicas (JSON paths as in a CRD, `.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One resource at one group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// Whether metadata.generation is kept (bumped on changes outside metadata and status).
    pub generation: bool,
    /// DELETE answers the deleted object instead of a success Status.
    pub returns_deleted: bool,
    /// Declared by a CustomResourceDefinition.
    pub custom: bool,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `deployments.apps`, `pods`: how the API server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `Deployment.apps`, `Pod`: how Invalid errors name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    /// URL prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    generation: bool,
    returns_deleted: bool,
}

const fn b(group: &'static str, version: &'static str, kind: &'static str, plural: &'static str) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced: true,
        short: &[],
        all: false,
        status: false,
        scale: false,
        generation: false,
        returns_deleted: false,
    }
}

impl Builtin {
    const fn cluster(mut self) -> Self {
        self.namespaced = false;
        self
    }
    const fn short(mut self, s: &'static [&'static str]) -> Self {
        self.short = s;
        self
    }
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn returns_deleted(mut self) -> Self {
        self.returns_deleted = true;
        self
    }
}

/// The built-in resources, preferred version of a group first.
const BUILTINS: &[Builtin] = &[
    b("", "v1", "ConfigMap", "configmaps").short(&["cm"]),
    b("", "v1", "Endpoints", "endpoints").short(&["ep"]),
    b("", "v1", "Event", "events").short(&["ev"]),
    b("", "v1", "LimitRange", "limitranges").short(&["limits"]),
    b("", "v1", "Namespace", "namespaces").cluster().short(&["ns"]).status().returns_deleted(),
    b("", "v1", "Node", "nodes").cluster().short(&["no"]).status(),
    b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims").short(&["pvc"]).status(),
    b("", "v1", "PersistentVolume", "persistentvolumes").cluster().short(&["pv"]).status(),
    b("", "v1", "Pod", "pods").short(&["po"]).all().status().generation().returns_deleted(),
    b("", "v1", "PodTemplate", "podtemplates"),
    b("", "v1", "ReplicationController", "replicationcontrollers").short(&["rc"]).all().status().scale().generation(),
    b("", "v1", "ResourceQuota", "resourcequotas").short(&["quota"]).status(),
    b("", "v1", "Secret", "secrets"),
    b("", "v1", "ServiceAccount", "serviceaccounts").short(&["sa"]),
    b("", "v1", "Service", "services").short(&["svc"]).all().status().returns_deleted(),
    b("apps", "v1", "ControllerRevision", "controllerrevisions"),
    b("apps", "v1", "DaemonSet", "daemonsets").short(&["ds"]).all().status().generation(),
    b("apps", "v1", "Deployment", "deployments").short(&["deploy"]).all().status().scale().generation(),
    b("apps", "v1", "ReplicaSet", "replicasets").short(&["rs"]).all().status().scale().generation(),
    b("apps", "v1", "StatefulSet", "statefulsets").short(&["sts"]).all().status().scale().generation(),
    b("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers").short(&["hpa"]).all().status(),
    b("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers").short(&["hpa"]).all().status(),
    b("batch", "v1", "CronJob", "cronjobs").short(&["cj"]).all().status().generation(),
    b("batch", "v1", "Job", "jobs").all().status().generation(),
    b("networking.k8s.io", "v1", "IngressClass", "ingressclasses").cluster().generation(),
    b("networking.k8s.io", "v1", "Ingress", "ingresses").short(&["ing"]).status().generation(),
    b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies").short(&["netpol"]).generation(),
    b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets").short(&["pdb"]).status().generation(),
    b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings").cluster(),
    b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles").cluster(),
    b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    b("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    b("storage.k8s.io", "v1", "CSIDriver", "csidrivers").cluster(),
    b("storage.k8s.io", "v1", "CSINode", "csinodes").cluster(),
    b("storage.k8s.io", "v1", "StorageClass", "storageclasses").cluster().short(&["sc"]),
    b("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments").cluster().status(),
    b("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions")
        .cluster()
        .short(&["crd", "crds"])
        .status()
        .generation(),
];

fn builtins() -> Vec<Resource> {
    BUILTINS
        .iter()
        .map(|b| Resource {
            group: b.group.into(),
            version: b.version.into(),
            kind: b.kind.into(),
            plural: b.plural.into(),
            singular: b.kind.to_lowercase(),
            namespaced: b.namespaced,
            short_names: b.short.iter().map(|s| s.to_string()).collect(),
            categories: if b.all { vec!["all".into()] } else { Vec::new() },
            verbs: RW.iter().map(|s| s.to_string()).collect(),
            status: b.status,
            scale: b.scale.then(|| ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: Some(".spec.selector".into()),
            }),
            generation: b.generation,
            returns_deleted: b.returns_deleted,
            custom: false,
        })
        .collect()
}

/// The resources one CustomResourceDefinition declares (one per served version, the storage
/// version first), or a message saying what is missing.
pub fn from_crd(crd: &Value) -> Result<Vec<Resource>, String> {
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let group = s("/spec/group");
    let kind = s("/spec/names/kind");
    let plural = s("/spec/names/plural");
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Err("a CustomResourceDefinition needs spec.group, spec.names.kind and spec.names.plural".into());
    }
    let singular = match s("/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let strs = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let namespaced = s("/spec/scope") != "Cluster";
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for v in &versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let scale = v.pointer("/subresources/scale").map(|sc| ScalePaths {
            spec_replicas: sc.get("specReplicasPath").and_then(Value::as_str).unwrap_or(".spec.replicas").into(),
            status_replicas: sc.get("statusReplicasPath").and_then(Value::as_str).unwrap_or(".status.replicas").into(),
            label_selector: sc.get("labelSelectorPath").and_then(Value::as_str).map(str::to_string),
        });
        let r = Resource {
            group: group.into(),
            version: name.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: strs("/spec/names/shortNames"),
            categories: strs("/spec/names/categories"),
            verbs: RW.iter().map(|s| s.to_string()).collect(),
            status: v.pointer("/subresources/status").is_some(),
            scale,
            generation: true,
            returns_deleted: true,
            custom: true,
        };
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            out.insert(0, r);
        } else {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err("a CustomResourceDefinition needs at least one served version in spec.versions".into());
    }
    Ok(out)
}

/// Built-in resources plus those of the CRDs in the store.
#[derive(Debug, Clone)]
pub struct ResourceSet {
    list: Vec<Resource>,
}

impl Default for ResourceSet {
    fn default() -> Self {
        ResourceSet { list: builtins() }
    }
}

impl ResourceSet {
    /// The built-ins plus every valid CRD among `crds`; a CRD whose group and plural a
    /// built-in already serves is ignored.
    pub fn with_crds<'a>(crds: impl IntoIterator<Item = &'a Value>) -> ResourceSet {
        let mut set = ResourceSet::default();
        for crd in crds {
            if let Ok(rs) = from_crd(crd) {
                for r in rs {
                    if !set.list.iter().any(|x| x.group == r.group && x.version == r.version && x.plural == r.plural) {
                        set.list.push(r);
                    }
                }
            }
        }
        set
    }

    pub fn all(&self) -> &[Resource] {
        &self.list
    }

    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.list.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource of `apiVersion` + `kind`, served at exactly that version.
    pub fn by_api_version_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = split_api_version(api_version);
        self.list.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// The preferred version of a group's kind.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&Resource> {
        self.list.iter().find(|r| r.group == group && r.kind == kind)
    }

    /// Groups in discovery order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.list {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, vs)) => {
                    if !vs.contains(&r.version) {
                        vs.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.list.iter().filter(move |r| r.group == group && r.version == version)
    }

    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.in_group_version(group, version).next().is_some()
    }
}

/// `apps/v1` -> ("apps", "v1"); `v1` -> ("", "v1").
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// Aggregated discovery (apidiscovery.k8s.io/v2) of the core group (`/api`) or of every
/// named group (`/apis`).
pub fn aggregated(set: &ResourceSet, core: bool) -> Value {
    let mut items = Vec::new();
    for (group, versions) in set.groups() {
        if group.is_empty() != core {
            continue;
        }
        let versions: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = set
                    .in_group_version(&group, v)
                    .map(|r| {
                        let mut subs = Vec::new();
                        if r.scale.is_some() {
                            subs.push(json!({
                                "subresource": "scale",
                                "responseKind": gvk("autoscaling", "v1", "Scale"),
                                "verbs": ["get", "patch", "update"],
                            }));
                        }
                        if r.status {
                            subs.push(json!({
                                "subresource": "status",
                                "responseKind": gvk(&r.group, &r.version, &r.kind),
                                "verbs": ["get", "patch", "update"],
                            }));
                        }
                        let mut e = json!({
                            "resource": r.plural,
                            "responseKind": gvk(&r.group, &r.version, &r.kind),
                            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": r.singular,
                            "verbs": r.verbs,
                        });
                        if !r.short_names.is_empty() {
                            e["shortNames"] = json!(r.short_names);
                        }
                        if !r.categories.is_empty() {
                            e["categories"] = json!(r.categories);
                        }
                        if !subs.is_empty() {
                            e["subresources"] = json!(subs);
                        }
                        e
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        let mut item = json!({"metadata": {"creationTimestamp": null}, "versions": versions});
        if !group.is_empty() {
            item["metadata"]["name"] = json!(group);
        }
        items.push(item);
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Legacy `/api`: APIVersions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Legacy `/apis`: APIGroupList.
pub fn api_group_list(set: &ResourceSet) -> Value {
    let groups: Vec<Value> =
        set.groups().into_iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group_doc(&g, &vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": vs, "preferredVersion": preferred})
}

/// Legacy `/apis/<group>`: APIGroup.
pub fn api_group(set: &ResourceSet, group: &str) -> Option<Value> {
    let (_, vs) = set.groups().into_iter().find(|(g, _)| g == group)?;
    let mut doc = group_doc(group, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// Legacy `/api/v1` or `/apis/<group>/<version>`: APIResourceList.
pub fn api_resource_list(set: &ResourceSet, group: &str, version: &str) -> Option<Value> {
    if !set.has_group_version(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in set.in_group_version(group, version) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        if r.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let mut doc = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources});
    if !group.is_empty() {
        doc["apiVersion"] = json!("v1");
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let set = ResourceSet::default();
        let d = set.by_api_version_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(d.qualified(), "deployments.apps");
        assert!(d.scale.is_some());
        assert!(set.by_plural("autoscaling", "v1", "horizontalpodautoscalers").is_some());
        assert_eq!(set.by_group_kind("autoscaling", "HorizontalPodAutoscaler").unwrap().version, "v2");
        assert!(set.by_api_version_kind("monitoring.coreos.com/v1", "ServiceMonitor").is_none());
    }

    #[test]
    fn crds_add_resources() {
        let crd = json!({"spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "shortNames": ["smon"]},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let set = ResourceSet::with_crds([&crd]);
        let r = set.by_api_version_kind("monitoring.coreos.com/v1", "ServiceMonitor").unwrap();
        assert_eq!(r.singular, "servicemonitor");
        assert!(r.custom && r.namespaced);
        let disc = aggregated(&set, false);
        assert!(disc.to_string().contains("\"servicemonitors\""));
        assert!(from_crd(&json!({"spec": {}})).is_err());
    }
}
