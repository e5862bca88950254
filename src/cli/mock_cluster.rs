//! `agentops mock-cluster serve`: fake kube-apiservers loaded from fixture directories, for
//! the demo, evals and trying kubectl against a "cluster" without one.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::mock::{MockFleet, MockOptions};

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum MockClusterCommand {
    /// Serve mock clusters until interrupted (SIGINT or SIGTERM).
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A cluster: its name (the kube context) and its fixture directory of YAML objects
    /// as `kubectl get -o yaml` prints them. Repeatable.
    #[arg(long = "cluster", value_name = "NAME=DIR", required = true)]
    pub clusters: Vec<String>,
    /// Write a kubeconfig with one context per cluster here.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Append an audit.k8s.io/v1 Event per mutating request to this file (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// The GitOps repository the simulated Argo CD syncs Applications from.
    #[arg(long, value_name = "DIR")]
    pub argocd_repo: Option<PathBuf>,
    /// Delay every answer by this many milliseconds, to stand in for a network round trip.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
}

fn parse_cluster(spec: &str) -> Result<(String, PathBuf)> {
    match spec.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok((name.to_string(), PathBuf::from(dir))),
        _ => Err(Error::Usage(format!("--cluster {spec:?}: expected NAME=DIR, e.g. --cluster prod=clusters/prod"))),
    }
}

pub async fn run(_global: &Global, cmd: MockClusterCommand) -> Result<ExitCode> {
    let MockClusterCommand::Serve(args) = cmd;
    let clusters = args.clusters.iter().map(|c| parse_cluster(c)).collect::<Result<Vec<_>>>()?;
    let opts = MockOptions {
        audit_log: args.audit_log.clone(),
        argocd_repo: args.argocd_repo.clone(),
        latency: args.latency_ms.map(std::time::Duration::from_millis),
    };
    let fleet = MockFleet::start(&clusters, &opts).await?;
    if let Some(path) = &args.kubeconfig_out
        && let Err(e) = fleet.write_kubeconfig(path)
    {
        fleet.shutdown().await;
        return Err(e);
    }
    {
        let mut out = std::io::stdout().lock();
        for c in fleet.clusters() {
            let _ = writeln!(out, "{} {}", c.name(), c.url());
        }
        let _ = out.flush();
    }
    wait_for_signal().await?;
    fleet.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
pub(super) async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::Internal(format!("cannot listen for SIGTERM: {e}")))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| Error::Internal(format!("cannot listen for SIGINT: {e}"))),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
pub(super) async fn wait_for_signal() -> Result<()> {
    tokio::signal::ctrl_c().await.map_err(|e| Error::Internal(format!("cannot listen for Ctrl-C: {e}")))
}
