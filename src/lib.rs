//! agentops: run a Kubernetes GitOps repository (Kustomize bases and overlays, Argo CD
//! Applications) with an agent beside you. A request becomes a plan of typed tool calls;
//! tools render with the real kustomize, read the repo with positions, and report findings
//! that name file and line. The layers are in docs/architecture.md.

// Modules are pub(crate) unless something outside the crate uses them; their docs still link
// to one another (read with `cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod agents;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod error;
pub mod eval;
pub mod exec;
pub mod git;
pub mod k8s;
pub mod kustomize;
pub mod llm;
pub mod mcp;
pub mod mock;
pub mod planner;
pub mod repo;
pub mod report;
pub mod time;
pub mod tools;
pub mod workflows;

pub use error::{Error, Result};
