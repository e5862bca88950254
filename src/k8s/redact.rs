//! The one redactor every output passes through. It removes Secret values from objects
//! (`data`, `stringData`, and the last-applied annotation that may copy them) and scrubs any
//! secret value it has learned from free text (messages, snippets, kustomize errors).

use std::collections::BTreeSet;
use std::sync::RwLock;

use base64::Engine as _;
use serde_json::Value;

pub const REDACTED: &str = "<redacted>";
/// The password of a URL's userinfo (`redis://:PASSWORD@host`, `postgres://app:PASSWORD@db`),
/// wherever such a URL appears: ConfigMaps carry connection strings too.
static URL_PASSWORD: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@<>]*:)(?P<password>[^\s@/<>]+)@").ok()
});
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Shorter values are still redacted in objects but not scrubbed from free text: short
/// values such as a username `admin` would mangle every name that contains them.
const MIN_SCRUB_LEN: usize = 8;

#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<BTreeSet<String>>,
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Remembers a secret value so it is scrubbed from any text.
    pub fn learn(&self, value: &str) {
        let v = value.trim();
        if v.len() >= MIN_SCRUB_LEN
            && let Ok(mut s) = self.secrets.write()
        {
            s.insert(v.to_string());
        }
    }

    /// Learns every value of a Secret object (and of Secrets inside a List), decoded and
    /// encoded, and the password of every URL with one in any object (a ConfigMap's
    /// connection string), so it is scrubbed wherever it appears alone.
    pub fn learn_object(&self, obj: &Value) {
        if let Some(items) = obj.get("items").and_then(Value::as_array) {
            items.iter().for_each(|i| self.learn_object(i));
        }
        self.learn_url_passwords(obj);
        if !is_secret(obj) {
            return;
        }
        if let Some(data) = obj.get("data").and_then(Value::as_object) {
            for v in data.values().filter_map(Value::as_str) {
                self.learn(v);
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v.trim())
                    && let Ok(text) = String::from_utf8(bytes)
                {
                    self.learn_text_lines(&text);
                }
            }
        }
        if let Some(data) = obj.get("stringData").and_then(Value::as_object) {
            for v in data.values().filter_map(Value::as_str) {
                self.learn_text_lines(v);
                self.learn(&base64::engine::general_purpose::STANDARD.encode(v));
            }
        }
    }

    /// Learns a secret text and each of its lines (a multi-line secret file may be echoed a
    /// line at a time), and the value part of `KEY=VALUE` lines.
    pub fn learn_text_lines(&self, text: &str) {
        self.learn(text);
        for line in text.lines() {
            self.learn(line);
            if let Some((_, v)) = line.split_once('=') {
                self.learn(v);
            }
        }
    }

    fn learn_url_passwords(&self, v: &Value) {
        match v {
            Value::String(s) if s.contains("://") => {
                if let Some(re) = URL_PASSWORD.as_ref() {
                    re.captures_iter(s).for_each(|c| self.learn(&c["password"]));
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.learn_url_passwords(x)),
            Value::Object(m) => m.values().for_each(|x| self.learn_url_passwords(x)),
            _ => {}
        }
    }

    /// Replaces every learned secret value in `text`, and the password of every URL that
    /// carries one.
    pub fn scrub(&self, text: &str) -> String {
        let text = match URL_PASSWORD.as_ref() {
            Some(re) if text.contains("://") => re.replace_all(text, format!("${{head}}{REDACTED}@")).into_owned(),
            _ => text.to_string(),
        };
        let Ok(secrets) = self.secrets.read() else {
            return text;
        };
        let mut out = text;
        // longest first, so a value that contains another is replaced whole
        let mut sorted: Vec<&String> = secrets.iter().filter(|s| out.contains(s.as_str())).collect();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in sorted {
            out = out.replace(s.as_str(), REDACTED);
        }
        out
    }

    /// Redacts a JSON value in place: Secret objects anywhere in it lose their values, and
    /// every string is scrubbed.
    pub fn redact_value(&self, v: &mut Value) {
        redact_objects(v);
        self.scrub_strings(v);
    }

    fn scrub_strings(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                let scrubbed = self.scrub(s);
                if scrubbed != *s {
                    *s = scrubbed;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.scrub_strings(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.scrub_strings(x)),
            _ => {}
        }
    }
}

fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a == "v1")
}

/// Removes secret values from every Secret object found anywhere inside `v` (a Secret's
/// `data`/`stringData` values and its last-applied annotation; keys stay visible).
pub fn redact_objects(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("kind").and_then(Value::as_str) == Some("Secret") {
                for field in ["data", "stringData"] {
                    if let Some(Value::Object(d)) = m.get_mut(field) {
                        d.values_mut().for_each(|x| *x = Value::String(REDACTED.into()));
                    }
                }
                if let Some(Value::Object(a)) = m.get_mut("metadata").and_then(|md| md.get_mut("annotations"))
                    && let Some(x) = a.get_mut(LAST_APPLIED)
                {
                    *x = Value::String(REDACTED.into());
                }
            }
            m.values_mut().for_each(redact_objects);
        }
        Value::Array(a) => a.iter_mut().for_each(redact_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_passwords_are_scrubbed_and_the_rest_of_the_url_kept() {
        let r = Redactor::new();
        for (text, want) in [
            ("REDIS_URL=redis://:CANARY3pw@redis.data:6379/0", "REDIS_URL=redis://:<redacted>@redis.data:6379/0"),
            (
                "postgres://app:s3cret@db:5432/app?sslmode=require",
                "postgres://app:<redacted>@db:5432/app?sslmode=require",
            ),
            ("a: amqp://u:p@mq, b: https://x:y@h/p", "a: amqp://u:<redacted>@mq, b: https://x:<redacted>@h/p"),
        ] {
            assert_eq!(r.scrub(text), want);
            assert_eq!(r.scrub(&r.scrub(text)), want, "scrubbing twice changes nothing");
        }
        for untouched in [
            "user:pass",
            "http://host:8080/path",
            "https://user@host/path",
            "git@github.com:org/repo.git",
            "ghcr.io/acme/app:1.0",
            "redis.data.svc.cluster.local:6379",
        ] {
            assert_eq!(r.scrub(untouched), untouched);
        }
        // learned from any object, the password is scrubbed where it appears alone
        let cm = serde_json::json!({"kind": "ConfigMap", "data": {"URL": "redis://:LongCanary42@redis:6379"}});
        r.learn_object(&cm);
        assert_eq!(r.scrub("auth failed for LongCanary42"), "auth failed for <redacted>");
        let mut v = serde_json::json!({"kind": "ConfigMap", "data": {"URL": "redis://:LongCanary42@redis:6379"}});
        r.redact_value(&mut v);
        assert_eq!(v["data"]["URL"], "redis://:<redacted>@redis:6379");
    }

    #[test]
    fn secrets_never_survive() {
        let canary = "canary-5f1e2d";
        let enc = base64::engine::general_purpose::STANDARD.encode(canary);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {LAST_APPLIED: format!("{{\"data\":{{\"p\":\"{enc}\"}}}}")}},
            "data": {"p": enc}, "stringData": {"q": "other-secret-9"}});
        let r = Redactor::new();
        r.learn_object(&secret);
        let mut out =
            json!({"objects": [secret], "message": format!("bad value {canary} and {enc} and other-secret-9")});
        r.redact_value(&mut out);
        let text = out.to_string();
        assert!(!text.contains(canary) && !text.contains(&enc) && !text.contains("other-secret-9"), "{text}");
        assert_eq!(out["objects"][0]["data"]["p"], REDACTED);
        assert!(out["objects"][0]["data"].get("p").is_some(), "keys stay");
        assert!(text.contains("bad value <redacted>"));
    }

    #[test]
    fn short_values_not_scrubbed_from_text() {
        let r = Redactor::new();
        r.learn("ab");
        assert_eq!(r.scrub("about"), "about");
    }
}
