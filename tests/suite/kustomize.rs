//! The kustomize engine: error classification with the real kustomize, and how the binary
//! is found.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use super::common::*;

#[test]
fn build_errors_are_classified_and_pinned() {
    let r = agentops(&["validate", "--repo", fixture("buildfail").to_str().unwrap(), "--no-cache", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let got: Vec<(String, String, Option<u64>, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "kustomize-build")
        .map(|f| {
            let msg = f["message"].as_str().unwrap();
            let class = msg.split_once('(').and_then(|(_, r)| r.split_once(')')).map_or("", |x| x.0).to_string();
            (
                f["overlay"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64(),
                class,
            )
        })
        .collect();
    let expect = [
        ("app/bad-yaml", "app/bad-yaml/bad.yaml", Some(5), "yaml"),
        ("app/duplicate", "app/duplicate/kustomization.yaml", Some(3), "duplicate-id"),
        ("app/helm", "app/helm/kustomization.yaml", Some(2), "helmCharts"),
        ("app/missing-dir", "app/missing-dir/kustomization.yaml", Some(2), "missing-file"),
        ("app/missing-file", "app/missing-file/kustomization.yaml", Some(4), "missing-file"),
        ("app/outside", "app/outside/kustomization.yaml", Some(3), "load-restrictor"),
        ("app/patch-target", "app/patch-target/patch.yaml", Some(1), "patch-target"),
        ("app/plugin", "app/plugin/fn.yaml", Some(1), "plugin"),
        ("app/unknown-field", "app/unknown-field/kustomization.yaml", Some(3), "invalid-kustomization"),
    ];
    let expect: Vec<(String, String, Option<u64>, String)> =
        expect.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), *c, d.to_string())).collect();
    assert_eq!(got, expect);
    let helm = v["findings"].as_array().unwrap().iter().find(|f| f["overlay"] == "app/helm").unwrap();
    assert_eq!(helm["severity"], "warning", "offline-only inputs are warnings, not crashes");
    assert_eq!(v["summary"]["kustomize_runs"], 8, "the Helm overlay is not run at all");
}

/// Writes an executable script.
fn script(path: &std::path::Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn built_names(stdout: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v["objects"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn kustomize_is_found_in_the_documented_order() {
    let bins = tempfile::tempdir().unwrap();
    let k = bins.path().join("k");
    let kc = bins.path().join("kc");
    std::fs::create_dir_all(&k).unwrap();
    std::fs::create_dir_all(&kc).unwrap();
    // stand-ins that show which one ran: `kustomize build DIR` vs `kubectl kustomize DIR`
    script(
        &k.join("kustomize"),
        "[ \"$1\" = build ] || exit 3\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-kustomize\\n'",
    );
    script(
        &kc.join("kubectl"),
        "[ \"$1\" = kustomize ] || exit 3\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-kubectl\\n'",
    );
    script(
        &bins.path().join("explicit"),
        "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-flag\\n'",
    );
    let repo = fixture("clean");
    let args = r#"{"overlay": "apps/web/overlays/dev"}"#;
    let call = |path: String, extra: &[&str]| {
        let mut a =
            vec!["tools", "call", "kustomize_build", "--args", args, "--repo", repo.to_str().unwrap(), "--no-cache"];
        a.extend_from_slice(extra);
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_agentops")).args(&a).env("PATH", path).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let both = format!("{}:{}", kc.display(), k.display());
    assert_eq!(built_names(&call(both.clone(), &[])), vec!["from-kustomize"], "kustomize on PATH before kubectl");
    assert_eq!(built_names(&call(kc.display().to_string(), &[])), vec!["from-kubectl"]);
    let explicit = bins.path().join("explicit");
    assert_eq!(built_names(&call(both, &["--kustomize", explicit.to_str().unwrap()])), vec!["from-flag"]);

    // with nothing on PATH, ./.tools/bin in the working directory or above the binary
    let lonely = tempfile::tempdir().unwrap();
    let exe = lonely.path().join("agentops");
    std::fs::copy(env!("CARGO_BIN_EXE_agentops"), &exe).unwrap();
    let out = std::process::Command::new(&exe)
        .args(["validate", "--repo", repo.to_str().unwrap(), "--no-cache"])
        .current_dir(lonely.path())
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kustomize not found") && err.contains("scripts/setup-tools"), "{err}");
    std::fs::create_dir_all(lonely.path().join(".tools/bin")).unwrap();
    script(
        &lonely.path().join(".tools/bin/kubectl"),
        "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-tools\\n'",
    );
    let out = std::process::Command::new(&exe)
        .args(["tools", "call", "kustomize_build", "--args", args, "--repo", repo.to_str().unwrap(), "--no-cache"])
        .current_dir(lonely.path())
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(built_names(&String::from_utf8_lossy(&out.stdout)), vec!["from-tools"]);
}

#[test]
fn config_names_the_binary() {
    let repo = copy_fixture("clean");
    let bin = repo.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin.join("my-kustomize"), "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: from-config\\n'");
    let cfg = std::fs::read_to_string(repo.path().join(".agentops.yaml")).unwrap();
    std::fs::write(repo.path().join(".agentops.yaml"), format!("{cfg}kustomize: bin/my-kustomize\n")).unwrap();
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "apps/web/overlays/dev"}"#,
        "--repo",
        repo.path().to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(built_names(&r.stdout), vec!["from-config"]);
}
