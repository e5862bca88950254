//! Proposals on disk: `.agentops/proposals.json` (git-ignored with the rest of `.agentops/`),
//! read and written whole under an exclusive lock on `.agentops/proposals.lock`, so the
//! watcher and `agentops approve` in another process never lose each other's writes, and
//! everything survives a restart. Each proposal also has a markdown file under
//! `.agentops/proposals/<id>.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::workflows::rollback::RollbackPlan;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalState {
    /// The rollback plan is being built.
    Planning,
    /// A plan waits for approval.
    Proposed,
    /// The alert maps to an app, but no rollback is proposed (the reason says why).
    NotProposed,
    /// Approved: the revert, sync and verification run.
    Running,
    /// Rolled back and verified.
    RolledBack,
    /// The approved rollback stopped or did not recover.
    Failed,
    /// The alert resolved.
    Closed,
}

impl ProposalState {
    pub fn label(&self) -> &'static str {
        match self {
            ProposalState::Planning => "planning",
            ProposalState::Proposed => "proposed",
            ProposalState::NotProposed => "not-proposed",
            ProposalState::Running => "running",
            ProposalState::RolledBack => "rolled-back",
            ProposalState::Failed => "failed",
            ProposalState::Closed => "closed",
        }
    }
}

/// The alert a proposal answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub name: String,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub summary: String,
    pub starts_at: String,
    #[serde(default)]
    pub generator_url: String,
}

/// One line of a proposal's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    pub state: ProposalState,
    /// Why no rollback is proposed, or how the proposal closed.
    #[serde(default)]
    pub reason: Option<String>,
    pub alert: AlertRecord,
    pub app: String,
    pub env: String,
    pub application: String,
    pub overlay: String,
    /// The culprit commits (short shas), newest first.
    #[serde(default)]
    pub culprit: Vec<String>,
    /// The revision to go back to (short sha).
    #[serde(default)]
    pub target: Option<String>,
    /// The plan exactly as proposed: what `approve` runs.
    #[serde(default)]
    pub plan: Option<RollbackPlan>,
    /// When the alert arrived (when it arrived again, for a proposal planned again).
    pub received_at: String,
    #[serde(default)]
    pub proposed_at: Option<String>,
    /// From the alert's arrival to the proposal.
    #[serde(default)]
    pub alert_to_proposal_ms: Option<u64>,
    /// From the alert's start (`startsAt`) to the proposal.
    #[serde(default)]
    pub since_alert_start_ms: Option<u64>,
    /// Notifications of this alert received (Alertmanager repeats them).
    pub notifications: u32,
    /// Carried out under `watch.auto_rollback`, not by a person.
    #[serde(default)]
    pub auto: bool,
    /// The incident report the rollback wrote.
    #[serde(default)]
    pub report: Option<String>,
    /// The watcher process that is planning it (a restart re-plans).
    #[serde(default)]
    pub session: String,
    /// The alert resolved while the approved rollback ran: it closes when the run ends.
    #[serde(default)]
    pub resolved_during_run: bool,
    #[serde(default)]
    pub history: Vec<Event>,
}

impl Proposal {
    /// A proposal being planned for an alert that just arrived at `target`.
    pub fn new(id: String, alert: AlertRecord, target: super::Target, session: String) -> Proposal {
        Proposal {
            id,
            state: ProposalState::Planning,
            reason: None,
            alert,
            app: target.app,
            env: target.env,
            application: target.application,
            overlay: target.overlay,
            culprit: Vec::new(),
            target: None,
            plan: None,
            received_at: crate::time::now_seconds(),
            proposed_at: None,
            alert_to_proposal_ms: None,
            since_alert_start_ms: None,
            notifications: 1,
            auto: false,
            report: None,
            session,
            resolved_during_run: false,
            history: Vec::new(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.state != ProposalState::Closed
    }

    /// The alert resolved: closed, saying how it recovered; while its rollback runs, it is
    /// only marked, and [`Proposal::run_ended`] closes it.
    pub fn resolve(&mut self) {
        if self.state == ProposalState::Running {
            self.resolved_during_run = true;
            self.event("the alert resolved while the rollback runs");
            return;
        }
        let how = match self.state {
            ProposalState::RolledBack => "recovered after the rollback",
            ProposalState::Failed => "the alert resolved after the rollback failed",
            _ => "recovered without action",
        };
        self.reason = Some(how.into());
        self.state = ProposalState::Closed;
        self.event(format!("alert {} resolved: closed, {how}", self.alert.name));
    }

    /// The approved rollback ended in `state`; an alert that resolved meanwhile closes it.
    pub fn run_ended(&mut self) {
        if self.resolved_during_run && self.state != ProposalState::Running {
            self.resolved_during_run = false;
            self.resolve();
        }
    }

    pub fn event(&mut self, what: impl Into<String>) {
        self.history.push(Event { time: crate::time::now_seconds(), what: what.into() });
    }
}

/// Everything the store holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposals {
    pub proposals: Vec<Proposal>,
    /// When the watcher rolled back on its own (ms since the epoch): `max_per_hour` counts
    /// these, across restarts.
    #[serde(default)]
    pub auto_actions: Vec<i64>,
}

impl Proposals {
    /// The open proposal of an alert (by its fingerprint).
    pub fn open_for(&mut self, fingerprint: &str) -> Option<&mut Proposal> {
        self.proposals.iter_mut().rev().find(|p| p.is_open() && p.alert.fingerprint == fingerprint)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Proposal> {
        self.proposals.iter_mut().find(|p| p.id == id)
    }

    /// A proposal by its id or an unambiguous prefix of it.
    pub fn find(&self, id: &str) -> Result<&Proposal, String> {
        if let Some(p) = self.proposals.iter().find(|p| p.id == id) {
            return Ok(p);
        }
        let hits: Vec<&Proposal> = self.proposals.iter().filter(|p| !id.is_empty() && p.id.starts_with(id)).collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no proposal {id:?}; `agentops proposals` lists them")),
            _ => Err(format!("{id:?} is the start of {} proposal ids; give more of it", hits.len())),
        }
    }
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of a repo: `<repo>/.agentops/`.
    pub fn for_repo(root: &Path) -> Store {
        Store { dir: root.join(".agentops") }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("proposals.json")
    }

    /// The markdown file of a proposal, repo-relative.
    pub fn markdown_rel(id: &str) -> String {
        format!(".agentops/proposals/{id}.md")
    }

    /// Reads everything (empty when nothing was stored yet).
    pub fn read(&self) -> Result<Proposals, Error> {
        let _lock = self.lock()?;
        self.read_unlocked()
    }

    fn read_unlocked(&self) -> Result<Proposals, Error> {
        let path = self.file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Config {
                file: ".agentops/proposals.json".into(),
                line: Some(e.line() as u32),
                message: format!("{e}; the watcher's proposals are unreadable: move the file away to start afresh"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Proposals::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Reads, changes and writes back under the lock; the file is replaced atomically.
    pub fn update<T>(&self, f: impl FnOnce(&mut Proposals) -> T) -> Result<T, Error> {
        let _lock = self.lock()?;
        let mut all = self.read_unlocked()?;
        let out = f(&mut all);
        let text = serde_json::to_vec_pretty(&all).map_err(|e| Error::Internal(e.to_string()))?;
        let path = self.file();
        let tmp = self.dir.join(format!("proposals.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(out)
    }

    /// Writes the markdown file of a proposal as the store has it now, under the lock (so a
    /// slower writer never leaves an older state on disk).
    pub fn refresh_markdown(&self, id: &str) -> Result<(), Error> {
        let _lock = self.lock()?;
        if let Some(p) = self.read_unlocked()?.proposals.iter().find(|p| p.id == id) {
            self.write_markdown(p)?;
        }
        Ok(())
    }

    /// Writes a proposal's markdown file.
    pub fn write_markdown(&self, p: &Proposal) -> Result<PathBuf, Error> {
        let dir = self.dir.join("proposals");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}.md", p.id));
        std::fs::write(&path, super::markdown(p)).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// An exclusive advisory lock on `.agentops/proposals.lock`, released when dropped.
    fn lock(&self) -> Result<Lock, Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        // keep .agentops out of git without touching the repo's own .gitignore (as the journal does)
        let ignore = self.dir.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(&ignore, "*\n");
        }
        let path = self.dir.join("proposals.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        lock_exclusive(&file).map_err(|e| Error::io(&path, e))?;
        Ok(Lock { _file: file })
    }
}

struct Lock {
    // the lock goes with the descriptor
    _file: std::fs::File,
}

#[cfg(unix)]
fn lock_exclusive(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor this File owns for the whole call.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_f: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Takes one automatic action from the budget when `max_per_hour` allows it (the action is
/// counted before it runs, so a crash mid-rollback still counts); otherwise says how many
/// ran in the last hour.
pub fn take_auto_budget(all: &mut Proposals, now_ms: i64, max_per_hour: u32) -> Result<(), usize> {
    all.auto_actions.retain(|t| now_ms - t < 3_600_000);
    if all.auto_actions.len() >= max_per_hour as usize {
        return Err(all.auto_actions.len());
    }
    all.auto_actions.push(now_ms);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(id: &str, fp: &str, state: ProposalState) -> Proposal {
        let alert = AlertRecord {
            name: "HighErrorRatio".into(),
            fingerprint: fp.into(),
            labels: BTreeMap::new(),
            summary: String::new(),
            starts_at: String::new(),
            generator_url: String::new(),
        };
        let target = super::super::Target {
            app: "auth-service".into(),
            env: "prod-west".into(),
            application: "auth-service-prod-west".into(),
            overlay: "apps/auth-service/overlays/prod-west".into(),
        };
        Proposal { state, ..Proposal::new(id.into(), alert, target, String::new()) }
    }

    #[test]
    fn proposals_persist_under_the_lock_and_ids_resolve_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_repo(dir.path());
        assert_eq!(store.read().unwrap(), Proposals::default());
        store
            .update(|all| {
                all.proposals.push(proposal("abc123", "fp1", ProposalState::Closed));
                all.proposals.push(proposal("abd456", "fp1", ProposalState::Proposed));
            })
            .unwrap();
        let again = Store::for_repo(dir.path());
        let mut all = again.read().unwrap();
        assert_eq!(all.open_for("fp1").unwrap().id, "abd456", "the closed one is not reopened");
        assert!(all.open_for("fp2").is_none());
        assert_eq!(all.find("abc").unwrap().id, "abc123");
        assert!(all.find("ab").unwrap_err().contains("start of 2"));
        assert!(all.find("zzz").unwrap_err().contains("no proposal"));
        assert_eq!(std::fs::read_to_string(dir.path().join(".agentops/.gitignore")).unwrap(), "*\n");
    }

    #[test]
    fn a_resolution_during_the_run_closes_it_when_the_run_ends() {
        let mut p = proposal("a", "fp", ProposalState::Running);
        p.resolve();
        assert_eq!(p.state, ProposalState::Running);
        p.state = ProposalState::RolledBack;
        p.run_ended();
        assert_eq!((p.state, p.reason.as_deref()), (ProposalState::Closed, Some("recovered after the rollback")));
        let mut q = proposal("b", "fp", ProposalState::Proposed);
        q.resolve();
        assert_eq!(q.reason.as_deref(), Some("recovered without action"));
        let mut r = proposal("c", "fp", ProposalState::Proposed);
        r.run_ended();
        assert_eq!(r.state, ProposalState::Proposed, "nothing resolved: unchanged");
    }

    #[test]
    fn the_auto_budget_counts_the_last_hour() {
        let mut all = Proposals::default();
        let t = 10_000_000;
        assert_eq!(take_auto_budget(&mut all, t, 2), Ok(()));
        assert_eq!(take_auto_budget(&mut all, t + 1000, 2), Ok(()));
        assert_eq!(take_auto_budget(&mut all, t + 2000, 2), Err(2));
        // an hour after the first, one slot is free again
        assert_eq!(take_auto_budget(&mut all, t + 3_600_000, 2), Ok(()));
        assert_eq!(all.auto_actions.len(), 2);
        assert_eq!(take_auto_budget(&mut all, t + 3_600_001, 0), Err(2));
    }
}
