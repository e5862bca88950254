//! `agentops watch`: an HTTP receiver for Alertmanager webhooks (`POST /alerts`, payload
//! version 4). A firing alert that maps to an app and environment (labels, `watch:` in
//! `.agentops.yaml`) gets a rollback plan from the rollback workflow (the `rollback_plan` tool
//! through the executor, journaled) and becomes a proposal: stored, written as markdown,
//! announced on stdout and to an optional outgoing webhook. Repeats of an alert update its
//! proposal; its resolution closes it. A person approves with `agentops approve`; under
//! `watch.auto_rollback` the watcher may carry it out itself, within `max_per_hour`.
//!
//! The answer comes as soon as the alerts are mapped and claimed (Alertmanager gives up on
//! slow receivers); planning runs behind it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::config::{Config, WatchConfig};
use crate::error::{Error, Result};
use crate::exec::Step;
use crate::exec::{Entry, Executor, Journal, Policy, ScriptedApprover};
use crate::tools::ToolRegistry;
use crate::workflows::Ctx;
use crate::workflows::rollback::{RollbackPlan, RollbackRequest};
use crate::workflows::watch::store::{AlertRecord, take_auto_budget};
use crate::workflows::watch::{self, Alert, Proposal, ProposalState, Store, Target};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: any free port; the line `listening on ...` names it).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9095")]
    pub listen: String,
    /// File holding the bearer token senders must present (else $AGENTOPS_WATCH_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

struct Watcher {
    ctx: Ctx,
    registry: Arc<ToolRegistry>,
    token: String,
    config: WatchConfig,
    store: Store,
    journal: Journal,
    /// This process: a proposal another (stopped) watcher was planning is planned again.
    session: String,
    notify_url: Option<String>,
    http: reqwest::Client,
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// The token from `--token-file` or `AGENTOPS_WATCH_TOKEN`; a watcher never runs without one.
fn token(args: &Args) -> Result<String> {
    let t = match &args.token_file {
        Some(f) => crate::config::limits::read_text(f, 64 << 10)?.trim().to_string(),
        None => std::env::var("AGENTOPS_WATCH_TOKEN").unwrap_or_default().trim().to_string(),
    };
    if t.is_empty() {
        return Err(Error::Usage(
            "agentops watch needs a bearer token: --token-file FILE or AGENTOPS_WATCH_TOKEN (Alertmanager sends it with \
             http_config.authorization.credentials_file in the webhook_config)"
                .into(),
        ));
    }
    Ok(t)
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let token = token(&args)?;
    let w = Watcher::new(global.ctx(), token, true).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    println!("listening on http://{addr}");
    if !w.config.rules.is_empty() {
        println!(
            "evaluating {} rule(s) (watch.rules) every {} s",
            w.config.rules.len(),
            w.config.rule_interval_seconds.max(1)
        );
    }
    if let Some(p) = &w.config.auto_rollback {
        println!("auto-rollback (watch.auto_rollback): in {} at most {} per hour", p.envs.join(", "), p.max_per_hour);
    }
    serve(w, listener, async {
        let _ = super::mock_cluster::wait_for_signal().await;
    })
    .await?;
    eprintln!("watch: stopped");
    Ok(ExitCode::SUCCESS)
}

impl Watcher {
    /// A watcher on the repo of `ctx`, its `watch:` settings read once; `notify`: post to the
    /// outgoing webhook when one is configured.
    async fn new(ctx: Ctx, token: String, notify: bool) -> Result<Arc<Watcher>> {
        let repo = super::session::load_repo(&ctx).await?;
        let config = Config::load(&repo.root)?.watch;
        let notify_url = std::env::var(&config.notify_url_env).ok().filter(|u| notify && !u.trim().is_empty());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Arc::new(Watcher {
            registry: Arc::new(ToolRegistry::builtin()),
            token,
            store: Store::for_repo(&repo.root),
            journal: Journal::for_repo(&repo.root),
            session: uuid::Uuid::new_v4().to_string(),
            config,
            notify_url,
            http,
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            ctx,
        }))
    }
}

/// Serves `POST /alerts` and `GET /healthz` until `shutdown` resolves; then what was being
/// planned or rolled back finishes (up to 30 s).
async fn serve(
    w: Arc<Watcher>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = axum::Router::new()
        .route("/alerts", axum::routing::post(alerts))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .with_state(w.clone());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let rules = (!w.config.rules.is_empty()).then(|| tokio::spawn(evaluate_rules(w.clone(), stopping)));
    resume(&w);
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    let _ = stop.send(true);
    if let Some(r) = rules {
        let _ = r.await;
    }
    let mut tasks = std::mem::take(&mut *w.tasks.lock().unwrap_or_else(|e| e.into_inner()));
    if tokio::time::timeout(Duration::from_secs(30), async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    served.map_err(|e| Error::Internal(format!("the watcher's server failed: {e}")))
}

/// Proposals a stopped watcher was still planning are planned again now (the time to the
/// proposal then counts from this start).
fn resume(w: &Arc<Watcher>) {
    let session = w.session.clone();
    let stale = w.store.update(|all| {
        all.proposals
            .iter_mut()
            .filter(|p| p.state == ProposalState::Planning && p.session != session)
            .map(|p| {
                p.session = session.clone();
                p.received_at = crate::time::now_seconds();
                p.event("planned again: the watcher that was planning it stopped");
                p.clone()
            })
            .collect::<Vec<_>>()
    });
    let stale = match stale {
        Ok(s) => s,
        Err(e) => {
            eprintln!("watch: proposals not read: {e}");
            return;
        }
    };
    for p in stale {
        let alert = Alert {
            status: "firing".into(),
            annotations: [("summary".to_string(), p.alert.summary.clone())].into_iter().collect(),
            labels: p.alert.labels.clone(),
            starts_at: p.alert.starts_at.clone(),
            ends_at: String::new(),
            generator_url: p.alert.generator_url.clone(),
            fingerprint: p.alert.fingerprint.clone(),
        };
        let target = Target { app: p.app, env: p.env, application: p.application, overlay: p.overlay };
        w.spawn(plan(w.clone(), p.id, alert, target, Instant::now()));
    }
}

/// A watcher serving on a free local port (the demo's Thursday): its URL and token.
pub(super) struct Local {
    pub url: String,
    pub token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<()>>,
}

impl Local {
    /// Starts one on the repo of `ctx`, with a fresh token and no outgoing webhook.
    pub async fn start(ctx: Ctx) -> Result<Local> {
        let token = uuid::Uuid::new_v4().to_string();
        let w = Watcher::new(ctx, token.clone(), false).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(w, listener, async {
            let _ = stopped.await;
        }));
        Ok(Local { url: format!("http://{addr}"), token, stop, served })
    }

    /// Posts a notification as Alertmanager does: the status and the JSON answer.
    pub async fn post(&self, payload: &Value) -> Result<(u16, Value)> {
        let r = reqwest::Client::new()
            .post(format!("{}/alerts", self.url))
            .bearer_auth(&self.token)
            .json(payload)
            .send()
            .await
            .map_err(|e| Error::Internal(format!("posting the alert: {e}")))?;
        let code = r.status().as_u16();
        let v = r.json().await.unwrap_or(Value::Null);
        Ok((code, v))
    }

    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.served.await.map_err(|e| Error::Internal(e.to_string()))?
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn answer(code: StatusCode, body: Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

impl Watcher {
    /// The watcher's own executor: nobody to ask (the policy decides), journaled in the repo.
    fn executor(&self, policy: Policy) -> Executor {
        Executor::new(
            self.registry.clone(),
            self.ctx.clone(),
            policy,
            Arc::new(ScriptedApprover::new([])),
            Some(Journal::for_repo(self.ctx.repo_root())),
        )
    }

    /// One journal line for what the watcher decided (no tool ran for it).
    fn journal(&self, request: &str, approval: &str, ok: bool, args: Value, result: &str) {
        let mut args = args;
        self.ctx.redactor().redact_value(&mut args);
        let entry = Entry {
            time: crate::time::now_seconds(),
            request: self.ctx.redactor().scrub(request),
            plan_hash: String::new(),
            tool: "watch".into(),
            args,
            effect: "ReadOnly".into(),
            approval: approval.into(),
            ok,
            result: self.ctx.redactor().scrub(result),
            duration_ms: 0,
            tokens: None,
        };
        if let Err(e) = self.journal.append(&entry) {
            eprintln!("warning: journal not written: {e}");
        }
    }

    fn refuse(&self, code: StatusCode, why: String) -> Response {
        self.journal("POST /alerts", "refused", false, json!({"status": code.as_u16()}), &why);
        eprintln!("watch: {} {why}", code.as_u16());
        let mut r = answer(code, json!({"error": why}));
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }

    fn spawn(self: &Arc<Self>, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(f);
    }

    /// The markdown file, the line on stdout, the outgoing webhook.
    async fn publish(&self, p: &Proposal) {
        if let Err(e) = self.store.refresh_markdown(&p.id) {
            eprintln!("warning: proposal {} not written: {e}", p.id);
        }
        let text = watch::notice(p);
        println!("{text}");
        if let Some(url) = &self.notify_url {
            let body = json!({"text": text, "proposal": {
                "id": p.id, "state": p.state.label(), "alert": p.alert.name, "app": p.app, "env": p.env,
                "culprit": p.culprit, "target": p.target, "alert_to_proposal_ms": p.alert_to_proposal_ms,
            }});
            match self.http.post(url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => eprintln!("warning: the notification webhook answered {}", r.status()),
                Err(e) => eprintln!("warning: the notification webhook failed: {e}"),
            }
        }
    }
}

async fn alerts(State(w): State<Arc<Watcher>>, headers: HeaderMap, body: Body) -> Response {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    if !presented.is_some_and(|t| same(t.as_bytes(), w.token.as_bytes())) {
        return w.refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>); the body was not read".into(),
        );
    }
    let limit = w.config.body_bytes;
    let too_large = |size: String| {
        format!(
            "the body is {size}, over the {} limit (watch.body_bytes in .agentops.yaml); raise it, or set max_alerts in Alertmanager's webhook_config",
            crate::config::limits::human_bytes(limit)
        )
    };
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok())
        && len > limit
    {
        return w.refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large(crate::config::limits::human_bytes(len)));
    }
    // a sender that stops mid-body does not hold the request open
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut bytes: Vec<u8> = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) if (bytes.len() + c.len()) as u64 > limit => {
                    return Err((StatusCode::PAYLOAD_TOO_LARGE, too_large("larger".into())));
                }
                Ok(c) => bytes.extend_from_slice(&c),
                Err(e) => return Err((StatusCode::BAD_REQUEST, format!("the body could not be read: {e}"))),
            }
        }
        Ok(bytes)
    })
    .await;
    let bytes = match read {
        Ok(Ok(b)) => b,
        Ok(Err((code, why))) => return w.refuse(code, why),
        Err(_) => return w.refuse(StatusCode::REQUEST_TIMEOUT, "the body did not arrive within 30 s".into()),
    };
    let payload = match watch::parse_payload(&bytes) {
        Ok(p) => p,
        Err(why) => return w.refuse(StatusCode::BAD_REQUEST, why),
    };
    let repo = match super::session::load_repo(&w.ctx).await {
        Ok(r) => r,
        Err(e) => {
            let why = format!("the repo could not be read: {e}");
            w.journal("POST /alerts", "auto", false, json!({}), &why);
            return answer(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": why}));
        }
    };
    let mut results = Vec::new();
    for alert in payload.alerts {
        results.push(one(&w, &repo, alert).await);
    }
    answer(
        StatusCode::OK,
        json!({"received": results.len(), "truncated_alerts": payload.truncated_alerts, "alerts": results}),
    )
}

/// One alert: mapped and claimed now; planned behind the answer.
async fn one(w: &Arc<Watcher>, repo: &crate::repo::Repo, alert: Alert) -> Value {
    let fp = alert.key();
    let name = alert.name().to_string();
    let request = format!("alert {name} [{fp}] {}", alert.status);
    let labels = serde_json::to_value(&alert.labels).unwrap_or(Value::Null);
    if alert.status == "resolved" {
        return resolved(w, &alert, &fp, &request, labels).await;
    }
    let target = match watch::map_alert(repo, &w.config, &alert.labels) {
        Ok(t) => t,
        Err(why) => {
            w.journal(&request, "auto", true, labels, &format!("unmapped: {why}; nothing proposed"));
            println!("alert {name} [{fp}]: unmapped: {why}; nothing proposed");
            return json!({"fingerprint": fp, "alertname": name, "outcome": "unmapped", "reason": why});
        }
    };
    let received = Instant::now();
    let record = AlertRecord {
        name: name.clone(),
        fingerprint: fp.clone(),
        labels: alert.labels.clone(),
        summary: alert.summary(),
        starts_at: alert.starts_at.clone(),
        generator_url: alert.generator_url.clone(),
    };
    let session = w.session.clone();
    let t = target.clone();
    let claimed = w.store.update(|all| {
        if let Some(p) = all.open_for(&fp) {
            p.notifications += 1;
            let replan = p.state == ProposalState::Planning && p.session != session;
            if replan {
                p.session = session.clone();
                p.received_at = crate::time::now_seconds();
                p.event("planned again: the watcher that was planning it stopped");
            }
            return (p.id.clone(), false, replan, p.notifications, p.state);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut p = Proposal::new(id.clone(), record, t, session);
        p.event(format!("alert {name} received"));
        all.proposals.push(p);
        (id, true, true, 1, ProposalState::Planning)
    });
    let (id, new, replan, count, state) = match claimed {
        Ok(c) => c,
        Err(e) => {
            let why = format!("the proposal store failed: {e}");
            w.journal(&request, "auto", false, labels, &why);
            return json!({"fingerprint": fp, "alertname": name, "outcome": "error", "reason": why});
        }
    };
    if !new && let Err(e) = w.store.refresh_markdown(&id) {
        eprintln!("warning: proposal {id} not written: {e}");
    }
    let what = if new {
        format!("proposal {id} opened for {} in {} ({})", target.app, target.env, target.application)
    } else {
        format!("proposal {id} updated: notification {count}, {}", state.label())
    };
    w.journal(&request, "auto", true, labels, &what);
    if replan {
        let (w2, alert2) = (w.clone(), alert.clone());
        let id2 = id.clone();
        w.spawn(async move { plan(w2, id2, alert2, target, received).await });
    }
    json!({
        "fingerprint": fp, "alertname": name,
        "outcome": if new { "proposal" } else { "updated" },
        "proposal": id, "notifications": count,
    })
}

async fn resolved(w: &Arc<Watcher>, alert: &Alert, fp: &str, request: &str, labels: Value) -> Value {
    let name = alert.name().to_string();
    let closed = w.store.update(|all| {
        let p = all.open_for(fp)?;
        p.resolve();
        Some(p.clone())
    });
    match closed {
        Ok(Some(p)) => {
            w.journal(request, "auto", true, labels, &format!("proposal {}: {}", p.id, p.state.label()));
            w.publish(&p).await;
            json!({"fingerprint": fp, "alertname": name, "outcome": p.state.label(), "proposal": p.id, "reason": p.reason})
        }
        Ok(None) => {
            w.journal(request, "auto", true, labels, "resolved; no open proposal");
            json!({"fingerprint": fp, "alertname": name, "outcome": "no open proposal"})
        }
        Err(e) => json!({"fingerprint": fp, "alertname": name, "outcome": "error", "reason": e.to_string()}),
    }
}

/// An alert a `watch.rules` rule raised: which rule, in which environment.
#[derive(Clone)]
struct Raised {
    alert: Alert,
    rule: String,
    env: String,
}

/// `watch.rules`, for teams without Alertmanager: every interval, each rule's query against
/// each of its environments' Prometheus; a series above the threshold is a firing alert (its
/// labels, `alertname`, and the environment when the series names none) that goes the way a
/// webhook's does; a series that stops firing resolves it. A query that fails changes
/// nothing (its alerts neither fire anew nor resolve).
async fn evaluate_rules(w: Arc<Watcher>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_secs(w.config.rule_interval_seconds.max(1));
    let mut firing: std::collections::BTreeMap<String, Raised> = std::collections::BTreeMap::new();
    loop {
        evaluate_once(&w, &mut firing).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn evaluate_once(w: &Arc<Watcher>, firing: &mut std::collections::BTreeMap<String, Raised>) {
    use std::collections::{BTreeMap, BTreeSet};
    let repo = match super::session::load_repo(&w.ctx).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("watch: rules not evaluated: {e}");
            return;
        }
    };
    let now = crate::time::now_seconds();
    let env_label = w.config.env_labels.first().cloned().unwrap_or_else(|| "env".into());
    let mut seen: BTreeMap<String, Raised> = BTreeMap::new();
    let mut failed: BTreeSet<(String, String)> = BTreeSet::new();
    for rule in &w.config.rules {
        let envs = if rule.envs.is_empty() { repo.environments.clone() } else { rule.envs.clone() };
        for env in envs {
            let answer = match w.ctx.prometheus(&repo, &env).await {
                Err(e) => Err(e.to_string()),
                Ok(endpoint) => {
                    crate::cluster::metrics::query(&endpoint, &rule.expr, None, None).await.map_err(|e| e.to_string())
                }
            };
            let result = match answer {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("watch: rule {} in {env}: {e}", rule.alert);
                    failed.insert((rule.alert.clone(), env));
                    continue;
                }
            };
            for series in result.series {
                let Some(value) = series.values.last().map(|v| v.1).filter(|v| *v > rule.above) else { continue };
                let mut labels = series.metric.clone();
                labels.remove("__name__");
                labels.insert("alertname".into(), rule.alert.clone());
                if !w.config.env_labels.iter().any(|l| labels.contains_key(l)) {
                    labels.insert(env_label.clone(), env.clone());
                }
                let fingerprint = crate::workflows::fingerprint::of(&labels);
                let raised = firing.get(&fingerprint).cloned().unwrap_or_else(|| Raised {
                    alert: Alert {
                        status: "firing".into(),
                        annotations: [(
                            "summary".to_string(),
                            format!("{} is {value} (above {}), evaluated by agentops watch", rule.expr, rule.above),
                        )]
                        .into_iter()
                        .collect(),
                        labels,
                        starts_at: now.clone(),
                        ends_at: String::new(),
                        generator_url: String::new(),
                        fingerprint: fingerprint.clone(),
                    },
                    rule: rule.alert.clone(),
                    env: env.clone(),
                });
                seen.insert(fingerprint, raised);
            }
        }
    }
    // what a failed query cannot tell stays as it was
    for (fp, r) in firing.iter() {
        if failed.contains(&(r.rule.clone(), r.env.clone())) {
            seen.entry(fp.clone()).or_insert_with(|| r.clone());
        }
    }
    for (fp, r) in &seen {
        if !firing.contains_key(fp) {
            let _ = one(w, &repo, r.alert.clone()).await;
        }
    }
    for (fp, r) in firing.iter() {
        if !seen.contains_key(fp) {
            let mut a = r.alert.clone();
            a.status = "resolved".into();
            a.ends_at = now.clone();
            let request = format!("alert {} [{fp}] resolved", a.name());
            let labels = serde_json::to_value(&a.labels).unwrap_or(Value::Null);
            let _ = resolved(w, &a, fp, &request, labels).await;
        }
    }
    *firing = seen;
}

/// Builds the rollback plan with the rollback workflow (the `rollback_plan` tool, journaled)
/// and turns the proposal into a proposal, or says why there is none.
async fn plan(w: Arc<Watcher>, id: String, alert: Alert, t: Target, received: Instant) {
    let req = RollbackRequest {
        app: t.app.clone(),
        env: t.env.clone(),
        to: None,
        since: None,
        threshold: None,
        verify_timeout_seconds: None,
        expect: None,
    };
    let exec = w.executor(Policy { read_only: true, ..Policy::default() });
    let request = format!("watch: alert {} [{}] for {} in {}", alert.name(), alert.key(), t.app, t.env);
    let outcome: std::result::Result<RollbackPlan, String> = match Step::new(
        &w.registry,
        "rollback_plan",
        serde_json::to_value(&req).unwrap_or(Value::Null),
        "Plan the rollback",
    ) {
        Err(e) => Err(e.public),
        Ok(step) => {
            let r = exec.run_step(&request, "", &step, None).await;
            match (r.output, r.error) {
                (Some(out), _) => serde_json::from_value(out).map_err(|e| e.to_string()),
                (None, e) => Err(e.unwrap_or_else(|| "no output".into())),
            }
        }
    };
    let took = received.elapsed().as_millis() as u64;
    let now = crate::time::now_ms();
    let starts = alert.starts_ms();
    let updated = w.store.update(|all| {
        let p = all.get_mut(&id)?;
        let why = match outcome {
            Ok(plan) => {
                p.culprit = plan.culprit_commits.iter().map(|c| c.short.clone()).collect();
                p.target = plan.target.as_ref().map(|t| t.short.clone());
                let why = plan.blocked.clone().or_else(|| watch::after_deploy(&plan, starts).err());
                p.plan = Some(plan);
                why
            }
            Err(e) => Some(format!("the rollback plan could not be built: {e}")),
        };
        if p.state == ProposalState::Planning {
            p.state = if why.is_some() { ProposalState::NotProposed } else { ProposalState::Proposed };
            p.reason = why;
        }
        p.proposed_at = Some(crate::time::format_ms(now));
        p.alert_to_proposal_ms = Some(took);
        p.since_alert_start_ms = starts.map(|s| (now - s).max(0) as u64);
        let label = p.state.label();
        p.event(format!("{label} ({} after the alert arrived)", watch::seconds(took)));
        Some(p.clone())
    });
    let p = match updated {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            eprintln!("watch: proposal {id} not stored: {e}");
            return;
        }
    };
    w.journal(
        &request,
        "auto",
        true,
        json!({"proposal": p.id}),
        &format!(
            "proposal {}: {}{}; alert to proposal {} ms",
            p.id,
            p.state.label(),
            p.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
            took
        ),
    );
    w.publish(&p).await;
    if p.state == ProposalState::Proposed {
        auto_rollback(&w, p).await;
    }
}

/// `watch.auto_rollback`: carries a proposal out without a person when its environment is
/// listed and the hour's budget (persisted, so restarts do not reset it) allows.
async fn auto_rollback(w: &Arc<Watcher>, p: Proposal) {
    let Some(policy) = &w.config.auto_rollback else { return };
    if !policy.envs.contains(&p.env) {
        return;
    }
    let max = policy.max_per_hour;
    let now = crate::time::now_ms();
    let taken = w.store.update(|all| {
        let budget = take_auto_budget(all, now, max);
        let q = all.get_mut(&p.id)?;
        if q.state != ProposalState::Proposed {
            return None;
        }
        match budget {
            Ok(()) => {
                q.state = ProposalState::Running;
                q.auto = true;
                q.event("approved by the policy watch.auto_rollback: rolling back");
            }
            Err(n) => q.event(format!(
                "not rolled back automatically: {n} automatic rollback(s) in the last hour, watch.auto_rollback.max_per_hour is {max}; waiting for approval"
            )),
        }
        Some((budget.is_ok(), q.clone()))
    });
    let (go, q) = match taken {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(e) => {
            eprintln!("watch: proposal {} not stored: {e}", p.id);
            return;
        }
    };
    let request = format!("watch auto_rollback: proposal {} ({} in {})", q.id, q.app, q.env);
    let last = q.history.last().map(|e| e.what.clone()).unwrap_or_default();
    w.journal(&request, if go { "policy" } else { "refused" }, go, json!({"proposal": q.id}), &last);
    w.publish(&q).await;
    if !go {
        return;
    }
    let Some(plan) = q.plan.clone() else { return };
    let exec = w.executor(Policy { yes: true, ..Policy::default() });
    let done = super::rollback::execute(&exec, &plan, Some(request), false).await;
    let outcome = done.unwrap_or_else(super::rollback::Executed::could_not_run);
    match super::proposals::record_outcome(&w.store, &q.id, &outcome) {
        Ok(q) => w.publish(&q).await,
        Err(e) => eprintln!("watch: proposal {} not stored: {e}", q.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"", b"x"));
    }
}
