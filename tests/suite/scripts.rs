//! The scripts a newcomer runs first say what they do: scripts/demo prints a line per phase
//! with the elapsed time before anything slow starts and lets cargo's progress through;
//! scripts/setup-tools says what it checks or installs, and installs Prometheus only when asked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_demo_script_says_what_it_does_in_order_and_shows_the_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    // cargo stands in for itself only so the test does not compile a release build: it
    // prints what cargo prints and leaves an executable that echoes its arguments
    let cargo = script(
        work.path(),
        "cargo",
        &format!(
            "echo \"cargo $*\"\necho '   Compiling agentops v0.1.0' >&2\nmkdir -p {t}/release\nprintf '#!/bin/sh\\necho \"agentops $*\"\\n' > {t}/release/agentops\nchmod +x {t}/release/agentops",
            t = target.display()
        ),
    );
    let out = Command::new(root.join("scripts/demo"))
        .arg("--keep-running")
        .env("CARGO", &cargo)
        .env("CARGO_TARGET_DIR", &target)
        .env("PATH", format!("{}:{}", root.join(".tools/bin").display(), std::env::var("PATH").unwrap()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("demo [0s] 1/3 tools: kubectl with kustomize v5"), "first line at once: {stdout}");
    let pos = |needle: &str| {
        lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in {stdout}"))
    };
    let (tools, kubectl, build, cargo_ran, run, demo) = (
        pos("1/3 tools"),
        pos("setup-tools ["),
        pos("2/3 build: cargo build --release, the first time: about 10 minutes on 2 cores"),
        lines.iter().position(|l| *l == "cargo build --release").expect("cargo ran"),
        pos("3/3 run: agentops demo"),
        pos("agentops demo --example examples/platform --keep-running"),
    );
    assert!(tools < kubectl && kubectl < build && build < cargo_ran && cargo_ran < run && run < demo, "{stdout}");
    assert!(stdout.contains("kubectl: Client Version"), "what setup-tools checked is shown: {stdout}");
    assert!(!stdout.contains("--quiet") && stderr.contains("Compiling agentops"), "cargo's progress shows: {stderr}");
    assert!(!stdout.to_lowercase().contains("prometheus"), "the demo does not install Prometheus: {stdout}");
    assert!(!stderr.to_lowercase().contains("prometheus"), "{stderr}");
}

#[test]
fn setup_tools_installs_prometheus_only_when_asked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/setup-tools")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("setup-tools [")), "a line per step with its time: {stdout}");
    assert!(!stdout.contains("prometheus"), "{stdout}");
    let test = std::fs::read_to_string(root.join("scripts/test")).unwrap();
    assert!(test.contains("scripts/setup-tools --with-prometheus"), "the suite, which has the Prometheus test, asks");
    // the commands, not the header comment that names them
    let clippy = test.find("\ncargo clippy --all-targets -- -D warnings\n").expect("scripts/test runs clippy");
    assert!(test.find("\ncargo test ").is_some_and(|t| clippy < t), "clippy runs before the tests");
    let bad = Command::new(root.join("scripts/setup-tools")).arg("--wat").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
