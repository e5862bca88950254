//! Migration planning (`agentops migrate`, `/infrastructure-migrate`): four deterministic
//! stages with typed hand-offs, each validated against its JSON Schema when it is handed on.
//!
//! 1. [`scan`]: every reference to the dependency, per environment, in the rendered output
//!    (traced back to file and line) and in Helm values files and Argo CD Applications.
//! 2. [`graph`]: service → dependency edges with access mode and criticality, and which of
//!    them the clusters actually run.
//! 3. [`plan`]: phases, waves from lowest to highest risk, gates, triggers, rollback plan.
//! 4. [`doc`]: the markdown document with its Mermaid graph and proposed (unapplied) patches.
//!
//! With `--llm` the analyst and the writer may refine wording and judgement ([`llm`]); what
//! they answer is re-checked against the deterministic hand-offs and overruled when it drops
//! or invents a dependency or changes a number.

pub mod changes;
pub(crate) mod doc;
pub mod feasibility;
pub mod graph;
pub mod llm;
pub mod plan;
pub(crate) mod scan;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use doc::Document;
pub use graph::Graph;
pub use plan::MigrationPlan;
pub use scan::Scan;

/// Default for `--window`: days the whole migration may take.
pub const DEFAULT_WINDOW_DAYS: u32 = 14;
/// Default for `--rollback-within`.
pub const DEFAULT_ROLLBACK_WITHIN: &str = "30m";

/// A migration request, as the CLI, the planner and the tools take it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// The dependency migrated away from: an app, Service or host name, e.g. `redis`.
    pub from: String,
    /// What replaces it, e.g. `elasticache`.
    pub to: String,
    /// Environments to cover (all when empty).
    #[serde(default)]
    pub envs: Vec<String>,
    /// Days the whole migration may take (default 14).
    #[serde(default)]
    pub window_days: Option<u32>,
    /// The time a rollback must complete in, e.g. `30m`, `1h`, `90s` (default 30m).
    #[serde(default)]
    pub rollback_within: Option<String>,
    /// Do not ask the clusters which services run (every service is then "unknown").
    #[serde(default)]
    pub offline: bool,
}

impl MigrateRequest {
    pub fn check(&self) -> Result<()> {
        let ok = |s: &str| !s.trim().is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok(&self.from) || !ok(&self.to) {
            return Err(Error::Usage(format!(
                "--from {:?} --to {:?}: both must be names (letters, digits, '-', '_', '.')",
                self.from, self.to
            )));
        }
        if self.from.eq_ignore_ascii_case(&self.to) {
            return Err(Error::Usage("--from and --to name the same dependency".into()));
        }
        self.rollback_minutes()?;
        Ok(())
    }

    pub fn window(&self) -> u32 {
        self.window_days.unwrap_or(DEFAULT_WINDOW_DAYS).max(1)
    }

    /// The rollback target in minutes (rounded up).
    pub fn rollback_minutes(&self) -> Result<u32> {
        parse_duration_minutes(self.rollback_within.as_deref().unwrap_or(DEFAULT_ROLLBACK_WITHIN))
    }

    /// `<from>-to-<to>`, lowercase.
    pub fn slug(&self) -> String {
        format!("{}-to-{}", self.from.to_ascii_lowercase(), self.to.to_ascii_lowercase())
    }
}

/// `30m`, `1h`, `1h30m`, `90s`, `45` (minutes) → minutes, rounded up; never zero.
/// `crate::time::parse_duration`, with migrate's message.
pub fn parse_duration_minutes(text: &str) -> Result<u32> {
    let bad = || Error::Usage(format!("--rollback-within {text:?}: expected a duration like 30m, 1h or 1h30m"));
    let seconds = crate::time::parse_duration(text).filter(|s| *s > 0).ok_or_else(bad)?;
    u32::try_from(seconds.div_ceil(60)).map_err(|_| bad())
}

/// Every hand-off of one run, as `--format json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Migration {
    pub request: MigrateRequest,
    pub scan: Scan,
    pub graph: Graph,
    pub feasibility: feasibility::Feasibility,
    pub plan: MigrationPlan,
    pub document: Document,
}

/// How a run is done beyond the request.
pub struct RunOptions<'a> {
    /// The document's date (`YYYY-MM-DD`); today when None.
    pub date: Option<String>,
    /// Where the document goes; `docs/migrations/<date>-<slug>.md` when None.
    pub path: Option<String>,
    /// `--llm`: the model the analyst and the writer may use.
    pub refiner: Option<llm::Refiner<'a>>,
}

/// Runs the four stages: scan (blocking, off the runtime), graph (with the clusters unless
/// `offline`), plan, document. Each hand-off is checked against its schema.
pub async fn run(ctx: &crate::workflows::Ctx, req: &MigrateRequest, opts: RunOptions<'_>) -> Result<Migration> {
    req.check()?;
    let (c, r) = (ctx.clone(), req.clone());
    let (scan, repo_apps, config) = crate::workflows::blocking(move || {
        let repo = c.load_repo()?;
        let engine = c.engine(&repo)?;
        let scan = scan::scan(&repo, &engine, &r, c.jobs())?;
        Ok((scan, repo.apps.keys().cloned().collect::<Vec<_>>(), repo.config.clone()))
    })
    .await?;
    let estimates = config.migrate.clone();
    check_handoff("scanner", &scan)?;

    let mut graph = graph::analyze(&scan, &req.to);
    let mut clouds = std::collections::BTreeMap::new();
    if !req.offline {
        let answers = graph::ask_clusters(ctx, &scan.envs).await;
        graph::apply_cluster_answers(&mut graph, &scan, &answers);
        clouds = feasibility::ask_clusters(ctx, &scan.envs).await;
    }
    if let Some(r) = &opts.refiner {
        let (refined, note) = llm::refine_graph(r, ctx.redactor(), &graph).await;
        graph = refined;
        graph.notes.push(note);
    }
    check_handoff("analyst", &graph)?;

    let providers = feasibility::providers(&scan.envs, &config, &clouds, !req.offline);
    let feasibility = feasibility::assess(&graph, &providers);
    let plan = plan::plan(&graph, req.rollback_minutes()?, req.window(), &estimates, &feasibility);
    check_handoff("planner", &plan)?;

    let date = opts.date.clone().unwrap_or_else(crate::time::today);
    let base = doc::summary(&graph, &plan);
    let mut summary = None;
    if let Some(r) = &opts.refiner {
        let (s, note) = llm::refine_summary(r, ctx.redactor(), &base, &graph, &plan, &repo_apps).await;
        summary = s;
        graph.notes.push(note);
    }
    let (c, s2, g2, p2, d2, path) = (ctx.clone(), scan.clone(), graph.clone(), plan.clone(), date, opts.path.clone());
    let f2 = feasibility.clone();
    let document = crate::workflows::blocking(move || {
        let repo = c.load_repo()?;
        let engine = c.engine(&repo)?;
        doc::write(Some(&repo), Some(&engine), &s2, &g2, &p2, &f2, &d2, path.as_deref(), summary.as_deref())
    })
    .await?;
    let mut document = document;
    document.markdown = ctx.redactor().scrub(&document.markdown);
    ctx.redactor().redact_value(&mut document.record);
    check_handoff("writer", &document)?;
    Ok(Migration { request: req.clone(), scan, graph, feasibility, plan, document })
}

/// Checks a hand-off against the JSON Schema of its type before it goes to the next stage
/// (or comes back from a model). Every violation is listed with its path.
pub fn check_handoff<T: Serialize + JsonSchema>(stage: &str, value: &T) -> Result<serde_json::Value> {
    let v = serde_json::to_value(value).map_err(|e| Error::Internal(format!("{stage}: {e}")))?;
    check_handoff_value::<T>(stage, &v)?;
    Ok(v)
}

/// As [`check_handoff`], for a JSON value claimed to be a `T`.
pub fn check_handoff_value<T: JsonSchema>(stage: &str, v: &serde_json::Value) -> Result<()> {
    let schema = schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    let validator = jsonschema::validator_for(&schema.to_value())
        .map_err(|e| Error::Internal(format!("{stage}: the hand-off schema does not compile: {e}")))?;
    let errors: Vec<String> = validator
        .iter_errors(v)
        .take(10)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "(root)" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!("{stage} hand-off does not match its schema: {}", errors.join("; "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_minutes("30m").unwrap(), 30);
        assert_eq!(parse_duration_minutes("1h30m").unwrap(), 90);
        assert_eq!(parse_duration_minutes("90s").unwrap(), 2);
        assert_eq!(parse_duration_minutes("45").unwrap(), 45);
        assert!(parse_duration_minutes("soon").is_err());
        assert!(parse_duration_minutes("0m").is_err());
        assert!(parse_duration_minutes("5x").is_err());
    }

    #[test]
    fn request_checks() {
        let r = MigrateRequest { from: "redis".into(), to: "elasticache".into(), ..Default::default() };
        assert!(r.check().is_ok());
        assert_eq!(r.slug(), "redis-to-elasticache");
        assert!(MigrateRequest { to: "redis".into(), ..r.clone() }.check().is_err());
        assert!(MigrateRequest { from: "a b".into(), ..r.clone() }.check().is_err());
        assert!(MigrateRequest { rollback_within: Some("later".into()), ..r }.check().is_err());
    }
}
