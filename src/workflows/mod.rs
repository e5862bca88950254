//! Workflows: deterministic Rust that turns a typed request into work done with tools.

pub mod drift;
pub mod validate;
