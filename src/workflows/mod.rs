//! Workflows: deterministic Rust that turns a typed request into work done with tools.

pub mod capture;
pub mod commit;
pub mod context;
pub mod create;
pub mod drift;
pub mod fingerprint;
pub mod harmonize;
pub mod migrate;
pub mod rollback;
pub mod validate;
pub mod watch;

pub use context::{Ctx, CtxOptions, PerCluster, blocking, target_envs};
