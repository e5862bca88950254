//! Renderers for validation reports: text for people (grouped by app, colour on a TTY),
//! JSON (one object), and SARIF 2.1.0 for code scanning.

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub mod create;
pub mod drift;
pub mod harmonize;
pub mod migrate;

use serde_json::{Value, json};

use crate::config::Severity;
use crate::workflows::validate::{CHECKS, Finding, ValidationReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

/// Terminal styling; all empty when colour is off.
struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
    fn severity(&self, s: Severity) -> String {
        match s {
            Severity::Error => self.paint("1;31", "error"),
            Severity::Warning => self.paint("1;33", "warning"),
            Severity::Info => self.paint("1;34", "info"),
        }
    }
}

pub fn render(report: &ValidationReport, format: Format, color: bool) -> String {
    match format {
        Format::Text => text(report, color),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&json_value(report)).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Sarif => {
            let mut s = serde_json::to_string_pretty(&sarif(report)).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// `{"findings":[...],"summary":{...}}` with every finding field present (null when absent).
pub fn json_value(report: &ValidationReport) -> Value {
    json!({ "findings": report.findings, "summary": report.summary })
}

fn location(f: &Finding) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.clone(),
        _ => "(repo)".into(),
    }
}

fn text(report: &ValidationReport, color: bool) -> String {
    let st = Style { on: color };
    let mut out = String::new();
    let mut groups: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        groups.entry(f.app.as_deref().unwrap_or("(no app)")).or_default().push(f);
    }
    for (app, findings) in &groups {
        let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
        let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
        let _ = writeln!(out, "{} ({}, {})", st.paint("1", app), count(errors, "error"), count(warnings, "warning"));
        for f in findings {
            let scope = match (&f.env, &f.object) {
                (Some(e), Some(o)) => format!(" [{e}] {o}:"),
                (Some(e), None) => format!(" [{e}]"),
                (None, Some(o)) => format!(" {o}:"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} {} {}{} {}",
                st.severity(f.severity),
                st.paint("2", &format!("{}:", f.check)),
                location(f),
                scope,
                f.message
            );
        }
        out.push('\n');
    }
    let s = &report.summary;
    let verdict = if report.has_errors() { st.paint("1;31", "FAILED") } else { st.paint("1;32", "OK") };
    let _ = writeln!(
        out,
        "{verdict}: {}, {}. Overlays: {} checked, {} built, {} failed, {} skipped (offline); {} objects; {} files; {} Argo CD applications. kustomize: {} runs, {} cached.",
        count(s.errors, "error"),
        count(s.warnings, "warning"),
        s.overlays,
        s.overlays_built,
        s.overlays_failed,
        s.overlays_skipped,
        s.objects,
        s.files,
        s.argocd_applications,
        s.kustomize_runs,
        s.cache_hits
    );
    out
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn rule_text(id: &str) -> &'static str {
    match id {
        "yaml-syntax" => "YAML files parse",
        "kustomize-build" => "Every overlay builds with kustomize",
        "schema" => "Objects match the strict Kubernetes or CRD schema",
        "required-labels" => "Objects carry the required labels",
        "resource-limits" => "Containers declare cpu and memory limits",
        "image-tag" => "Images are pinned (no :latest, no untagged)",
        "network-policy" => "Every workload is selected by a NetworkPolicy",
        "argocd-path" => "Argo CD Applications point at existing paths",
        _ => "agentops check",
    }
}

fn sarif(report: &ValidationReport) -> Value {
    let rules: Vec<Value> =
        CHECKS.iter().map(|id| json!({"id": id, "name": id, "shortDescription": {"text": rule_text(id)}})).collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": f.file.clone().unwrap_or_else(|| ".".into())}}});
            if let Some(line) = f.line {
                loc["physicalLocation"]["region"] = json!({"startLine": line});
            }
            let mut msg = f.message.clone();
            if let Some(o) = &f.object {
                msg = format!("{o}: {msg}");
            }
            if let Some(ov) = &f.overlay {
                msg = format!("{msg} (overlay {ov})");
            }
            json!({"ruleId": f.check, "level": level, "message": {"text": msg}, "locations": [loc]})
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "agentops", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results
        }]
    })
}
