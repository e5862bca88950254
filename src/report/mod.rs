//! Renderers for validation reports: text for people (grouped by app, colour on a TTY),
//! JSON (one object), SARIF 2.1.0 for code scanning, and JUnit XML for CI systems.

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub(crate) mod create;
pub(crate) mod drift;
pub(crate) mod harmonize;
pub(crate) mod migrate;

use serde_json::{Value, json};

use crate::config::Severity;
use crate::workflows::validate::{CATALOG, Finding, Suppressed, ValidationReport, catalog};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Junit,
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

/// Renders a report; suppressed findings are listed too when `show_suppressed`.
pub fn render(report: &ValidationReport, format: Format, color: bool, show_suppressed: bool) -> String {
    match format {
        Format::Text => text(report, color, show_suppressed),
        Format::Json => {
            let mut v = json_value(report);
            if show_suppressed {
                v["suppressed"] = json!(report.suppressed);
            }
            let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Sarif => {
            let mut s = serde_json::to_string_pretty(&sarif(report, show_suppressed)).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Junit => junit(report, show_suppressed),
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

fn text(report: &ValidationReport, color: bool, show_suppressed: bool) -> String {
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
            let scope = scope(f);
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
    if show_suppressed && !report.suppressed.is_empty() {
        let _ = writeln!(out, "{}", st.paint("1", "suppressed"));
        for x in &report.suppressed {
            let f = &x.finding;
            let scope = scope(f);
            let _ = writeln!(
                out,
                "  {} {} {}{} {} (suppressed by {}: {})",
                f.severity.as_str(),
                st.paint("2", &format!("{}:", f.check)),
                location(f),
                scope,
                f.message,
                x.suppressed_by,
                x.reason
            );
        }
        out.push('\n');
    }
    let s = &report.summary;
    let verdict = if report.has_errors() { st.paint("1;31", "FAILED") } else { st.paint("1;32", "OK") };
    // remote bases and Helm charts are never fetched: such overlays are not built
    let skipped = if s.overlays_skipped > 0 {
        format!(", {} not built (remote base or Helm chart, not fetched)", s.overlays_skipped)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{verdict}: {}, {}. Overlays: {} checked, {} built, {} failed{skipped}; {} objects; {} files; {} Argo CD applications. kustomize: {} runs, {} cached.",
        count(s.errors, "error"),
        count(s.warnings, "warning"),
        s.overlays,
        s.overlays_built,
        s.overlays_failed,
        s.objects,
        s.files,
        s.argocd_applications,
        s.kustomize_runs,
        s.cache_hits
    );
    if !s.clusters_checked.is_empty() {
        let reached = s.clusters_checked.len() - s.clusters_unreachable.len();
        let _ = write!(
            out,
            "Clusters: {reached} of {} checked for the StorageClasses, CRDs and IngressClasses the overlays need ({})",
            s.clusters_checked.len(),
            s.clusters_checked.join(", ")
        );
        if s.clusters_unreachable.is_empty() {
            out.push_str(".\n");
        } else {
            let _ = writeln!(out, "; not reached: {}.", s.clusters_unreachable.join(", "));
        }
    }
    if s.suppressed > 0 && !show_suppressed {
        let _ = writeln!(out, "{} suppressed (--show-suppressed lists them with their reasons).", s.suppressed);
    } else if s.suppressed > 0 {
        let _ = writeln!(out, "{} suppressed.", s.suppressed);
    }
    out
}

/// ` [env] Kind/ns/name:`, or ` [dev, staging, prod] ...` for a finding several overlays
/// share (the object as the first overlay renders it).
fn scope(f: &Finding) -> String {
    let envs = f.envs().join(", ");
    match (envs.is_empty(), &f.object) {
        (false, Some(o)) => format!(" [{envs}] {o}:"),
        (false, None) => format!(" [{envs}]"),
        (true, Some(o)) => format!(" {o}:"),
        (true, None) => String::new(),
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn sarif_result(f: &Finding) -> Value {
    let mut loc =
        json!({"physicalLocation": {"artifactLocation": {"uri": f.file.clone().unwrap_or_else(|| ".".into())}}});
    if let Some(line) = f.line {
        loc["physicalLocation"]["region"] = json!({"startLine": line});
    }
    let mut msg = f.message.clone();
    if let Some(o) = &f.object {
        msg = format!("{o}: {msg}");
    }
    let overlays: Vec<&str> =
        f.overlay.iter().chain(f.also.iter().filter_map(|o| o.overlay.as_ref())).map(String::as_str).collect();
    match overlays.as_slice() {
        [] => {}
        [ov] => msg = format!("{msg} (overlay {ov})"),
        many => msg = format!("{msg} (overlays {})", many.join(", ")),
    }
    json!({"ruleId": f.check, "level": level(f.severity), "message": {"text": msg}, "locations": [loc]})
}

fn sarif(report: &ValidationReport, show_suppressed: bool) -> Value {
    let mut rules: Vec<Value> = CATALOG
        .iter()
        .map(|c| json!({"id": c.id, "name": c.id, "shortDescription": {"text": c.summary}, "help": {"text": c.help}}))
        .collect();
    // each Rego package is a rule of its own
    let mut rego: Vec<&str> = report
        .findings
        .iter()
        .chain(report.suppressed.iter().map(|s| &s.finding))
        .map(|f| f.check.as_str())
        .filter(|c| c.starts_with("rego/"))
        .collect();
    rego.sort();
    rego.dedup();
    for id in rego {
        let help = catalog::info("rego").map_or("", |c| c.help);
        rules.push(json!({"id": id, "name": id, "shortDescription": {"text": format!("Rego policy package {}", &id[5..])}, "help": {"text": help}}));
    }
    let mut results: Vec<Value> = report.findings.iter().map(sarif_result).collect();
    if show_suppressed {
        results.extend(report.suppressed.iter().map(|x| {
            let mut r = sarif_result(&x.finding);
            r["suppressions"] = json!([{"kind": if x.suppressed_by.starts_with("agentops.dev/") { "inSource" } else { "external" }, "justification": x.reason}]);
            r
        }));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "agentops", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results
        }]
    })
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one test suite per app (findings without an app in `(repo)`), one test case
/// per finding, named by check, object and location. Errors are failures; warnings and
/// notes pass with their text in system-out; suppressed findings (with
/// `--show-suppressed`) are skipped, with their reason. A run with no finding is one
/// passing case, so CI shows the check ran.
fn junit(report: &ValidationReport, show_suppressed: bool) -> String {
    let mut suites: BTreeMap<&str, Vec<(&Finding, Option<&Suppressed>)>> = BTreeMap::new();
    for f in &report.findings {
        suites.entry(f.app.as_deref().unwrap_or("(repo)")).or_default().push((f, None));
    }
    if show_suppressed {
        for x in &report.suppressed {
            suites.entry(x.finding.app.as_deref().unwrap_or("(repo)")).or_default().push((&x.finding, Some(x)));
        }
    }
    let s = &report.summary;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let cases: usize = suites.values().map(Vec::len).sum::<usize>().max(1);
    let _ = writeln!(
        out,
        "<testsuites name=\"agentops validate\" tests=\"{cases}\" failures=\"{}\" errors=\"0\">",
        s.errors
    );
    if suites.is_empty() {
        let _ = writeln!(
            out,
            "  <testsuite name=\"agentops validate\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\">"
        );
        let _ = writeln!(
            out,
            "    <testcase classname=\"agentops.validate\" name=\"{} overlays, {} objects: no findings\"/>",
            s.overlays, s.objects
        );
        out.push_str("  </testsuite>\n");
    }
    for (app, items) in &suites {
        let failures = items.iter().filter(|(f, x)| x.is_none() && f.severity == Severity::Error).count();
        let skipped = items.iter().filter(|(_, x)| x.is_some()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
            xml(app),
            items.len()
        );
        for (f, sup) in items {
            let mut name = String::new();
            let envs = f.envs();
            if !envs.is_empty() {
                name.push_str(&format!("[{}] ", envs.join(", ")));
            }
            if let Some(o) = &f.object {
                name.push_str(&format!("{o} "));
            }
            name.push_str(&format!("at {}", location(f)));
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                xml(&f.check),
                xml(&name),
                xml(f.file.as_deref().unwrap_or("."))
            );
            if let Some(line) = f.line {
                let _ = write!(out, " line=\"{line}\"");
            }
            out.push_str(">\n");
            match (sup, f.severity) {
                (Some(x), _) => {
                    let _ = writeln!(
                        out,
                        "      <skipped message=\"{}\"/>",
                        xml(&format!("suppressed by {}: {}", x.suppressed_by, x.reason))
                    );
                }
                (None, Severity::Error) => {
                    let _ = writeln!(
                        out,
                        "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                        xml(&f.check),
                        xml(&f.message),
                        xml(&f.message)
                    );
                }
                (None, sev) => {
                    let _ = writeln!(out, "      <system-out>{}: {}</system-out>", sev.as_str(), xml(&f.message));
                }
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
