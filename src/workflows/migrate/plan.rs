//! The planner: preparation, one phase per environment in promotion order (dev → staging →
//! prod), cleanup. Within a phase, waves go from the lowest risk to the highest (read-only
//! users first, critical services last), each with validation gates, rollback triggers and
//! its rollback time. Blue/green: the old dependency keeps running until cleanup, so a
//! rollback is a revert of the config change, not a data restore.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::graph::{Access, Criticality, Graph, ServiceNode};

use crate::config::MigrateEstimates;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    Preparation,
    Environment,
    Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Wave {
    /// From 1 within its phase.
    pub number: u32,
    /// Apps moved together.
    pub services: Vec<String>,
    /// `read-only, low` ... `read-write, critical`.
    pub risk: String,
    /// Checks that must pass before the next wave.
    pub validation: Vec<String>,
    /// Minutes to roll this wave back (revert, sync, rollout of the largest service).
    pub rollback_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Phase {
    pub name: String,
    pub kind: PhaseKind,
    #[serde(default)]
    pub env: Option<String>,
    pub estimate_hours: u32,
    pub steps: Vec<String>,
    pub waves: Vec<Wave>,
    /// The gate to pass before the next phase starts.
    pub gate: Vec<String>,
    pub rollback_triggers: Vec<String>,
    pub communication: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RollbackPlan {
    pub target_minutes: u32,
    /// The slowest wave's rollback.
    pub estimate_minutes: u32,
    pub meets_target: bool,
    pub steps: Vec<String>,
}

/// The planner's hand-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MigrationPlan {
    pub from: String,
    pub to: String,
    pub phases: Vec<Phase>,
    pub rollback: RollbackPlan,
    pub total_hours: u32,
    pub window_days: u32,
    pub fits_window: bool,
    pub risks: Vec<String>,
}

/// Promotion rank of an environment name: dev-like 0, staging-like 1, prod-like 2.
pub fn env_rank(env: &str) -> usize {
    crate::repo::class_rank(crate::repo::class_from_name(env))
}

/// The environments in promotion order (the repo's order within a rank).
pub fn promotion_order(envs: &[String]) -> Vec<String> {
    let mut v: Vec<(usize, usize, &String)> = envs.iter().enumerate().map(|(i, e)| (env_rank(e), i, e)).collect();
    v.sort();
    v.into_iter().map(|(_, _, e)| e.clone()).collect()
}

/// Risk order: read-only before read-write, then by criticality; critical services last.
fn risk_key(s: &ServiceNode) -> (bool, Access, Criticality, String) {
    (s.criticality == Criticality::Critical, s.access, s.criticality, s.app.clone())
}

pub fn plan(graph: &Graph, rollback_target: u32, window_days: u32, est: &MigrateEstimates) -> MigrationPlan {
    let (from, to) = (graph.dependency.name.clone(), graph.to.clone());
    let mut phases = vec![preparation(graph, est)];
    let mut risks = Vec::new();
    let mut worst = 0u32;
    for env in promotion_order(&graph.envs) {
        let mut users: Vec<&ServiceNode> =
            graph.services.iter().filter(|s| s.envs.iter().any(|u| u.env == env)).collect();
        users.sort_by_key(|s| risk_key(s));
        let mut waves: Vec<Wave> = Vec::new();
        let mut last: Option<(Access, Criticality)> = None;
        for s in users {
            let class = (s.access, s.criticality);
            if last != Some(class) {
                waves.push(Wave {
                    number: waves.len() as u32 + 1,
                    services: Vec::new(),
                    risk: format!("{}, {}", s.access.label(), s.criticality.label()),
                    validation: Vec::new(),
                    rollback_minutes: 0,
                });
                last = Some(class);
            }
            let Some(w) = waves.last_mut() else { continue };
            w.services.push(s.app.clone());
            let replicas = s.envs.iter().find(|u| u.env == env).map_or(1, |u| u.replicas.max(1));
            w.rollback_minutes = w.rollback_minutes.max(est.revert_minutes + est.sync_minutes + 1 + replicas);
        }
        for w in &mut waves {
            w.validation = wave_gates(graph, &w.services);
            worst = worst.max(w.rollback_minutes);
            if w.rollback_minutes > rollback_target {
                risks.push(format!(
                    "{env} wave {} ({}): rollback estimated at {} min, over the {rollback_target} min target; pre-scale or raise maxSurge before it",
                    w.number,
                    w.services.join(", "),
                    w.rollback_minutes
                ));
            }
        }
        let rank = env_rank(&env);
        let soak = est.soak_hours.by_rank(rank);
        let estimate = waves.len() as u32 * est.hours_per_wave + soak;
        phases.push(Phase {
            name: format!("Migrate {env}"),
            kind: PhaseKind::Environment,
            env: Some(env.clone()),
            estimate_hours: estimate,
            steps: vec![
                format!("Merge the {env} overlay changes of the wave (one PR per wave) and sync its Argo CD Applications"),
                format!("Watch the wave's validation for 30 minutes before starting the next one"),
                format!("After the last wave, soak {soak} h with {from} still running and untouched"),
            ],
            waves,
            gate: vec![
                format!("No client in {env} connects to {from} any more (its connected-clients metric from {env} namespaces is 0)"),
                format!("Error rates and p99 latency of every migrated service in {env} at or below the baseline for {soak} h"),
                "The owners of the phase's services sign off".to_string(),
            ],
            rollback_triggers: rollback_triggers(&to),
            communication: vec![
                format!("Announce the {env} window to the owners of its services before the first wave"),
                format!("Post each wave's result in the migration channel; announce the end of {env}"),
            ],
        });
    }
    phases.push(cleanup(graph, est));
    let total_hours: u32 = phases.iter().map(|p| p.estimate_hours).sum();
    let fits_window = total_hours <= window_days * 24;
    if !fits_window {
        risks.push(format!(
            "the estimate ({total_hours} h, {} days) does not fit the {window_days}-day window; shorten soaks or widen the window",
            total_hours.div_ceil(24)
        ));
    }
    let unknown: Vec<&str> = graph
        .services
        .iter()
        .filter(|s| s.envs.iter().all(|u| u.running == super::graph::Running::Unknown))
        .map(|s| s.app.as_str())
        .collect();
    if graph.clusters_checked && !unknown.is_empty() {
        risks.push(format!("not confirmed running in any cluster: {}", unknown.join(", ")));
    }
    if graph.services.iter().any(|s| s.access == Access::ReadWrite) {
        risks.push(format!(
            "read-write users write to {from} until their wave: data written to {from} after the initial sync must be replicated or is lost on the new side"
        ));
    }
    let crit: Vec<&str> =
        graph.services.iter().filter(|s| s.criticality == Criticality::Critical).map(|s| s.app.as_str()).collect();
    if !crit.is_empty() {
        risks.push(format!("critical services move last in each environment: {}", crit.join(", ")));
    }
    MigrationPlan {
        from: from.clone(),
        to: to.clone(),
        phases,
        rollback: RollbackPlan {
            target_minutes: rollback_target,
            estimate_minutes: worst,
            meets_target: worst <= rollback_target,
            steps: vec![
                format!("Before each wave, open the revert PR of the wave's change, reviewed and ready to merge"),
                format!(
                    "On a trigger: merge the revert PR; the services point at {from} again ({from} kept running, blue/green)"
                ),
                "Sync the wave's Argo CD Applications and wait for the rollouts to finish".to_string(),
                format!("Confirm clients reconnected to {from}: connected clients back, error rate at the baseline"),
                "Record what fired the trigger; the wave is re-planned before it is tried again".to_string(),
            ],
        },
        total_hours,
        window_days,
        fits_window,
        risks,
    }
}

fn wave_gates(graph: &Graph, services: &[String]) -> Vec<String> {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let mut v = vec![
        format!("{} connect to {to} (connections from their pods > 0)", services.join(", ")),
        format!("{} no longer connect to {from}", services.join(", ")),
        "Error rate and p99 latency at or below the baseline for 30 minutes".to_string(),
    ];
    if services.iter().any(|s| graph.service(s).is_some_and(|n| n.access == Access::ReadWrite)) {
        v.push(format!("Reads after writes return the written data on {to} (smoke test)"));
    }
    v
}

fn rollback_triggers(to: &str) -> Vec<String> {
    vec![
        "Error rate above the baseline + 1 percentage point for 5 minutes".to_string(),
        "p99 latency 50% above the baseline for 10 minutes".to_string(),
        format!("Connection or authentication errors to {to}"),
        "Cache hit ratio below half of the baseline, or missing data reported".to_string(),
    ]
}

fn preparation(graph: &Graph, est: &MigrateEstimates) -> Phase {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let envs = promotion_order(&graph.envs).join(", ");
    Phase {
        name: "Preparation".into(),
        kind: PhaseKind::Preparation,
        env: None,
        estimate_hours: est.preparation_hours,
        steps: vec![
            format!("Provision {to} for {envs}, sized from {from}'s memory and connection peaks"),
            format!("Replicate or warm the data {from} holds into {to} (read-write users need it on the first read)"),
            format!("Allow egress to {to} in the NetworkPolicies of every service below (the rules to {from} stay)"),
            format!("Dashboards and alerts for {to} next to the {from} ones"),
            "Fill in the owners table and agree on the windows".to_string(),
        ],
        waves: Vec::new(),
        gate: vec![
            format!("{to} reachable from each environment's namespaces (a connection test pod per namespace)"),
            format!("Data in {to} matches {from} for a sample of keys"),
        ],
        rollback_triggers: vec![format!("{to} cannot be provisioned or reached: stop, nothing has moved")],
        communication: vec![format!("Announce the migration plan and its windows to every owner in the table")],
    }
}

fn cleanup(graph: &Graph, est: &MigrateEstimates) -> Phase {
    let from = &graph.dependency.name;
    let mut steps = vec![
        format!("Confirm no client in any environment connected to {from} for 7 days"),
        format!("Remove the NetworkPolicy rules, dashboards, alerts and scrape configs of {from}"),
    ];
    if !graph.dependency_applications.is_empty() {
        steps.push(format!(
            "Remove {from}'s Argo CD Applications ({}) and its app directory, after a final backup",
            graph.dependency_applications.join(", ")
        ));
    } else {
        steps.push(format!("Decommission {from} after a final backup"));
    }
    Phase {
        name: "Cleanup".into(),
        kind: PhaseKind::Cleanup,
        env: None,
        estimate_hours: est.cleanup_hours,
        steps,
        waves: Vec::new(),
        gate: vec![format!("{from} has no connections and its objects are gone from every cluster")],
        rollback_triggers: vec![format!("Any client still connects to {from}: stop and migrate it first")],
        communication: vec![format!("Announce {from}'s decommissioning a week ahead; close the migration")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_order_is_dev_staging_prod() {
        let envs: Vec<String> =
            ["prod-west", "staging", "dev", "prod-east", "qa"].iter().map(|s| s.to_string()).collect();
        assert_eq!(promotion_order(&envs), ["dev", "staging", "qa", "prod-west", "prod-east"]);
    }
}
