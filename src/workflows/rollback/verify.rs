//! Verification after the rollback's sync: the operation finished at the expected revision,
//! the rollout completed, the Application is Healthy, live equals what the target revision
//! renders (every object compared with the drift check's rules), and the error ratio fell
//! below the threshold, all within one time limit. Each check is reported as it finishes.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{pct, rate_now, read_application};
use crate::cluster::metrics::Endpoint;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    Unknown,
}

/// One verification check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// sync, rollout, health, live or error-rate
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
    /// When it finished (RFC 3339).
    pub at: String,
}

/// The verdict: `recovered` (every check passed), `unknown` (the error rate could not be
/// read, the rest passed) or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verification {
    pub verdict: String,
    pub checks: Vec<Check>,
    /// What to do when it did not recover.
    pub advice: Vec<String>,
}

impl Verification {
    pub fn recovered(&self) -> bool {
        self.verdict == "recovered"
    }
}

/// What to verify.
pub struct VerifyInput<'a> {
    pub client: &'a kube::Client,
    /// The app and environment, for advice.
    pub app: &'a str,
    pub env: &'a str,
    pub namespace: &'a str,
    pub application: &'a str,
    /// The revision the sync must reach (None: any finished sync).
    pub expected: Option<&'a str>,
    /// The Prometheus endpoint, or why there is none.
    pub metrics: Result<Endpoint, String>,
    pub query: &'a str,
    pub threshold: f64,
    /// What the overlay renders at the expected revision (or why it could not be rendered),
    /// for the check that live equals it.
    pub target: Result<Vec<Value>, String>,
    /// The Application's destination namespace, for objects without one.
    pub dest_ns: Option<String>,
    /// The drift check's rules (controllers, sync managers, ignore rules).
    pub drift: &'a crate::config::DriftConfig,
    pub timeout: Duration,
    /// Between polls.
    pub interval: Duration,
}

fn check(name: &str, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check { name: name.into(), status, detail: detail.into(), at: crate::time::now_seconds() }
}

fn done_rolling_out(d: &Value) -> bool {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64);
    let replicas = n("/spec/replicas").unwrap_or(1);
    let generation = n("/metadata/generation").unwrap_or(0);
    n("/status/observedGeneration").unwrap_or(-1) >= generation
        && n("/status/updatedReplicas").unwrap_or(0) >= replicas
        && n("/status/availableReplicas").unwrap_or(0) >= replicas
        && n("/status/replicas").unwrap_or(0) <= replicas.max(n("/status/updatedReplicas").unwrap_or(0))
}

/// Runs the checks in order, calling `on_check` as each finishes; stops at the first failure.
pub async fn verify(input: VerifyInput<'_>, on_check: &(dyn Fn(&Check) + Send + Sync)) -> Verification {
    let started = Instant::now();
    let left = || input.timeout.saturating_sub(started.elapsed());
    let mut checks = Vec::new();
    let push = |c: Check, checks: &mut Vec<Check>| {
        on_check(&c);
        checks.push(c);
    };
    let fail = |checks: Vec<Check>, advice: Vec<String>| Verification { verdict: "failed".into(), checks, advice };
    let retry_advice = |what: &str| {
        vec![
            format!("the rollback did not finish: {what}"),
            format!(
                "look at the Application: agentops tools call argocd_app_status --args '{{\"env\": \"<env>\", \"name\": \"{}\"}}'",
                input.application
            ),
            "the revert commit stays in git; a later sync deploys it".into(),
        ]
    };

    // 1. the sync
    let app = loop {
        match read_application(input.client, input.namespace, input.application).await {
            Ok(app) => {
                let pending = app.get("operation").is_some_and(|o| !o.is_null());
                let phase = app.pointer("/status/operationState/phase").and_then(Value::as_str).unwrap_or_default();
                let rev = app.pointer("/status/sync/revision").and_then(Value::as_str).unwrap_or_default();
                let at_rev = input.expected.is_none_or(|e| rev == e);
                if !pending && (phase == "Failed" || phase == "Error") {
                    let msg = app.pointer("/status/operationState/message").and_then(Value::as_str).unwrap_or_default();
                    push(check("sync", CheckStatus::Failed, format!("the sync ended {phase}: {msg}")), &mut checks);
                    return fail(checks, retry_advice("the sync failed"));
                }
                if !pending && phase == "Succeeded" && at_rev {
                    push(
                        check("sync", CheckStatus::Passed, format!("synced to {}", &rev[..rev.len().min(7)])),
                        &mut checks,
                    );
                    break app;
                }
            }
            Err(e) if left().is_zero() => {
                push(check("sync", CheckStatus::Failed, e.to_string()), &mut checks);
                return fail(checks, retry_advice("the Application could not be read"));
            }
            Err(_) => {}
        }
        if left().is_zero() {
            let detail = format!(
                "the sync did not reach {} within {}s",
                input.expected.map_or("a finished state", |e| &e[..e.len().min(7)]),
                input.timeout.as_secs()
            );
            push(check("sync", CheckStatus::Failed, detail), &mut checks);
            return fail(checks, retry_advice("the sync did not finish in time"));
        }
        tokio::time::sleep(input.interval).await;
    };

    // 2. the rollout of the app's Deployments
    let deployments: Vec<(String, String)> = app
        .pointer("/status/operationState/syncResult/resources")
        .or_else(|| app.pointer("/status/resources"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("namespace"), s("name"))
        })
        .collect();
    if deployments.is_empty() {
        push(check("rollout", CheckStatus::Passed, "no Deployment in the app"), &mut checks);
    } else {
        let res = crate::cluster::resolve(input.client, "Deployment", Some("apps/v1")).await;
        let mut waiting: Vec<(String, String)> = deployments.clone();
        loop {
            if let Ok((ar, caps)) = &res {
                let mut still = Vec::new();
                for (ns, name) in waiting {
                    let got = crate::cluster::query(input.client, ar, caps, Some(&ns), Some(&name), None).await;
                    if !got.ok().and_then(|v| v.into_iter().next()).is_some_and(|d| done_rolling_out(&d)) {
                        still.push((ns, name));
                    }
                }
                waiting = still;
            }
            if waiting.is_empty() {
                let names: Vec<String> = deployments.iter().map(|d| d.1.clone()).collect();
                push(
                    check("rollout", CheckStatus::Passed, format!("Deployment {} rolled out", names.join(", "))),
                    &mut checks,
                );
                break;
            }
            if left().is_zero() {
                let names: Vec<String> = waiting.iter().map(|d| format!("{}/{}", d.0, d.1)).collect();
                push(
                    check("rollout", CheckStatus::Failed, format!("not rolled out in time: {}", names.join(", "))),
                    &mut checks,
                );
                return fail(checks, retry_advice("the rollout did not complete (kubectl rollout status)"));
            }
            tokio::time::sleep(input.interval).await;
        }
    }

    // 3. health
    loop {
        let app = read_application(input.client, input.namespace, input.application).await.ok();
        let health = app
            .as_ref()
            .and_then(|a| a.pointer("/status/health/status"))
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string();
        if health == "Healthy" {
            push(check("health", CheckStatus::Passed, "Healthy"), &mut checks);
            break;
        }
        if left().is_zero() {
            push(
                check("health", CheckStatus::Failed, format!("{health} after {}s", input.timeout.as_secs())),
                &mut checks,
            );
            return fail(checks, retry_advice("the Application is not Healthy"));
        }
        tokio::time::sleep(input.interval).await;
    }

    // 4. live equals what the target revision renders
    let target = match &input.target {
        Ok(t) => t,
        Err(why) => {
            push(check("live", CheckStatus::Failed, format!("the target render failed: {why}")), &mut checks);
            return fail(
                checks,
                vec![format!("compare by hand: agentops drift --app {} --env {}", input.app, input.env)],
            );
        }
    };
    loop {
        match crate::workflows::drift::live_mismatches(input.client, target, input.dest_ns.clone(), input.drift).await {
            Ok(m) if m.is_empty() => {
                let n = target.len();
                push(
                    check("live", CheckStatus::Passed, format!("equals the target render ({n} objects)")),
                    &mut checks,
                );
                break;
            }
            Ok(m) => {
                let detail = m
                    .iter()
                    .map(|x| match x.status.as_str() {
                        "differs" => format!("{} differs at {}", x.object, x.paths.join("; ")),
                        other => format!("{} is {other}", x.object),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ");
                push(
                    check("live", CheckStatus::Failed, format!("differs from the target render: {detail}")),
                    &mut checks,
                );
                return fail(
                    checks,
                    vec![
                        "the cluster does NOT run what the target revision renders, whatever the error rate says: the sync left fields behind".into(),
                        "a merge sync keeps fields never in the last-applied configuration (hand additions); a server-side apply sync keeps fields another manager owns".into(),
                        format!(
                            "remove them: agentops drift revert --app {} --env {} --replace (Argo CD's Replace=true for one sync), or by hand; then check with agentops drift --app {} --env {}",
                            input.app, input.env, input.app, input.env
                        ),
                    ],
                );
            }
            Err(e) if left().is_zero() => {
                push(check("live", CheckStatus::Failed, format!("live objects could not be read: {e}")), &mut checks);
                return fail(checks, retry_advice("the live objects could not be read"));
            }
            Err(_) => tokio::time::sleep(input.interval).await,
        }
    }

    // 5. the error rate
    let endpoint = match &input.metrics {
        Ok(e) => e,
        Err(why) => {
            push(check("error-rate", CheckStatus::Unknown, format!("not verified: {why}")), &mut checks);
            return unknown(checks, input.query);
        }
    };
    let mut last: Option<f64> = None;
    loop {
        match rate_now(endpoint, input.query).await {
            Ok(Some(v)) if v < input.threshold => {
                push(
                    check(
                        "error-rate",
                        CheckStatus::Passed,
                        format!("{} (below {})", pct(Some(v)), pct(Some(input.threshold))),
                    ),
                    &mut checks,
                );
                return Verification { verdict: "recovered".into(), checks, advice: Vec::new() };
            }
            Ok(v) => last = v.or(last),
            Err(e) if last.is_none() && left().is_zero() => {
                push(check("error-rate", CheckStatus::Unknown, format!("not verified: {e}")), &mut checks);
                return unknown(checks, input.query);
            }
            Err(_) => {}
        }
        if left().is_zero() {
            push(
                check(
                    "error-rate",
                    CheckStatus::Failed,
                    format!(
                        "still {} after {}s (threshold {})",
                        pct(last),
                        input.timeout.as_secs(),
                        pct(Some(input.threshold))
                    ),
                ),
                &mut checks,
            );
            return fail(
                checks,
                vec![
                    "the rollback did NOT bring the error rate down: the cause may not be in this app's manifests"
                        .into(),
                    "look beyond the revert: dependencies, data changed by a migration, the cluster itself".into(),
                    "roll further back with --to <older revision>, or escalate".into(),
                ],
            );
        }
        tokio::time::sleep(input.interval).await;
    }
}

fn unknown(checks: Vec<Check>, query: &str) -> Verification {
    Verification {
        verdict: "unknown".into(),
        checks,
        advice: vec![format!("check the error rate yourself ({query}); Prometheus did not answer")],
    }
}

/// Waits for the verification, as a tool error when it cannot start.
pub fn timeout_of(seconds: u64) -> Result<Duration, Error> {
    if seconds == 0 {
        return Err(Error::workflow("verify_timeout_seconds must be at least 1"));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_done_needs_every_replica_updated_and_available() {
        let d = serde_json::json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert!(done_rolling_out(&d));
        let mut old = d.clone();
        old["status"]["observedGeneration"] = serde_json::json!(1);
        assert!(!done_rolling_out(&old));
        let mut partial = d.clone();
        partial["status"]["availableReplicas"] = serde_json::json!(1);
        assert!(!done_rolling_out(&partial));
    }
}
