//! Workflows: deterministic Rust that turns a typed request into work done with tools.

pub mod capture;
pub mod drift;
pub mod validate;
