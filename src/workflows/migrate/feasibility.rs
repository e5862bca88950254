//! Whether the target can serve each environment, and what it asks of the clients: the cloud
//! each environment's cluster runs in (`environments.<env>.provider` in `.agentops.yaml`, else
//! what the cluster says: its nodes' provider IDs and labels, its default StorageClass), what
//! the target is (a managed service of one cloud, or not), and what the target requires that
//! the clients do not do yet (TLS, AUTH, more than database 0).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::graph::{Graph, Usage};

/// Where an environment's cluster runs, and how we know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Provider {
    pub env: String,
    /// `aws`, `gcp`, `azure`, `local`, or what the config says; None when unknown.
    #[serde(default)]
    pub cloud: Option<String>,
    /// `.agentops.yaml`, or what the cluster showed (`default StorageClass gp3: ebs.csi.aws.com`).
    pub evidence: String,
}

/// What the target is and asks of its clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetFacts {
    pub name: String,
    /// The product, as people name it.
    pub product: String,
    /// The one cloud it runs in, for a managed service.
    #[serde(default)]
    pub cloud: Option<String>,
    pub tls: String,
    pub auth: String,
    pub databases: String,
    /// It (normally) requires TLS and AUTH of every client.
    pub requires_tls_auth: bool,
    /// It (normally) serves database 0 only.
    pub database_zero_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Feasible,
    Blocked,
    /// The environment's cloud is unknown.
    Unknown,
    /// The target is no managed service of one cloud: check by hand.
    Check,
}

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnvFeasibility {
    pub env: String,
    #[serde(default)]
    pub cloud: Option<String>,
    pub evidence: String,
    pub verdict: Verdict,
    pub note: String,
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Feasibility {
    pub target: TargetFacts,
    pub envs: Vec<EnvFeasibility>,
    /// What the clients must change for the target (TLS, AUTH, databases), with who.
    pub client_changes: Vec<String>,
}

impl Feasibility {
    pub fn blocked(&self) -> Vec<&EnvFeasibility> {
        self.envs.iter().filter(|e| e.verdict == Verdict::Blocked).collect()
    }

    pub fn of(&self, env: &str) -> Option<&EnvFeasibility> {
        self.envs.iter().find(|e| e.env == env)
    }
}

/// What is known of a target by its name.
pub fn target_facts(to: &str) -> TargetFacts {
    let t = to.to_ascii_lowercase();
    if t.contains("elasticache") {
        TargetFacts {
            name: to.to_string(),
            product: "Amazon ElastiCache (Redis OSS / Valkey)".into(),
            cloud: Some("aws".into()),
            tls: "serverless caches always encrypt in transit, node-based ones when created so; with it on, every client must connect with TLS (rediss://, or its client's TLS option)".into(),
            auth: "an AUTH token or an RBAC user and password (they need TLS); every client reads it from a Secret".into(),
            databases: "serverless and cluster-mode-enabled caches serve database 0 only (SELECT fails); a cluster-mode-disabled cache serves 16".into(),
            requires_tls_auth: true,
            database_zero_only: true,
        }
    } else if t.contains("memorystore") {
        TargetFacts {
            name: to.to_string(),
            product: "Google Cloud Memorystore for Redis".into(),
            cloud: Some("gcp".into()),
            tls: "in-transit encryption is optional; with it, clients need TLS and the instance's CA".into(),
            auth: "AUTH is optional; when on, clients read the AUTH string from a Secret".into(),
            databases: "an instance serves 16 databases; Memorystore for Redis Cluster database 0 only".into(),
            requires_tls_auth: false,
            database_zero_only: false,
        }
    } else if t.contains("azure") {
        TargetFacts {
            name: to.to_string(),
            product: "Azure Cache for Redis".into(),
            cloud: Some("azure".into()),
            tls: "TLS on port 6380 by default (the plain port is off)".into(),
            auth: "an access key (or Entra ID); clients read it from a Secret".into(),
            databases: "16 databases without clustering; database 0 only with it".into(),
            requires_tls_auth: true,
            database_zero_only: false,
        }
    } else {
        TargetFacts {
            name: to.to_string(),
            product: to.to_string(),
            cloud: None,
            tls: format!("check whether {to} requires TLS of its clients"),
            auth: format!("check whether {to} requires a password or token"),
            databases: format!("check whether {to} serves more than database 0"),
            requires_tls_auth: false,
            database_zero_only: false,
        }
    }
}

/// A cloud from a StorageClass provisioner.
fn cloud_of_provisioner(p: &str) -> Option<&'static str> {
    let p = p.to_ascii_lowercase();
    if p.contains("aws") {
        Some("aws")
    } else if p.contains("gke") || p.contains("gce") || p.contains("googleapis") {
        Some("gcp")
    } else if p.contains("azure") {
        Some("azure")
    } else if ["local-path", "hostpath", "local", "openebs"].iter().any(|w| p.contains(w)) {
        Some("local")
    } else {
        None
    }
}

/// The cloud a cluster runs in, from its nodes (provider IDs, labels) or else its default
/// StorageClass; with what showed it.
pub fn cloud_of_cluster(nodes: &[Value], classes: &[Value]) -> Option<(String, String)> {
    for n in nodes {
        let id = n.pointer("/spec/providerID").and_then(Value::as_str).unwrap_or_default();
        let name = n.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("a node");
        for (prefix, cloud) in [("aws://", "aws"), ("gce://", "gcp"), ("azure://", "azure"), ("kind://", "local")] {
            if id.starts_with(prefix) {
                return Some((cloud.into(), format!("node {name}: providerID {prefix}...")));
            }
        }
        let labels = n.pointer("/metadata/labels").and_then(Value::as_object);
        for (k, _) in labels.into_iter().flatten() {
            for (prefix, cloud) in
                [("eks.amazonaws.com/", "aws"), ("cloud.google.com/gke-", "gcp"), ("kubernetes.azure.com/", "azure")]
            {
                if k.starts_with(prefix) {
                    return Some((cloud.into(), format!("node {name}: label {k}")));
                }
            }
        }
    }
    let default = classes.iter().find(|c| {
        c.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class").and_then(Value::as_str)
            == Some("true")
    });
    let pick = default.or_else(|| (classes.len() == 1).then(|| &classes[0]))?;
    let prov = pick.get("provisioner").and_then(Value::as_str)?;
    let name = pick.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let cloud = cloud_of_provisioner(prov)?;
    let what = if default.is_some() { "default StorageClass" } else { "StorageClass" };
    Some((cloud.into(), format!("{what} {name}: {prov}")))
}

/// Asks each environment's cluster for its nodes and StorageClasses. A cluster that does not
/// answer (or serves neither) leaves the environment unknown.
pub async fn ask_clusters(ctx: &crate::workflows::Ctx, envs: &[String]) -> BTreeMap<String, (String, String)> {
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::Api;
    use kube::api::ListParams;

    async fn read(client: kube::Client) -> Result<(Vec<Value>, Vec<Value>), crate::cluster::ClusterError> {
        let lp = ListParams::default();
        let to_values = |items: Vec<Value>| items;
        let nodes: Api<Node> = Api::all(client.clone());
        let nodes = match crate::cluster::with_retry(|| nodes.list(&lp)).await {
            Ok(l) => to_values(l.items.into_iter().filter_map(|n| serde_json::to_value(n).ok()).collect()),
            Err(_) => Vec::new(),
        };
        let classes: Api<StorageClass> = Api::all(client);
        let classes = match crate::cluster::with_retry(|| classes.list(&lp)).await {
            Ok(l) => l.items.into_iter().filter_map(|c| serde_json::to_value(c).ok()).collect(),
            Err(_) => Vec::new(),
        };
        Ok((nodes, classes))
    }

    let mut out = BTreeMap::new();
    if let Ok(per) = ctx.across_clusters(envs, read).await {
        for p in per {
            if let Some((nodes, classes)) = p.answer
                && let Some(found) = cloud_of_cluster(&nodes, &classes)
            {
                out.insert(p.env, found);
            }
        }
    }
    out
}

/// The providers of the environments: the config's word first, then the clusters'.
pub fn providers(
    envs: &[String],
    config: &crate::config::Config,
    clusters: &BTreeMap<String, (String, String)>,
    asked: bool,
) -> Vec<Provider> {
    envs.iter()
        .map(|e| {
            if let Some(p) = config.environments.get(e).and_then(|x| x.provider.clone()) {
                return Provider {
                    env: e.clone(),
                    cloud: Some(p.to_ascii_lowercase()),
                    evidence: ".agentops.yaml".into(),
                };
            }
            match clusters.get(e) {
                Some((cloud, evidence)) => {
                    Provider { env: e.clone(), cloud: Some(cloud.clone()), evidence: evidence.clone() }
                }
                None => Provider {
                    env: e.clone(),
                    cloud: None,
                    evidence: if asked {
                        "the cluster did not say".into()
                    } else {
                        "clusters not asked (--offline)".into()
                    },
                },
            }
        })
        .collect()
}

fn cloud_name(c: &str) -> String {
    match c {
        "aws" => "AWS".into(),
        "gcp" => "Google Cloud".into(),
        "azure" => "Azure".into(),
        "local" => "a local cluster".into(),
        other => other.to_string(),
    }
}

/// The managed Redis of a cloud.
fn managed_redis(cloud: &str) -> String {
    match cloud {
        "aws" => "Amazon ElastiCache".into(),
        "gcp" => "Memorystore for Redis".into(),
        "azure" => "Azure Cache for Redis".into(),
        other => format!("{other}'s managed Redis"),
    }
}

/// Each environment's verdict, and what the clients must change.
pub fn assess(graph: &Graph, providers: &[Provider]) -> Feasibility {
    let target = target_facts(&graph.to);
    let from = &graph.dependency.name;
    let envs = providers
        .iter()
        .map(|p| {
            let (verdict, note) = match (&target.cloud, &p.cloud) {
                (None, _) => (Verdict::Check, format!("{} is no managed service agentops knows: check it is reachable from {}", target.product, p.env)),
                (Some(_), None) => (
                    Verdict::Unknown,
                    format!("unknown cloud: set environments.{}.provider in .agentops.yaml (aws, gcp, azure, local)", p.env),
                ),
                (Some(t), Some(c)) if t == c => (
                    Verdict::Feasible,
                    format!("{} in the cluster's region and VPC (subnet group, a security group open to the cluster's nodes)", target.product),
                ),
                (Some(t), Some(c)) if c == "local" => (
                    Verdict::Blocked,
                    format!(
                        "{} is reachable only from inside {}: keep {from} here, or run the same engine with TLS and AUTH in the cluster so the clients' settings match",
                        target.product,
                        cloud_name(t)
                    ),
                ),
                (Some(t), Some(c)) => (
                    Verdict::Blocked,
                    format!(
                        "runs on {}; {} is {}-only: decide before this phase: the same move to {}, keep {from} here, or reach {} over a cross-cloud link (latency, egress cost)",
                        cloud_name(c),
                        target.product,
                        cloud_name(t),
                        managed_redis(c),
                        target.name
                    ),
                ),
            };
            EnvFeasibility { env: p.env.clone(), cloud: p.cloud.clone(), evidence: p.evidence.clone(), verdict, note }
        })
        .collect();
    let clients: Vec<&super::graph::ServiceNode> =
        graph.services.iter().filter(|s| s.keeps.usage != Usage::Observer).collect();
    let mut client_changes = Vec::new();
    if target.requires_tls_auth {
        let no_tls: Vec<&str> = clients.iter().filter(|s| !s.keeps.tls).map(|s| s.app.as_str()).collect();
        if !no_tls.is_empty() {
            client_changes.push(format!(
                "TLS: {} {} no TLS setting for {from}: each needs its client's TLS option (or rediss://) before its wave",
                no_tls.join(", "),
                if no_tls.len() == 1 { "has" } else { "have" }
            ));
        }
        let no_auth: Vec<&str> = clients.iter().filter(|s| !s.keeps.auth).map(|s| s.app.as_str()).collect();
        if !no_auth.is_empty() {
            client_changes.push(format!(
                "AUTH: {} {} no password for {from}: each needs the {} token from a Secret (an ExternalSecret per namespace) before its wave",
                no_auth.join(", "),
                if no_auth.len() == 1 { "has" } else { "have" },
                target.name
            ));
        }
    }
    let with_db: Vec<String> = clients
        .iter()
        .filter(|s| !s.keeps.databases.is_empty())
        .map(|s| {
            format!(
                "{} {}",
                s.app,
                s.keeps
                    .databases
                    .iter()
                    .map(|d| d.split_once('=').map_or(d.as_str(), |x| x.1))
                    .collect::<Vec<_>>()
                    .join("/")
            )
        })
        .collect();
    let non_zero = clients
        .iter()
        .any(|s| s.keeps.databases.iter().any(|d| d.split_once('=').is_some_and(|(_, v)| !v.starts_with('0'))));
    if target.database_zero_only && non_zero {
        client_changes.push(format!(
            "Databases: {} select logical databases; a serverless or cluster-mode-enabled {} serves database 0 only: choose a cluster-mode-disabled cache, or move each to database 0 with key prefixes (or a cache of its own) first",
            with_db.join(", "),
            target.name
        ));
    }
    Feasibility { target, envs, client_changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clouds_come_from_nodes_then_the_default_storage_class() {
        let gke = json!({"metadata": {"name": "premium-rwo", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "pd.csi.storage.gke.io"});
        let gp3 = json!({"metadata": {"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "false"}}, "provisioner": "ebs.csi.aws.com"});
        assert_eq!(cloud_of_cluster(&[], &[gp3.clone(), gke.clone()]).unwrap().0, "gcp", "the default class decides");
        let node = json!({"metadata": {"name": "n1"}, "spec": {"providerID": "aws:///us-west-2a/i-0abc"}});
        assert_eq!(cloud_of_cluster(&[node], &[gke]).unwrap(), ("aws".into(), "node n1: providerID aws://...".into()));
        let local = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path"});
        assert_eq!(cloud_of_cluster(&[], &[local]).unwrap().0, "local");
        assert!(cloud_of_cluster(&[], &[]).is_none());
    }

    #[test]
    fn the_config_names_the_cloud_before_the_cluster() {
        let config = crate::config::Config::parse(
            "environments:\n  dev: { context: kind-dev, provider: Local }\n  prod: { context: prod }\n  edge: { context: edge }\n",
        )
        .unwrap();
        let envs: Vec<String> = ["dev", "prod", "edge"].iter().map(|e| e.to_string()).collect();
        let clusters: BTreeMap<String, (String, String)> = [
            ("dev".to_string(), ("aws".to_string(), "node n1: providerID aws://...".to_string())),
            ("prod".to_string(), ("gcp".to_string(), "default StorageClass premium-rwo".to_string())),
        ]
        .into();
        let got: Vec<(String, Option<String>, String)> =
            providers(&envs, &config, &clusters, true).into_iter().map(|p| (p.env, p.cloud, p.evidence)).collect();
        assert_eq!(
            got,
            [
                ("dev".into(), Some("local".into()), ".agentops.yaml".into()),
                ("prod".into(), Some("gcp".into()), "default StorageClass premium-rwo".into()),
                ("edge".into(), None, "the cluster did not say".into()),
            ]
        );
        // offline, only the config speaks
        let offline = providers(&envs, &config, &BTreeMap::new(), false);
        assert_eq!(offline[0].cloud.as_deref(), Some("local"));
        assert_eq!(
            (offline[1].cloud.as_deref(), offline[1].evidence.as_str()),
            (None, "clusters not asked (--offline)")
        );
    }

    #[test]
    fn a_managed_target_is_blocked_in_another_cloud() {
        assert_eq!(target_facts("elasticache").cloud.as_deref(), Some("aws"));
        assert!(target_facts("elasticache").database_zero_only);
        assert_eq!(target_facts("keydb").cloud, None);
    }
}
