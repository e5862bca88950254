//! `dependency_graph`: the migration analyst and planner: service → dependency edges with
//! access mode, criticality and whether the clusters run them, and the phased plan derived
//! from them. Read-only.

use serde::{Deserialize, Serialize};

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::migrate::changes::Check;
use crate::workflows::migrate::feasibility::Feasibility;
use crate::workflows::migrate::{self, Graph, MigrateRequest, MigrationPlan, RunOptions};

pub struct DependencyGraph;

#[derive(Debug, Serialize, Deserialize)]
pub struct Output {
    pub graph: Graph,
    /// Whether the target can serve each environment, and what it asks of the clients.
    pub feasibility: Feasibility,
    pub plan: MigrationPlan,
    /// The document's summary line.
    pub summary: String,
    /// The proposed changes applied to a scratch copy and built.
    #[serde(default)]
    pub check: Option<Check>,
}

impl Tool for DependencyGraph {
    type Args = MigrateRequest;
    type Output = Output;

    fn name(&self) -> &'static str {
        "dependency_graph"
    }
    fn description(&self) -> &'static str {
        "Build the dependency graph of a migration (which services use the dependency, read-only or read-write, how critical, whether each cluster runs them; unreachable clusters are 'unknown') and the phased plan: preparation, each environment dev -> staging -> prod in waves from lowest to highest risk, validation gates, rollback triggers and a rollback plan against the requested time, cleanup. Writes nothing."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: MigrateRequest) -> Result<Output, ToolError> {
        let opts = RunOptions { date: None, path: None, refiner: None };
        let m = migrate::run(ctx, &args, opts).await?;
        Ok(Output {
            graph: m.graph,
            feasibility: m.feasibility,
            plan: m.plan,
            summary: m.document.summary,
            check: m.document.check,
        })
    }
}
