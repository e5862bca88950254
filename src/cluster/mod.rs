//! Clusters: environments mapped to kube contexts, one `kube::Client` per cluster, and
//! queries across clusters that run concurrently with a bound, each with a timeout and
//! retries on 429/5xx, so one unreachable or slow cluster never hides the others.
//!
//! One retry policy: [`with_retry`]. kube's own retry layer (`Config::default_retry`) is
//! switched off, or its up to 15 retries would run inside each of ours. Every request a
//! client sends is logged (`agentops::cluster`, info: context, method, path, status,
//! latency) and every retry too; kube's own spans (`kube_client`, debug) go to the same
//! subscriber.

pub(crate) mod argocd;
pub mod metrics;
pub(crate) mod prereq;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use serde_json::Value;
use tracing::Instrument;

use crate::error::Error;

/// Why a cluster could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no context {context:?} in the kubeconfig; contexts: {known}. Map the environment to a context in .agentops.yaml (environments.<env>.context)"
    )]
    NoContext { context: String, known: String },
    #[error("cannot configure a client for context {context:?}: {message}")]
    Config { context: String, message: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    NotFound(String),
}

impl From<kube::Error> for ClusterError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 404 => ClusterError::NotFound(s.message.clone()),
            _ => ClusterError::Api(crate::config::limits::body_limit_in(&e).unwrap_or_else(|| e.to_string())),
        }
    }
}

/// The kubeconfig and a client per context, created on first use.
pub struct ClusterSet {
    kubeconfig: Kubeconfig,
    source: String,
    clients: tokio::sync::Mutex<HashMap<String, Client>>,
    /// Overall time a query to one cluster may take, retries included.
    pub timeout: Duration,
    /// Clusters queried at once.
    pub concurrency: usize,
    /// Largest response body read from an API server (limits.response_bytes).
    pub response_limit: u64,
}

/// kube's kubeconfig errors, without the path it quotes twice (`'"/x"'`): the caller names
/// the file already.
fn kubeconfig_error(e: &kube::config::KubeconfigError) -> String {
    match e {
        kube::config::KubeconfigError::ReadConfig(io, _) => format!("cannot read it: {io}"),
        other => other.to_string(),
    }
}

impl ClusterSet {
    /// Reads the kubeconfig: `path`, else `$KUBECONFIG`, else `~/.kube/config`.
    pub fn load(path: Option<&Path>) -> Result<ClusterSet, Error> {
        let (kubeconfig, source) = match path {
            Some(p) => (
                Kubeconfig::read_from(p).map_err(|e| Error::Config {
                    file: p.display().to_string(),
                    line: None,
                    message: kubeconfig_error(&e),
                })?,
                p.display().to_string(),
            ),
            None => {
                let source = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
                let k = Kubeconfig::read().map_err(|e| Error::Config {
                    file: source.clone(),
                    line: None,
                    message: format!("{}; pass --kubeconfig or set KUBECONFIG", kubeconfig_error(&e)),
                })?;
                (k, source)
            }
        };
        Ok(ClusterSet::from_kubeconfig(kubeconfig, source))
    }

    pub fn from_kubeconfig(kubeconfig: Kubeconfig, source: String) -> ClusterSet {
        ClusterSet {
            kubeconfig,
            source,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            timeout: Duration::from_secs(20),
            concurrency: 8,
            response_limit: crate::config::limits::DEFAULT_RESPONSE_BYTES,
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn contexts(&self) -> Vec<String> {
        self.kubeconfig.contexts.iter().map(|c| c.name.clone()).collect()
    }

    /// The client of a context (created once).
    pub async fn client(&self, context: &str) -> Result<Client, ClusterError> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(context) {
            return Ok(c.clone());
        }
        if !self.kubeconfig.contexts.iter().any(|c| c.name == context) {
            return Err(ClusterError::NoContext { context: context.into(), known: self.contexts().join(", ") });
        }
        let opts = KubeConfigOptions { context: Some(context.to_string()), ..KubeConfigOptions::default() };
        let cfg_err = |m: String| ClusterError::Config { context: context.into(), message: m };
        let mut config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &opts)
            .await
            .map_err(|e| cfg_err(e.to_string()))?;
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(15));
        // with_retry is the one retry policy
        config.default_retry = false;
        let layer = crate::config::limits::ResponseLimitLayer {
            limit: self.response_limit,
            what: format!("the API server of context {context}"),
        };
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| cfg_err(e.to_string()))?
            .with_layer(&layer)
            .with_layer(&CallLogLayer::new(context))
            .build();
        clients.insert(context.to_string(), client.clone());
        Ok(client)
    }

    /// Runs `f` against every context concurrently (at most `concurrency` at once), each
    /// bounded by `timeout`. Results come back in the order of `contexts`.
    pub async fn run_all<T, F, Fut>(&self, contexts: &[String], f: F) -> Vec<(String, Result<T, ClusterError>)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        let f = &f;
        let tasks = contexts.iter().cloned().enumerate().map(|(i, ctx)| async move {
            let started = Instant::now();
            let r = match self.client(&ctx).await {
                Ok(client) => match tokio::time::timeout(self.timeout, f(client)).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::info!(
                            context = %ctx,
                            timeout_ms = self.timeout.as_millis() as u64,
                            "cluster query timed out"
                        );
                        Err(ClusterError::Timeout(self.timeout))
                    }
                },
                Err(e) => Err(e),
            };
            tracing::debug!(
                context = %ctx,
                ok = r.is_ok(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cluster query done"
            );
            (i, ctx, r)
        });
        let mut out: Vec<(usize, String, Result<T, ClusterError>)> =
            futures::stream::iter(tasks).buffer_unordered(self.concurrency.max(1)).collect().await;
        out.sort_by_key(|x| x.0);
        out.into_iter().map(|(_, c, r)| (c, r)).collect()
    }
}

/// The cluster the requests of a `with_retry` span went to: an extension of that span,
/// set by the client's [`CallLog`]. kube's client runs requests on a buffer's worker task,
/// which enters the caller's span, so the span (not a task-local) is what both sides see.
struct SpanContext(Arc<str>);

fn set_span_context(span: &tracing::Span, context: &Arc<str>) {
    use tracing_subscriber::registry::LookupSpan;
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>()
            && let Some(data) = registry.span(id)
        {
            let mut ext = data.extensions_mut();
            if ext.get_mut::<SpanContext>().is_none() {
                ext.insert(SpanContext(context.clone()));
            }
        }
    });
}

fn span_context(span: &tracing::Span) -> String {
    use tracing_subscriber::registry::LookupSpan;
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        data.extensions().get::<SpanContext>().map(|c| c.0.to_string())
    })
    .flatten()
    .unwrap_or_else(|| "?".into())
}

/// Retries a request on 429, 5xx and connection failures, with exponential backoff: three
/// retries after 200, 400 and 800 ms. Each retry is an event naming the cluster (learned
/// from the client's [`CallLog`]), the attempt, the error and the backoff.
pub async fn with_retry<T, Fut>(mut f: impl FnMut() -> Fut) -> Result<T, kube::Error>
where
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let span = tracing::info_span!("cluster_request");
    let mut delay = Duration::from_millis(200);
    let mut attempt: u32 = 0;
    loop {
        match f().instrument(span.clone()).await {
            Err(e) if attempt < 3 && retryable(&e) => {
                attempt += 1;
                tracing::info!(
                    context = %span_context(&span),
                    attempt,
                    error = %e,
                    backoff_ms = delay.as_millis() as u64,
                    "retrying cluster request"
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) if attempt > 0 => {
                tracing::info!(
                    context = %span_context(&span),
                    attempts = attempt + 1,
                    error = %e,
                    "cluster request failed after retries"
                );
                return Err(e);
            }
            other => return other,
        }
    }
}

/// A tower layer on each cluster's client that logs every request it sends.
#[derive(Debug, Clone)]
pub struct CallLogLayer {
    context: Arc<str>,
}

impl CallLogLayer {
    pub fn new(context: &str) -> CallLogLayer {
        CallLogLayer { context: Arc::from(context) }
    }
}

impl<S> tower::Layer<S> for CallLogLayer {
    type Service = CallLog<S>;
    fn layer(&self, inner: S) -> CallLog<S> {
        CallLog { inner, context: self.context.clone() }
    }
}

/// Logs each request: context, method, path, status (or error) and the latency to the
/// response's head, in milliseconds.
#[derive(Debug, Clone)]
pub struct CallLog<S> {
    inner: S,
    context: Arc<str>,
}

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for CallLog<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: std::fmt::Display,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        // an enclosing with_retry learns which cluster it talks to
        set_span_context(&tracing::Span::current(), &self.context);
        let context = self.context.clone();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            let latency_ms = started.elapsed().as_millis() as u64;
            match &r {
                Ok(resp) => tracing::info!(
                    context = %context,
                    %method,
                    %path,
                    status = resp.status().as_u16(),
                    latency_ms,
                    "cluster call"
                ),
                Err(e) => {
                    tracing::info!(context = %context, %method, %path, latency_ms, error = %e, "cluster call failed")
                }
            }
            r
        })
    }
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || (500..=504).contains(&s.code),
        // an answer over the size limit is as large the next time
        kube::Error::HyperError(_) | kube::Error::Service(_) => crate::config::limits::body_limit_in(e).is_none(),
        _ => false,
    }
}

/// Short names kubectl users type, for clusters whose discovery does not list them.
const SHORT_NAMES: [(&str, &str); 20] = [
    ("po", "Pod"),
    ("svc", "Service"),
    ("cm", "ConfigMap"),
    ("ns", "Namespace"),
    ("deploy", "Deployment"),
    ("sts", "StatefulSet"),
    ("ds", "DaemonSet"),
    ("rs", "ReplicaSet"),
    ("cj", "CronJob"),
    ("ing", "Ingress"),
    ("netpol", "NetworkPolicy"),
    ("pvc", "PersistentVolumeClaim"),
    ("pv", "PersistentVolume"),
    ("sa", "ServiceAccount"),
    ("sc", "StorageClass"),
    ("crd", "CustomResourceDefinition"),
    ("hpa", "HorizontalPodAutoscaler"),
    ("pdb", "PodDisruptionBudget"),
    ("ep", "Endpoints"),
    ("app", "Application"),
];

/// Finds the API resource for a kind, plural, singular or short name, optionally pinned to
/// an apiVersion (`apps/v1`) or group.
pub async fn resolve(
    client: &Client,
    what: &str,
    api_version: Option<&str>,
) -> Result<(ApiResource, ApiCapabilities), ClusterError> {
    let discovery = with_retry(|| Discovery::new(client.clone()).run()).await?;
    let wanted = SHORT_NAMES.iter().find(|(s, _)| s.eq_ignore_ascii_case(what)).map_or(what, |(_, k)| *k);
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let matches = ar.kind.eq_ignore_ascii_case(wanted)
                || ar.plural.eq_ignore_ascii_case(wanted)
                || ar.kind.to_lowercase() == wanted.trim_end_matches('s').to_lowercase();
            let version_ok = api_version.is_none_or(|v| v == ar.api_version || v == ar.group);
            if matches && version_ok {
                found.push((ar, caps));
            }
        }
    }
    // prefer the core and well-known groups when a name is ambiguous
    found.sort_by_key(|(ar, _)| (!ar.group.is_empty(), ar.group.contains('.')));
    found.into_iter().next().ok_or_else(|| {
        ClusterError::NotFound(format!(
            "the cluster serves no resource named {what:?}{}",
            api_version.map(|v| format!(" in {v}")).unwrap_or_default()
        ))
    })
}

/// Gets or lists objects of a resource as JSON.
pub async fn query(
    client: &Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    namespace: Option<&str>,
    name: Option<&str>,
    label_selector: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    let api = dynamic_api(client, ar, caps, namespace);
    let objects = match name {
        Some(n) => vec![with_retry(|| api.get(n)).await?],
        None => {
            let mut lp = ListParams::default();
            if let Some(s) = label_selector {
                lp = lp.labels(s);
            }
            with_retry(|| api.list(&lp)).await?.items
        }
    };
    Ok(objects.iter().map(|o| object_json(o, ar)).collect())
}

/// The API of a resource: in `namespace` when the resource is namespaced and one is given,
/// else across the cluster.
pub fn dynamic_api(
    client: &Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (caps.scope == Scope::Namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

/// An object as JSON, with the apiVersion and kind a list response leaves out.
pub fn object_json(o: &DynamicObject, ar: &ApiResource) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.entry("apiVersion").or_insert_with(|| Value::String(ar.api_version.clone()));
        m.entry("kind").or_insert_with(|| Value::String(ar.kind.clone()));
    }
    v
}

/// The default kubeconfig path agentops reports in messages.
pub fn default_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("KUBECONFIG").map(PathBuf::from).or_else(|| dirs::home_dir().map(|h| h.join(".kube/config")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("injected", "Injected").with_code(code).boxed())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_429_and_5xx_then_gives_up() {
        let calls = std::cell::Cell::new(0);
        let r: Result<u32, _> = with_retry(|| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(api_error(if n == 1 { 429 } else { 503 })) } else { Ok(7) } }
        })
        .await;
        assert_eq!(r.ok(), Some(7));
        assert_eq!(calls.get(), 3);

        calls.set(0);
        let r: Result<u32, _> = with_retry(|| {
            calls.set(calls.get() + 1);
            async { Err(api_error(500)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 4, "one try and three retries");

        calls.set(0);
        let r: Result<u32, _> = with_retry(|| {
            calls.set(calls.get() + 1);
            async { Err(api_error(404)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1, "a 404 is an answer, not a failure to retry");
    }

    /// Log lines written by a test's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_call_and_retry_is_logged_with_the_cluster_context() {
        use tower::{Layer, ServiceExt};
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_writer(out.clone()).with_env_filter("agentops=info").finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let svc = CallLogLayer::new("prod-west").layer(tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(()).unwrap())
        }));
        let calls = std::cell::Cell::new(0);
        let r: Result<(), _> = with_retry(|| {
            calls.set(calls.get() + 1);
            let svc = svc.clone();
            async move {
                let resp = svc.oneshot(http::Request::get("/api/v1/pods").body(()).unwrap()).await.unwrap();
                Err(api_error(resp.status().as_u16()))
            }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 4);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let calls: Vec<&str> = text.lines().filter(|l| l.contains("cluster call")).collect();
        assert_eq!(calls.len(), 4, "{text}");
        assert!(
            calls.iter().all(|l| l.contains("context=prod-west")
                && l.contains("method=GET")
                && l.contains("path=/api/v1/pods")
                && l.contains("status=503")
                && l.contains("latency_ms=")),
            "{text}"
        );
        let retries: Vec<&str> = text.lines().filter(|l| l.contains("retrying cluster request")).collect();
        assert_eq!(retries.len(), 3, "{text}");
        for (i, (line, backoff)) in retries.iter().zip([200, 400, 800]).enumerate() {
            assert!(line.contains("context=prod-west"), "the event names the cluster: {line}");
            assert!(line.contains(&format!("attempt={}", i + 1)) && line.contains(&format!("backoff_ms={backoff}")));
            assert!(line.contains("error="), "{line}");
        }
        assert!(text.contains("cluster request failed after retries context=prod-west attempts=4"), "{text}");
    }
}
