//! `dependency_scan`: every reference to a dependency, per environment (the migration
//! scanner). Read-only.

use super::{Effect, Tool, ToolError};
use crate::workflows::migrate::{self, MigrateRequest, Scan};
use crate::workflows::{Ctx, blocking};

pub struct DependencyScan;

impl Tool for DependencyScan {
    type Args = MigrateRequest;
    type Output = Scan;

    fn name(&self) -> &'static str {
        "dependency_scan"
    }
    fn description(&self) -> &'static str {
        "Find every reference to a dependency (e.g. a self-hosted redis) per environment: ConfigMap keys and values, Secret key names (never values), container env and envFrom, Services/Endpoints, NetworkPolicy rules, ServiceMonitors, PrometheusRules, Grafana dashboards, Helm values files and the dependency's Argo CD Applications. Matches names, hosts, ports and labels in the rendered output and traces each to file and line. Writes nothing."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: MigrateRequest) -> Result<Scan, ToolError> {
        args.check()?;
        let ctx = ctx.clone();
        Ok(blocking(move || {
            let repo = ctx.load_repo()?;
            let engine = ctx.engine(&repo)?;
            let scan = migrate::scan::scan(&repo, &engine, &args, ctx.jobs())?;
            migrate::check_handoff("scanner", &scan)?;
            Ok(scan)
        })
        .await?)
    }
}
