//! Filling a request's missing slots in a conversation: one question at a time, with the
//! choices and the default, checking each answer and asking again when it does not fit.

use std::collections::{BTreeSet, VecDeque};

use super::request::{Draft, Issue, Need, RepoFacts, WorkflowRequest};

/// Someone (or a script) who answers questions.
pub trait Prompter {
    /// Asks one question; None when the input has ended.
    fn ask(&mut self, question: &str) -> Option<String>;
    /// Tells something (why an answer was not taken).
    fn tell(&mut self, message: &str);
}

/// Answers from a queue; records the conversation. For tests, evals and scripted chat.
#[derive(Debug, Default)]
pub struct ScriptedPrompter {
    answers: VecDeque<String>,
    /// Every question (`? ...`), answer (`> ...`) and message (`! ...`), in order.
    pub transcript: Vec<String>,
}

impl ScriptedPrompter {
    pub fn new<S: Into<String>>(answers: impl IntoIterator<Item = S>) -> ScriptedPrompter {
        ScriptedPrompter { answers: answers.into_iter().map(Into::into).collect(), transcript: Vec::new() }
    }
}

impl Prompter for ScriptedPrompter {
    fn ask(&mut self, question: &str) -> Option<String> {
        self.transcript.push(format!("? {question}"));
        let a = self.answers.pop_front()?;
        self.transcript.push(format!("> {a}"));
        Some(a)
    }
    fn tell(&mut self, message: &str) {
        self.transcript.push(format!("! {message}"));
    }
}

/// Why a conversation ended without a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("cancelled")]
    Cancelled,
    #[error("the input ended before every question was answered")]
    EndOfInput,
    #[error("no usable answer for {0} after {1} tries")]
    TooManyAttempts(String, usize),
}

/// Asks for what a draft lacks until it resolves.
pub struct SlotFiller<'a> {
    facts: &'a RepoFacts,
    /// Tries per slot before giving up.
    pub max_attempts: usize,
}

impl<'a> SlotFiller<'a> {
    pub fn new(facts: &'a RepoFacts) -> SlotFiller<'a> {
        SlotFiller { facts, max_attempts: 3 }
    }

    /// Asks, in slot order, for every missing, invalid or ambiguous slot, and for the
    /// optional slots a workflow asks about (offering the default; an empty answer takes it).
    /// `cancel` (or `/cancel`) stops.
    pub fn fill(&self, draft: &mut Draft, p: &mut dyn Prompter) -> Result<WorkflowRequest, FillError> {
        let mut offered: BTreeSet<&'static str> = BTreeSet::new();
        let mut attempts: std::collections::BTreeMap<&'static str, usize> = Default::default();
        let mut told: BTreeSet<(&'static str, String)> = BTreeSet::new();
        loop {
            let problems = draft.problems(self.facts);
            // slots not in the workflow (stray arguments) cannot be asked about: drop them
            if let Some(stray) = problems.iter().find(|pr| draft.workflow.slot(pr.slot).is_none()) {
                if let Issue::Invalid(m) = &stray.issue {
                    p.tell(&format!("ignored {m}"));
                }
                draft.slots.remove(stray.slot);
                continue;
            }
            let next = draft.workflow.slots().iter().find_map(|spec| {
                if let Some(pr) = problems.iter().find(|pr| pr.slot == spec.name) {
                    return Some((spec, Some(pr.issue.clone())));
                }
                let offer = spec.ask && spec.need == Need::Optional && !draft.is_set(spec.name);
                (offer && !offered.contains(spec.name)).then_some((spec, None))
            });
            let Some((spec, issue)) = next else {
                return draft.resolve(self.facts).map_err(|_| FillError::Cancelled);
            };
            let n = attempts.entry(spec.name).or_default();
            if *n >= self.max_attempts {
                return Err(FillError::TooManyAttempts(spec.name.to_string(), *n));
            }
            *n += 1;
            match &issue {
                Some(Issue::Invalid(m)) if told.insert((spec.name, m.clone())) => p.tell(m),
                Some(Issue::Ambiguous { given, choices }) if told.insert((spec.name, given.clone())) => {
                    p.tell(&format!("\"{given}\" could be any of {}", choices.join(", ")))
                }
                _ => {}
            }
            let question = draft.question(spec.name, self.facts, issue.as_ref());
            let Some(answer) = p.ask(&question) else { return Err(FillError::EndOfInput) };
            let answer = answer.trim();
            if matches!(answer, "cancel" | "/cancel" | "/quit") {
                return Err(FillError::Cancelled);
            }
            if answer.is_empty() {
                if spec.need == Need::Optional {
                    offered.insert(spec.name);
                    draft.slots.remove(spec.name);
                } else {
                    p.tell("an answer is needed");
                }
                continue;
            }
            offered.insert(spec.name);
            draft.set_answer(spec.name, answer);
            if let Some(Err(e)) = draft.check_slot(spec.name, self.facts) {
                let msg = match e {
                    Issue::Invalid(m) => m,
                    Issue::Ambiguous { given, choices } => {
                        format!("\"{given}\" could be any of {}", choices.join(", "))
                    }
                    Issue::Missing => "an answer is needed".into(),
                };
                told.insert((spec.name, msg.clone()));
                p.tell(&msg);
            } else {
                attempts.remove(spec.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::Workflow;
    use super::*;

    fn facts() -> RepoFacts {
        RepoFacts::new(&["dev", "prod-central", "prod-east", "prod-west", "staging"], &["auth-service", "grafana"])
    }

    #[test]
    fn asks_one_at_a_time_and_re_asks_invalid_answers() {
        let f = facts();
        let mut draft = Draft::new(Workflow::Create);
        let mut p = ScriptedPrompter::new([
            "prometheus",
            "",
            "dev, staging and prod",
            "prom/prometheus",
            "prom/prometheus:v2.53.0",
            "9090",
            "50Gi",
            "medium",
            "",
            "servicemonitor, pdb",
        ]);
        let req = SlotFiller::new(&f).fill(&mut draft, &mut p).unwrap();
        assert_eq!(
            req,
            WorkflowRequest::Create {
                name: "prometheus".into(),
                namespace: "prometheus".into(),
                envs: vec![
                    "dev".into(),
                    "prod-central".into(),
                    "prod-east".into(),
                    "prod-west".into(),
                    "staging".into()
                ],
                image: "prom/prometheus:v2.53.0".into(),
                port: 9090,
                storage: Some("50Gi".into()),
                tier: Some("medium".into()),
                expose: Some("clusterip".into()),
                host: None,
                with: vec!["servicemonitor".into(), "pdb".into()],
            }
        );
        assert_eq!(
            p.transcript,
            vec![
                "? Application name?",
                "> prometheus",
                "? Namespace? [prometheus]",
                "> ",
                "? Target environments? (dev, prod-central, prod-east, prod-west, staging) [all]",
                "> dev, staging and prod",
                "? Container image (with an explicit tag, e.g. nginx:1.27)?",
                "> prom/prometheus",
                "! image \"prom/prometheus\" has no tag: give an explicit tag or digest, e.g. prom/prometheus:1.0.0",
                "? Container image (with an explicit tag, e.g. nginx:1.27)?",
                "> prom/prometheus:v2.53.0",
                "? Container port? [8080]",
                "> 9090",
                "? Persistent storage? (a size such as 10Gi, or no)",
                "> 50Gi",
                "? Size tier? (small, medium, large) [small]",
                "> medium",
                "? Exposure? (clusterip, loadbalancer, ingress) [clusterip]",
                "> ",
                "? Extras? (servicemonitor, networkpolicy, hpa, pdb, or none)",
                "> servicemonitor, pdb",
            ]
        );
    }

    #[test]
    fn ambiguity_is_asked_with_the_candidates() {
        let f = facts();
        let mut draft = Draft::new(Workflow::Rollback);
        draft.add("app", ["auth-service".to_string()]);
        draft.add("env", ["prod".to_string()]);
        let mut p = ScriptedPrompter::new(["prod-north", "prod-west"]);
        let req = SlotFiller::new(&f).fill(&mut draft, &mut p).unwrap();
        assert_eq!(req, WorkflowRequest::Rollback { app: "auth-service".into(), env: "prod-west".into(), to: None });
        assert_eq!(p.transcript[0], "! \"prod\" could be any of prod-central, prod-east, prod-west");
        assert_eq!(p.transcript[1], "? Which environment? (prod-central, prod-east, prod-west)");
        assert!(p.transcript[3].starts_with("! unknown environment \"prod-north\""), "{:?}", p.transcript);
    }

    #[test]
    fn gives_up_and_cancels() {
        let f = facts();
        let mut draft = Draft::new(Workflow::Rollback);
        let mut p = ScriptedPrompter::new(["nope", "nada", "zip"]);
        assert_eq!(SlotFiller::new(&f).fill(&mut draft, &mut p), Err(FillError::TooManyAttempts("app".into(), 3)));
        let mut p = ScriptedPrompter::new(["cancel"]);
        assert_eq!(SlotFiller::new(&f).fill(&mut Draft::new(Workflow::Rollback), &mut p), Err(FillError::Cancelled));
        let mut p = ScriptedPrompter::new(Vec::<String>::new());
        assert_eq!(SlotFiller::new(&f).fill(&mut Draft::new(Workflow::Rollback), &mut p), Err(FillError::EndOfInput));
    }
}
