//! The HTTP face of a mock cluster: one axum fallback handler that routes Kubernetes API paths
//! itself (discovery, OpenAPI, version, resources and their subresources, watches, the service
//! proxy), negotiates the representations kubectl asks for (aggregated discovery, Table,
//! PartialObjectMetadata) and writes the audit log.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ServiceProxy;
use super::audit::{AuditLog, Record, User};
use super::openapi;
use super::resources::{self, Resource, ResourceSet};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{StoreError, deleted_status};
use super::store::{PatchType, Store, StoreEvent, WatchFrom, WriteOptions, in_namespace};
use super::table;
use super::util;

/// The Kubernetes version the mock reports.
pub const SERVER_VERSION: &str = "v1.35.0";

const DISCOVERY_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const MAX_BODY: usize = 64 << 20;

/// What every request of one cluster shares.
pub struct ServerState {
    pub name: String,
    pub store: Store,
    pub proxy: RwLock<Option<Arc<dyn ServiceProxy>>>,
    pub audit: Option<AuditLog>,
    /// Simulated network round trip, added before each answer.
    pub latency: Option<std::time::Duration>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

struct Req {
    method: Method,
    path: String,
    raw_query: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    peer: SocketAddr,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("1" | "true" | "True"))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn accepts(&self, g: &str, v: &str, as_: &str) -> bool {
        self.header("accept").is_some_and(|a| {
            a.split(',').any(|media| {
                let params: Vec<&str> = media.split(';').map(str::trim).collect();
                params.contains(&format!("g={g}").as_str())
                    && params.contains(&format!("v={v}").as_str())
                    && params.contains(&format!("as={as_}").as_str())
            })
        })
    }

    fn accepts_as(&self, as_: &str) -> bool {
        self.header("accept")
            .is_some_and(|a| a.split(',').any(|m| m.split(';').map(str::trim).any(|p| p == format!("as={as_}"))))
    }

    fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
    }

    /// fieldManager, else the User-Agent up to its first `/`, as the API server defaults it.
    fn manager(&self) -> String {
        if let Some(m) = self.param("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        match self.user_agent() {
            Some(ua) if !ua.is_empty() => ua.split('/').next().unwrap_or(ua).to_string(),
            _ => "unknown".to_string(),
        }
    }

    fn request_uri(&self) -> String {
        if self.raw_query.is_empty() { self.path.clone() } else { format!("{}?{}", self.path, self.raw_query) }
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query pairs; empty segments (kube-rs starts some queries with `&`) are skipped.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn json_response(code: u16, body: &Value) -> Response {
    json_response_with_type(code, body, "application/json")
}

fn json_response_with_type(code: u16, body: &Value, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, private"));
    resp
}

fn error_response(e: &StoreError) -> Response {
    json_response(e.code, &e.to_status())
}

fn plain(code: StatusCode, text: &'static str) -> Response {
    let mut resp = (code, text).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Answers one request, whatever its path.
pub async fn handle(state: Arc<ServerState>, peer: SocketAddr, req: Request) -> Response {
    if let Some(l) = state.latency {
        tokio::time::sleep(l).await;
    }
    let received = util::now_micros();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error_response(&StoreError::bad_request(format!("cannot read the request body: {e}"))),
    };
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let r = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parse_query(&raw_query),
        raw_query,
        headers: parts.headers,
        body,
        peer,
    };
    route(&state, &r, &received)
}

fn route(state: &Arc<ServerState>, r: &Req, received: &str) -> Response {
    let path = r.path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let set = state.store.resources();
    match segs.as_slice() {
        [] => json_response(200, &json!({"paths": root_paths(&set)})),
        ["version"] => json_response(200, &version()),
        ["healthz"] | ["readyz"] | ["livez"] => plain(StatusCode::OK, "ok"),
        ["metrics"] => {
            let handler = state.proxy.read().unwrap_or_else(|p| p.into_inner()).clone();
            let text = handler.and_then(|h| h.metrics_text()).unwrap_or_default();
            let mut resp = Response::new(Body::from(text));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        ["api"] => {
            if r.accepts("apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList") {
                json_response_with_type(200, &resources::aggregated(&set, true), DISCOVERY_V2)
            } else {
                let host = r.header("host").unwrap_or("127.0.0.1").to_string();
                json_response(200, &resources::api_versions(&host))
            }
        }
        ["apis"] => {
            if r.accepts("apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList") {
                json_response_with_type(200, &resources::aggregated(&set, false), DISCOVERY_V2)
            } else {
                json_response(200, &resources::api_group_list(&set))
            }
        }
        ["api", "v1"] => match resources::api_resource_list(&set, "", "v1") {
            Some(doc) => json_response(200, &doc),
            None => plain(StatusCode::NOT_FOUND, "404 page not found"),
        },
        ["apis", g] => match resources::api_group(&set, g) {
            Some(doc) => json_response(200, &doc),
            None => plain(StatusCode::NOT_FOUND, "404 page not found"),
        },
        ["apis", g, v] => match resources::api_resource_list(&set, g, v) {
            Some(doc) => json_response(200, &doc),
            None => plain(StatusCode::NOT_FOUND, "404 page not found"),
        },
        ["openapi", "v3"] => json_response(200, &openapi::index(&set)),
        // An empty OpenAPI v2 document (protobuf, as kubectl asks for it): kubectl then finds
        // no schema for any kind and falls back to its built-in types and to checking CRDs,
        // where a 404 would make `kubectl apply` of a CRD and its objects fail validation.
        ["openapi", "v2"] => {
            let mut resp = Response::new(Body::empty());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            );
            resp
        }
        ["openapi", "v3", "api", v] if set.has_group_version("", v) => {
            json_response(200, &openapi::document(&set, "", v))
        }
        ["openapi", "v3", "apis", g, v] if set.has_group_version(g, v) => {
            json_response(200, &openapi::document(&set, g, v))
        }
        ["api", "v1", rest @ ..] => resource_request(state, &set, r, "", "v1", rest, received),
        ["apis", g, v, rest @ ..] if set.has_group_version(g, v) => {
            resource_request(state, &set, r, g, v, rest, received)
        }
        _ => plain(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn root_paths(set: &ResourceSet) -> Vec<String> {
    let mut paths = vec!["/api".to_string(), "/api/v1".to_string(), "/apis".to_string()];
    for (g, vs) in set.groups() {
        if g.is_empty() {
            continue;
        }
        paths.push(format!("/apis/{g}"));
        for v in vs {
            paths.push(format!("/apis/{g}/{v}"));
        }
    }
    paths.extend(["/healthz", "/livez", "/openapi/v3", "/readyz", "/version"].map(String::from));
    paths
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": SERVER_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-12-17T00:00:00Z",
        "goVersion": "go1.25.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// What a resource path names.
struct Target {
    res: Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Routed {
    Resource(Box<Target>),
    Proxy { namespace: String, service: String, port: String, rest: String },
}

fn parse_target(set: &ResourceSet, group: &str, version: &str, rest: &[&str]) -> Option<Routed> {
    let namespaced_plural = |p: &str| set.by_plural(group, version, p).filter(|r| r.namespaced).cloned();
    if rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && let Some(res) = namespaced_plural(rest[2])
    {
        let ns = rest[1].to_string();
        if group.is_empty() && res.plural == "services" && rest.len() >= 5 && rest[4] == "proxy" {
            let (service, port) = match rest[3].split_once(':') {
                Some((s, p)) => (s.to_string(), p.to_string()),
                None => (rest[3].to_string(), String::new()),
            };
            return Some(Routed::Proxy { namespace: ns, service, port, rest: rest[5..].join("/") });
        }
        if rest.len() > 5 {
            return None;
        }
        return Some(Routed::Resource(Box::new(Target {
            res,
            namespace: Some(ns),
            name: rest.get(3).map(|s| s.to_string()),
            sub: rest.get(4).map(|s| s.to_string()),
        })));
    }
    let res = set.by_plural(group, version, rest.first()?)?.clone();
    if rest.len() > 3 || (res.namespaced && rest.len() > 1) {
        return None;
    }
    Some(Routed::Resource(Box::new(Target {
        res,
        namespace: None,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })))
}

fn verb_of(method: &Method, t: &Target, watch: bool) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    state: &Arc<ServerState>,
    set: &ResourceSet,
    r: &Req,
    group: &str,
    version: &str,
    rest: &[&str],
    received: &str,
) -> Response {
    let Some(routed) = parse_target(set, group, version, rest) else {
        return error_response(&StoreError::no_route());
    };
    let t = match routed {
        Routed::Proxy { namespace, service, port, rest } => return proxy(state, r, &namespace, &service, &port, &rest),
        Routed::Resource(t) => t,
    };
    let watch = r.flag("watch");
    let verb = verb_of(&r.method, &t, watch);
    let mut body_name: Option<String> = None;
    let result = serve(state, r, &t, watch, &mut body_name);
    let mutating = matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection");
    if mutating && let Some(audit) = &state.audit {
        let (code, failure) = match &result {
            Ok((code, _)) => (*code, None),
            Err(e) => (e.code, Some(e.to_status())),
        };
        let rec = Record {
            request_uri: r.request_uri(),
            verb: verb.to_string(),
            user: User::from_authorization(r.header("authorization")),
            source_ip: r.peer.ip().to_string(),
            user_agent: r.user_agent().map(str::to_string),
            resource: t.res.plural.clone(),
            namespace: t.namespace.clone(),
            name: t.name.clone().or(body_name),
            api_group: t.res.group.clone(),
            api_version: t.res.version.clone(),
            subresource: t.sub.clone(),
            failure,
            code,
            received: received.to_string(),
            completed: util::now_micros(),
        };
        audit.write(&rec.to_event(&state.name));
    }
    match result {
        Ok((_, resp)) => resp,
        Err(e) => error_response(&e),
    }
}

fn parse_body(r: &Req) -> Result<Value, StoreError> {
    if r.body.is_empty() {
        return Err(StoreError::bad_request("the request body is empty"));
    }
    let ct = r.header("content-type").unwrap_or_default();
    if ct.starts_with("application/vnd.kubernetes.protobuf") || ct.starts_with("application/cbor") {
        // kubectl's typed clients (`kubectl create namespace|deployment|configmap ...`) send
        // protobuf; the mock reads JSON and YAML only.
        return Err(StoreError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the mock API server reads JSON and YAML request bodies, not {ct}; \
                 use `kubectl apply -f` or `kubectl create -f` with a manifest instead"
            ),
        ));
    }
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            // YAML bodies (apply patches, hand-made requests).
            let text = String::from_utf8_lossy(&r.body);
            match crate::config::yaml::parse_values(&text) {
                Ok(mut docs) if docs.len() == 1 => Ok(docs.remove(0)),
                _ => Err(StoreError::bad_request(format!("the request body is neither JSON nor YAML: {json_err}"))),
            }
        }
    }
}

fn dry_run(r: &Req, body: Option<&Value>) -> Result<bool, StoreError> {
    let mut values: Vec<String> = r.query.iter().filter(|(k, _)| k == "dryRun").map(|(_, v)| v.clone()).collect();
    if let Some(b) = body.and_then(|b| b.get("dryRun")).and_then(Value::as_array) {
        values.extend(b.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for v in &values {
        if v != "All" {
            return Err(StoreError::invalid(
                &Resource { group: "meta.k8s.io".into(), kind: "DeleteOptions".into(), ..resources_placeholder() },
                "",
                &[("dryRun", "FieldValueNotSupported", format!("Unsupported value: {v:?}: supported values: \"All\""))],
            ));
        }
    }
    Ok(!values.is_empty())
}

fn resources_placeholder() -> Resource {
    Resource {
        group: String::new(),
        version: "v1".into(),
        kind: String::new(),
        plural: String::new(),
        singular: String::new(),
        namespaced: false,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: Vec::new(),
        status: false,
        scale: None,
        generation: false,
        returns_deleted: false,
        custom: false,
    }
}

fn selectors(r: &Req) -> Result<(LabelSelector, FieldSelector), StoreError> {
    let labels = LabelSelector::parse(r.param("labelSelector").unwrap_or_default()).map_err(StoreError::bad_request)?;
    let fields = FieldSelector::parse(r.param("fieldSelector").unwrap_or_default()).map_err(StoreError::bad_request)?;
    Ok((labels, fields))
}

/// Representations other than the object itself that the client asked for.
fn represent(state: &ServerState, r: &Req, t: &Target, value: Value, is_list: bool) -> Response {
    if r.accepts_as("Table") {
        let objects: Vec<Value> = if is_list {
            value.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
        } else {
            vec![value.clone()]
        };
        let rv = if is_list {
            value.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string()
        } else {
            state.store.resource_version().to_string()
        };
        let crd = crd_of(state, &t.res);
        let tbl = table::table(&t.res, &objects, &rv, r.param("includeObject").unwrap_or("Metadata"), crd.as_ref());
        return json_response(200, &tbl);
    }
    if r.accepts_as("PartialObjectMetadataList") || r.accepts_as("PartialObjectMetadata") {
        let partial = |o: &Value| {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
        };
        if is_list {
            let items: Vec<Value> =
                value.get("items").and_then(Value::as_array).into_iter().flatten().map(partial).collect();
            return json_response(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                        "metadata": value.get("metadata").cloned().unwrap_or(json!({})), "items": items}),
            );
        }
        return json_response(200, &partial(&value));
    }
    json_response(200, &value)
}

fn crd_of(state: &ServerState, res: &Resource) -> Option<Value> {
    if !res.custom {
        return None;
    }
    state.store.get(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        &format!("{}.{}", res.plural, res.group),
    )
}

type Served = Result<(u16, Response), StoreError>;

fn serve(state: &Arc<ServerState>, r: &Req, t: &Target, watch: bool, body_name: &mut Option<String>) -> Served {
    let store = &state.store;
    let res = &t.res;
    let ns = t.namespace.as_deref();
    if let Some(sub) = &t.sub
        && !((sub == "status" && res.status) || (sub == "scale" && res.scale.is_some()))
    {
        return Err(StoreError::no_route());
    }
    let write = |dry: bool| WriteOptions {
        manager: r.manager(),
        dry_run: dry,
        subresource: t.sub.clone(),
        force: r.flag("force"),
    };
    match (&r.method, &t.name) {
        (&Method::GET, _) if watch => {
            let (labels, mut fields) = selectors(r)?;
            if let Some(n) = &t.name {
                fields = FieldSelector::parse(&format!("metadata.name={n}")).map_err(StoreError::bad_request)?;
            }
            Ok((200, start_watch(state, r, t, labels, fields)?))
        }
        (&Method::GET, None) => {
            let (labels, fields) = selectors(r)?;
            let list = store.list_objects(res, ns, &labels, &fields);
            Ok((200, represent(state, r, t, list, true)))
        }
        (&Method::GET, Some(name)) => {
            if t.sub.as_deref() == Some("scale") {
                return Ok((200, json_response(200, &store.get_scale(res, ns, name)?)));
            }
            let obj = store.get_object(res, ns, name)?;
            Ok((200, represent(state, r, t, obj, false)))
        }
        (&Method::POST, None) => {
            if res.namespaced && ns.is_none() {
                return Err(StoreError::method_not_allowed());
            }
            let body = parse_body(r)?;
            *body_name = body.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string);
            let dry = dry_run(r, None)?;
            let created = store.create(res, ns, body, &write(dry))?;
            if body_name.is_none() {
                *body_name = created.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string);
            }
            Ok((201, json_response(201, &created)))
        }
        (&Method::PUT, Some(name)) => {
            let body = parse_body(r)?;
            let dry = dry_run(r, None)?;
            if t.sub.as_deref() == Some("scale") {
                let out = store.write_scale(res, ns, name, None, &body, &write(dry))?;
                return Ok((200, json_response(200, &out)));
            }
            let out = store.replace(res, ns, name, body, &write(dry))?;
            Ok((200, json_response(200, &out)))
        }
        (&Method::PATCH, Some(name)) => {
            let ct = r.header("content-type").unwrap_or_default();
            let Some(pt) = PatchType::from_content_type(ct) else {
                return Err(StoreError::unsupported_media_type(ct));
            };
            let body = parse_body(r)?;
            let dry = dry_run(r, None)?;
            let w = write(dry);
            if pt == PatchType::Apply && r.param("fieldManager").is_none_or(str::is_empty) {
                return Err(StoreError::invalid(
                    &Resource { group: "meta.k8s.io".into(), kind: "PatchOptions".into(), ..resources_placeholder() },
                    "",
                    &[("fieldManager", "FieldValueRequired", "Required value: is required for apply patch".into())],
                ));
            }
            if t.sub.as_deref() == Some("scale") {
                let out = store.write_scale(res, ns, name, Some(pt), &body, &w)?;
                return Ok((200, json_response(200, &out)));
            }
            let existed = store.get_object(res, ns, name).is_ok();
            let out = store.patch(res, ns, name, pt, &body, &w)?;
            let code = if existed { 200 } else { 201 };
            Ok((code, json_response(code, &out)))
        }
        (&Method::DELETE, Some(name)) => {
            let body = if r.body.is_empty() { None } else { parse_body(r).ok() };
            let dry = dry_run(r, body.as_ref())?;
            let pre = body.as_ref().and_then(|b| b.get("preconditions"));
            let gone = store.delete(res, ns, name, dry, pre)?;
            let out = if res.returns_deleted {
                gone
            } else {
                deleted_status(res, name, gone.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default())
            };
            Ok((200, json_response(200, &out)))
        }
        (&Method::DELETE, None) => {
            if res.namespaced && ns.is_none() {
                return Err(StoreError::method_not_allowed());
            }
            let body = if r.body.is_empty() { None } else { parse_body(r).ok() };
            let dry = dry_run(r, body.as_ref())?;
            let (labels, fields) = selectors(r)?;
            let out = store.delete_collection(res, ns, &labels, &fields, dry)?;
            Ok((200, json_response(200, &out)))
        }
        _ => Err(StoreError::method_not_allowed()),
    }
}

fn bookmark(res: &Resource, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}})
}

fn start_watch(
    state: &Arc<ServerState>,
    r: &Req,
    t: &Target,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Result<Response, StoreError> {
    let res = t.res.clone();
    let ns = t.namespace.clone();
    let send_initial = r.flag("sendInitialEvents");
    let bookmarks = r.flag("allowWatchBookmarks");
    let rv_param = r.param("resourceVersion").unwrap_or_default();
    let from = if send_initial || rv_param.is_empty() || rv_param == "0" {
        WatchFrom::Initial
    } else {
        match rv_param.parse::<u64>() {
            Ok(n) => WatchFrom::After(n),
            Err(_) => return Err(StoreError::bad_request(format!("invalid resource version: {rv_param:?}"))),
        }
    };
    let timeout = r
        .param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let table_accept = r.accepts_as("Table");
    let crd = crd_of(state, &res);
    let include = r.param("includeObject").unwrap_or("Metadata").to_string();
    let start = match state.store.watch(&res, ns.as_deref(), from) {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // An expired resourceVersion is an ERROR event on a 200 watch, as the server sends it.
            let line = format!("{}\n", json!({"type": "ERROR", "object": e.to_status()}));
            let mut resp = Response::new(Body::from(line));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(resp);
        }
        Err(e) => return Err(e),
    };
    let mut shutdown = state.shutdown.clone();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(64);
    let matches = move |o: &Value| labels.matches(o) && fields.matches(o);
    let render = move |ev_type: &str, obj: &Value| -> Bytes {
        let object = if table_accept {
            table::table(&res, std::slice::from_ref(obj), "", &include, crd.as_ref())
        } else {
            obj.clone()
        };
        Bytes::from(format!("{}\n", json!({"type": ev_type, "object": object})))
    };
    let res2 = t.res.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rv = match from {
            WatchFrom::After(n) => n,
            WatchFrom::Initial => 0,
        };
        // Objects the client currently sees as matching: selector changes turn into ADDED/DELETED.
        let mut visible: std::collections::BTreeSet<(String, String)> = std::collections::BTreeSet::new();
        let id = |o: &Value| {
            (
                o.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string(),
                o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
            )
        };
        for o in &start.current {
            if matches(o) {
                visible.insert(id(o));
            }
        }
        let mut out: Vec<Bytes> = Vec::new();
        for ev in &start.backlog {
            if let Some(line) = filter_event(ev, &matches, &mut visible, &id, &render) {
                out.push(line);
            }
            last_rv = last_rv.max(ev.resource_version);
        }
        if from == WatchFrom::Initial {
            last_rv = start.resource_version;
        }
        if send_initial && bookmarks {
            out.push(Bytes::from(format!("{}\n", bookmark(&res2, start.resource_version, true))));
        }
        for line in out {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let mut receiver = start.receiver;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = receiver.recv() => match ev {
                    Ok(ev) => {
                        if ev.resource_version <= last_rv
                            || !ev.is_of(&res2.group, &res2.kind)
                            || !in_namespace(&res2, &ev.object, ns.as_deref())
                        {
                            continue;
                        }
                        last_rv = ev.resource_version;
                        let mut ev = ev;
                        ev.object["apiVersion"] = json!(res2.api_version());
                        if let Some(line) = filter_event(&ev, &matches, &mut visible, &id, &render)
                            && tx.send(Ok(line)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let e = StoreError::expired("the watch fell behind; restart it from a fresh list");
                        let _ = tx.send(Ok(Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": e.to_status()}))))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    if tx.is_closed() {
                        return;
                    }
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(rx));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// The line to send for an event, given what the client saw match before.
fn filter_event(
    ev: &StoreEvent,
    matches: &impl Fn(&Value) -> bool,
    visible: &mut std::collections::BTreeSet<(String, String)>,
    id: &impl Fn(&Value) -> (String, String),
    render: &impl Fn(&str, &Value) -> Bytes,
) -> Option<Bytes> {
    use super::store::EventType;
    let key = id(&ev.object);
    let now = matches(&ev.object);
    let before = visible.contains(&key);
    let ty = match ev.event {
        EventType::Deleted => {
            visible.remove(&key);
            if now || before { "DELETED" } else { return None }
        }
        EventType::Added => {
            if !now {
                return None;
            }
            visible.insert(key);
            "ADDED"
        }
        EventType::Modified => match (before, now) {
            (true, true) => "MODIFIED",
            (false, true) => {
                visible.insert(key);
                "ADDED"
            }
            (true, false) => {
                visible.remove(&key);
                "DELETED"
            }
            (false, false) => return None,
        },
    };
    Some(render(ty, &ev.object))
}

fn proxy(state: &ServerState, r: &Req, namespace: &str, service: &str, port: &str, rest: &str) -> Response {
    let services = Resource {
        group: String::new(),
        version: "v1".into(),
        kind: "Service".into(),
        plural: "services".into(),
        namespaced: true,
        ..resources_placeholder()
    };
    if state.store.get("v1", "Service", Some(namespace), service).is_none() {
        return error_response(&StoreError::not_found(&services, service));
    }
    let mut query = r.raw_query.clone();
    let is_form = r.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if r.method == Method::POST && is_form && !r.body.is_empty() {
        let form = String::from_utf8_lossy(&r.body);
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&form);
    }
    let path_and_query = if query.is_empty() { format!("/{rest}") } else { format!("/{rest}?{query}") };
    let handler = state.proxy.read().unwrap_or_else(|p| p.into_inner()).clone();
    match handler.and_then(|h| h.handle(namespace, service, port, &path_and_query)) {
        Some((code, content_type, body)) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Ok(ct) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp
        }
        None => error_response(&StoreError::new(
            503,
            "ServiceUnavailable",
            format!("no endpoints available for service \"{service}\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = parse_query("&labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x");
        assert_eq!(q[0], ("labelSelector".into(), "app=web,tier in (a)".into()));
        assert_eq!(q[1], ("watch".into(), "1".into()));
        assert_eq!(q[2], ("x".into(), String::new()));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn targets() {
        let set = ResourceSet::default();
        let Some(Routed::Resource(t)) =
            parse_target(&set, "apps", "v1", &["namespaces", "shop", "deployments", "web", "scale"])
        else {
            panic!("no target");
        };
        assert_eq!(
            (t.namespace.as_deref(), t.name.as_deref(), t.sub.as_deref()),
            (Some("shop"), Some("web"), Some("scale"))
        );
        let Some(Routed::Resource(t)) = parse_target(&set, "", "v1", &["namespaces", "shop", "status"]) else {
            panic!("no target");
        };
        assert_eq!(
            (t.res.plural.as_str(), t.name.as_deref(), t.sub.as_deref()),
            ("namespaces", Some("shop"), Some("status"))
        );
        assert!(matches!(
            parse_target(
                &set,
                "",
                "v1",
                &["namespaces", "mon", "services", "prometheus:9090", "proxy", "api", "v1", "query"]
            ),
            Some(Routed::Proxy { .. })
        ));
        assert!(parse_target(&set, "", "v1", &["pods", "x"]).is_none());
    }
}
