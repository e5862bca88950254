//! The eval harness (`agentops eval`): requests checked against expected plans and outcomes
//! in a world of its own (a fixture repo with git history, mock clusters), with the real
//! `agentops` binary run per turn and judge-free checks. See docs/evals.md.

pub(crate) mod case;
pub(crate) mod check;
pub(crate) mod run;
pub(crate) mod world;

pub use case::{Case, Check, LoadError, PlannerKind, glob_match, load_cases, parse_case};
pub use check::find_leak;
pub use run::{CaseReport, RunOptions, SuiteReport, Summary, render_text, run_suite, summarize};
