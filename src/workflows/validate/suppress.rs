//! Suppressions with reasons. On an object, the annotation `agentops.dev/ignore` holds one
//! or more `check-id: reason` entries (one per line, or separated by `;`); in
//! `.agentops.yaml`, `policies: suppressions:` entries name a check (glob), optionally app,
//! env, kind and name globs, a reason and a last day. A suppression without a reason, with
//! an unknown check or a bad date is itself a finding and suppresses nothing; an expired one
//! stops suppressing (and says so).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Finding, catalog};
use crate::config::{CONFIG_FILE, PathPattern, Severity, Suppression};
use jiff::civil::Date;

pub const ANNOTATION: &str = "agentops.dev/ignore";

/// A finding that a suppression hid, with why and by what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    pub reason: String,
    /// `annotation` or `.agentops.yaml:LINE`.
    pub suppressed_by: String,
}

/// One entry of an object's annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationEntry {
    pub check: String,
    pub reason: Option<String>,
}

/// The entries of an `agentops.dev/ignore` value.
pub fn parse_annotation(value: &str) -> Vec<AnnotationEntry> {
    value
        .split(['\n', ';'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once(':') {
            Some((check, reason)) => AnnotationEntry {
                check: check.trim().to_string(),
                reason: Some(reason.trim().to_string()).filter(|r| !r.is_empty()),
            },
            None => AnnotationEntry { check: e.to_string(), reason: None },
        })
        .collect()
}

/// What is wrong with an annotation entry, if anything: (severity, message).
pub fn annotation_problem(e: &AnnotationEntry) -> Option<(Severity, String)> {
    if !catalog::known(&e.check) {
        return Some((
            Severity::Warning,
            format!(
                "{ANNOTATION} names {:?}, which is no check id; it suppresses nothing (docs/validate.md lists the ids)",
                e.check
            ),
        ));
    }
    if e.reason.is_none() {
        return Some((
            Severity::Error,
            format!(
                "{ANNOTATION} suppresses {} without a reason: write \"{}: why it is acceptable\"",
                e.check, e.check
            ),
        ));
    }
    None
}

/// A configured suppression ready to match, or the finding that says why it cannot be used.
pub struct Rule {
    check: PathPattern,
    app: Option<PathPattern>,
    env: Option<PathPattern>,
    kind: Option<PathPattern>,
    name: Option<PathPattern>,
    reason: String,
    pub line: Option<u32>,
}

/// Lines of `.agentops.yaml`'s suppression entries, for findings about them.
fn entry_lines(config_text: Option<&str>) -> Vec<u32> {
    let Some(text) = config_text else { return Vec::new() };
    let Ok(docs) = crate::config::yaml::parse_documents(text) else { return Vec::new() };
    let Some(doc) = docs.first() else { return Vec::new() };
    let n = doc.value.pointer("/policies/suppressions").and_then(Value::as_array).map_or(0, Vec::len);
    (0..n).map(|i| doc.line_of(&format!("/policies/suppressions/{i}"))).collect()
}

fn config_finding(severity: Severity, line: Option<u32>, message: String) -> Finding {
    Finding {
        check: "suppression".into(),
        severity,
        file: Some(CONFIG_FILE.into()),
        line,
        overlay: None,
        app: None,
        env: None,
        object: None,
        message,
        also: Vec::new(),
    }
}

/// The usable rules of `.agentops.yaml` (given its text, for lines) on day `today`
/// (YYYY-MM-DD), and the findings about the others.
pub fn rules(entries: &[Suppression], config_text: Option<&str>, today: &str) -> (Vec<Rule>, Vec<Finding>) {
    let lines = entry_lines(config_text);
    let today: Option<Date> = today.parse().ok();
    let mut out = Vec::new();
    let mut findings = Vec::new();
    for (i, s) in entries.iter().enumerate() {
        let line = lines.get(i).copied();
        let what = format!("suppression of {}", s.check);
        let Some(reason) = s.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
            findings.push(config_finding(
                Severity::Error,
                line,
                format!("{what} has no reason: add `reason:` saying why the finding is acceptable; it suppresses nothing until then"),
            ));
            continue;
        };
        let pattern = |p: &Option<String>| p.as_deref().map(PathPattern::new).transpose();
        let compiled =
            (PathPattern::new(&s.check), pattern(&s.app), pattern(&s.env), pattern(&s.kind), pattern(&s.name));
        let (Ok(check), Ok(app), Ok(env), Ok(kind), Ok(name)) = compiled else {
            findings.push(config_finding(Severity::Error, line, format!("{what} has a pattern that does not compile")));
            continue;
        };
        let literal = !s.check.contains(['*', '?', '[', '{']);
        if literal && !catalog::known(&s.check) {
            findings.push(config_finding(
                Severity::Warning,
                line,
                format!(
                    "{what}: {:?} is no check id, so it suppresses nothing (docs/validate.md lists the ids)",
                    s.check
                ),
            ));
            continue;
        }
        if let Some(expires) = &s.expires {
            let Ok(last) = expires.parse::<Date>() else {
                findings.push(config_finding(
                    Severity::Error,
                    line,
                    format!(
                        "{what}: expires {expires:?} is not a date (YYYY-MM-DD); it suppresses nothing until fixed"
                    ),
                ));
                continue;
            };
            if today.is_some_and(|t| t > last) {
                findings.push(config_finding(
                    Severity::Warning,
                    line,
                    format!("{what} expired on {expires}: its findings are reported again; renew it with a reason or fix them"),
                ));
                continue;
            }
        }
        out.push(Rule { check, app, env, kind, name, reason: reason.to_string(), line });
    }
    (out, findings)
}

/// Kind and name of a finding's object (`Kind/ns/name` or `Kind/name`).
fn kind_name(object: Option<&str>) -> (Option<&str>, Option<&str>) {
    match object {
        Some(o) => (o.split('/').next(), o.rsplit('/').next()),
        None => (None, None),
    }
}

impl Rule {
    pub fn matches(&self, f: &Finding) -> bool {
        let (kind, name) = kind_name(f.object.as_deref());
        let opt = |p: &Option<PathPattern>, v: Option<&str>| p.as_ref().is_none_or(|p| v.is_some_and(|v| p.matches(v)));
        self.check.matches(&f.check)
            && opt(&self.app, f.app.as_deref())
            && opt(&self.env, f.env.as_deref())
            && opt(&self.kind, kind)
            && opt(&self.name, name)
    }

    pub fn suppress(&self, f: Finding) -> Suppressed {
        let by = match self.line {
            Some(l) => format!("{CONFIG_FILE}:{l}"),
            None => CONFIG_FILE.to_string(),
        };
        Suppressed { finding: f, reason: self.reason.clone(), suppressed_by: by }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_entries() {
        let e = parse_annotation("run-as-non-root: the image needs root until 2.0; host-port\nno-such-check: x\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            AnnotationEntry { check: "run-as-non-root".into(), reason: Some("the image needs root until 2.0".into()) }
        );
        assert_eq!(annotation_problem(&e[0]), None);
        assert_eq!(annotation_problem(&e[1]).map(|p| p.0), Some(Severity::Error), "no reason");
        assert_eq!(annotation_problem(&e[2]).map(|p| p.0), Some(Severity::Warning), "unknown id");
        assert!(
            annotation_problem(&AnnotationEntry { check: "rego/acme.labels".into(), reason: Some("x".into()) })
                .is_none()
        );
    }

    #[test]
    fn configured_rules_reasons_dates_and_globs() {
        let text = "policies:\n  suppressions:\n  - {check: host-port, app: edge-*, reason: the LB needs it}\n  - {check: run-as-non-root}\n  - {check: ingress-tls, reason: r, expires: 2020-01-01}\n  - {check: ingress-tls, reason: r, expires: 2099-02-30}\n  - {check: rego/*, kind: Deployment, reason: r, expires: 2099-12-31}\n";
        let c = crate::config::Config::parse(text).unwrap();
        let (rules, findings) = rules(&c.policies.suppressions, Some(text), "2026-06-01");
        assert_eq!(rules.len(), 2, "{findings:?}");
        let lines: Vec<(Severity, Option<u32>)> = findings.iter().map(|f| (f.severity, f.line)).collect();
        assert_eq!(lines, vec![(Severity::Error, Some(4)), (Severity::Warning, Some(5)), (Severity::Error, Some(6))]);
        assert!(findings[1].message.contains("expired on 2020-01-01"));
        let f = |check: &str, app: &str, object: &str| Finding {
            check: check.into(),
            severity: Severity::Error,
            file: None,
            line: None,
            overlay: None,
            app: Some(app.into()),
            env: Some("prod".into()),
            object: Some(object.into()),
            message: String::new(),
            also: Vec::new(),
        };
        assert!(rules[0].matches(&f("host-port", "edge-gw", "Deployment/edge/gw")));
        assert!(!rules[0].matches(&f("host-port", "shop", "Deployment/edge/gw")));
        assert!(rules[1].matches(&f("rego/acme.labels", "shop", "Deployment/shop/web")));
        assert!(!rules[1].matches(&f("rego/acme.labels", "shop", "Service/shop/web")));
        assert_eq!(rules[0].suppress(f("host-port", "edge-gw", "Deployment/gw")).suppressed_by, ".agentops.yaml:3");
    }
}
