//! LLM polish of a drafted message: the `commit` agent's prompt gets the structured summary and
//! the deterministic draft, the model answers with a message, and the answer is checked
//! (format, subject length, every app and environment still named, every `Refs:` trailer
//! kept, no number that the summary and draft do not hold). Any failure keeps the draft.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::json;

use super::draft::{Drafted, MAX_SUBJECT};
use crate::agents::{Agents, ToolCatalog};
use crate::error::Result;
use crate::llm::{ChatRequest, LlmClient, Message};

static HEADER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(\([^()\s]+\))?!?: \S.*$").ok()
});
static NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\d+(\.\d+)?").ok());

/// The message to use, and whether the model's wording was kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Polished {
    pub message: String,
    pub polished: bool,
    /// Why the model's answer was not used (the draft was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polish_rejected: Option<String>,
}

impl Polished {
    pub fn rejected(drafted: &Drafted, why: impl Into<String>) -> Polished {
        Polished { message: drafted.message.clone(), polished: false, polish_rejected: Some(why.into()) }
    }
}

/// The `commit` agent's prompt (the repo's `.agentops/prompts/commit.md.hbs` if it has one)
/// rendered with the summary and the draft.
pub fn render_prompt(repo_root: Option<&Path>, tools: &dyn ToolCatalog, drafted: &Drafted) -> Result<String> {
    let agents = Agents::load(repo_root, tools)?;
    let agent = agents.require("commit")?;
    let summary = serde_json::to_string_pretty(&drafted.summary).unwrap_or_default();
    agent.render_prompt(&json!({"summary": summary, "draft": drafted.message.trim_end()}))
}

fn numbers(text: &str) -> BTreeSet<String> {
    NUMBER.as_ref().map(|re| re.find_iter(text).map(|m| m.as_str().to_string()).collect()).unwrap_or_default()
}

/// Strips code fences a model may wrap the message in.
fn unfence(reply: &str) -> String {
    let t = reply.trim();
    let lines: Vec<&str> = t.lines().collect();
    if lines.len() >= 2 && lines[0].trim_start().starts_with("```") && lines[lines.len() - 1].trim() == "```" {
        return lines[1..lines.len() - 1].join("\n").trim().to_string();
    }
    t.to_string()
}

/// Checks a model's message against the draft it polished; the cleaned message, or why not.
pub fn check(reply: &str, drafted: &Drafted) -> std::result::Result<String, String> {
    let msg = unfence(reply);
    let mut lines = msg.lines();
    let header = lines.next().unwrap_or_default().trim_end();
    if !HEADER.as_ref().is_some_and(|re| re.is_match(header)) {
        return Err(format!("the subject line is not `type(scope): subject`: {header:?}"));
    }
    if header.chars().count() > MAX_SUBJECT {
        return Err(format!("the subject line has {} characters (at most {MAX_SUBJECT})", header.chars().count()));
    }
    if header.ends_with('.') {
        return Err("the subject ends with a period".into());
    }
    if lines.next().is_some_and(|l| !l.trim().is_empty()) {
        return Err("no blank line after the subject".into());
    }
    let (apps, envs) = drafted.summary.names();
    for name in apps.iter().chain(&envs) {
        if !msg.contains(name.as_str()) {
            return Err(format!("{name} is no longer mentioned"));
        }
    }
    for r in &drafted.summary.refs {
        if !msg.lines().any(|l| l.trim() == format!("Refs: {r}")) {
            return Err(format!("the trailer `Refs: {r}` is missing"));
        }
    }
    let mut known = numbers(&drafted.message);
    known.extend(numbers(&serde_json::to_string(&drafted.summary).unwrap_or_default()));
    if let Some(n) = numbers(&msg).into_iter().find(|n| !known.contains(n)) {
        return Err(format!("the number {n} appears in neither the summary nor the draft"));
    }
    Ok(format!("{}\n", msg.trim_end()))
}

/// Asks the model to polish the draft and checks the answer; the draft on any failure.
pub async fn polish(llm: &dyn LlmClient, model: &str, prompt: String, drafted: &Drafted) -> Polished {
    let request = ChatRequest {
        model: model.to_string(),
        messages: vec![Message::system(prompt), Message::user(drafted.message.clone())],
        tools: Vec::new(),
        temperature: None,
        ..Default::default()
    };
    let reply = match llm.complete(request).await {
        Ok(r) => r,
        Err(e) => return Polished::rejected(drafted, format!("the model did not answer: {e}")),
    };
    let Some(text) = reply.message.text().filter(|t| !t.trim().is_empty()) else {
        return Polished::rejected(drafted, "the model answered without a message");
    };
    match check(text, drafted) {
        Ok(message) => Polished { message, polished: true, polish_rejected: None },
        Err(why) => Polished::rejected(drafted, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatResponse, ScriptedLlm, Usage};
    use crate::workflows::commit::draft::{AppChange, CommitSummary, EnvChange, Files, Status};

    fn drafted() -> Drafted {
        let env = |e: &str| EnvChange {
            env: Some(e.into()),
            overlay: format!("apps/api/overlays/{e}"),
            status: Status::Changed,
            facts: Vec::new(),
            build_error: None,
        };
        Drafted {
            message: "fix(api): scale api to 3 replicas\n\n- replicas 3 in prod-west, prod-east\n\nValidated: kustomize build 2/2 overlays, checks passed\n\nRefs: OPS-7\n".into(),
            summary: CommitSummary {
                type_: "fix".into(),
                scope: Some("api".into()),
                subject: "scale api to 3 replicas".into(),
                files: Files::default(),
                apps: vec![AppChange {
                    name: "api".into(),
                    status: Status::Changed,
                    namespace: None,
                    part_of: None,
                    envs: vec![env("prod-west"), env("prod-east")],
                }],
                overlays: Vec::new(),
                validation: None,
                rendered_identical: false,
                reason: None,
                refs: vec!["OPS-7".into()],
            },
        }
    }

    #[test]
    fn the_check_catches_each_kind_of_failure() {
        let d = drafted();
        let good = "fix(api): run 3 replicas of api in prod\n\n- 3 replicas in prod-west and prod-east\n\nValidated: kustomize build 2/2 overlays, checks passed\n\nRefs: OPS-7";
        assert_eq!(check(good, &d).unwrap(), format!("{good}\n"));
        assert!(check(&format!("```\n{good}\n```"), &d).is_ok(), "fences are stripped");
        let bad = [
            ("Scale api to 3 replicas\n\nprod-west prod-east Refs: OPS-7", "type(scope)"),
            (
                &good.replace("fix(api): run 3 replicas of api in prod", &format!("fix(api): {}", "x".repeat(70)))[..],
                "characters",
            ),
            (&good.replace("in prod\n", "in prod.\n")[..], "period"),
            (&good.replace("prod-east", "the east")[..], "prod-east"),
            (&good.replace("Refs: OPS-7", "")[..], "Refs: OPS-7"),
            (&good.replace("3 replicas in", "5 replicas in")[..], "number 5"),
            (&good.replace("\n\n- 3", "\n- 3")[..], "blank line"),
        ];
        for (reply, why) in bad {
            let e = check(reply, &d).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[tokio::test]
    async fn a_rejected_answer_keeps_the_draft() {
        let d = drafted();
        let llm = ScriptedLlm::new([ChatResponse::text(
            "fix(api): scale api to 30 replicas\n\nprod-west prod-east\n\nRefs: OPS-7",
            Usage::default(),
        )]);
        let p = polish(&llm, "m", "prompt".into(), &d).await;
        assert_eq!(p.message, d.message);
        assert!(!p.polished && p.polish_rejected.as_deref().unwrap().contains("30"));
        let sent = llm.requests();
        assert_eq!(sent[0].messages.len(), 2);
    }

    #[test]
    fn the_prompt_carries_summary_and_draft() {
        let d = drafted();
        let p = render_prompt(None, &crate::tools::ToolRegistry::builtin(), &d).unwrap();
        assert!(p.contains("\"scope\": \"api\"") && p.contains("- replicas 3 in prod-west, prod-east"), "{p}");
        assert!(!p.contains("## Your tools"), "no tool context when polishing: {p}");
    }
}
