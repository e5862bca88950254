//! Simulated Prometheus for mock clusters. Series come from fixture objects of
//! `kind: MockMetrics` (`apiVersion: agentops.dev/v1alpha1`, never served as objects):
//!
//! ```yaml
//! series:
//!   - name: http_error_ratio
//!     labels: {app: auth-service, namespace: auth}
//!     by_revision: {application: auth-service-prod-west, values: {a3f8d2c: 0.87, default: 0.001}}
//!   - name: up
//!     labels: {job: api}
//!     value: 1
//! ```
//!
//! A `by_revision` value follows the revision the named Argo CD Application has deployed
//! (`status.sync.revision`, and for past times the `status.history` entry live then), so a
//! rollback can watch the error ratio fall. Queries whose expression is a plain selector
//! (`metric{label="value",label!="x"}`) are answered over the Prometheus HTTP API, through
//! the API server's service proxy, for any Prometheus service the fixture declares.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::Store;
use super::util::parse_time;

/// The simulated Prometheus behind a cluster's service proxy and its `/metrics`. Series are
/// the cluster's own MockMetrics; Applications are looked up in `stores` (the cluster's own
/// first, then the rest of its fleet).
pub struct MockPrometheus {
    stores: Vec<Store>,
}

impl MockPrometheus {
    pub fn new(stores: Vec<Store>) -> MockPrometheus {
        MockPrometheus { stores }
    }

    fn series(&self) -> Result<Vec<SeriesDef>, String> {
        self.stores.first().map_or(Ok(Vec::new()), |s| series_of(&s.mock_metrics()))
    }

    fn application(&self, name: &str) -> Option<Value> {
        self.stores.iter().find_map(|s| {
            s.list("argoproj.io/v1alpha1", "Application", None)
                .into_iter()
                .find(|a| a.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        })
    }

    /// Whether a Service is a Prometheus: named like one or labelled as one.
    fn is_prometheus(&self, namespace: &str, service: &str) -> bool {
        let Some(svc) = self.stores.first().and_then(|s| s.get("v1", "Service", Some(namespace), service)) else {
            return false;
        };
        let label = |k: &str| {
            svc.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1")))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        service.contains("prometheus")
            || label("app.kubernetes.io/name") == "prometheus"
            || label("app") == "prometheus"
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl super::ServiceProxy for MockPrometheus {
    fn handle(
        &self,
        namespace: &str,
        service: &str,
        _port: &str,
        path_and_query: &str,
    ) -> Option<(u16, String, Vec<u8>)> {
        if !self.is_prometheus(namespace, service) {
            return None;
        }
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let (code, body) = match self.series() {
            Ok(series) => answer(&series, path, query, now(), &|n| self.application(n)),
            Err(e) => (500, json!({"status": "error", "errorType": "internal", "error": e})),
        };
        Some((code, "application/json".into(), body.to_string().into_bytes()))
    }

    fn metrics_text(&self) -> Option<String> {
        self.series().ok().map(|s| exposition(&s, &|n| self.application(n)))
    }
}

/// One declared series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDef {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: SeriesValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    Fixed(f64),
    /// application name, revision prefix -> value ("default" for any other revision)
    ByRevision {
        application: String,
        values: BTreeMap<String, f64>,
    },
}

/// Reads the series of MockMetrics objects; errors name the object and the series.
pub fn series_of(objects: &[Value]) -> Result<Vec<SeriesDef>, String> {
    let mut out = Vec::new();
    for obj in objects {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
        for (i, s) in obj.get("series").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("MockMetrics {name} series[{i}]");
            let metric = s.get("name").and_then(Value::as_str).ok_or_else(|| format!("{at}: missing name"))?;
            let labels = s
                .get("labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            let value = match (s.get("value"), s.get("by_revision")) {
                (Some(v), None) => {
                    SeriesValue::Fixed(v.as_f64().ok_or_else(|| format!("{at}: value is not a number"))?)
                }
                (None, Some(b)) => {
                    let application = b
                        .get("application")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("{at}: by_revision needs application"))?
                        .to_string();
                    let values = b
                        .get("values")
                        .and_then(Value::as_object)
                        .ok_or_else(|| format!("{at}: by_revision needs values"))?
                        .iter()
                        .map(|(k, v)| {
                            v.as_f64()
                                .map(|f| (k.clone(), f))
                                .ok_or_else(|| format!("{at}: value for {k} is not a number"))
                        })
                        .collect::<Result<_, _>>()?;
                    SeriesValue::ByRevision { application, values }
                }
                _ => return Err(format!("{at}: needs exactly one of value or by_revision")),
            };
            out.push(SeriesDef { name: metric.to_string(), labels, value });
        }
    }
    Ok(out)
}

/// A plain selector: metric name and label matchers (`=` or `!=`).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<(String, bool, String)>,
}

/// Parses `metric{a="b",c!="d"}`, `metric` or `{__name__="metric"}`.
pub fn parse_selector(expr: &str) -> Result<Selector, String> {
    let e = expr.trim();
    let (name, rest) = match e.find('{') {
        Some(i) => (e[..i].trim(), &e[i..]),
        None => (e, ""),
    };
    let valid_name = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !name.is_empty() && !valid_name(name) {
        return Err(format!("only plain selectors are supported (metric{{label=\"value\"}}), not {expr:?}"));
    }
    let mut sel = Selector { name: (!name.is_empty()).then(|| name.to_string()), matchers: Vec::new() };
    if rest.is_empty() {
        return if sel.name.is_some() { Ok(sel) } else { Err("empty selector".into()) };
    }
    let inner = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| format!("unbalanced braces in {expr:?}"))?;
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let label: String = std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let negate = match (chars.next(), chars.peek()) {
            (Some('='), _) => false,
            (Some('!'), Some('=')) => {
                chars.next();
                true
            }
            _ => return Err(format!("unsupported matcher after {label:?} in {expr:?} (use = or !=)")),
        };
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('"') {
            return Err(format!("expected a quoted value for {label:?} in {expr:?}"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.extend(chars.next()),
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("unterminated string in {expr:?}")),
            }
        }
        if label.is_empty() {
            return Err(format!("missing label name in {expr:?}"));
        }
        if label == "__name__" && !negate {
            sel.name = Some(value);
        } else {
            sel.matchers.push((label, negate, value));
        }
    }
    if sel.name.is_none() && sel.matchers.is_empty() {
        return Err("empty selector".into());
    }
    Ok(sel)
}

impl Selector {
    fn matches(&self, s: &SeriesDef) -> bool {
        self.name.as_ref().is_none_or(|n| n == &s.name)
            && self.matchers.iter().all(|(k, neg, v)| (s.labels.get(k).map_or("", String::as_str) == v) != *neg)
    }
}

/// Which revision an Application had deployed at a time: the latest history entry deployed
/// at or before `t` (Unix seconds), else `status.sync.revision`.
pub fn revision_at(app: &Value, t: Option<f64>) -> Option<String> {
    if let Some(t) = t {
        let mut best: Option<(f64, String)> = None;
        for h in app.pointer("/status/history").and_then(Value::as_array).into_iter().flatten() {
            let (Some(at), Some(rev)) = (
                h.get("deployedAt").and_then(Value::as_str).and_then(parse_time).map(|t| t as f64),
                h.get("revision").and_then(Value::as_str),
            ) else {
                continue;
            };
            if at <= t && best.as_ref().is_none_or(|b| at >= b.0) {
                best = Some((at, rev.to_string()));
            }
        }
        if let Some((_, rev)) = best {
            return Some(rev);
        }
    }
    app.pointer("/status/sync/revision").and_then(Value::as_str).map(str::to_string)
}

/// The value of a series at time `t`; `app` finds an Application by name.
pub fn value_at(s: &SeriesDef, t: Option<f64>, app: &dyn Fn(&str) -> Option<Value>) -> Option<f64> {
    match &s.value {
        SeriesValue::Fixed(v) => Some(*v),
        SeriesValue::ByRevision { application, values } => {
            let rev = app(application).and_then(|a| revision_at(&a, t));
            let hit = rev.as_deref().and_then(|r| {
                values
                    .iter()
                    .filter(|(k, _)| k.as_str() != "default" && r.starts_with(k.as_str()))
                    .max_by_key(|(k, _)| k.len())
                    .map(|(_, v)| *v)
            });
            hit.or_else(|| values.get("default").copied())
        }
    }
}

fn labels_json(s: &SeriesDef) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("__name__".into(), Value::String(s.name.clone()));
    for (k, v) in &s.labels {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// Answers a Prometheus HTTP API request (`api/v1/query` or `api/v1/query_range` with its
/// query string) over the series; (status code, JSON body).
pub fn answer(
    series: &[SeriesDef],
    path: &str,
    query: &str,
    now: f64,
    app: &dyn Fn(&str) -> Option<Value>,
) -> (u16, Value) {
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let bad = |m: String| (400, json!({"status": "error", "errorType": "bad_data", "error": m}));
    let Some(expr) = params.get("query") else { return bad("missing query parameter".into()) };
    let sel = match parse_selector(expr) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let num = |k: &str| params.get(k).and_then(|v| v.parse::<f64>().ok().or_else(|| parse_time(v).map(|t| t as f64)));
    let matching = series.iter().filter(|s| sel.matches(s));
    match path.trim_start_matches('/') {
        "api/v1/query" => {
            let t = num("time").unwrap_or(now);
            let result: Vec<Value> = matching
                .filter_map(|s| {
                    value_at(s, Some(t), app).map(|v| json!({"metric": labels_json(s), "value": [t, fmt_value(v)]}))
                })
                .collect();
            (200, json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        }
        "api/v1/query_range" => {
            let (Some(start), Some(end), Some(step)) = (num("start"), num("end"), num("step")) else {
                return bad("query_range needs start, end and step".into());
            };
            if step <= 0.0 || end < start || (end - start) / step > 11000.0 {
                return bad("exceeded maximum resolution of 11,000 points per timeseries, or bad step".into());
            }
            let result: Vec<Value> = matching
                .map(|s| {
                    let mut values = Vec::new();
                    let mut t = start;
                    while t <= end + 1e-9 {
                        if let Some(v) = value_at(s, Some(t), app) {
                            values.push(json!([t, fmt_value(v)]));
                        }
                        t += step;
                    }
                    json!({"metric": labels_json(s), "values": values})
                })
                .collect();
            (200, json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        }
        other => {
            (404, json!({"status": "error", "errorType": "not_found", "error": format!("unknown endpoint {other}")}))
        }
    }
}

/// The series in the Prometheus text exposition format, for a real Prometheus to scrape.
pub fn exposition(series: &[SeriesDef], app: &dyn Fn(&str) -> Option<Value>) -> String {
    let mut out = String::new();
    let mut typed = std::collections::BTreeSet::new();
    for s in series {
        let Some(v) = value_at(s, None, app) else { continue };
        if typed.insert(s.name.clone()) {
            out.push_str(&format!("# TYPE {} gauge\n", s.name));
        }
        let labels: Vec<String> =
            s.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect();
        out.push_str(&format!("{}{{{}}} {}\n", s.name, labels.join(","), fmt_value(v)));
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<SeriesDef> {
        let objs: Vec<Value> = vec![
            json!({"apiVersion": "agentops.dev/v1alpha1", "kind": "MockMetrics", "metadata": {"name": "m"}, "series": [
                {"name": "http_error_ratio", "labels": {"app": "auth-service", "namespace": "auth"},
                 "by_revision": {"application": "auth-service-prod-west", "values": {"a3f8d2c": 0.87, "default": 0.001}}},
                {"name": "http_error_ratio", "labels": {"app": "web", "namespace": "web"}, "value": 0.002},
                {"name": "up", "labels": {"job": "api"}, "value": 1}
            ]}),
        ];
        series_of(&objs).unwrap()
    }

    fn app(name: &str) -> Option<Value> {
        (name == "auth-service-prod-west").then(|| {
            json!({"status": {"sync": {"revision": "a3f8d2c1b2"}, "history": [
                {"id": 1, "revision": "f2e9c1a77", "deployedAt": "2026-11-25T10:00:00Z"},
                {"id": 2, "revision": "a3f8d2c1b2", "deployedAt": "2026-11-27T09:00:00Z"}
            ]}})
        })
    }

    #[test]
    fn instant_query_follows_the_deployed_revision() {
        let s = fixture();
        let now = parse_time("2026-11-27T10:00:00Z").unwrap() as f64;
        let (code, body) =
            answer(&s, "api/v1/query", "query=http_error_ratio%7Bapp%3D%22auth-service%22%7D", now, &app);
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["data"]["result"][0]["value"][1], "0.87");
        // before the bad deploy the older revision was live
        let before = parse_time("2026-11-26T10:00:00Z").unwrap() as f64;
        let (_, body) = answer(
            &s,
            "api/v1/query",
            &format!("query=http_error_ratio{{app=\"auth-service\"}}&time={before}"),
            now,
            &app,
        );
        assert_eq!(body["data"]["result"][0]["value"][1], "0.001");
        let (_, body) = answer(&s, "api/v1/query", "query=http_error_ratio{app!=\"auth-service\"}", now, &app);
        assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
        assert_eq!(body["data"]["result"][0]["metric"]["app"], "web");
    }

    #[test]
    fn range_query_and_errors() {
        let s = fixture();
        let (code, body) = answer(&s, "api/v1/query_range", "query=up&start=100&end=130&step=10", 0.0, &app);
        assert_eq!(code, 200);
        assert_eq!(body["data"]["result"][0]["values"].as_array().unwrap().len(), 4);
        let (code, body) = answer(&s, "api/v1/query", "query=rate(up[5m])", 0.0, &app);
        assert_eq!(code, 400);
        assert!(body["error"].as_str().unwrap().contains("plain selectors"));
        assert!(series_of(&[json!({"series": [{"name": "x"}]})]).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn exposition_format() {
        let text = exposition(&fixture(), &app);
        assert!(text.contains("# TYPE http_error_ratio gauge\n"));
        assert!(text.contains("http_error_ratio{app=\"auth-service\",namespace=\"auth\"} 0.87\n"));
        assert!(text.contains("up{job=\"api\"} 1\n"));
    }
}
