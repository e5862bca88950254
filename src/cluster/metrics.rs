//! The Prometheus HTTP API client: instant and range queries, at a configured URL (over
//! reqwest) or through the cluster's API server service proxy
//! (`/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/api/v1/query`, over the cluster's
//! kube client, so its credentials and TLS settings apply).

use std::collections::BTreeMap;

use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a Prometheus answers.
#[derive(Clone)]
pub enum Endpoint {
    Url(String),
    ServiceProxy { client: Client, namespace: String, service: String, port: String },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Url(u) => write!(f, "{u}"),
            Endpoint::ServiceProxy { namespace, service, port, .. } => {
                write!(f, "service proxy {namespace}/{service}:{port}")
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricsError {
    #[error("Prometheus at {endpoint} unreachable: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("Prometheus at {endpoint} answered {status}: {message}")]
    Query { endpoint: String, status: String, message: String },
}

/// A range query's window, in Unix seconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    /// Resolution in seconds.
    pub step: f64,
}

/// One series with its samples: (unix seconds, value). An instant query gives one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Series {
    pub metric: BTreeMap<String, String>,
    pub values: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryResult {
    /// vector, matrix, scalar or string
    pub result_type: String,
    pub series: Vec<Series>,
}

impl QueryResult {
    /// The latest value of the first series, if any.
    pub fn first_value(&self) -> Option<f64> {
        self.series.first().and_then(|s| s.values.last()).map(|v| v.1)
    }
}

/// Runs an instant query (at `time`, default now) or, with `range`, a range query.
pub async fn query(
    endpoint: &Endpoint,
    expr: &str,
    time: Option<f64>,
    range: Option<Range>,
) -> Result<QueryResult, MetricsError> {
    let mut params: Vec<(&str, String)> = vec![("query", expr.to_string())];
    let path = match range {
        Some(r) => {
            params.push(("start", r.start.to_string()));
            params.push(("end", r.end.to_string()));
            params.push(("step", r.step.to_string()));
            "api/v1/query_range"
        }
        None => {
            if let Some(t) = time {
                params.push(("time", t.to_string()));
            }
            "api/v1/query"
        }
    };
    let name = format!("{endpoint:?}");
    let unreachable = |m: String| MetricsError::Unreachable { endpoint: name.clone(), message: m };
    let body = match endpoint {
        Endpoint::Url(base) => {
            let url = format!("{}/{path}", base.trim_end_matches('/'));
            let resp = reqwest::Client::new()
                .get(&url)
                .query(&params)
                .timeout(std::time::Duration::from_secs(15))
                .send()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status().to_string();
            let hint = "Narrow the query (a shorter range, a larger step, fewer series)";
            let body =
                crate::config::limits::read_body(resp, crate::config::limits::DEFAULT_RESPONSE_BYTES, "it", hint).await;
            let body = body.map_err(|e| match e {
                crate::config::limits::BodyLimitError::TooLarge(t) => {
                    MetricsError::Query { endpoint: name.clone(), status, message: t.to_string() }
                }
                crate::config::limits::BodyLimitError::Http(e) => unreachable(e.to_string()),
            })?;
            String::from_utf8_lossy(&body).into_owned()
        }
        Endpoint::ServiceProxy { client, namespace, service, port } => {
            let query: String = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
            let uri = format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path}?{query}");
            let req = http_get(&uri).map_err(unreachable)?;
            super::with_retry(|| client.request_text(req.clone())).await.map_err(|e| unreachable(e.to_string()))?
        }
    };
    parse_response(&name, &body)
}

fn http_get(uri: &str) -> Result<hyper::Request<Vec<u8>>, String> {
    hyper::Request::get(uri).body(Vec::new()).map_err(|e| e.to_string())
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a Prometheus HTTP API answer.
pub fn parse_response(endpoint: &str, body: &str) -> Result<QueryResult, MetricsError> {
    let err = |status: &str, m: String| MetricsError::Query {
        endpoint: endpoint.to_string(),
        status: status.to_string(),
        message: m,
    };
    let v: Value = serde_json::from_str(body)
        .map_err(|e| err("a non-JSON body", format!("{e}: {}", body.chars().take(200).collect::<String>())))?;
    if v.get("status").and_then(Value::as_str) != Some("success") {
        let kind = v.get("errorType").and_then(Value::as_str).unwrap_or("error");
        return Err(err(kind, v.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_string()));
    }
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    let result_type = data.get("resultType").and_then(Value::as_str).unwrap_or_default().to_string();
    let sample = |s: &Value| -> Option<(f64, f64)> {
        let a = s.as_array()?;
        let t = a.first()?.as_f64()?;
        let v = a.get(1)?.as_str()?.parse::<f64>().ok()?;
        Some((t, v))
    };
    let series = match result_type.as_str() {
        "vector" | "matrix" => data
            .get("result")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| Series {
                metric: r
                    .get("metric")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default(),
                values: match r.get("value") {
                    Some(s) => sample(s).into_iter().collect(),
                    None => {
                        r.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(sample).collect()
                    }
                },
            })
            .collect(),
        "scalar" => data
            .get("result")
            .and_then(sample)
            .map(|s| vec![Series { metric: BTreeMap::new(), values: vec![s] }])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(QueryResult { result_type, series })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_matrices_and_errors() {
        let v = parse_response("x", r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"app":"auth"},"value":[1700000000.5,"0.87"]}]}}"#).unwrap();
        assert_eq!(v.first_value(), Some(0.87));
        assert_eq!(v.series[0].metric["app"], "auth");
        let m = parse_response("x", r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2.5"]]}]}}"#).unwrap();
        assert_eq!(m.series[0].values, vec![(1.0, 1.0), (2.0, 2.5)]);
        let e = parse_response("x", r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#).unwrap_err();
        assert!(e.to_string().contains("bad_data") && e.to_string().contains("parse error"));
        assert!(parse_response("x", "<html>").is_err());
        assert_eq!(encode("a{b=\"c\"}"), "a%7Bb%3D%22c%22%7D");
    }
}
