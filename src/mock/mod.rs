//! Mock clusters: a fake kube-apiserver loaded from plain Kubernetes YAML, faithful enough
//! that kube-rs and the real kubectl both work against it, plus a simulated Argo CD and a
//! Prometheus API for tests, evals and the demo.
//!
//! One [`MockCluster`] is one API server on `127.0.0.1:<free port>` over its own [`Store`];
//! a [`MockFleet`] is several, with the kubeconfig that reaches them (one context per cluster).

pub(crate) mod admission;
pub mod argocd;
pub(crate) mod audit;
pub(crate) mod controller;
pub(crate) mod fixture;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod resources;
pub mod selector;
pub(crate) mod server;
pub(crate) mod status;
pub mod store;
pub(crate) mod table;
pub(crate) mod tls;
pub(crate) mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::Error;
pub use store::{EventType, Store, StoreError, StoreEvent};

/// Options shared by the clusters of a fleet.
#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// Append an `audit.k8s.io/v1` Event per mutating request to this file (JSON lines).
    pub audit_log: Option<PathBuf>,
    /// The GitOps repository the simulated Argo CD renders Applications from.
    pub argocd_repo: Option<PathBuf>,
    /// Added before every answer, to stand in for a network round trip (benchmarks).
    pub latency: Option<Duration>,
}

/// Answers requests to `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{rest}`.
/// `path_and_query` is `/{rest}` plus the query (and a form body, for POST) as `?...`.
pub trait ServiceProxy: Send + Sync {
    fn handle(
        &self,
        namespace: &str,
        service: &str,
        port: &str,
        path_and_query: &str,
    ) -> Option<(u16, String, Vec<u8>)>;

    /// Text for the API server's own `/metrics` (Prometheus exposition format), if any.
    fn metrics_text(&self) -> Option<String> {
        None
    }
}

/// One fake API server.
pub struct MockCluster {
    name: String,
    url: String,
    store: Store,
    state: Arc<server::ServerState>,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    controller: Option<JoinHandle<()>>,
}

impl Drop for MockCluster {
    /// A cluster dropped without [`MockCluster::shutdown`] still stops serving.
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for MockCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCluster").field("name", &self.name).field("url", &self.url).finish()
    }
}

impl MockCluster {
    /// Loads `fixture_dir` and starts serving it on a free port of 127.0.0.1.
    pub async fn start(name: &str, fixture_dir: &Path, opts: &MockOptions) -> Result<MockCluster, Error> {
        let audit = match &opts.audit_log {
            Some(p) => Some(audit::AuditLog::open(p)?),
            None => None,
        };
        MockCluster::start_with(name, fixture_dir, audit, opts.latency).await
    }

    async fn start_with(
        name: &str,
        fixture_dir: &Path,
        audit: Option<audit::AuditLog>,
        latency: Option<Duration>,
    ) -> Result<MockCluster, Error> {
        let fx = fixture::load(fixture_dir)?;
        let store = Store::from_fixture(fx.objects, fx.mock_metrics).map_err(|e| Error::Config {
            file: fixture_dir.display().to_string(),
            line: None,
            message: e.message,
        })?;
        store.set_mock_behaviour(fx.mock_behaviour);
        controller::reconcile_all(&store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Internal(format!("mock cluster {name}: cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("mock cluster {name}: no local address: {e}")))?;
        let url = format!("http://{addr}");
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(server::ServerState {
            name: name.to_string(),
            store: store.clone(),
            proxy: RwLock::new(Some(
                Arc::new(metrics::MockPrometheus::new(vec![store.clone()])) as Arc<dyn ServiceProxy>
            )),
            audit,
            latency,
            shutdown: shutdown_rx.clone(),
        });
        let tls = tls::acceptor()?;
        let server = tokio::spawn(serve(listener, tls, state.clone(), shutdown_rx.clone()));
        let controller = controller::spawn(store.clone(), shutdown_rx);
        Ok(MockCluster {
            name: name.to_string(),
            url,
            store,
            state,
            shutdown: shutdown_tx,
            server: Some(server),
            controller: Some(controller),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `https://127.0.0.1:PORT`: the same server over TLS (certificate by [`tls::CA_PEM`]),
    /// which the kubeconfig uses because kubectl sends bearer tokens only over TLS.
    pub fn https_url(&self) -> String {
        self.url.replacen("http://", "https://", 1)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Routes the cluster's service proxy requests to `p` (e.g. a simulated Prometheus).
    pub fn set_service_proxy(&self, p: Arc<dyn ServiceProxy>) {
        *self.state.proxy.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// Stops serving: watches end, open connections get a moment to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(3), &mut server).await.is_err()
        {
            server.abort();
        }
        if let Some(mut controller) = self.controller.take()
            && tokio::time::timeout(Duration::from_secs(1), &mut controller).await.is_err()
        {
            controller.abort();
        }
    }
}

/// Accepts connections until shutdown; each speaks plain HTTP/1.1 or HTTPS, as its first
/// byte says (0x16 opens a TLS handshake).
async fn serve(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    state: Arc<server::ServerState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(cluster = %state.name, error = %e, "mock cluster accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, peer, tls.clone(), state.clone(), shutdown.clone()));
            }
            _ = stopped(&mut shutdown) => break,
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(2), async { while connections.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
    state: Arc<server::ServerState>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut first = [0u8; 1];
    let is_tls = match tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        _ => return,
    };
    if is_tls {
        // A client that does not trust the test CA, or gave up, gets no answer.
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
            http(hyper_util::rt::TokioIo::new(s), peer, state, shutdown).await;
        }
    } else {
        http(hyper_util::rt::TokioIo::new(stream), peer, state, shutdown).await;
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<server::ServerState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(server::handle(state, peer, req.map(axum::body::Body::new)).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Several mock clusters and the kubeconfig that reaches them.
#[derive(Debug)]
pub struct MockFleet {
    clusters: Vec<MockCluster>,
    /// The simulated Argo CD controller's tasks (one per cluster), when a repo was given.
    argocd: Vec<JoinHandle<()>>,
}

fn yaml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl MockFleet {
    /// Starts one cluster per (name, fixture dir); names must be distinct.
    pub async fn start(clusters: &[(String, PathBuf)], opts: &MockOptions) -> Result<MockFleet, Error> {
        let audit = match &opts.audit_log {
            Some(p) => Some(audit::AuditLog::open(p)?),
            None => None,
        };
        let mut started: Vec<MockCluster> = Vec::new();
        for (name, dir) in clusters {
            if name.is_empty() || started.iter().any(|c| c.name == *name) {
                for c in started {
                    c.shutdown().await;
                }
                return Err(Error::Usage(format!(
                    "mock cluster names must be distinct and non-empty; {name:?} is not"
                )));
            }
            match MockCluster::start_with(name, dir, audit.clone(), opts.latency).await {
                Ok(c) => started.push(c),
                Err(e) => {
                    for c in started {
                        c.shutdown().await;
                    }
                    return Err(e);
                }
            }
        }
        // Prometheus answers by_revision series from Applications of any cluster of the fleet,
        // its own first.
        let stores: Vec<Store> = started.iter().map(|c| c.store.clone()).collect();
        for (i, c) in started.iter().enumerate() {
            let mut own_first = vec![stores[i].clone()];
            own_first.extend(stores.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s.clone()));
            c.set_service_proxy(Arc::new(metrics::MockPrometheus::new(own_first)));
        }
        let argocd = match &opts.argocd_repo {
            None => Vec::new(),
            Some(repo) => {
                let kustomize = match crate::kustomize::Kustomize::locate(None) {
                    Ok(k) => k,
                    Err(e) => {
                        for c in started {
                            c.shutdown().await;
                        }
                        return Err(e);
                    }
                };
                let targets = started
                    .iter()
                    .map(|c| argocd::Target { name: c.name.clone(), url: c.url.clone(), store: c.store.clone() })
                    .collect();
                argocd::spawn(targets, Arc::new(argocd::Renderer::new(repo, kustomize)))
            }
        };
        Ok(MockFleet { clusters: started, argocd })
    }

    pub fn clusters(&self) -> &[MockCluster] {
        &self.clusters
    }

    pub fn get(&self, name: &str) -> Option<&MockCluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// A kubeconfig with, per cluster NAME, a cluster and a context named NAME and a user
    /// `NAME-admin` with token `mock:admin`; the current context is the first cluster. Servers
    /// are the HTTPS URLs with the test CA, so kubectl sends the token (it drops credentials
    /// over plain HTTP) and audit events name the user.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(tls::CA_PEM);
        let mut out = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for c in &self.clusters {
            out.push_str(&format!(
                "- name: {}\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n",
                yaml_str(&c.name),
                yaml_str(&c.https_url())
            ));
        }
        out.push_str("contexts:\n");
        for c in &self.clusters {
            out.push_str(&format!(
                "- name: {}\n  context:\n    cluster: {}\n    user: {}\n",
                yaml_str(&c.name),
                yaml_str(&c.name),
                yaml_str(&format!("{}-admin", c.name))
            ));
        }
        if let Some(first) = self.clusters.first() {
            out.push_str(&format!("current-context: {}\n", yaml_str(&first.name)));
        }
        out.push_str("preferences: {}\nusers:\n");
        for c in &self.clusters {
            out.push_str(&format!(
                "- name: {}\n  user:\n    token: {}\n",
                yaml_str(&format!("{}-admin", c.name)),
                yaml_str("mock:admin")
            ));
        }
        out
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(path, self.kubeconfig()).map_err(|e| Error::io(path, e))
    }

    pub async fn shutdown(self) {
        self.argocd.iter().for_each(JoinHandle::abort);
        futures::future::join_all(self.clusters.into_iter().map(MockCluster::shutdown)).await;
    }
}
