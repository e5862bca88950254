//! agentops: run a Kubernetes GitOps repository (Kustomize bases and overlays, Argo CD
//! Applications) with an agent beside you. A request becomes a plan of typed tool calls;
//! tools render with the real kustomize, read the repo with positions, and report findings
//! that name file and line.

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
