//! What `agentops watch` knows about alerts and proposals: the Alertmanager webhook payload
//! (version 4), how an alert's labels name an environment and an Argo CD Application (never
//! guessed: an alert that names nothing is answered as unmapped), the proposals it keeps
//! (persisted in `.agentops/proposals.json`, one markdown file each under
//! `.agentops/proposals/`), and the automatic-rollback budget that holds across restarts.
//! The HTTP server and the execution of a proposal are the CLI's (`cli/watch.rs`).

pub(crate) mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::WatchConfig;
use crate::repo::Repo;
use crate::workflows::rollback::{self, RollbackPlan};

pub use store::{Proposal, ProposalState, Store};

/// An Alertmanager webhook notification (`webhook_config`, payload version 4).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    /// Alerts Alertmanager left out because of the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    pub alerts: Vec<Alert>,
    #[serde(default)]
    pub external_url: String,
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's identity of the alert (its label set); computed from the labels when a
    /// sender leaves it out.
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("(no alertname)", String::as_str)
    }

    /// The fingerprint Alertmanager sent, else a hash of the labels.
    pub fn key(&self) -> String {
        if self.fingerprint.is_empty() {
            crate::workflows::fingerprint::of(&self.labels)
        } else {
            self.fingerprint.clone()
        }
    }

    /// When the alert started, in milliseconds since the epoch.
    pub fn starts_ms(&self) -> Option<i64> {
        crate::time::parse_ms(&self.starts_at)
    }

    pub fn summary(&self) -> String {
        self.annotations.get("summary").or_else(|| self.annotations.get("description")).cloned().unwrap_or_default()
    }
}

/// Why a body is not a notification agentops reads (an answer of 400).
pub fn parse_payload(body: &[u8]) -> Result<Payload, String> {
    let p: Payload = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an Alertmanager webhook notification (JSON, payload version 4): {e}"))?;
    if p.version != "4" {
        return Err(format!(
            "payload version {:?}: agentops watch reads Alertmanager's webhook payload version \"4\"",
            p.version
        ));
    }
    if let Some(a) = p.alerts.iter().find(|a| a.status != "firing" && a.status != "resolved") {
        return Err(format!("alert {} has status {:?}: expected \"firing\" or \"resolved\"", a.name(), a.status));
    }
    Ok(p)
}

/// Where an alert points: the app, its environment and Argo CD Application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub app: String,
    pub env: String,
    pub application: String,
    pub overlay: String,
}

/// Maps an alert's labels to an app and environment of the repo, or says why it cannot.
/// Nothing is guessed: the environment label must name an environment (or its kube
/// context), the app label an app with an overlay and an Application there; without an app
/// label, the namespace must hold exactly one app of that environment.
pub fn map_alert(repo: &Repo, cfg: &WatchConfig, labels: &BTreeMap<String, String>) -> Result<Target, String> {
    let first = |names: &[String]| {
        names.iter().find_map(|n| labels.get(n).filter(|v| !v.is_empty()).map(|v| (n.clone(), v.clone())))
    };
    let Some((env_label, env_value)) = first(&cfg.env_labels) else {
        return Err(format!("no environment label ({}) on the alert", cfg.env_labels.join(", ")));
    };
    let env = repo
        .environments
        .iter()
        .find(|e| **e == env_value)
        .or_else(|| repo.environments.iter().find(|e| repo.config.context_for(e) == env_value))
        .cloned()
        .ok_or_else(|| {
            format!(
                "{env_label}={env_value:?} names no environment of the repo nor its kube context (environments: {})",
                repo.environments.join(", ")
            )
        })?;
    let namespace = first(&cfg.namespace_labels).map(|(_, v)| v);
    let dest_ns = |app: &str| {
        let overlay = repo.apps.get(app)?.overlays.get(&env)?;
        repo.argocd_apps
            .iter()
            .find(|a| {
                a.sources.iter().any(|s| s.path.as_deref().map(|p| p.trim_matches('/')) == Some(overlay.as_str()))
            })
            .and_then(|a| a.destination_namespace.clone())
    };
    let app = match first(&cfg.app_labels) {
        Some((label, value)) => {
            if !repo.apps.contains_key(&value) {
                return Err(format!("{label}={value:?} names no app of the repo"));
            }
            value
        }
        None => {
            let Some(ns) = &namespace else {
                return Err(format!(
                    "no app label ({}) and no namespace label ({}) on the alert",
                    cfg.app_labels.join(", "),
                    cfg.namespace_labels.join(", ")
                ));
            };
            let apps: Vec<&String> =
                repo.apps.keys().filter(|a| dest_ns(a.as_str()).as_deref() == Some(ns.as_str())).collect();
            match apps.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(format!("no app label, and no app of {env} runs in namespace {ns:?}")),
                many => {
                    return Err(format!(
                        "no app label, and {} apps of {env} run in namespace {ns:?} ({}): add an app label to the alert",
                        many.len(),
                        many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    };
    let (overlay, argo) = rollback::locate(repo, &app, &env).map_err(|e| e.to_string())?;
    if let (Some(ns), Some(dest)) = (&namespace, &argo.destination_namespace)
        && ns != dest
    {
        return Err(format!(
            "the alert's namespace {ns:?} is not where {} deploys {app} in {env} ({dest:?})",
            argo.name
        ));
    }
    Ok(Target { app, env, application: argo.name, overlay })
}

/// Whether the alert started after the deploy the plan would undo; the reason when not.
pub fn after_deploy(plan: &RollbackPlan, alert_start_ms: Option<i64>) -> Result<(), String> {
    let Some(current) = &plan.current else {
        return Err(format!("{} has no deploy history", plan.state.application));
    };
    match alert_start_ms {
        Some(start) if current.deployed_unix * 1000 > start => Err(format!(
            "the alert started at {}, before the last deploy of {} ({} at {}): not a deploy's regression",
            crate::time::format_ms(start),
            plan.state.application,
            current.short,
            current.deployed_at
        )),
        _ => Ok(()),
    }
}

/// The one-line notice of a proposal (stdout, the outgoing webhook).
pub fn notice(p: &Proposal) -> String {
    let took =
        p.alert_to_proposal_ms.map(|ms| format!(" ({} after the alert arrived)", seconds(ms))).unwrap_or_default();
    match p.state {
        ProposalState::Running => format!(
            "proposal {}: rolling back {} in {} from {} to {} ({}){}",
            p.id,
            p.app,
            p.env,
            p.culprit.join(" "),
            p.target.as_deref().unwrap_or("?"),
            if p.auto { "watch.auto_rollback" } else { "approved" },
            if p.resolved_during_run { "; the alert has resolved meanwhile" } else { "" }
        ),
        ProposalState::Proposed => format!(
            "proposal {}: {} fired: roll back {} in {} from {} to {}{took}. Approve: agentops approve {}",
            p.id,
            p.alert.name,
            p.app,
            p.env,
            p.culprit.join(" "),
            p.target.as_deref().unwrap_or("?"),
            p.id
        ),
        ProposalState::NotProposed => format!(
            "proposal {}: {} fired for {} in {}: no rollback proposed: {}",
            p.id,
            p.alert.name,
            p.app,
            p.env,
            p.reason.as_deref().unwrap_or("?")
        ),
        _ => format!(
            "proposal {} ({} for {} in {}): {}{}",
            p.id,
            p.alert.name,
            p.app,
            p.env,
            p.state.label(),
            p.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        ),
    }
}

/// `1.234 s`, `850 ms`.
pub fn seconds(ms: u64) -> String {
    if ms < 1000 { format!("{ms} ms") } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

/// The proposal as a markdown document: the alert, the plan exactly as shown, how long it
/// took, how to approve, what happened.
pub fn markdown(p: &Proposal) -> String {
    let mut s = format!("# Proposal {}: {} in {}\n\n", p.id, p.app, p.env);
    s.push_str(&format!("- State: **{}**", p.state.label()));
    if let Some(r) = &p.reason {
        s.push_str(&format!(" ({r})"));
    }
    s.push('\n');
    s.push_str(&format!(
        "- Alert: `{}` (fingerprint {}), started {}",
        p.alert.name, p.alert.fingerprint, p.alert.starts_at
    ));
    if !p.alert.summary.is_empty() {
        s.push_str(&format!(": {}", p.alert.summary));
    }
    s.push('\n');
    let labels: Vec<String> = p.alert.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.push_str(&format!("- Labels: `{}`\n", labels.join(", ")));
    s.push_str(&format!("- Application: {} (overlay {})\n", p.application, p.overlay));
    s.push_str(&format!("- Notifications received: {}\n", p.notifications));
    if let Some(ms) = p.alert_to_proposal_ms {
        s.push_str(&format!(
            "- Time from alert to proposal: {} (the alert's arrival to this proposal){}\n",
            seconds(ms),
            p.since_alert_start_ms
                .map(|m| format!(
                    "; {} since the alert started (the rule's `for`, Alertmanager's grouping included)",
                    seconds(m)
                ))
                .unwrap_or_default()
        ));
    }
    if p.state == ProposalState::Proposed {
        s.push_str(&format!("\nApprove it (runs exactly this plan; refused if the repo or the cluster moved on):\n\n```sh\nagentops approve {}\n```\n", p.id));
    }
    if let Some(plan) = &p.plan {
        s.push_str(&format!("\n## The rollback plan (fingerprint {})\n\n```text\n", plan.fingerprint));
        s.push_str(&rollback::report::text(plan));
        s.push_str("```\n");
    }
    if let Some(r) = &p.report {
        s.push_str(&format!("\nIncident report: {r}\n"));
    }
    s.push_str("\n## History\n\n");
    for e in &p.history {
        s.push_str(&format!("- {} {}\n", e.time, e.what));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_read_or_refused_with_a_reason() {
        let body = br#"{"receiver":"agentops","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighErrorRatio","app":"auth-service","env":"prod-west"},"annotations":{"summary":"errors"},"startsAt":"2026-12-04T10:00:00.123+01:00","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://p/graph","fingerprint":"1a30ba71cca2921f"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am:9093","version":"4","groupKey":"{}:{}","truncatedAlerts":0}"#;
        let p = parse_payload(body).unwrap();
        assert_eq!(p.alerts[0].key(), "1a30ba71cca2921f");
        assert_eq!(p.alerts[0].name(), "HighErrorRatio");
        assert_eq!(p.alerts[0].starts_ms(), Some(1_796_374_800_123));
        assert_eq!(crate::time::parse_ms("0001-01-01T00:00:00Z"), None);
        let e = parse_payload(b"{not json").unwrap_err();
        assert!(e.starts_with("the body is not an Alertmanager webhook notification"), "{e}");
        let e = parse_payload(br#"{"version":"3","status":"firing","alerts":[]}"#).unwrap_err();
        assert!(e.contains("version \"3\""), "{e}");
        let e = parse_payload(br#"{"version":"4","status":"firing"}"#).unwrap_err();
        assert!(e.contains("missing field `alerts`"), "{e}");
        let e = parse_payload(br#"{"version":"4","status":"firing","alerts":[{"status":"odd"}]}"#).unwrap_err();
        assert!(e.contains("\"odd\""), "{e}");
        // no fingerprint: one from the labels, stable
        let mut a = p.alerts[0].clone();
        a.fingerprint.clear();
        let key = a.key();
        assert_eq!(key.len(), 16);
        let mut same_labels = a.clone();
        same_labels.annotations.insert("summary".into(), "another text".into());
        same_labels.starts_at = "2030-01-01T00:00:00Z".into();
        assert_eq!(same_labels.key(), key, "the identity is the label set");
        let mut other = a.clone();
        other.labels.insert("replica".into(), "b".into());
        assert_ne!(other.key(), key);
        assert_ne!(a.key(), "1a30ba71cca2921f");
    }

    #[test]
    fn alerts_map_by_their_labels_or_say_why_not() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform");
        let repo = Repo::load(&root).unwrap();
        let cfg = WatchConfig::default();
        let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let t = map_alert(&repo, &cfg, &l(&[("app", "auth-service"), ("env", "prod-west"), ("namespace", "auth")]))
            .unwrap();
        assert_eq!(
            t,
            Target {
                app: "auth-service".into(),
                env: "prod-west".into(),
                application: "auth-service-prod-west".into(),
                overlay: "apps/auth-service/overlays/prod-west".into(),
            }
        );
        // the Kubernetes recommended label and a cluster label
        let t =
            map_alert(&repo, &cfg, &l(&[("app_kubernetes_io_name", "payments"), ("cluster", "prod-east")])).unwrap();
        assert_eq!(t.application, "payments-prod-east");
        // no app label: the one app of the namespace
        let t = map_alert(&repo, &cfg, &l(&[("namespace", "auth"), ("env", "staging")])).unwrap();
        assert_eq!(t.app, "auth-service");
        let why = |pairs: &[(&str, &str)]| map_alert(&repo, &cfg, &l(pairs)).unwrap_err();
        let e = why(&[("namespace", "shop"), ("env", "prod-west")]);
        assert!(e.contains("apps of prod-west run in namespace \"shop\"") && e.contains("orders"), "{e}");
        let e = why(&[("app", "auth-service"), ("env", "prod-west"), ("namespace", "shop")]);
        assert!(e.contains("is not where auth-service-prod-west deploys"), "{e}");
        let e = why(&[("app", "auth-service"), ("env", "moon")]);
        assert!(e.contains("env=\"moon\" names no environment"), "{e}");
        let e = why(&[("app", "auth-service")]);
        assert!(e.starts_with("no environment label (env, cluster)"), "{e}");
        let e = why(&[("app", "billing"), ("env", "dev")]);
        assert!(e.contains("app=\"billing\" names no app"), "{e}");
        let e = why(&[("env", "dev")]);
        assert!(e.starts_with("no app label"), "{e}");
        // configured label names
        let cfg = WatchConfig { app_labels: vec!["service".into()], env_labels: vec!["tier".into()], ..cfg.clone() };
        let t = map_alert(&repo, &cfg, &l(&[("service", "grafana"), ("tier", "dev"), ("app", "nope")])).unwrap();
        assert_eq!(t.application, "grafana-dev");
    }
}
