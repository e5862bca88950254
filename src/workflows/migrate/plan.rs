//! The planner: preparation, one phase per environment in promotion order (dev → staging →
//! prod), cleanup. Within a phase, waves go by what the services keep in the dependency,
//! cheapest to lose first (read-only users, caches, rate/TTL data, sessions, queues and
//! idempotency keys, then what nothing in the repo explains), each with its data strategy,
//! what a rollback loses, validation gates and its rollback time. Observers (dashboards,
//! exporters, alerts) are no wave: they are repointed in preparation and cleanup. Blue/green:
//! the old dependency keeps running until cleanup, so a rollback is a revert of the config
//! change, not a data restore.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::feasibility::{Feasibility, Verdict};
use super::graph::{Criticality, Graph, ServiceNode, Usage};

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
    /// What they keep in the dependency.
    pub usage: Usage,
    /// `cache` ... `queues/idempotency`, and the criticality of the most critical service.
    pub risk: String,
    /// How their data moves: warm, dual-write, drain, accept loss.
    pub strategy: String,
    /// What a rollback of this wave loses.
    pub rollback_loses: String,
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
    /// Hours a soak after the last wave takes (environment phases).
    #[serde(default)]
    pub soak_hours: u32,
    /// Hours from the start of the migration when the phase starts.
    #[serde(default)]
    pub start_hour: u32,
    pub steps: Vec<String>,
    pub waves: Vec<Wave>,
    /// The gate to pass before the next phase starts.
    pub gate: Vec<String>,
    pub rollback_triggers: Vec<String>,
    pub communication: Vec<String>,
    /// Why the phase cannot run as planned (the target cannot serve this environment).
    #[serde(default)]
    pub blocked: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RollbackPlan {
    pub target_minutes: u32,
    /// The slowest wave's rollback.
    pub estimate_minutes: u32,
    pub meets_target: bool,
    pub steps: Vec<String>,
}

/// One line of the calendar: days (from 1) of the window and what happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CalendarEntry {
    /// `3` or `3-5`.
    pub days: String,
    pub phase: String,
    pub what: String,
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
    /// Services that only read the dependency's metrics: repointed, never migrated.
    #[serde(default)]
    pub observers: Vec<String>,
    #[serde(default)]
    pub calendar: Vec<CalendarEntry>,
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

/// Within a wave: critical services last, then by name.
fn in_wave(s: &ServiceNode) -> (bool, String) {
    (s.criticality == Criticality::Critical, s.app.clone())
}

/// TTLs of the services of a wave, for the strategy's words.
fn ttls(graph: &Graph, services: &[String]) -> String {
    let t: Vec<String> = services
        .iter()
        .filter_map(|a| graph.service(a))
        .flat_map(|s| s.keeps.ttls.iter().map(move |t| format!("{} {t}", s.app)))
        .collect();
    if t.is_empty() { String::new() } else { format!(" ({})", t.join("; ")) }
}

/// A wave's data strategy in a few words (commit messages, terminal).
pub fn short_strategy(usage: Usage) -> &'static str {
    match usage {
        Usage::Observer | Usage::ReadOnly => "nothing to move",
        Usage::Cache => "warm or start cold",
        Usage::RateTtl => "accept the loss or dual-write for one TTL",
        Usage::Sessions => "dual-write for one session TTL",
        Usage::QueueIdempotency => "drain the queue, copy the idempotency keys",
        Usage::Unknown => "ask the owner; dual-write or copy",
    }
}

/// How a wave's data moves, and what its rollback loses.
pub fn strategy(graph: &Graph, usage: Usage, services: &[String]) -> (String, String) {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let t = ttls(graph, services);
    match usage {
        Usage::Observer | Usage::ReadOnly => (
            format!("switch the reads; nothing to move (they write nothing to {from})"),
            "nothing: they write nothing".into(),
        ),
        Usage::Cache => (
            format!("warm the hot keys or start cold: the cache refills from the service's own source{t}"),
            format!("nothing: {from} still holds its cache; what was cached in {to} is dropped"),
        ),
        Usage::RateTtl => (
            format!(
                "accept the loss at a quiet hour, or dual-write for one TTL{t}: counters and reservations on {from} are not copied and expire"
            ),
            format!(
                "counters and reservations made in {to} since the switch: rate limits restart, open reservations are dropped"
            ),
        ),
        Usage::Sessions => (
            format!(
                "dual-write (write both, read {to} then {from}) for one session TTL{t} before the switch, or copy the keys at the switch; otherwise every signed-in user signs in again"
            ),
            format!(
                "sessions created in {to} since the switch, unless the dual-write kept {from} current: those users sign in again"
            ),
        ),
        Usage::QueueIdempotency => (
            format!(
                "drain: stop enqueuing on {from}, let the workers empty it, then switch the workers; copy the idempotency keys or dual-write them for one TTL{t}"
            ),
            format!(
                "jobs queued in {to} and not yet processed (drain them back first), and idempotency keys written since the switch: a retried request may repeat its side effect"
            ),
        ),
        Usage::Unknown => (
            "ask the owner what it keeps; dual-write or copy the keys before the switch".to_string(),
            format!("whatever it wrote to {to} since the switch"),
        ),
    }
}

fn wave_gates(graph: &Graph, usage: Usage, services: &[String]) -> Vec<String> {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let who = services.join(", ");
    let mut v = vec![
        format!("{who}: connected to {to} (its client count from their namespaces > 0), none to {from}"),
        "Error rate and p99 latency at or below the baseline for 30 minutes".to_string(),
    ];
    match usage {
        Usage::Cache => v.push("Cache hit ratio back to its baseline within one TTL".into()),
        Usage::RateTtl => v.push("Rate-limit rejections (429) and reservation failures at the baseline".into()),
        Usage::Sessions => v.push("Sign-ins and token checks at the baseline; no rise in 401s".into()),
        Usage::QueueIdempotency => {
            v.push(format!("The queue on {from} is empty before the workers switch; the one on {to} drains"));
            v.push("No duplicate side effects (orders, messages) in the first hour".into());
        }
        Usage::Unknown => v.push(format!("Reads after writes return the written data on {to} (smoke test)")),
        Usage::Observer | Usage::ReadOnly => {}
    }
    v
}

fn rollback_triggers(to: &str) -> Vec<String> {
    vec![
        "Error rate above the baseline + 1 percentage point for 5 minutes".to_string(),
        "p99 latency 50% above the baseline for 10 minutes".to_string(),
        format!("Connection, TLS or authentication errors to {to}"),
        "Missing data reported (sessions lost, jobs not processed, cache misses far above the baseline)".to_string(),
    ]
}

pub fn plan(
    graph: &Graph,
    rollback_target: u32,
    window_days: u32,
    est: &MigrateEstimates,
    feasibility: &Feasibility,
) -> MigrationPlan {
    let (from, to) = (graph.dependency.name.clone(), graph.to.clone());
    let observers: Vec<String> =
        graph.services.iter().filter(|s| s.keeps.usage == Usage::Observer).map(|s| s.app.clone()).collect();
    let mut phases = vec![preparation(graph, est, feasibility, &observers)];
    let mut risks = Vec::new();
    let mut worst = 0u32;
    for env in promotion_order(&graph.envs) {
        let mut users: Vec<&ServiceNode> = graph
            .services
            .iter()
            .filter(|s| s.keeps.usage != Usage::Observer && s.envs.iter().any(|u| u.env == env))
            .collect();
        users.sort_by_key(|s| (s.keeps.usage, in_wave(s)));
        let mut waves: Vec<Wave> = Vec::new();
        for s in users {
            if waves.last().is_none_or(|w| w.usage != s.keeps.usage) {
                waves.push(Wave {
                    number: waves.len() as u32 + 1,
                    services: Vec::new(),
                    usage: s.keeps.usage,
                    risk: String::new(),
                    strategy: String::new(),
                    rollback_loses: String::new(),
                    validation: Vec::new(),
                    rollback_minutes: 0,
                });
            }
            let Some(w) = waves.last_mut() else { continue };
            w.services.push(s.app.clone());
            let replicas = s.envs.iter().find(|u| u.env == env).map_or(1, |u| u.replicas.max(1));
            w.rollback_minutes = w.rollback_minutes.max(est.revert_minutes + est.sync_minutes + 1 + replicas);
        }
        for w in &mut waves {
            let crit = w
                .services
                .iter()
                .filter_map(|a| graph.service(a))
                .map(|s| s.criticality)
                .max()
                .unwrap_or(Criticality::Low);
            w.risk = format!("{}, {}", w.usage.label(), crit.label());
            (w.strategy, w.rollback_loses) = strategy(graph, w.usage, &w.services);
            w.validation = wave_gates(graph, w.usage, &w.services);
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
        let blocked = feasibility.of(&env).filter(|f| f.verdict == Verdict::Blocked).map(|f| f.note.clone());
        phases.push(Phase {
            name: format!("Migrate {env}"),
            kind: PhaseKind::Environment,
            env: Some(env.clone()),
            estimate_hours: estimate,
            soak_hours: soak,
            start_hour: 0,
            steps: vec![
                format!("Merge the {env} overlay changes of the wave (one PR per wave) and sync its Argo CD Applications"),
                "Watch the wave's gates for 30 minutes before starting the next one".to_string(),
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
                format!("Post each wave's start and result in the migration channel; announce the end of {env}"),
            ],
            blocked,
        });
    }
    phases.push(cleanup(graph, est, &observers));
    let mut hour = 0;
    for p in &mut phases {
        p.start_hour = hour;
        hour += p.estimate_hours;
    }
    let total_hours: u32 = phases.iter().map(|p| p.estimate_hours).sum();
    let fits_window = total_hours <= window_days * 24;
    if !fits_window {
        risks.push(format!(
            "the estimate ({total_hours} h, {} days) does not fit the {window_days}-day window; shorten soaks or widen the window",
            total_hours.div_ceil(24)
        ));
    }
    for f in feasibility.blocked() {
        risks.push(format!("{}: {}", f.env, f.note));
    }
    for c in &feasibility.client_changes {
        // the first clause: what and who; the document's Feasibility has the rest
        risks.push(c.split(": each").next().unwrap_or(c).split("; a ").next().unwrap_or(c).to_string());
    }
    let unknown: Vec<&str> = graph
        .services
        .iter()
        .filter(|s| s.keeps.usage != Usage::Observer)
        .filter(|s| s.envs.iter().all(|u| u.running == super::graph::Running::Unknown))
        .map(|s| s.app.as_str())
        .collect();
    if graph.clusters_checked && !unknown.is_empty() {
        risks.push(format!("not confirmed running in any cluster: {}", unknown.join(", ")));
    }
    let unexplained: Vec<&str> =
        graph.services.iter().filter(|s| s.keeps.usage == Usage::Unknown).map(|s| s.app.as_str()).collect();
    if !unexplained.is_empty() {
        risks.push(format!(
            "nothing in the repo says what {} keep{} in {from}: they move last; ask their owners",
            unexplained.join(", "),
            if unexplained.len() == 1 { "s" } else { "" }
        ));
    }
    let calendar = calendar(&phases, window_days);
    MigrationPlan {
        from: from.clone(),
        to: to.clone(),
        phases,
        rollback: RollbackPlan {
            target_minutes: rollback_target,
            estimate_minutes: worst,
            meets_target: worst <= rollback_target,
            steps: vec![
                "Before each wave, open the revert PR of the wave's change, reviewed and ready to merge".to_string(),
                format!(
                    "On a trigger: merge the revert PR; the services point at {from} again ({from} kept running, blue/green)"
                ),
                "Sync the wave's Argo CD Applications and wait for the rollouts to finish".to_string(),
                format!("Confirm clients reconnected to {from}: connected clients back, error rate at the baseline"),
                "Record what fired the trigger and what the wave's rollback lost; re-plan the wave before trying again"
                    .to_string(),
            ],
        },
        total_hours,
        window_days,
        fits_window,
        risks,
        observers,
        calendar,
    }
}

/// Days of the window (from 1) that hours `[start, start+len)` fall on: `3` or `3-5`.
pub fn days(start: u32, len: u32) -> String {
    let a = start / 24 + 1;
    let b = (start + len.max(1) - 1) / 24 + 1;
    if a == b { a.to_string() } else { format!("{a}-{b}") }
}

fn calendar(phases: &[Phase], window_days: u32) -> Vec<CalendarEntry> {
    let mut out = Vec::new();
    for p in phases {
        match p.kind {
            PhaseKind::Environment => {
                let waves = p.estimate_hours - p.soak_hours;
                let env = p.env.clone().unwrap_or_default();
                let blocked = if p.blocked.is_some() { " (blocked until decided: see Feasibility)" } else { "" };
                out.push(CalendarEntry {
                    days: days(p.start_hour, p.estimate_hours),
                    phase: env,
                    what: format!(
                        "{} waves on day {} ({waves} h), then soak {} h{blocked}",
                        p.waves.len(),
                        days(p.start_hour, waves),
                        p.soak_hours
                    ),
                });
            }
            _ => out.push(CalendarEntry {
                days: days(p.start_hour, p.estimate_hours),
                phase: p.name.clone(),
                what: p.steps.first().cloned().unwrap_or_default(),
            }),
        }
    }
    let end = phases.last().map_or(0, |p| p.start_hour + p.estimate_hours);
    let last = end.div_ceil(24);
    out.push(CalendarEntry {
        days: last.to_string(),
        phase: "end".into(),
        what: if last <= window_days {
            format!("done on day {last} of the {window_days}-day window ({} days to spare)", window_days - last)
        } else {
            format!("day {last}: past the {window_days}-day window")
        },
    });
    out
}

fn preparation(graph: &Graph, est: &MigrateEstimates, f: &Feasibility, observers: &[String]) -> Phase {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let feasible: Vec<String> =
        f.envs.iter().filter(|e| e.verdict != Verdict::Blocked).map(|e| e.env.clone()).collect();
    let mut steps = vec![format!(
        "Provision {to} for {}, sized from {from}'s memory and connection peaks, with TLS and AUTH on",
        promotion_order(&feasible).join(", ")
    )];
    if !f.client_changes.is_empty() {
        steps.push(format!(
            "Merge the client changes {} asks for first (TLS, AUTH, databases: see Feasibility); unused until each wave",
            f.target.product
        ));
    }
    for b in f.blocked() {
        steps.push(format!("Decide {}: {}", b.env, b.note));
    }
    steps.push(format!("Allow egress to {to} in the NetworkPolicies of every client (the rules to {from} stay)"));
    if !observers.is_empty() {
        steps.push(format!(
            "Observers ({}): dashboards and alerts for {to} next to the {from} ones; they are no wave and never a canary",
            observers.join(", ")
        ));
    }
    steps.push("Fill in the owners table and agree on the windows".to_string());
    Phase {
        name: "Preparation".into(),
        kind: PhaseKind::Preparation,
        env: None,
        estimate_hours: est.preparation_hours,
        soak_hours: 0,
        start_hour: 0,
        steps,
        waves: Vec::new(),
        gate: vec![
            format!(
                "{to} reachable from each environment's namespaces with TLS and AUTH (a connection test pod per namespace)"
            ),
            "Every client's TLS and password settings merged (unused until its wave)".to_string(),
        ],
        rollback_triggers: vec![format!("{to} cannot be provisioned or reached: stop, nothing has moved")],
        communication: vec![format!("Announce the migration plan and its windows to every owner in the table")],
        blocked: None,
    }
}

fn cleanup(graph: &Graph, est: &MigrateEstimates, observers: &[String]) -> Phase {
    let from = &graph.dependency.name;
    let mut steps = vec![
        format!("Confirm no client in any environment connected to {from} for 7 days"),
        format!("Remove the NetworkPolicy rules, dashboards, alerts and scrape configs of {from}"),
    ];
    if !observers.is_empty() {
        steps.push(format!("Repoint or retire the {from} dashboards of {}", observers.join(", ")));
    }
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
        soak_hours: 0,
        start_hour: 0,
        steps,
        waves: Vec::new(),
        gate: vec![format!("{from} has no connections and its objects are gone from every cluster")],
        rollback_triggers: vec![format!("Any client still connects to {from}: stop and migrate it first")],
        communication: vec![format!("Announce {from}'s decommissioning a week ahead; close the migration")],
        blocked: None,
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
