//! Plans and steps: an ordered list of tool calls, each with its arguments, the effect the
//! tool declares and a one-line summary for people. Serializable, so `--dry-run` prints it
//! and evals compare it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::{Effect, ToolError, ToolRegistry};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub tool: String,
    pub args: Value,
    /// The tool's declared effect (the executor looks it up again; a plan cannot lower it).
    pub effect: Effect,
    pub summary: String,
    /// Arguments filled in when the plan runs, from earlier steps' outputs (before the step
    /// is approved, so the approval shows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bind: Vec<Bind>,
}

/// One argument taken from an earlier step's output, e.g. harmonize_apply's `expect` from
/// harmonize_plan's `/fingerprint`: what runs is what the person was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bind {
    /// The argument to set.
    pub arg: String,
    /// The earlier step, by its 0-based position in the plan.
    pub step: usize,
    /// JSON pointer into that step's output, e.g. `/fingerprint`.
    pub pointer: String,
}

impl Step {
    /// A step whose effect comes from the registry. Unknown tools and arguments that fail
    /// the tool's schema are errors here, before anything runs.
    pub fn new(
        registry: &ToolRegistry,
        tool: &str,
        args: Value,
        summary: impl Into<String>,
    ) -> Result<Step, ToolError> {
        registry.validate_args(tool, &args)?;
        let effect = registry.get(tool).map(|t| t.effect).unwrap_or(Effect::WritesCluster);
        Ok(Step { tool: tool.into(), args, effect, summary: summary.into(), bind: Vec::new() })
    }

    /// This step with `arg` taken from step `step`'s output at `pointer` when the plan runs.
    pub fn bind(mut self, arg: &str, step: usize, pointer: &str) -> Step {
        self.bind.push(Bind { arg: arg.into(), step, pointer: pointer.into() });
        self
    }

    /// The step with its bound arguments filled from the earlier outputs (`outputs[i]` is
    /// step i's output, when it ran and succeeded). A missing value is an error naming it.
    pub fn resolve(&self, outputs: &[Option<&Value>]) -> Result<Step, String> {
        let mut step = self.clone();
        for b in &self.bind {
            let from = outputs.get(b.step).copied().flatten();
            let value = from.and_then(|o| o.pointer(&b.pointer)).filter(|v| !v.is_null()).ok_or_else(|| {
                format!("`{}` comes from step {}'s output at {}, which has no such value", b.arg, b.step + 1, b.pointer)
            })?;
            match step.args.as_object_mut() {
                Some(args) => {
                    args.insert(b.arg.clone(), value.clone());
                }
                None => return Err(format!("`{}` cannot be set: the step's arguments are not an object", b.arg)),
            }
        }
        Ok(step)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The request as the user gave it.
    pub request: String,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn new(request: impl Into<String>) -> Plan {
        Plan { request: request.into(), steps: Vec::new() }
    }

    /// A short stable hash of the plan, recorded with every journal line.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        blake3::hash(text.as_bytes()).to_hex()[..12].to_string()
    }

    /// The most dangerous effect of any step.
    pub fn max_effect(&self) -> Effect {
        self.steps.iter().map(|s| s.effect).max().unwrap_or(Effect::ReadOnly)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply_step() -> Step {
        Step {
            tool: "harmonize_apply".into(),
            args: json!({"kind": "Ingress", "reason": "r"}),
            effect: Effect::WritesRepo,
            summary: String::new(),
            bind: Vec::new(),
        }
        .bind("expect", 0, "/fingerprint")
    }

    #[test]
    fn bound_arguments_come_from_earlier_outputs() {
        let out = json!({"fingerprint": "abc", "matched": 3});
        let step = apply_step().resolve(&[Some(&out)]).unwrap();
        assert_eq!(step.args, json!({"kind": "Ingress", "reason": "r", "expect": "abc"}));
        // what is shown before the run says where the value comes from
        let shown = serde_json::to_value(apply_step()).unwrap();
        assert_eq!(shown["bind"], json!([{"arg": "expect", "step": 0, "pointer": "/fingerprint"}]));
    }

    #[test]
    fn a_missing_value_is_an_error_naming_it() {
        for outputs in [vec![], vec![None], vec![Some(json!({"matched": 3}))], vec![Some(json!({"fingerprint": null}))]]
        {
            let refs: Vec<Option<&Value>> = outputs.iter().map(Option::as_ref).collect();
            let e = apply_step().resolve(&refs).unwrap_err();
            assert_eq!(e, "`expect` comes from step 1's output at /fingerprint, which has no such value");
        }
        let mut not_object = apply_step();
        not_object.args = json!([1]);
        assert!(not_object.resolve(&[Some(&json!({"fingerprint": "x"}))]).unwrap_err().contains("not an object"));
    }
}
