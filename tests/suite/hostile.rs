//! Hostile and broken input: a repo built to hurt (a YAML bomb, a 50 MB file, invalid UTF-8,
//! a kustomization cycle, a symlink loop, a file that changes while it is read) and servers
//! that answer with 100 MB. Each is a finding or an error naming what and where, within
//! bounded memory and time, and the rest of the work still gets its results.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::common::git_init;

/// A server that answers every request with `size` bytes of JSON-ish filler, streamed in
/// 64 KiB chunks (with a Content-Length when `announce`), and counts what it sent.
async fn huge_server(size: u64, announce: bool) -> (String, Arc<AtomicU64>) {
    use axum::body::Body;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            let chunk = bytes::Bytes::from(vec![b' '; 64 << 10]);
            let n = size / chunk.len() as u64;
            let stream = futures::stream::iter(0..n).map(move |_| {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            let mut resp = axum::response::Response::new(Body::from_stream(stream));
            resp.headers_mut().insert("content-type", "application/json".parse().unwrap());
            if announce {
                resp.headers_mut().insert("content-length", (n * (64 << 10)).to_string().parse().unwrap());
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), sent)
}

const HUNDRED_MB: u64 = 100 << 20;

/// An API server answering 100 MB: refused with a message naming the limit, not read into
/// memory, and not retried (a second try would be as large).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_answer_of_100_mb_is_refused_unread() {
    for announce in [true, false] {
        let (url, sent) = huge_server(HUNDRED_MB, announce).await;
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: h\n  cluster: {{server: \"{url}\"}}\ncontexts:\n- name: hostile\n  context: {{cluster: h, user: u}}\nusers:\n- name: u\n  user: {{}}\ncurrent-context: hostile\n"
        );
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&kc).unwrap();
        let mut set = agentops::cluster::ClusterSet::from_kubeconfig(kubeconfig, "test".into());
        set.response_limit = 1 << 20;
        let client = set.client("hostile").await.unwrap();
        let started = Instant::now();
        let err = agentops::cluster::resolve(&client, "pods", None).await.unwrap_err().to_string();
        assert!(err.contains("more than 1.0 MiB") && err.contains("limits.response_bytes"), "{err}");
        assert!(err.contains("API server of context hostile"), "{err}");
        // the body was not read (announced) or read only to the limit (streamed), once
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent < 16 << 20, "the client read {sent} bytes of a 100 MB answer (announced: {announce})");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
}

/// Prometheus (at its own URL) answering 100 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_answer_of_100_mb_is_refused_unread() {
    use agentops::cluster::metrics::{Endpoint, query};
    for announce in [true, false] {
        let (url, sent) = huge_server(HUNDRED_MB, announce).await;
        let err = query(&Endpoint::Url(url), "up", None, None).await.unwrap_err().to_string();
        assert!(err.contains("answered 200 OK: it sent more than 64.0 MiB"), "{err}");
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent < 80 << 20, "read {sent} bytes (announced: {announce})");
    }
}

/// A model endpoint answering 100 MB: one clear error, through the real async-openai client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_answer_of_100_mb_is_refused_unread() {
    use agentops::llm::{ChatRequest, LlmClient, LlmSettings, Message, OpenAiClient};
    for announce in [true, false] {
        let (url, sent) = huge_server(HUNDRED_MB, announce).await;
        let settings = LlmSettings::new(&format!("{url}/v1"), "m");
        let client = OpenAiClient::with_key(&settings, "").unwrap();
        let req = ChatRequest { model: "m".into(), messages: vec![Message::user("hi")], ..ChatRequest::default() };
        let err = client.complete(req).await.unwrap_err().to_string();
        assert!(err.contains("the model endpoint sent more than 16.0 MiB"), "{err}");
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent < 32 << 20, "read {sent} bytes (announced: {announce})");
    }
}

/// An agentops run, with its peak memory (its own or any kustomize it ran, whichever was
/// larger: wait4 reports the maximum resident set of the child and its reaped children).
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    max_rss_mb: f64,
    wall: Duration,
}

/// Forks agentops from a small Python process and reports wait4's peak memory of it. Not
/// spawned from the test binary itself: Linux counts the memory of the process a child was
/// spawned from (the test binary, with every other test's threads) in the child's peak.
const MEASURE: &str = "import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n_, status, ru = os.wait4(pid, 0)\nopen(sys.argv[1], 'w').write(str(ru.ru_maxrss))\nsys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 255)\n";

fn agentops_measured(args: &[&str]) -> Measured {
    use std::io::{Read, Seek};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let rss = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(MEASURE)
        .arg(rss.path())
        .arg(env!("CARGO_BIN_EXE_agentops"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("AGENTOPS_CACHE_DIR")
        .env_remove("OPENAI_API_KEY")
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let wall = started.elapsed();
    let text = |f: &mut std::fs::File| {
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let kb: f64 = std::fs::read_to_string(rss.path()).unwrap().trim().parse().unwrap();
    Measured {
        code: status.code().map_or(-1, |c| if c == 255 { -1 } else { c }),
        stdout: text(&mut out),
        stderr: text(&mut err),
        max_rss_mb: kb / 1024.0,
        wall,
    }
}

fn write(root: &Path, rel: &str, text: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A deployable app: a base with a Deployment and the overlays given, each overlay's
/// kustomization taking `extra` resources.
fn app(root: &Path, name: &str, overlays: &[(&str, &[&str])]) {
    write(
        root,
        &format!("apps/{name}/base/kustomization.yaml"),
        "resources:\n- deployment.yaml\n- networkpolicy.yaml\n",
    );
    write(
        root,
        &format!("apps/{name}/base/networkpolicy.yaml"),
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  labels: {{app.kubernetes.io/name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{app: {name}}}}}\n  policyTypes: [Ingress]\n"
        ),
    );
    write(
        root,
        &format!("apps/{name}/base/deployment.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app.kubernetes.io/name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      securityContext: {{runAsNonRoot: true}}\n      containers:\n      - name: {name}\n        image: nginx:1.27\n        resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}\n        readinessProbe: {{exec: {{command: [/ready]}}}}\n        livenessProbe: {{exec: {{command: [/live]}}}}\n        securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true}}\n      topologySpreadConstraints:\n      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {{matchLabels: {{app: {name}}}}}}}\n"
        ),
    );
    for (env, extra) in overlays {
        let mut k = "resources:\n- ../../base\n".to_string();
        for e in *extra {
            k.push_str(&format!("- {e}\n"));
        }
        write(root, &format!("apps/{name}/overlays/{env}/kustomization.yaml"), k);
    }
}

/// Nine levels of anchors, each alias list nine wide: 9^9 strings once expanded.
fn bomb() -> String {
    let mut s = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n".to_string();
    s.push_str("  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in levels.windows(2) {
        s.push_str(&format!("  {}: &{} [{}]\n", w[1], w[1], vec![format!("*{}", w[0]); 9].join(",")));
    }
    s
}

fn finding<'a>(v: &'a Value, check: &str, file: &str) -> Option<&'a Value> {
    v["findings"].as_array()?.iter().find(|f| f["check"] == check && f["file"] == file)
}

/// The hostile repo: each hostile file is one finding with file and line, the run stays
/// small and short, and the healthy app's overlays are still built and checked.
#[test]
fn a_hostile_repo_is_findings_not_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    app(root, "good", &[("dev", &[]), ("prod", &[])]);
    app(root, "bomb", &[("dev", &["bomb.yaml"])]);
    write(root, "apps/bomb/overlays/dev/bomb.yaml", bomb());
    app(root, "big", &[("dev", &["big.yaml"])]);
    app(root, "latin", &[("dev", &["configmap.yaml"])]);
    write(
        root,
        "apps/latin/overlays/dev/configmap.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n".as_slice(),
    );
    app(root, "links", &[("dev", &["loop.yaml"])]);
    app(root, "fifo", &[("dev", &["pipe.yaml"])]);
    app(root, "churn", &[("dev", &["configmap.yaml"])]);
    write(
        root,
        "apps/churn/overlays/dev/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: churn\n",
    );
    // two kustomizations that reference each other, referenced by nothing else
    write(root, "platform/a/kustomization.yaml", "resources:\n- ../b\n");
    write(root, "platform/b/kustomization.yaml", "resources:\n- ../a\n");
    git_init(root);
    // what is not committed: 50 MB generated here, a symlink loop, a FIFO
    {
        use std::io::Write;
        let f = std::fs::File::create(root.join("apps/big/overlays/dev/big.yaml")).unwrap();
        let mut w = std::io::BufWriter::new(f);
        w.write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n").unwrap();
        let line = format!("  k: \"{}\"\n", "x".repeat(1000));
        for i in 0..50_000 {
            w.write_all(line.replacen("k:", &format!("k{i}:"), 1).as_bytes()).unwrap();
        }
    }
    let links = root.join("apps/links/overlays/dev");
    std::os::unix::fs::symlink(links.join("loop2.yaml"), links.join("loop.yaml")).unwrap();
    std::os::unix::fs::symlink(links.join("loop.yaml"), links.join("loop2.yaml")).unwrap();
    let fifo = root.join("apps/fifo/overlays/dev/pipe.yaml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // a file replaced again and again while agentops reads the repo: every version is new
    // (a counter), each one whole (written aside, then renamed over the file)
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let path = root.join("apps/churn/overlays/dev/configmap.yaml");
        let aside = root.join("apps/churn/configmap.next");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: churn\ndata:\n  n: \"{i}\"\n");
                if std::fs::write(&aside, text).is_ok() {
                    let _ = std::fs::rename(&aside, &path);
                }
                std::thread::yield_now();
            }
            i
        })
    };

    let cache = tempfile::tempdir().unwrap();
    let run = agentops_measured(&[
        "validate",
        "--repo",
        root.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    stop.store(true, Ordering::Relaxed);
    let versions = churn.join().unwrap();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    let f = |check: &str, file: &str| {
        finding(&v, check, file).unwrap_or_else(|| panic!("no {check} finding on {file}: {:#}", v["findings"])).clone()
    };
    let message = |x: &Value| x["message"].as_str().unwrap_or_default().to_string();

    // the bomb: refused at its line, before kustomize
    let bomb = f("yaml-syntax", "apps/bomb/overlays/dev/bomb.yaml");
    assert!(message(&bomb).contains("excessive aliasing"), "{bomb}");
    assert!(bomb["line"].as_u64().is_some_and(|l| (7..=14).contains(&l)), "{bomb}");
    let built = f("kustomize-build", "apps/bomb/overlays/dev/bomb.yaml");
    assert!(message(&built).contains("input-limit"), "{built}");
    // 50 MB: over the per-file limit, not read
    let big = f("yaml-syntax", "apps/big/overlays/dev/big.yaml");
    assert!(message(&big).contains("over the 16.0 MiB per-file limit") && big["line"] == 1, "{big}");
    f("kustomize-build", "apps/big/overlays/dev/big.yaml");
    // invalid UTF-8: the line of the bad byte
    let latin = f("yaml-syntax", "apps/latin/overlays/dev/configmap.yaml");
    assert!(message(&latin).contains("not UTF-8") && latin["line"] == 4, "{latin}");
    // a symlink loop and a FIFO: unreadable, named, and nothing hangs
    let link = f("yaml-syntax", "apps/links/overlays/dev/loop.yaml");
    assert!(message(&link).to_lowercase().contains("symbolic links"), "{link}");
    let pipe = f("yaml-syntax", "apps/fifo/overlays/dev/pipe.yaml");
    assert!(message(&pipe).contains("FIFO"), "{pipe}");
    // the cycle: said as such, at the reference that closes it
    let cycle = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| message(x).contains("reference each other"))
        .unwrap_or_else(|| panic!("no cycle finding: {:#}", v["findings"]));
    assert!(cycle["file"].as_str().is_some_and(|p| p.starts_with("platform/")) && cycle["line"] == 2, "{cycle}");
    assert!(message(cycle).contains("platform/a -> platform/b -> platform/a"), "{cycle}");
    // the churning file: a finding that it changed (while read, or while built)
    let churned = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["file"] == "apps/churn/overlays/dev/configmap.yaml" && message(x).contains("changed"))
        .unwrap_or_else(|| panic!("no finding on the changing file: {:#}", v["findings"]));
    assert!(churned["line"].is_u64() || churned["check"] == "kustomize-build", "{churned}");

    // the healthy app is built and checked all the same
    let s = &v["summary"];
    assert!(s["overlays_built"].as_u64() >= Some(2), "{s}");
    assert!(s["objects"].as_u64() >= Some(4), "both overlays' Deployment and NetworkPolicy: {s}");
    for env in ["dev", "prod"] {
        let overlay = format!("apps/good/overlays/{env}");
        assert!(
            !v["findings"].as_array().unwrap().iter().any(|x| x["overlay"] == overlay.as_str()),
            "the good app has no findings: {:#}",
            v["findings"]
        );
    }
    // bounded: memory of agentops and every kustomize it ran, and time
    assert!(run.max_rss_mb < 200.0, "peak RSS {:.0} MB", run.max_rss_mb);
    assert!(run.wall < Duration::from_secs(120), "{:?}", run.wall);
    eprintln!(
        "hostile repo: peak RSS {:.1} MB, {:.2} s ({versions} versions of the changing file)",
        run.max_rss_mb,
        run.wall.as_secs_f64()
    );
}

/// kustomize itself is bounded: one that hangs is stopped at the time limit (its whole
/// process group), one that grows is stopped by the memory rlimit (the real kubectl, fed a
/// bomb from outside the repo, which agentops never reads), each failing its overlay alone
/// with a finding that names the limit; the other overlays are built.
#[test]
fn kustomize_runs_are_bounded_in_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    app(&root, "good", &[("dev", &[])]);
    app(&root, "slow", &[("dev", &[])]);
    app(&root, "heavy", &[("dev", &[])]);
    // what a remote base could bring: a bomb agentops does not see
    let hidden = dir.path().join("hidden");
    write(&hidden, "kustomization.yaml", "resources:\n- bomb.yaml\n");
    write(&hidden, "bomb.yaml", bomb());
    let kubectl = agentops::kustomize::find_program("kubectl").expect("kubectl (scripts/setup-tools)");
    let wrapper = dir.path().join("kustomize-wrapper");
    write(
        dir.path(),
        "kustomize-wrapper",
        format!(
            "#!/bin/sh\ncase \"$2\" in\n  */apps/slow/*) exec sleep 60 ;;\n  */apps/heavy/*) exec {k} kustomize {h} ;;\nesac\nexec {k} kustomize \"$2\"\n",
            k = kubectl.display(),
            h = hidden.display()
        ),
    );
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let validate = |limits: &str| {
        write(&root, ".agentops.yaml", format!("kustomize: {}\nlimits: {limits}\n", wrapper.display()));
        let run = agentops_measured(&["validate", "--repo", root.to_str().unwrap(), "--no-cache", "--format", "json"]);
        let v: Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
        (run, v)
    };
    let message_on = |v: &Value, overlay: &str| -> String {
        let f = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["overlay"] == overlay && f["check"] == "kustomize-build");
        let f = f.unwrap_or_else(|| panic!("no build finding on {overlay}: {:#}", v["findings"]));
        assert_eq!(f["file"], format!("{overlay}/kustomization.yaml"), "{f}");
        f["message"].as_str().unwrap().to_string()
    };

    // time: the hanging one is stopped after 10 s, its `sleep` with it
    let (run, v) = validate("{kustomize_seconds: 10, kustomize_memory_mb: 192}");
    let m = message_on(&v, "apps/slow/overlays/dev");
    assert!(
        m.contains("(time-limit)") && m.contains("stopped after 10 s") && m.contains("limits.kustomize_seconds"),
        "{m}"
    );
    assert!(run.wall < Duration::from_secs(40), "a hung kustomize held the run for {:?}", run.wall);
    // memory: the real kubectl dies at its rlimit, long before the machine's memory
    let m = message_on(&v, "apps/heavy/overlays/dev");
    assert!(m.contains("(memory-limit)") && m.contains("192 MiB") && m.contains("limits.kustomize_memory_mb"), "{m}");
    assert!(run.max_rss_mb < 400.0, "peak RSS {:.0} MB under a 192 MiB limit", run.max_rss_mb);
    // and the good overlay is built and checked
    assert!(
        !v["findings"].as_array().unwrap().iter().any(|f| f["overlay"] == "apps/good/overlays/dev"),
        "{:#}",
        v["findings"]
    );
    assert_eq!(v["summary"]["overlays_built"], 1, "{}", v["summary"]);
    eprintln!("bounded kustomize: peak RSS {:.1} MB, {:.2} s", run.max_rss_mb, run.wall.as_secs_f64());
}

/// A repo whose only kustomizations reference each other is not "nothing to validate": the
/// loop is the finding, at the reference that closes it.
#[test]
fn kustomizations_in_a_loop_are_reported_as_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a/kustomization.yaml", "resources:\n- ../b\n");
    write(root, "b/kustomization.yaml", "# b\nresources:\n- ../a\n");
    write(root, "self/kustomization.yaml", "resources:\n- .\n");
    let run = agentops_measured(&["validate", "--repo", root.to_str().unwrap(), "--no-cache", "--format", "json"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let found: Vec<(String, u64, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!((found[0].0.as_str(), found[0].1), ("b/kustomization.yaml", 3), "{found:#?}");
    assert!(found[0].2.contains("two kustomizations reference each other (a -> b -> a)"), "{found:#?}");
    assert_eq!((found[1].0.as_str(), found[1].1), ("self/kustomization.yaml", 2), "{found:#?}");
    assert!(found[1].2.contains("a kustomization refers to itself (self -> self)"), "{found:#?}");
}
