//! Every command the README shows runs as written: each `sh` block's lines run with `sh -c`
//! in the example repo (the demo's world: a git history, a mock cluster per environment with
//! the simulated Argo CD and Prometheus, every Application synced), with the exit code and a
//! line of output the README promises. A command added to the README without an entry here
//! fails the test, so the README cannot drift from what agentops does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use agentops::demo::World;

use super::common::platform;

/// What a README command must do here.
enum Expect {
    /// Exit with this code, and print this (stdout and stderr together) when not empty.
    Runs(i32, &'static str),
    /// Not run, and why.
    Skip(&'static str),
}

/// The README's commands, by their start (after `examples/platform` is read as the repo).
const EXPECT: &[(&str, Expect)] = &[
    ("scripts/demo", Expect::Skip("the demo test runs `agentops demo`; this is its wrapper")),
    ("scripts/test", Expect::Skip("this is the test suite itself")),
    ("agentops ask \"validate staging\"", Expect::Runs(0, "OK: 0 errors")),
    ("agentops ask \"/infrastructure-drift env=prod-west\" --format json", Expect::Runs(0, "\"drift_report\"")),
    ("agentops chat", Expect::Runs(0, "")),
    ("agentops journal --limit 20", Expect::Runs(0, "drift_report")),
    (
        "agentops ask \"why is grafana different in prod-west?\" --planner llm",
        Expect::Skip("needs a model server; tests/suite/llm_real.rs runs the planner on a real one"),
    ),
    ("agentops mcp", Expect::Runs(0, "\"cluster_query\"")),
    ("agentops validate --repo .", Expect::Runs(0, "OK: 0 errors")),
    ("agentops validate --env prod-west --app grafana --format json", Expect::Runs(0, "\"errors\": 0")),
    ("agentops validate --changed-since origin/main --format sarif", Expect::Runs(0, "")),
    ("agentops validate --clusters --kubeconfig ~/.kube/config", Expect::Runs(0, "Clusters: 5 of 5 checked")),
    ("agentops tools call cluster_prereqs", Expect::Runs(0, "storage_classes")),
    ("agentops tools call cluster_query", Expect::Runs(0, "auth-service")),
    ("agentops tools call argocd_app_status", Expect::Runs(0, "Synced")),
    ("agentops tools call metrics_query", Expect::Runs(0, "auth-service")),
    ("agentops drift --env prod-west --audit-log audit.jsonl", Expect::Runs(0, "0 drifted")),
    ("agentops create --name prometheus", Expect::Runs(0, "Nothing was written")),
    ("agentops harmonize --kind Ingress", Expect::Runs(0, "Proof: coverage 20/20")),
    ("agentops rollback --app auth-service --env prod-west --yes", Expect::Runs(0, "Verification: recovered")),
    ("agentops rollback --app auth-service --env prod-west", Expect::Runs(0, "Culprit")),
    ("agentops watch --listen", Expect::Runs(0, "listening on http://0.0.0.0:9095")),
    ("agentops proposals", Expect::Runs(0, "No open proposals.")),
    (
        "agentops approve",
        Expect::Skip(
            "needs the id of a proposal the watcher made; tests/suite/watch.rs approves them after real alerts",
        ),
    ),
    ("agentops migrate --from redis --to elasticache --format markdown", Expect::Runs(0, "# Migration")),
    ("agentops migrate --from redis --to elasticache --yes", Expect::Runs(0, "docs/migrations/")),
    ("agentops migrate --from redis --to elasticache", Expect::Runs(0, "waves")),
    ("git add -A && agentops commit", Expect::Runs(0, "committed ")),
    ("agentops hooks install", Expect::Runs(0, "prepare-commit-msg")),
    ("agentops mock-cluster serve", Expect::Runs(0, "")),
    ("KUBECONFIG=/tmp/mock.kubeconfig kubectl --context prod-west get storageclasses", Expect::Runs(0, "gp3")),
    ("agentops eval --cases 'drift-*' --format json", Expect::Runs(0, "\"passed\"")),
    (
        "agentops eval --planner llm --repeat 5",
        Expect::Skip("replays every cassette five times; tests/suite/eval.rs runs them"),
    ),
    ("agentops eval", Expect::Skip("every case; tests/suite/eval.rs runs them")),
    ("agentops tools list", Expect::Runs(0, "validate")),
    ("agentops tools call repo_scan", Expect::Runs(0, "\"matches\"")),
    ("agentops tools call kustomize_build", Expect::Runs(0, "Deployment")),
    ("agentops tools export", Expect::Runs(0, "")),
];

/// (section heading, command) for every line of every `sh` block, continuation lines joined,
/// `[...]` (optional parts) left out.
fn readme_commands() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let (mut section, mut in_sh, mut pending) = (String::new(), false, String::new());
    for line in text.lines() {
        if !in_sh {
            if let Some(h) = line.strip_prefix("## ") {
                section = h.to_string();
            }
            in_sh = line.trim() == "```sh";
            continue;
        }
        if line.trim() == "```" {
            in_sh = false;
            continue;
        }
        if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        pending.push_str(line.trim_end().trim_end_matches('\\'));
        if line.trim_end().ends_with('\\') {
            pending.push(' ');
            continue;
        }
        let mut cmd = std::mem::take(&mut pending);
        // optional flags as usage shows them: ` [--format json]`, ` [--allow-writes]`
        while let Some(a) = cmd.find(" [-") {
            let Some(b) = cmd[a..].find(']') else { break };
            cmd.replace_range(a..=a + b, "");
        }
        out.push((section.clone(), cmd.replace("examples/platform", ".")));
    }
    out
}

fn expectation(cmd: &str) -> &'static Expect {
    let shown = cmd.split(" #").next().unwrap_or(cmd).trim();
    EXPECT
        .iter()
        .find(|(start, _)| shown.starts_with(start))
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("a README command this test does not know: {cmd}\n(add it to EXPECT)"))
}

struct Env {
    repo: PathBuf,
    home: PathBuf,
    kubeconfig: PathBuf,
    path: String,
    cache: PathBuf,
}

impl Env {
    fn command(&self, line: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(line)
            .current_dir(&self.repo)
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AGENTOPS_CACHE_DIR", &self.cache)
            .env("NO_COLOR", "1")
            .env("GIT_AUTHOR_NAME", "Readme Reader")
            .env("GIT_AUTHOR_EMAIL", "reader@example.com")
            .env("GIT_COMMITTER_NAME", "Readme Reader")
            .env("GIT_COMMITTER_EMAIL", "reader@example.com")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("AGENTOPS_LLM_CASSETTES")
            .stdin(Stdio::null());
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_readme_command_runs_as_written() {
    let commands = readme_commands();
    assert!(commands.len() > 25, "the README's commands were not found: {commands:?}");
    for (_, cmd) in &commands {
        expectation(cmd);
    }

    let tmp = tempfile::tempdir().unwrap();
    let example = platform();
    let mut world = World::build(&example, Some(&tmp.path().join("world"))).await.unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".kube")).unwrap();
    std::fs::copy(world.kubeconfig(), home.join(".kube/config")).unwrap();
    // a CI checkout has the branch it compares with
    super::common::git(&world.repo, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
    let bin = Path::new(env!("CARGO_BIN_EXE_agentops")).parent().unwrap().to_path_buf();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin");
    let path = format!("{}:{}:{}", bin.display(), tools.display(), std::env::var("PATH").unwrap_or_default());
    let env = Env {
        repo: world.repo.clone(),
        home,
        kubeconfig: world.kubeconfig(),
        path,
        cache: Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-cache"),
    };

    let mut failures = Vec::new();
    let mut staged_bad_deploy = false;
    let mut mock_server: Option<std::process::Child> = None;
    let mut watcher: Option<std::process::Child> = None;
    for (section, cmd) in &commands {
        let (code, shows) = match expectation(cmd) {
            Expect::Runs(code, shows) => (code, shows),
            Expect::Skip(why) => {
                assert!(why.len() > 10, "say why {cmd} is not run");
                eprintln!("not run: {cmd} ({why})");
                continue;
            }
        };
        // what a section assumes of the world before its commands
        if section == "Rollback" && !staged_bad_deploy {
            world.stage_bad_deploy().await.unwrap();
            staged_bad_deploy = true;
        }
        if cmd.starts_with("git add -A && agentops commit") {
            let f = world.repo.join("apps/api-gateway/overlays/staging/kustomization.yaml");
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.contains("newTag: 3.2.1"), "{text}");
            std::fs::write(&f, text.replace("newTag: 3.2.1", "newTag: 3.2.2")).unwrap();
        }
        if cmd.starts_with("agentops mock-cluster serve") {
            // a server: started, ready when it has written its kubeconfig, used by the next
            // command, stopped at the end
            let _ = std::fs::remove_file("/tmp/mock.kubeconfig");
            let log = std::fs::File::create(tmp.path().join("serve.log")).unwrap();
            // exec: the signal below reaches the server, not a shell
            let mut child = env.command(&format!("exec {cmd}")).stdout(Stdio::null()).stderr(log).spawn().unwrap();
            let ready = wait_for(|| Path::new("/tmp/mock.kubeconfig").exists(), Duration::from_secs(60)).await;
            if !ready {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default();
                failures.push(format!("{cmd}: not ready in 60 s\n{log}"));
            } else {
                mock_server = Some(child);
            }
            continue;
        }
        if cmd.starts_with("agentops watch") {
            // a server: its token in the file the command names, ready when it says where it
            // listens, stopped at the end with SIGTERM
            std::fs::write(world.repo.join("token"), "readme-token\n").unwrap();
            let mut child =
                env.command(&format!("exec {cmd}")).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let first = tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
                line
            });
            match tokio::time::timeout(Duration::from_secs(60), first).await {
                Ok(Ok(line)) if line.contains(shows) => {
                    // read at start; not left in the repo for `git add -A` below
                    let _ = std::fs::remove_file(world.repo.join("token"));
                    watcher = Some(child)
                }
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!("{cmd}: not listening in 60 s: {other:?}"));
                }
            }
            continue;
        }
        if cmd.starts_with("agentops drift") && cmd.contains("--audit-log audit.jsonl") {
            // the API server's audit log at hand, where the command reads it
            let log = world.repo.join("audit.jsonl");
            if !log.exists() {
                std::os::unix::fs::symlink(world.audit_log(), &log).unwrap();
            }
        }
        let mut c = env.command(cmd);
        if cmd.starts_with("agentops mcp") {
            // an editor's first exchange: initialize, then list the tools; then it hangs up
            let script = tmp.path().join("mcp-client.jsonl");
            std::fs::write(&script, MCP_CLIENT).unwrap();
            c.stdin(std::fs::File::open(&script).unwrap());
        }
        if section == "Evals" {
            // the eval cases live in this repository, not in a GitOps repo
            c.current_dir(env!("CARGO_MANIFEST_DIR"));
        }
        let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
        let got = out.status.code().unwrap_or(-1);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if got != *code || !text.contains(shows) {
            failures.push(format!(
                "[{section}] {cmd}\n  exit {got} (want {code}), want output containing {shows:?}\n{}",
                text.lines().take(40).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    if let Some(mut child) = mock_server {
        // Ctrl-C stops it, as the docs say
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        if status.code() != Some(0) && status.code() != Some(130) {
            failures.push(format!("mock-cluster serve ended with {status} on SIGINT"));
        }
    }
    if let Some(mut child) = watcher {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        if status.code() != Some(0) {
            failures.push(format!("agentops watch ended with {status} on SIGTERM"));
        }
    }
    world.shutdown().await;
    assert!(failures.is_empty(), "README commands that do not run as written:\n\n{}", failures.join("\n\n"));
}

/// What an MCP client sends first: initialize, initialized, tools/list.
const MCP_CLIENT: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"readme","version":"1"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n",
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    "\n",
);

async fn wait_for(mut ok: impl FnMut() -> bool, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
