//! Cluster prerequisites: what rendered objects need from the cluster they land in
//! (StorageClasses for claims, CRDs for custom kinds, IngressClasses for Ingresses), and
//! what each cluster has.

use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::{ClusterError, with_retry};

/// Groups every cluster serves without a CRD.
const BUILTIN_GROUPS: [&str; 17] = [
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "storage.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "admissionregistration.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "events.k8s.io",
    "apiregistration.k8s.io",
];

/// Something an object needs from its cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// A StorageClass by name, or the default one (None).
    StorageClass(Option<String>),
    Crd {
        group: String,
        version: String,
        kind: String,
    },
    /// An IngressClass by name, or the default one (None).
    IngressClass(Option<String>),
}

/// The needs of one object, with the JSON pointer of the field that causes each.
pub fn needs_of(obj: &Value) -> Vec<(Need, String)> {
    let mut out = Vec::new();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if !BUILTIN_GROUPS.contains(&group) {
        out.push((Need::Crd { group: group.into(), version: version.into(), kind: kind.into() }, "/apiVersion".into()));
    }
    let class = |spec: &Value| -> Option<Option<String>> {
        match spec.get("storageClassName") {
            Some(Value::String(s)) if s.is_empty() => None, // "" binds a static volume: no class
            Some(Value::String(s)) => Some(Some(s.clone())),
            _ => Some(None),
        }
    };
    match kind {
        "PersistentVolumeClaim" => {
            if let Some(c) = obj.get("spec").and_then(class) {
                out.push((Need::StorageClass(c), "/spec/storageClassName".into()));
            }
        }
        "StatefulSet" => {
            for (i, t) in
                obj.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten().enumerate()
            {
                if let Some(c) = t.get("spec").and_then(class) {
                    out.push((Need::StorageClass(c), format!("/spec/volumeClaimTemplates/{i}/spec/storageClassName")));
                }
            }
        }
        "Ingress" => {
            let named = obj
                .pointer("/spec/ingressClassName")
                .and_then(Value::as_str)
                .or_else(|| obj.pointer("/metadata/annotations/kubernetes.io~1ingress.class").and_then(Value::as_str));
            out.push((Need::IngressClass(named.map(str::to_string)), "/spec/ingressClassName".into()));
        }
        _ => {}
    }
    out
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NamedClass {
    pub name: String,
    pub default: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CrdInfo {
    pub name: String,
    pub group: String,
    pub kind: String,
    pub versions: Vec<String>,
}

/// What a cluster offers.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ClusterFacts {
    pub storage_classes: Vec<NamedClass>,
    pub ingress_classes: Vec<NamedClass>,
    pub crds: Vec<CrdInfo>,
}

fn is_default(annotations: Option<&std::collections::BTreeMap<String, String>>, key: &str) -> bool {
    annotations.and_then(|a| a.get(key)).is_some_and(|v| v == "true")
}

/// Reads StorageClasses, IngressClasses and CRDs of a cluster.
pub async fn facts(client: &Client) -> Result<ClusterFacts, ClusterError> {
    let lp = ListParams::default();
    let scs: Api<StorageClass> = Api::all(client.clone());
    let ics: Api<IngressClass> = Api::all(client.clone());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let (scs, ics, crds) =
        futures::try_join!(with_retry(|| scs.list(&lp)), with_retry(|| ics.list(&lp)), with_retry(|| crds.list(&lp)))?;
    Ok(ClusterFacts {
        storage_classes: scs
            .items
            .iter()
            .map(|s| NamedClass {
                name: s.metadata.name.clone().unwrap_or_default(),
                default: is_default(s.metadata.annotations.as_ref(), "storageclass.kubernetes.io/is-default-class"),
            })
            .collect(),
        ingress_classes: ics
            .items
            .iter()
            .map(|s| NamedClass {
                name: s.metadata.name.clone().unwrap_or_default(),
                default: is_default(s.metadata.annotations.as_ref(), "ingressclass.kubernetes.io/is-default-class"),
            })
            .collect(),
        crds: crds
            .items
            .iter()
            .map(|c| CrdInfo {
                name: c.metadata.name.clone().unwrap_or_default(),
                group: c.spec.group.clone(),
                kind: c.spec.names.kind.clone(),
                versions: c.spec.versions.iter().filter(|v| v.served).map(|v| v.name.clone()).collect(),
            })
            .collect(),
    })
}

fn names(classes: &[NamedClass]) -> String {
    if classes.is_empty() {
        "none".into()
    } else {
        classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Why `facts` do not satisfy `need`, if they do not.
pub fn unmet(need: &Need, facts: &ClusterFacts) -> Option<String> {
    match need {
        Need::StorageClass(Some(name)) if !facts.storage_classes.iter().any(|c| &c.name == name) => {
            Some(format!("StorageClass {name:?} does not exist (storage classes: {})", names(&facts.storage_classes)))
        }
        Need::StorageClass(None) if !facts.storage_classes.iter().any(|c| c.default) => Some(format!(
            "the claim names no storageClassName and the cluster has no default StorageClass (storage classes: {})",
            names(&facts.storage_classes)
        )),
        Need::IngressClass(Some(name)) if !facts.ingress_classes.iter().any(|c| &c.name == name) => {
            Some(format!("IngressClass {name:?} does not exist (ingress classes: {})", names(&facts.ingress_classes)))
        }
        Need::IngressClass(None) if !facts.ingress_classes.iter().any(|c| c.default) => Some(format!(
            "the Ingress names no ingressClassName and the cluster has no default IngressClass (ingress classes: {})",
            names(&facts.ingress_classes)
        )),
        Need::Crd { group, version, kind } => {
            let crd = facts.crds.iter().find(|c| &c.group == group && &c.kind == kind);
            match crd {
                None => Some(format!(
                    "no CustomResourceDefinition serves {kind} in {group} (install the operator that provides it first)"
                )),
                Some(c) if !c.versions.contains(version) => {
                    Some(format!("CRD {} does not serve version {version} (served: {})", c.name, c.versions.join(", ")))
                }
                Some(_) => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn needs_and_checks() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "gp3"}}, {"spec": {}}]}});
        let n: Vec<Need> = needs_of(&sts).into_iter().map(|x| x.0).collect();
        assert_eq!(n, vec![Need::StorageClass(Some("gp3".into())), Need::StorageClass(None)]);
        let sm = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor"});
        assert_eq!(
            needs_of(&sm)[0].0,
            Need::Crd { group: "monitoring.coreos.com".into(), version: "v1".into(), kind: "ServiceMonitor".into() }
        );
        let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}}});
        assert_eq!(needs_of(&ing)[0].0, Need::IngressClass(Some("nginx".into())));
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "spec": {"storageClassName": ""}});
        assert!(needs_of(&pvc).is_empty());

        let facts = ClusterFacts {
            storage_classes: vec![NamedClass { name: "standard".into(), default: true }],
            ingress_classes: vec![NamedClass { name: "nginx".into(), default: false }],
            crds: vec![CrdInfo {
                name: "servicemonitors.monitoring.coreos.com".into(),
                group: "monitoring.coreos.com".into(),
                kind: "ServiceMonitor".into(),
                versions: vec!["v1".into()],
            }],
        };
        assert!(unmet(&Need::StorageClass(Some("gp3".into())), &facts).unwrap().contains("standard"));
        assert!(unmet(&Need::StorageClass(None), &facts).is_none());
        assert!(unmet(&Need::IngressClass(None), &facts).is_some());
        assert!(unmet(&Need::IngressClass(Some("nginx".into())), &facts).is_none());
        assert!(unmet(&needs_of(&sm)[0].0, &facts).is_none());
        let pm = Need::Crd { group: "monitoring.coreos.com".into(), version: "v1".into(), kind: "PodMonitor".into() };
        assert!(unmet(&pm, &facts).unwrap().contains("PodMonitor"));
    }
}
