//! The context every workflow runs in (what a tool call carries): the repo, the kustomize
//! engine, the clusters and the redactor.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::cluster::ClusterSet;
use crate::cluster::metrics::Endpoint;
use crate::error::Error;
use crate::k8s::redact::Redactor;
use crate::kustomize::{Engine, Kustomize};
use crate::repo::Repo;

/// Everything a workflow may use: the repo root, the kustomize engine and its cache, the
/// clusters of the kubeconfig and the redactor every output passes through. Cheap to clone;
/// the tools hand it to the workflows they wrap.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    repo_root: PathBuf,
    kustomize: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    jobs: usize,
    kubeconfig: Option<PathBuf>,
    redactor: Arc<Redactor>,
    progress: Option<Arc<dyn Progress>>,
    engine: OnceLock<Result<Arc<Engine>, String>>,
    clusters: OnceLock<Result<Arc<ClusterSet>, String>>,
}

/// Options for a [`Ctx`].
#[derive(Clone, Default)]
pub struct CtxOptions {
    /// `--kustomize PATH`; falls back to the config's `kustomize` key, then the search order.
    pub kustomize: Option<PathBuf>,
    /// Build cache directory; None disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Parallel builds (0: the default).
    pub jobs: usize,
    /// `--kubeconfig`; else `$KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Where long workflows report what settled while they run; nowhere when None.
    pub progress: Option<Arc<dyn Progress>>,
}

/// Where a long workflow (a rollback's verification) reports each thing that settled while
/// it runs. The workflows never print; a front end decides how progress shows (the CLI: a
/// transient line on a terminal, a line each in logs).
pub trait Progress: Send + Sync {
    /// `name` settled; `line` says how.
    fn settled(&self, name: &str, line: &str);
    /// The work is over: clear whatever was transient.
    fn done(&self);
}

impl Ctx {
    pub fn new(repo_root: &Path, opts: CtxOptions) -> Ctx {
        Ctx {
            inner: Arc::new(CtxInner {
                repo_root: repo_root.to_path_buf(),
                kustomize: opts.kustomize,
                cache_dir: opts.cache_dir,
                jobs: if opts.jobs == 0 { crate::kustomize::default_jobs() } else { opts.jobs },
                kubeconfig: opts.kubeconfig,
                redactor: Arc::new(Redactor::new()),
                progress: opts.progress,
                engine: OnceLock::new(),
                clusters: OnceLock::new(),
            }),
        }
    }

    /// Reports that `name` settled ([`Progress::settled`]).
    pub fn settled(&self, name: &str, line: &str) {
        if let Some(p) = &self.inner.progress {
            p.settled(name, line);
        }
    }

    /// Reports the end of the work that reported progress ([`Progress::done`]).
    pub fn progress_done(&self) {
        if let Some(p) = &self.inner.progress {
            p.done();
        }
    }

    pub fn repo_root(&self) -> &Path {
        &self.inner.repo_root
    }

    pub fn jobs(&self) -> usize {
        self.inner.jobs
    }

    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The shared redactor, for holders that outlive a borrow of the context.
    pub fn redactor_arc(&self) -> Arc<Redactor> {
        self.inner.redactor.clone()
    }

    /// Scans the repo as it is now, and teaches the redactor its secret values.
    pub fn load_repo(&self) -> Result<Repo, Error> {
        let repo = Repo::load(&self.inner.repo_root)?;
        learn_repo_secrets(&repo, self.redactor());
        Ok(repo)
    }

    /// The kustomize engine, located once per context.
    pub fn engine(&self, repo: &Repo) -> Result<Arc<Engine>, Error> {
        let r = self.inner.engine.get_or_init(|| {
            let explicit = self.inner.kustomize.clone().or_else(|| {
                repo.config.kustomize.as_ref().map(|p| if p.is_absolute() { p.clone() } else { repo.root.join(p) })
            });
            Kustomize::locate(explicit.as_deref())
                .map(|k| Arc::new(Engine::new(k, self.inner.cache_dir.clone())))
                .map_err(|e| e.to_string())
        });
        r.clone().map_err(|m| {
            if m == Error::KustomizeNotFound.to_string() { Error::KustomizeNotFound } else { Error::Usage(m) }
        })
    }
}

impl Ctx {
    /// The clusters of the kubeconfig, read once per context.
    pub fn clusters(&self) -> Result<Arc<ClusterSet>, Error> {
        self.inner
            .clusters
            .get_or_init(|| {
                let mut set = ClusterSet::load(self.inner.kubeconfig.as_deref()).map_err(|e| e.to_string())?;
                if let Ok(c) = crate::config::Config::load(&self.inner.repo_root) {
                    set.response_limit = c.limits.response_bytes;
                }
                Ok(Arc::new(set))
            })
            .clone()
            .map_err(Error::Usage)
    }
}

/// One environment's answer from a cluster call; `answer` is flattened into it.
#[derive(Debug, Serialize)]
pub struct PerCluster<T> {
    pub env: String,
    pub context: String,
    #[serde(flatten)]
    pub answer: Option<T>,
    pub error: Option<String>,
}

impl Ctx {
    /// Scans the repo off the async runtime.
    pub async fn repo(&self) -> Result<Repo, Error> {
        let c = self.clone();
        blocking(move || c.load_repo()).await
    }

    /// Runs `f` against the cluster of each environment asked for (all when none),
    /// concurrently; a failing cluster is an `error` entry, never a failure of the whole.
    pub async fn across_clusters<T, F, Fut>(&self, asked: &[String], f: F) -> Result<Vec<PerCluster<T>>, Error>
    where
        F: Fn(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, crate::cluster::ClusterError>>,
    {
        let repo = self.repo().await?;
        let envs = target_envs(&repo, asked)?;
        let contexts: Vec<String> = envs.iter().map(|e| repo.config.context_for(e)).collect();
        let results = self.clusters()?.run_all(&contexts, f).await;
        Ok(envs
            .into_iter()
            .zip(results)
            .map(|(env, (context, r))| match r {
                Ok(answer) => PerCluster { env, context, answer: Some(answer), error: None },
                Err(e) => PerCluster { env, context, answer: None, error: Some(e.to_string()) },
            })
            .collect())
    }

    /// The repo and the kube client of one environment's cluster.
    pub async fn env_client(&self, env: &str) -> Result<(Repo, kube::Client), Error> {
        let repo = self.repo().await?;
        target_envs(&repo, &[env.to_string()])?;
        let client =
            self.clusters()?.client(&repo.config.context_for(env)).await.map_err(|e| Error::workflow(e.to_string()))?;
        Ok((repo, client))
    }
}

/// The environments a cluster call addresses: the ones asked for (each must exist), or all.
pub fn target_envs(repo: &Repo, asked: &[String]) -> Result<Vec<String>, Error> {
    if asked.is_empty() {
        return Ok(repo.environments.clone());
    }
    for e in asked {
        if !repo.environments.contains(e) {
            return Err(Error::workflow(format!(
                "unknown environment {e:?}; environments: {}",
                repo.environments.join(", ")
            )));
        }
    }
    Ok(asked.to_vec())
}

/// Teaches the redactor every secret value written in the repo: Secret objects and
/// secretGenerator literals and files.
pub fn learn_repo_secrets(repo: &Repo, redactor: &Redactor) {
    for f in repo.files.values() {
        if let Ok(docs) = &f.docs {
            docs.iter().for_each(|d| redactor.learn_object(&d.value));
        }
    }
    for k in repo.kustomizations.values() {
        k.secret_literals.iter().for_each(|l| redactor.learn(l));
        for f in &k.secret_files {
            if let Ok(text) = crate::config::limits::read_text(&repo.abs(f), repo.config.limits.file_bytes) {
                redactor.learn_text_lines(&text);
            }
        }
    }
}

impl Ctx {
    /// Where an environment's Prometheus answers: `environments.<env>.prometheus_url`, else
    /// the service proxy of the cluster's API server to the configured service.
    pub async fn prometheus(&self, repo: &Repo, env: &str) -> Result<Endpoint, Error> {
        if let Some(url) = repo.config.environments.get(env).and_then(|e| e.prometheus_url.clone()) {
            return Ok(Endpoint::Url(url));
        }
        let client =
            self.clusters()?.client(&repo.config.context_for(env)).await.map_err(|e| Error::workflow(e.to_string()))?;
        let p = &repo.config.prometheus;
        Ok(Endpoint::ServiceProxy {
            client,
            namespace: p.namespace.clone(),
            service: p.service.clone(),
            port: p.port.clone(),
        })
    }
}

/// Runs blocking work (file reads, kustomize processes) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("the work stopped unexpectedly: {e}")))?
}
