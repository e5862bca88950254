//! Workflows: deterministic Rust that turns a typed request into work done with tools.

pub(crate) mod capture;
pub mod commit;
pub(crate) mod context;
pub(crate) mod create;
pub(crate) mod docs;
pub mod drift;
pub(crate) mod files;
pub(crate) mod fingerprint;
pub mod harmonize;
pub mod migrate;
pub(crate) mod rollback;
pub(crate) mod scan;
pub(crate) mod validate;
pub mod watch;

pub use context::{Ctx, CtxOptions, PerCluster, Progress, blocking, target_envs};
