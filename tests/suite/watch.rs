//! `agentops watch` end to end with the real binary: Alertmanager webhooks (posted here, and
//! from a real Alertmanager fed by a real Prometheus scraping the mock cluster) become
//! rollback proposals built by the rollback workflow against the mock prod-west;
//! `agentops proposals` lists them, `agentops approve` rolls back, a resolved alert closes
//! them. Also: the token, malformed and oversized bodies, unmapped alerts, a flood of one
//! alert, two apps at once, a plan the cluster moved on from, the automatic policy.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::*;

const TOKEN: &str = "s3cret-watch-token";

/// A running `agentops watch`: its URL and every line it printed on stdout.
struct Watcher {
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Watcher {
    fn start(w: &World, env: &[(&str, &str)]) -> Watcher {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentops"));
        cmd.args(["watch", "--repo", w.repo.path().to_str().unwrap(), "--kubeconfig"])
            .arg(w.kc.path())
            .args(["--cache-dir", &cache_dir("rollback-cache"), "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&token)
            .env("NO_COLOR", "1")
            .env_remove("AGENTOPS_WATCH_TOKEN")
            .env_remove("AGENTOPS_WATCH_NOTIFY_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}: {}", std::fs::read_to_string(&stderr).unwrap()))
            .to_string();
        let lines = Arc::new(Mutex::new(vec![first.trim().to_string()]));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        Watcher { child, url, lines, stderr, _dir: dir }
    }

    fn stdout(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    async fn post(&self, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = reqwest::Client::new().post(format!("{}/alerts", self.url)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn alerts(&self, status: &str, alerts: Vec<Value>) -> (u16, Value) {
        self.post(Some(TOKEN), serde_json::to_vec(&payload(status, alerts)).unwrap()).await
    }

    /// SIGTERM, then the exit status (a clean stop is success).
    fn stop(mut self) -> (bool, String) {
        // SAFETY: signalling the child this test started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.success(), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("watch did not stop on SIGTERM: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`stable`] plus the proposal's id, the alert's times and the durations it measured.
fn watch_stable(text: &str, w: &World, id: &str) -> String {
    let ms = regex::Regex::new(r"\b\d+(\.\d)? (s|ms)\b").unwrap();
    let t = stable(&ms.replace_all(&text.replace(id, "<id>"), "<took>"), w);
    let stamp = regex::Regex::new(r"<date>T\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    let fp = regex::Regex::new(r"fingerprint [0-9a-f]{16}").unwrap();
    fp.replace_all(&stamp.replace_all(&t, "<time>"), "fingerprint <fingerprint>").to_string()
}

fn payload(status: &str, alerts: Vec<Value>) -> Value {
    json!({
        "receiver": "agentops", "status": status, "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRatio"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "version": "4",
        "groupKey": "{}:{alertname=\"HighErrorRatio\"}", "truncatedAlerts": 0
    })
}

fn alert(status: &str, app: &str, namespace: &str, fingerprint: &str, starts_at: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "HighErrorRatio", "app": app, "namespace": namespace, "env": "prod-west", "severity": "page"},
        "annotations": {"summary": format!("{app}: error ratio above 5%")},
        "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph", "fingerprint": fingerprint
    })
}

async fn run(args: Vec<String>) -> Run {
    agentops_async(args, Vec::new()).await
}

/// `agentops chat` on the world, its input given.
async fn chat(w: &World, input: &str) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentops"))
        .args(["chat", "--planner", "rules", "--repo", w.repo.path().to_str().unwrap(), "--kubeconfig"])
        .arg(w.kc.path())
        .args(["--cache-dir", &cache_dir("rollback-cache")])
        .env("NO_COLOR", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    Run::from(out)
}

async fn proposals(w: &World) -> Vec<Value> {
    let r = run(vec![
        "proposals".into(),
        "--all".into(),
        "--repo".into(),
        w.repo.path().to_str().unwrap().into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

async fn approve(w: &World, id: &str, yes: bool) -> Run {
    let mut args: Vec<String> = vec![
        "approve".into(),
        id.into(),
        "--repo".into(),
        w.repo.path().to_str().unwrap().into(),
        "--kubeconfig".into(),
        w.kc.path().to_str().unwrap().into(),
        "--cache-dir".into(),
        cache_dir("rollback-cache"),
    ];
    if yes {
        args.push("--yes".into());
    }
    run(args).await
}

/// Polls `agentops proposals` until one for `app` is in `state`.
async fn wait_state(w: &World, app: &str, state: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let all = proposals(w).await;
        if let Some(p) = all.iter().find(|p| p["app"] == app && p["state"] == state) {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "no {state} proposal for {app} within {secs}s: {all:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn journal(w: &World) -> Vec<Value> {
    std::fs::read_to_string(w.repo.path().join(".agentops/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A tiny receiver for the outgoing notification webhook: every JSON body it got.
async fn notification_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Refusals first (nothing journaled beyond them), then an unmapped alert, a flood of one
/// alert (one proposal), the proposal naming culprit and target with its timing, the
/// notification, an approval denied without a terminal, `approve --yes` rolling back and
/// verifying, the resolution closing it, and a clean stop on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_becomes_one_proposal_a_person_approves() {
    let w = World::new(Setup::default()).await;
    // a small body limit, so an oversized body is cheap to send
    let cfg = w.repo.path().join(".agentops.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}watch:\n  body_bytes: 4096\n")).unwrap();
    commit_all(w.repo.path(), "chore: watch settings");
    let _ = std::fs::remove_file(w.repo.path().join(".agentops/journal.jsonl"));
    let (hook, notified) = notification_sink().await;
    let watcher = Watcher::start(&w, &[("AGENTOPS_WATCH_NOTIFY_URL", hook.as_str())]);

    let good = alert("firing", "auth-service", "auth", "fp-auth", &agentops::time::now_seconds());
    let body = serde_json::to_vec(&payload("firing", vec![good.clone()])).unwrap();
    let (code, v) = watcher.post(None, body.clone()).await;
    assert_eq!(code, 401, "{v}");
    let (code, v) = watcher.post(Some("wrong"), body.clone()).await;
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("bearer token"), "{v}");
    let lines = journal(&w);
    assert_eq!(lines.len(), 2, "only the refusals: {lines:#?}");
    assert!(lines.iter().all(|l| l["approval"] == "refused" && l["tool"] == "watch"), "{lines:#?}");
    assert!(proposals(&w).await.is_empty());

    let (code, v) = watcher.post(Some(TOKEN), b"{\"version\": \"4\", \"alerts\": [".to_vec()).await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("the body is not an Alertmanager webhook notification"), "{v}");
    let (code, v) = watcher.post(Some(TOKEN), br#"{"version":"3","status":"firing","alerts":[]}"#.to_vec()).await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("version \"3\""), "{v}");
    let (code, v) = watcher.post(Some(TOKEN), vec![b' '; 8192]).await;
    assert_eq!(code, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("watch.body_bytes"), "{v}");

    // unmapped: an app the repo does not have, and no environment label at all
    let mut no_env = good.clone();
    no_env["labels"].as_object_mut().unwrap().remove("env");
    no_env["fingerprint"] = json!("fp-noenv");
    let (code, v) = watcher
        .alerts(
            "firing",
            vec![alert("firing", "no-such-app", "auth", "fp-nope", &agentops::time::now_seconds()), no_env],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["alerts"][0]["outcome"], "unmapped", "{v}");
    assert!(v["alerts"][0]["reason"].as_str().unwrap().contains("app=\"no-such-app\" names no app"), "{v}");
    assert_eq!(v["alerts"][1]["outcome"], "unmapped", "{v}");
    assert!(v["alerts"][1]["reason"].as_str().unwrap().contains("no environment label"), "{v}");
    assert!(proposals(&w).await.is_empty(), "unmapped alerts are never guessed at");
    let unmapped = journal(&w).into_iter().filter(|l| l["result"].as_str().unwrap().starts_with("unmapped")).count();
    assert_eq!(unmapped, 2, "each unmapped alert journaled");

    // a flood of the same alert: one proposal
    let sent = Instant::now();
    let floods = (0..20).map(|_| watcher.alerts("firing", vec![good.clone()]));
    let answers = futures::future::join_all(floods).await;
    assert!(answers.iter().all(|(c, _)| *c == 200), "{answers:?}");
    assert_eq!(answers.iter().filter(|(_, v)| v["alerts"][0]["outcome"] == "proposal").count(), 1, "{answers:?}");
    let p = wait_state(&w, "auth-service", "proposed", 60).await;
    eprintln!("flood of 20 to proposal: {:?} (alert_to_proposal_ms {})", sent.elapsed(), p["alert_to_proposal_ms"]);
    let all = proposals(&w).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["notifications"], 20);
    assert_eq!(p["alert"], "HighErrorRatio");
    assert_eq!((p["app"].as_str(), p["env"].as_str()), (Some("auth-service"), Some("prod-west")));
    assert_eq!(p["culprit"], json!([&w.bad[..7]]));
    assert_eq!(p["target"], json!(&w.good[..7]));
    assert!(p["alert_to_proposal_ms"].as_u64().unwrap() < 30_000, "{p}");
    let md = std::fs::read_to_string(w.repo.path().join(p["file"].as_str().unwrap())).unwrap();
    assert!(md.contains("- Time from alert to proposal: "), "{md}");
    assert!(md.contains(&format!("agentops approve {id}")), "{md}");
    assert!(md.contains(&format!("Target       {}", &w.good[..7])), "the plan as shown: {md}");
    assert!(md.contains("- Notifications received: 20"), "{md}");
    insta::assert_snapshot!("watch_proposal_markdown", watch_stable(&md, &w, &id));
    let line = format!(
        "proposal {id}: HighErrorRatio fired: roll back auth-service in prod-west from {} to {}",
        &w.bad[..7],
        &w.good[..7]
    );
    wait_for("the notice on stdout", || watcher.stdout().contains(&line)).await;
    wait_for("the outgoing notification", || {
        notified.lock().unwrap().iter().any(|n| n["text"].as_str().is_some_and(|t| t.contains(&line)))
    })
    .await;
    assert!(
        journal(&w).iter().any(|l| l["tool"] == "rollback_plan" && l["ok"] == true),
        "the plan came from the rollback workflow, journaled"
    );
    // the list for people
    let r = run(vec!["proposals".into(), "--repo".into(), w.repo.path().to_str().unwrap().into()]).await;
    assert!(r.stdout.contains(&id) && r.stdout.contains("proposed"), "{}", r.stdout);
    insta::assert_snapshot!("watch_proposals_list", watch_stable(&r.stdout, &w, &id));

    // no terminal, no --yes: nothing is written and it stays a proposal
    let head = w.head();
    let r = approve(&w, &id[..8], false).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("needs approval and there is no terminal"), "{}", r.stderr);
    assert_eq!(w.head(), head);
    assert_eq!(wait_state(&w, "auth-service", "proposed", 5).await["id"], id.as_str());

    let r = approve(&w, &id, true).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification: recovered"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("Proposal {id}: rolled-back")), "{}", r.stdout);
    let p = wait_state(&w, "auth-service", "rolled-back", 5).await;
    assert!(p["report"].as_str().unwrap().starts_with("docs/incidents/"), "{p}");
    let subject = git(w.repo.path(), &["log", "-1", "--format=%s", "HEAD~1"]);
    assert!(subject.starts_with(&format!("revert(auth-service): undo {}", &w.bad[..7])), "{subject}");
    let r = approve(&w, &id, true).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("rolled-back, not waiting for approval"), "{}", r.stderr);

    let (code, v) = watcher
        .alerts(
            "resolved",
            vec![{
                let mut a = good.clone();
                a["status"] = json!("resolved");
                a
            }],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let p = wait_state(&w, "auth-service", "closed", 5).await;
    assert_eq!(p["reason"], "recovered after the rollback");

    let (ok, stderr) = watcher.stop();
    assert!(ok, "a clean stop: {stderr}");
    assert!(stderr.contains("watch: stopped"), "{stderr}");
    w.fleet.shutdown().await;
}

/// Two apps alerting in one notification get a proposal each; chat approves one; an alert
/// older than the last deploy is not proposed and recovers on its own (closed without
/// action); the other proposal's plan is refused once the cluster moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apps_at_once_and_a_plan_the_cluster_moved_on_from() {
    let w = World::new(Setup { payments: true, ..Setup::default() }).await;
    let watcher = Watcher::start(&w, &[]);
    let now = agentops::time::now_seconds();
    let (code, v) = watcher
        .alerts(
            "firing",
            vec![
                alert("firing", "auth-service", "auth", "fp-auth", &now),
                alert("firing", "payments", "payments", "fp-pay", &now),
            ],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["alerts"][0]["outcome"], "proposal", "{v}");
    assert_eq!(v["alerts"][1]["outcome"], "proposal", "{v}");
    let auth = wait_state(&w, "auth-service", "proposed", 60).await;
    let pay = wait_state(&w, "payments", "proposed", 60).await;
    assert_ne!(auth["id"], pay["id"]);
    for p in [&auth, &pay] {
        assert_eq!(p["culprit"], json!([&w.bad[..7]]), "{p}");
        assert_eq!(p["target"], json!(&w.good[..7]), "{p}");
    }

    // chat approves too: the plan as shown, each write asked (and answered) in the session
    let pay_id = pay["id"].as_str().unwrap().to_string();
    let chat = chat(&w, &format!("/proposals\n/approve {}\ny\ny\ny\n/quit\n", &pay_id[..8])).await;
    assert!(chat.stdout.contains(&pay_id) && chat.stdout.contains(auth["id"].as_str().unwrap()), "{}", chat.stdout);
    assert!(chat.stdout.contains("Approve git_revert [WritesRepo]"), "{}", chat.stdout);
    assert!(chat.stdout.contains("Verification: recovered"), "{}\n{}", chat.stdout, chat.stderr);
    assert!(chat.stdout.contains(&format!("Proposal {pay_id}: rolled-back")), "{}", chat.stdout);
    assert_eq!(chat.code, 0, "{}\n{}", chat.stdout, chat.stderr);
    let subject = git(w.repo.path(), &["log", "-1", "--format=%s", "HEAD~1"]);
    assert!(subject.starts_with(&format!("revert(payments): undo {}", &w.bad[..7])), "{subject}");

    // an alert that started before the last deploy is no deploy's regression
    let (code, v) =
        watcher.alerts("firing", vec![alert("firing", "auth-service", "auth", "fp-old", "2020-01-01T00:00:00Z")]).await;
    assert_eq!(code, 200, "{v}");
    let p = wait_state(&w, "auth-service", "not-proposed", 60).await;
    assert!(p["reason"].as_str().unwrap().contains("before the last deploy"), "{p}");
    let r = approve(&w, p["id"].as_str().unwrap(), true).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("has no rollback to approve"), "{}", r.stderr);
    // it recovers on its own
    let mut resolved = alert("resolved", "auth-service", "auth", "fp-old", "2020-01-01T00:00:00Z");
    resolved["endsAt"] = json!(agentops::time::now_seconds());
    let (code, v) = watcher.alerts("resolved", vec![resolved]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["alerts"][0]["reason"], "recovered without action", "{v}");
    let all = proposals(&w).await;
    let old = all.iter().find(|p| p["fingerprint"] == "fp-old").unwrap();
    assert_eq!((old["state"].as_str(), old["reason"].as_str()), (Some("closed"), Some("recovered without action")));

    // the cluster moves on: a new commit deployed through Argo CD after the proposal
    edit(&w.repo.path().join("apps/grafana/base/deployment.yaml"), "replicas: 2", "replicas: 3");
    let newer = commit_all(w.repo.path(), "chore(grafana): three replicas");
    let patch = json!({"operation": {"sync": {"revision": newer}, "initiatedBy": {"username": "test"}}});
    w.store()
        .merge_patch("argoproj.io/v1alpha1", "Application", Some("argocd"), "auth-service-prod-west", &patch, "argocd")
        .unwrap();
    w.wait_app_history("auth-service-prod-west", 3).await;
    let head = w.head();
    let r = approve(&w, auth["id"].as_str().unwrap(), true).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the rollback plan changed since it was shown"), "{}", r.stderr);
    assert_eq!(w.head(), head, "nothing written");
    let p = wait_state(&w, "auth-service", "failed", 5).await;
    assert!(p["reason"].as_str().unwrap().contains("changed since it was shown"), "{p}");
    let (ok, _) = watcher.stop();
    assert!(ok);
    w.fleet.shutdown().await;
}

/// `watch.auto_rollback` lets the watcher roll back on its own, once per hour even across
/// a restart: the second alert after the restart waits for a person.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_automatic_policy_acts_within_its_hourly_limit_across_restarts() {
    let w = World::new(Setup { payments: true, ..Setup::default() }).await;
    let cfg = w.repo.path().join(".agentops.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}watch:\n  auto_rollback: {{envs: [prod-west], max_per_hour: 1}}\n")).unwrap();
    commit_all(w.repo.path(), "chore: let the watcher roll back prod-west");
    let watcher = Watcher::start(&w, &[]);
    let policy = "auto-rollback (watch.auto_rollback): in prod-west at most 1 per hour";
    wait_for("the watcher to announce its policy", || watcher.stdout().contains(policy)).await;
    let (code, v) = watcher
        .alerts("firing", vec![alert("firing", "auth-service", "auth", "fp-auth", &agentops::time::now_seconds())])
        .await;
    assert_eq!(code, 200, "{v}");
    let p = wait_state(&w, "auth-service", "rolled-back", 120).await;
    assert_eq!(p["auto"], true);
    wait_for("the notice of the automatic rollback", || watcher.stdout().contains("rolled-back")).await;
    let lines = journal(&w);
    assert!(
        lines.iter().any(|l| l["approval"] == "policy" && l["request"].as_str().unwrap().contains("auto_rollback"))
    );
    assert!(lines.iter().any(|l| l["tool"] == "git_revert"
        && l["ok"] == true
        && l["request"].as_str().unwrap().contains("auto_rollback")));
    let (ok, _) = watcher.stop();
    assert!(ok);

    // a restart does not reset the hour's budget
    let watcher = Watcher::start(&w, &[]);
    let (code, v) = watcher
        .alerts("firing", vec![alert("firing", "payments", "payments", "fp-pay", &agentops::time::now_seconds())])
        .await;
    assert_eq!(code, 200, "{v}");
    let p = wait_state(&w, "payments", "proposed", 60).await;
    assert_eq!(p["auto"], false);
    let md = std::fs::read_to_string(w.repo.path().join(p["file"].as_str().unwrap())).unwrap();
    assert!(md.contains("1 automatic rollback(s) in the last hour, watch.auto_rollback.max_per_hour is 1"), "{md}");
    let (ok, _) = watcher.stop();
    assert!(ok);
    w.fleet.shutdown().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A started Prometheus or Alertmanager, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(bin: &str, args: &[String], log: &Path) -> Daemon {
    let child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{bin} is installed by scripts/setup-tools (Debian packages prometheus, prometheus-alertmanager): {e}"
            )
        });
    Daemon(child)
}

/// The whole path with real parts: Prometheus scrapes the mock's error ratio, its rule fires,
/// Alertmanager routes the alert (bearer token from a file) to `agentops watch`, the proposal
/// names culprit and target, `agentops approve` rolls back and verifies, the ratio falls, the
/// rule resolves, Alertmanager says so, and the proposal closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_and_alertmanager_drive_a_proposal_to_a_verified_rollback() {
    let w = World::new(Setup::default()).await;
    let watcher = Watcher::start(&w, &[]);
    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let (prom_port, am_port) = (free_port(), free_port());
    let am_config = work.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: agentops\n  group_by: [alertname, app, env]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: agentops\n    webhook_configs:\n      - url: {}/alerts\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
            watcher.url,
            token.display()
        ),
    )
    .unwrap();
    let _am = daemon(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", work.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &work.path().join("alertmanager.log"),
    );
    let rules = work.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: agentops\n    interval: 1s\n    rules:\n      - alert: HighErrorRatio\n        expr: http_error_ratio > 0.05\n        labels: {severity: page}\n        annotations: {summary: 'error ratio {{ $value }}'}\n",
    )
    .unwrap();
    let target = w.fleet.get("prod-west").unwrap().url().trim_start_matches("http://").to_string();
    let prom_config = work.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: mock\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let _prom = daemon(
        "prometheus",
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", work.path().join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &work.path().join("prometheus.log"),
    );

    let p = wait_state(&w, "auth-service", "proposed", 90).await;
    let logs = || {
        format!(
            "watch:\n{}\n{}\nalertmanager:\n{}",
            watcher.stdout(),
            watcher.stderr(),
            std::fs::read_to_string(work.path().join("alertmanager.log")).unwrap_or_default()
        )
    };
    eprintln!(
        "prometheus start to proposal: {:?}; alert to proposal {} ms; alert start to proposal {} ms",
        started.elapsed(),
        p["alert_to_proposal_ms"],
        p["since_alert_start_ms"]
    );
    let md = std::fs::read_to_string(w.repo.path().join(p["file"].as_str().unwrap())).unwrap();
    assert!(md.contains("since the alert started"), "{md}");
    assert_eq!(p["alert"], "HighErrorRatio", "{}", logs());
    assert_eq!(p["culprit"], json!([&w.bad[..7]]));
    assert_eq!(p["target"], json!(&w.good[..7]));
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(proposals(&w).await.len(), 1, "Alertmanager's repeats update the one proposal");

    let r = approve(&w, &id, true).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification: recovered"), "{}", r.stdout);

    let p = wait_state(&w, "auth-service", "closed", 90).await;
    assert_eq!(p["reason"], "recovered after the rollback", "{}", logs());
    assert_eq!(p["id"], id.as_str());
    let (ok, stderr) = watcher.stop();
    assert!(ok, "{stderr}");
    w.fleet.shutdown().await;
}

/// The watcher's manifests pass agentops' own validation; its roles read (never Secrets) and
/// write one thing: a patch of Argo CD Applications in argocd, which an approved sync needs.
#[test]
fn deploy_manifests_for_the_watcher_validate_and_only_read_and_sync() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let r = agentops(&["validate", "--repo", deploy.to_str().unwrap(), "--no-cache", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "watch"}"#,
        "--repo",
        deploy.to_str().unwrap(),
        "--no-cache",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    let objects = v["objects"].as_array().unwrap();
    let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    for k in ["Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    for role in objects.iter().filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role") {
        for rule in role["rules"].as_array().unwrap() {
            let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            assert!(!rule["resources"].as_array().unwrap().iter().any(|x| x == "secrets"), "{rule}");
            if verbs.iter().all(|v| ["get", "list", "watch"].contains(v)) {
                continue;
            }
            assert_eq!(role["kind"], "Role", "writes only namespaced: {role}");
            assert_eq!(role["metadata"]["namespace"], "argocd");
            assert_eq!(verbs, vec!["patch"], "{rule}");
            assert_eq!(rule["apiGroups"], json!(["argoproj.io"]));
            assert_eq!(rule["resources"], json!(["applications"]));
        }
    }
    let d = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let args = &d["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "watch");
    assert!(args.as_array().unwrap().iter().any(|a| a == "--token-file"), "{args}");
}

/// For teams without Alertmanager: a rule in `watch.rules` that the watcher evaluates itself
/// against the environment's Prometheus (here the mock's, through the API server's service
/// proxy) raises the alert, the proposal is approved, and the rule's recovery closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_the_watcher_evaluates_itself_raises_and_resolves_the_alert() {
    let w = World::new(Setup::default()).await;
    let cfg = w.repo.path().join(".agentops.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}watch:\n  rule_interval_seconds: 1\n  rules:\n    - alert: HighErrorRatio\n      expr: 'http_error_ratio{{namespace=\"auth\"}}'\n      above: 0.05\n      envs: [prod-west]\n"
        ),
    )
    .unwrap();
    commit_all(w.repo.path(), "chore: the watcher evaluates the error ratio itself");
    let watcher = Watcher::start(&w, &[]);
    let p = wait_state(&w, "auth-service", "proposed", 60).await;
    assert_eq!(p["alert"], "HighErrorRatio");
    assert_eq!(p["culprit"], json!([&w.bad[..7]]));
    assert_eq!(p["target"], json!(&w.good[..7]));
    // every evaluation that finds it still firing is the same alert, not a new notification
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = proposals(&w).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["notifications"], 1, "{all:#?}");
    let r = approve(&w, p["id"].as_str().unwrap(), true).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let p = wait_state(&w, "auth-service", "closed", 30).await;
    assert_eq!(p["reason"], "recovered after the rollback");
    assert!(watcher.stdout().contains("evaluating 1 rule(s) (watch.rules) every 1 s"), "{}", watcher.stdout());
    let (ok, stderr) = watcher.stop();
    assert!(ok, "{stderr}");
    w.fleet.shutdown().await;
}

/// The watcher never runs without a token, and says where one comes from.
#[test]
fn the_watcher_needs_a_token() {
    let repo = platform();
    let out = Command::new(env!("CARGO_BIN_EXE_agentops"))
        .args(["watch", "--repo", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env_remove("AGENTOPS_WATCH_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("agentops watch needs a bearer token: --token-file FILE or AGENTOPS_WATCH_TOKEN"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it never listened");
}

/// A proposal a stopped watcher was still planning is planned again when a watcher starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proposal_left_planning_by_a_stopped_watcher_is_planned_at_start() {
    let w = World::new(Setup::default()).await;
    let dir = w.repo.path().join(".agentops");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = json!({"proposals": [{
        "id": "0f1e2d3c-0000-4000-8000-000000000001", "state": "planning",
        "alert": {"name": "HighErrorRatio", "fingerprint": "fp-stale", "starts_at": agentops::time::now_seconds(),
                  "labels": {"alertname": "HighErrorRatio", "app": "auth-service", "env": "prod-west", "namespace": "auth"}},
        "app": "auth-service", "env": "prod-west", "application": "auth-service-prod-west",
        "overlay": "apps/auth-service/overlays/prod-west",
        "received_at": agentops::time::now_seconds(), "notifications": 1, "session": "a-watcher-that-stopped"
    }]});
    std::fs::write(dir.join("proposals.json"), serde_json::to_vec_pretty(&stale).unwrap()).unwrap();
    let watcher = Watcher::start(&w, &[]);
    let p = wait_state(&w, "auth-service", "proposed", 60).await;
    assert_eq!(p["id"], "0f1e2d3c-0000-4000-8000-000000000001");
    assert_eq!(p["culprit"], json!([&w.bad[..7]]));
    let md = std::fs::read_to_string(w.repo.path().join(p["file"].as_str().unwrap())).unwrap();
    assert!(md.contains("planned again: the watcher that was planning it stopped"), "{md}");
    let (ok, _) = watcher.stop();
    assert!(ok);
    w.fleet.shutdown().await;
}
