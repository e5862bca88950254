//! Planning: a request (slash command, natural language, CLI flags) becomes a [`Plan`](crate::exec::Plan) of
//! typed tool calls. The rules planner needs no network; the LLM planner proposes calls that
//! are validated against the tool schemas before the executor sees them.

pub mod llm;
pub mod rules;
